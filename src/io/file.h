// Whole-file reads for the readers, with C stdio rather than iostreams: a library built against one
// libstdc++'s headers and loaded beside another (seen on the GPU machine) crashed inside std::ostream.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "robocache/status.h"

namespace robocache::io {

// All of `path`, or at most `limit` bytes.
inline Status read_file(const std::string& path, std::string* bytes, size_t limit = static_cast<size_t>(-1)) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return io_error(path, ": cannot open file: ", std::strerror(errno));
  bytes->clear();
  char buf[1 << 16];
  size_t got = 0;
  while (bytes->size() < limit && (got = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    bytes->append(buf, std::min(got, limit - bytes->size()));
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return io_error(path, ": read error after ", bytes->size(), " bytes");
  return Status::ok();
}

}  // namespace robocache::io
