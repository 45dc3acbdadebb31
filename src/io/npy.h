// NumPy .npy parsing (format versions 1.0, 2.0, 3.0) into an owned Array. Our own parser: the format is a
// magic string, a Python-literal header dict and raw data, and no well-kept C++ library reads it alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "robocache/episode.h"

namespace robocache::io {

// A parsed .npy header: the element type as written (descr '<f4' -> kind 'f', 4 bytes), the shape, and
// where the raw data starts. parse_npy_header checks that the data that follows has exactly the size the
// header promises, so a caller can read (or memory-map) it in place.
struct NpyHeader {
  std::string descr;   // as written: "<f4", "|u1", ...
  char kind = 0;       // 'f', 'i', 'u', 'b'
  int itemsize = 0;    // bytes per element
  bool fortran = false;
  std::vector<int64_t> shape;
  size_t data_offset = 0;  // byte offset of the first element
  int64_t numel = 0;
};

// `size` is the whole file's; any little-endian (or single-byte) numeric dtype is accepted here, object
// arrays are refused.
Status parse_npy_header(const uint8_t* data, size_t size, const std::string& where, NpyHeader* out);

// `where` names the array in errors ("<file>: member 'actions.npy'"). Little-endian numeric dtypes only;
// int8/int16/uint16 widen to int32 and uint32 to int64 (the episode model's integer types); Fortran-order
// arrays are transposed to C order; object (pickled) arrays are refused.
Status parse_npy(const uint8_t* data, size_t size, const std::string& where, Array* out);

// Reads one .npy file.
Status read_npy_file(const std::string& file, Array* out);

}  // namespace robocache::io
