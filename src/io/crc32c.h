// CRC32C (Castagnoli), as TFRecord frames use it. Our own table-driven version (slicing by 8): it is 40
// lines against a fixed polynomial, checked against the RFC 3720 test vector and the real shards.
#pragma once

#include <cstddef>
#include <cstdint>

namespace robocache::io {

uint32_t crc32c(const uint8_t* data, size_t size, uint32_t crc = 0);

// TFRecord's masked CRC: rotate right by 15 and add a constant, so a CRC of data holding CRCs stays strong.
inline uint32_t masked_crc32c(const uint8_t* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

}  // namespace robocache::io
