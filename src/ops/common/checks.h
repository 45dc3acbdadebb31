// Argument checks shared by the ops' check-and-dispatch layers.
#pragma once

#include <cstdint>

#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache::ops {

// `name` must live on the device of the op's main input, called `ref_name` in the message.
inline Status check_same_device(const char* name, const TensorView& v, const char* ref_name, const TensorView& ref) {
  if (!(v.device == ref.device)) {
    return invalid_argument(name, " is on ", v.device.str(), " but ", ref_name, " is on ", ref.device.str(),
                            "; move it explicitly (RoboCache never copies between devices)");
  }
  return Status::ok();
}

// Per-row valid lengths [B] (int32 or int64) for a batched input; the values are checked by the backends.
struct LengthsArg {
  const void* data = nullptr;
  bool int64 = true;
  int64_t stride = 0;
};

inline Status check_lengths(const char* name, const TensorView& lengths, const char* ref_name, const TensorView& ref,
                            bool batched, int64_t B, LengthsArg* out) {
  ROBOCACHE_RETURN_IF_ERROR(check_same_device(name, lengths, ref_name, ref));
  if (!batched) return invalid_argument(name, " is only for batched ", ref_name, ", got ", ref_name, " of shape ", ref.shape_str());
  if (lengths.dtype != DType::Int64 && lengths.dtype != DType::Int32) {
    return type_error(name, " dtype must be int32 or int64, got ", dtype_name(lengths.dtype));
  }
  if (lengths.ndim != 1 || lengths.shape[0] != B) {
    return invalid_argument(name, " must have shape [", B, "], got ", lengths.shape_str());
  }
  *out = LengthsArg{lengths.data, lengths.dtype == DType::Int64, lengths.strides[0]};
  return Status::ok();
}

}  // namespace robocache::ops
