// DLPack / nanobind ndarray <-> robocache::TensorView, and Status -> Python exception.
// The only place that knows both nanobind and robocache types.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <optional>
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

// Runs `f` (which returns a Status) with the GIL released, so other Python threads run meanwhile, then
// raises its error, if any, as a Python exception.
template <class F>
void check_without_gil(F&& f) {
  Status status;
  {
    nb::gil_scoped_release release;
    status = f();
  }
  check(status);
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

// An array argument, in either of two forms:
//  - a descriptor tuple (data_ptr, dtype_code, device, shape, strides) that the Python layer builds for
//    torch tensors: about 0.5 us against 2-5 us for tensor.__dlpack__(), which dominated small calls.
//    dtype_code is robocache::DType's value; device is -1 for the CPU, else the CUDA device index.
//  - anything nanobind imports through DLPack or the buffer protocol (NumPy, CuPy, torch, ...).
// Either way the memory is the caller's, read in place; the argument holds the import for the call.
class ArrayArg {
 public:
  ArrayArg(nb::handle h, const char* name, bool writable) {
    if (nb::isinstance<nb::tuple>(h) && nb::len(h) == 5) {
      nb::tuple t = nb::borrow<nb::tuple>(h);
      const int code = nb::cast<int>(t[1]);
      if (code < 0 || code > static_cast<int>(DType::Bool)) {
        throw nb::type_error((std::string(name) + ": bad dtype code " + std::to_string(code)).c_str());
      }
      view_.dtype = static_cast<DType>(code);
      view_.data = reinterpret_cast<void*>(nb::cast<uintptr_t>(t[0]));
      const int dev = nb::cast<int>(t[2]);
      view_.device = dev < 0 ? Device{DeviceType::CPU, 0} : Device{DeviceType::CUDA, dev};
      nb::handle shape = t[3], strides = t[4];
      const size_t nd = nb::len(shape);
      if (nd > static_cast<size_t>(kMaxDims) || nb::len(strides) != nd) {
        throw nb::value_error((std::string(name) + ": bad shape/strides descriptor").c_str());
      }
      view_.ndim = static_cast<int>(nd);
      for (size_t i = 0; i < nd; ++i) {
        view_.shape[i] = nb::cast<int64_t>(shape[i]);
        view_.strides[i] = nb::cast<int64_t>(strides[i]);
      }
      return;
    }
    if (writable) {
      MutableArray a;
      if (!nb::try_cast(h, a)) throw_not_array(h, name, true);
      view_ = to_view(a, name);
      writable_keep_ = std::move(a);
    } else {
      Array a;
      if (!nb::try_cast(h, a)) throw_not_array(h, name, false);
      view_ = to_view(a, name);
      keep_ = std::move(a);
    }
  }
  const TensorView& view() const { return view_; }

 private:
  [[noreturn]] static void throw_not_array(nb::handle h, const char* name, bool writable) {
    const std::string type = nb::cast<std::string>(nb::str(nb::handle(reinterpret_cast<PyObject*>(Py_TYPE(h.ptr())))));
    throw nb::type_error((std::string(name) + " must be a" + (writable ? " writable" : "n") +
                          " array (NumPy, PyTorch, CuPy or any DLPack producer), got " + type)
                             .c_str());
  }
  std::optional<Array> keep_;
  std::optional<MutableArray> writable_keep_;
  TensorView view_;
};

}  // namespace robocache::bindings
