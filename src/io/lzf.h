// LZF decompression (the format of liblzf, used by PCD binary_compressed).
// Written here rather than linking liblzf: it is not on PyPI or in manylinux images, so depending on it
// would make `pip install .` need a system package for a 40-line decoder, and ours reports where a
// corrupt stream breaks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace robocache::io {

// Decodes `in` into exactly `out_len` bytes of `out`. On corrupt input returns false and sets `error`
// (naming the offset in `in`).
bool lzf_decompress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len, std::string* error);

}  // namespace robocache::io
