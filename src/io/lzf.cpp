#include "io/lzf.h"

#include <cstring>

namespace robocache::io {

bool lzf_decompress(const uint8_t* in, size_t in_len, uint8_t* out, size_t out_len, std::string* error) {
  size_t ip = 0, op = 0;
  while (ip < in_len) {
    const size_t ctrl_at = ip;
    const unsigned ctrl = in[ip++];
    if (ctrl < 32) {  // literal run of ctrl + 1 bytes
      const size_t len = ctrl + 1;
      if (ip + len > in_len) {
        *error = "literal run at offset " + std::to_string(ctrl_at) + " reads past the end of the compressed data";
        return false;
      }
      if (op + len > out_len) {
        *error = "literal run at offset " + std::to_string(ctrl_at) + " writes past the declared uncompressed size";
        return false;
      }
      std::memcpy(out + op, in + ip, len);
      ip += len;
      op += len;
    } else {  // back reference: length (ctrl >> 5) + 2, distance ((ctrl & 31) << 8 | next) + 1
      size_t len = ctrl >> 5;
      if (len == 7) {
        if (ip >= in_len) {
          *error = "back reference at offset " + std::to_string(ctrl_at) + " is cut off";
          return false;
        }
        len += in[ip++];
      }
      if (ip >= in_len) {
        *error = "back reference at offset " + std::to_string(ctrl_at) + " is cut off";
        return false;
      }
      const size_t dist = ((ctrl & 0x1fu) << 8) + in[ip++] + 1;
      len += 2;
      if (dist > op) {
        *error = "back reference at offset " + std::to_string(ctrl_at) + " points before the start of the output";
        return false;
      }
      if (op + len > out_len) {
        *error = "back reference at offset " + std::to_string(ctrl_at) + " writes past the declared uncompressed size";
        return false;
      }
      for (size_t k = 0; k < len; ++k, ++op) out[op] = out[op - dist];  // may overlap: byte by byte
    }
  }
  if (op != out_len) {
    *error = "stream ends after " + std::to_string(op) + " of " + std::to_string(out_len) + " declared bytes";
    return false;
  }
  return true;
}

}  // namespace robocache::io
