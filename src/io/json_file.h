// A JSON file parsed with nlohmann::json; a syntax error names the file and the byte offset.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "io/file.h"

namespace robocache::io {

inline Status read_json_file(const std::string& file, nlohmann::json* out) {
  std::string text;
  ROBOCACHE_RETURN_IF_ERROR(read_file(file, &text));
  try {
    *out = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return io_error(file, ": invalid JSON at byte offset ", e.byte, ": ", e.what());
  }
  return Status::ok();
}

}  // namespace robocache::io
