// Names of op options, parsed in one place so every op rejects an unknown name the same way.
#include <string>

#include "robocache/ops.h"

namespace robocache {

Status parse_method(std::string_view name, InterpMethod* out) {
  if (name == "linear") *out = InterpMethod::Linear;
  else if (name == "nearest") *out = InterpMethod::Nearest;
  else if (name == "hold") *out = InterpMethod::Hold;
  else if (name == "slerp") *out = InterpMethod::Slerp;
  else return invalid_argument("method must be 'linear', 'nearest', 'hold' or 'slerp', got '", std::string(name), "'");
  return Status::ok();
}

Status parse_boundary(std::string_view name, Boundary* out) {
  if (name == "clamp") *out = Boundary::Clamp;
  else if (name == "extrapolate") *out = Boundary::Extrapolate;
  else if (name == "nan") *out = Boundary::Nan;
  else return invalid_argument("boundary must be 'clamp', 'extrapolate' or 'nan', got '", std::string(name), "'");
  return Status::ok();
}

Status parse_backend(std::string_view name, Backend* out) {
  if (name.empty() || name == "auto") *out = Backend::Auto;
  else if (name == "cpu") *out = Backend::CPU;
  else if (name == "cuda") *out = Backend::CUDA;
  else return invalid_argument("backend must be 'cpu', 'cuda' or None, got '", std::string(name), "'");
  return Status::ok();
}

const char* method_name(InterpMethod method) {
  switch (method) {
    case InterpMethod::Linear: return "linear";
    case InterpMethod::Nearest: return "nearest";
    case InterpMethod::Hold: return "hold";
    case InterpMethod::Slerp: return "slerp";
  }
  return "?";
}

const char* boundary_name(Boundary boundary) {
  switch (boundary) {
    case Boundary::Clamp: return "clamp";
    case Boundary::Extrapolate: return "extrapolate";
    case Boundary::Nan: return "nan";
  }
  return "?";
}

}  // namespace robocache
