// Errors as values. The Python binding turns them into ValueError / TypeError / RuntimeError.
#pragma once

#include <sstream>
#include <string>
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
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << args);
  return os.str();
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
