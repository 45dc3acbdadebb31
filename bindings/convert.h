// DLPack / nanobind ndarray <-> robocache::TensorView, and Status -> Python exception.
// The only place that knows both nanobind and robocache types.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <string>

#include "robocache/robocache.h"

namespace robocache::bindings {

namespace nb = nanobind;

using Array = nb::ndarray<nb::ro>;          // an input: any framework, device, layout
using MutableArray = nb::ndarray<>;         // an output written in place

[[noreturn]] void throw_status(const Status& status);

inline void check(const Status& status) {
  if (!status.is_ok()) throw_status(status);
}

template <class A>
TensorView to_view(const A& a, const char* name) {
  TensorView v;
  const nb::dlpack::dtype dt = a.dtype();
  using code = nb::dlpack::dtype_code;
  const auto c = static_cast<code>(dt.code);
  if (dt.lanes != 1) throw nb::type_error((std::string(name) + ": vector dtypes are not supported").c_str());
  if (c == code::Float && dt.bits == 16) v.dtype = DType::Float16;
  else if (c == code::Bfloat && dt.bits == 16) v.dtype = DType::BFloat16;
  else if (c == code::Float && dt.bits == 32) v.dtype = DType::Float32;
  else if (c == code::Float && dt.bits == 64) v.dtype = DType::Float64;
  else if (c == code::Int && dt.bits == 32) v.dtype = DType::Int32;
  else if (c == code::Int && dt.bits == 64) v.dtype = DType::Int64;
  else if (c == code::UInt && dt.bits == 8) v.dtype = DType::UInt8;
  else if (c == code::Bool && dt.bits == 8) v.dtype = DType::Bool;
  else {
    throw nb::type_error((std::string(name) + " has an unsupported dtype (DLPack code " + std::to_string(dt.code) +
                          ", " + std::to_string(dt.bits) + " bits)")
                             .c_str());
  }
  const int dev = a.device_type();
  if (dev == nb::device::cpu::value || dev == nb::device::cuda_host::value) {
    v.device = Device{DeviceType::CPU, 0};
  } else if (dev == nb::device::cuda::value || dev == nb::device::cuda_managed::value) {
    v.device = Device{DeviceType::CUDA, a.device_id()};
  } else {
    throw nb::value_error((std::string(name) + " is on an unsupported device (DLPack device type " +
                           std::to_string(dev) + "); RoboCache runs on the CPU and on CUDA GPUs")
                              .c_str());
  }
  if (a.ndim() > static_cast<size_t>(kMaxDims)) {
    throw nb::value_error((std::string(name) + " has " + std::to_string(a.ndim()) + " dimensions; at most " +
                           std::to_string(kMaxDims) + " are supported")
                              .c_str());
  }
  v.ndim = static_cast<int>(a.ndim());
  for (int i = 0; i < v.ndim; ++i) {
    v.shape[i] = static_cast<int64_t>(a.shape(i));
    v.strides[i] = a.stride(i);
  }
  v.data = const_cast<void*>(static_cast<const void*>(a.data()));
  return v;
}

}  // namespace robocache::bindings
