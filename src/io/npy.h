// NumPy .npy parsing (format versions 1.0, 2.0, 3.0) into an owned Array. Our own parser: the format is a
// magic string, a Python-literal header dict and raw data, and no well-kept C++ library reads it alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "robocache/episode.h"

namespace robocache::io {

// `where` names the array in errors ("<file>: member 'actions.npy'"). Little-endian numeric dtypes only;
// int8/int16/uint16 widen to int32 and uint32 to int64 (the episode model's integer types); Fortran-order
// arrays are transposed to C order; object (pickled) arrays are refused.
Status parse_npy(const uint8_t* data, size_t size, const std::string& where, Array* out);

// Reads one .npy file.
Status read_npy_file(const std::string& file, Array* out);

}  // namespace robocache::io
