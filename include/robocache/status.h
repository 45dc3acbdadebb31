// Errors as values. The Python binding turns them into ValueError / TypeError / RuntimeError.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace robocache {

enum class StatusCode { Ok, InvalidArgument, TypeError, IOError, Runtime };

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::Ok; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::Ok;
  std::string message_;
};

namespace detail {
// Message formatting without iostreams: a library built against one libstdc++'s headers and loaded
// next to another (seen on the GPU machine) crashed inside std::ostream, while libc's snprintf is safe.
inline void append(std::string& s, std::string_view v) { s.append(v.data(), v.size()); }
inline void append(std::string& s, const char* v) { s.append(v); }
inline void append(std::string& s, const std::string& v) { s.append(v); }
inline void append(std::string& s, char v) { s.push_back(v); }
inline void append(std::string& s, bool v) { s.append(v ? "true" : "false"); }
inline void append(std::string& s, double v) {
  // The shortest %g form that reads back as the same double: 0.5 -> "0.5", 0.1 -> "0.1".
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v || v != v) break;
  }
  s.append(buf);
}
inline void append(std::string& s, float v) { append(s, static_cast<double>(v)); }
template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>, int> = 0>
void append(std::string& s, T v) {
  s.append(std::to_string(v));
}

template <class... Args>
std::string concat(const Args&... args) {
  std::string s;
  (append(s, args), ...);
  return s;
}
}  // namespace detail

template <class... Args>
Status invalid_argument(const Args&... args) {
  return {StatusCode::InvalidArgument, detail::concat(args...)};
}
template <class... Args>
Status type_error(const Args&... args) {
  return {StatusCode::TypeError, detail::concat(args...)};
}
template <class... Args>
Status io_error(const Args&... args) {
  return {StatusCode::IOError, detail::concat(args...)};
}
template <class... Args>
Status runtime_error(const Args&... args) {
  return {StatusCode::Runtime, detail::concat(args...)};
}

}  // namespace robocache

#define ROBOCACHE_RETURN_IF_ERROR(expr)          \
  do {                                           \
    ::robocache::Status _rc_status = (expr);     \
    if (!_rc_status.is_ok()) return _rc_status;  \
  } while (0)
