// DLPack / nanobind ndarray <-> robocache::TensorView, and Status -> Python exception.
// The only place that knows both nanobind and robocache types.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>  // every file that casts to std::string must see this caster (ODR)

#include <algorithm>
#include <cstdint>
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

// The DLPack dtype of a robocache dtype (the inverse of dl_view's mapping).
nb::dlpack::dtype dlpack_dtype(DType dtype);

// "module.Type" of an object, for error messages.
std::string python_type_name(nb::handle h);

// A TensorView from DLPack fields (nanobind's import or a framework's DLPack exchange API); strides in
// elements, nullptr for a compact row-major array.
TensorView dl_view(void* data, nb::dlpack::dtype dt, int32_t device_type, int32_t device_id, size_t ndim,
                   const int64_t* shape, const int64_t* strides, const char* name);

template <class A>
TensorView to_view(const A& a, const char* name) {
  int64_t shape[kMaxDims], strides[kMaxDims];
  const size_t nd = std::min(a.ndim(), static_cast<size_t>(kMaxDims));
  for (size_t i = 0; i < nd; ++i) {
    shape[i] = static_cast<int64_t>(a.shape(i));
    strides[i] = a.stride(i);
  }
  return dl_view(const_cast<void*>(static_cast<const void*>(a.data())), a.dtype(), a.device_type(), a.device_id(),
                 a.ndim(), shape, strides, name);
}

// The DLPack exchange API (DLPack 1.2+) that a framework publishes as `type(x).__dlpack_c_exchange_api__`:
// C functions that describe a tensor without building a capsule (PyTorch >= 2.10: ~0.05 us against 2-5 us
// for tensor.__dlpack__()) and return the framework's current stream. Declared here from the DLPack
// specification because the packaged dlpack.h (Debian libdlpack-dev 0.6) predates it.
struct DLManagedTensorVersioned {
  struct {
    uint32_t major, minor;
  } version;
  void* manager_ctx;
  void (*deleter)(DLManagedTensorVersioned* self);
  uint64_t flags;
  nb::dlpack::dltensor dl_tensor;
};
struct DLPackExchangeAPI {
  struct {
    uint32_t major, minor;
    void* prev_api;
  } header;
  int (*managed_tensor_allocator)(nb::dlpack::dltensor* prototype, DLManagedTensorVersioned** out, void* error_ctx,
                                  void (*set_error)(void* error_ctx, const char* kind, const char* message));
  void* managed_tensor_from_py_object_no_sync;
  int (*managed_tensor_to_py_object_no_sync)(DLManagedTensorVersioned* tensor, void** out_py_object);
  int (*dltensor_from_py_object_no_sync)(void* py_object, nb::dlpack::dltensor* out);
  int (*current_work_stream)(int32_t device_type, int32_t device_id, void** out_stream);
};

// The exchange API of an object's type, or nullptr when it publishes none or is not a PyTorch type (cached
// per type).
const DLPackExchangeAPI* exchange_api(nb::handle h);

// A new, uninitialised array of `like`'s framework (which must publish the DLPack exchange API with an
// allocator) on the device of `like_view`: PyTorch allocates it as torch.empty would, without the Python call.
nb::object allocate_like(nb::handle like, const TensorView& like_view, DType dtype, const int64_t* shape, int ndim);

// The stream argument of a CUDA call: an integer is the caller's stream (cudaStream_t; 0 is the legacy
// default stream); None asks the framework of `data` (which must publish the DLPack exchange API) for its
// current stream on data's device. CPU data needs no stream.
Stream resolve_stream(nb::handle stream, nb::handle data, const TensorView& view);

// An array argument, in one of three forms:
//  - an object whose type publishes the DLPack exchange API (torch.Tensor since PyTorch 2.10);
//  - a descriptor tuple (data_ptr, dtype_code, device, shape, strides) that the Python layer builds for
//    torch tensors of a PyTorch without the exchange API, and for NumPy bfloat16 arrays: about 0.5 us
//    against 2-5 us for tensor.__dlpack__(), which dominated small calls.
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
    if (const DLPackExchangeAPI* api = exchange_api(h)) {
      nb::dlpack::dltensor t{};
      if (api->dltensor_from_py_object_no_sync(h.ptr(), &t) != 0) throw_not_describable(name);
      view_ = dl_view(static_cast<char*>(t.data) + t.byte_offset, t.dtype, t.device.device_type, t.device.device_id,
                      static_cast<size_t>(t.ndim), t.shape, t.strides, name);
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
  // The framework could not describe the array (e.g. a sparse torch tensor): its error's first line, named.
  [[noreturn]] static void throw_not_describable(const char* name) {
    const nb::python_error error;  // takes the pending Python error
    std::string what = error.what();
    what = what.substr(0, what.find('\n'));
    throw nb::type_error((std::string(name) + " cannot be read in place (" + what +
                          "); RoboCache takes dense arrays with strides")
                             .c_str());
  }
  [[noreturn]] static void throw_not_array(nb::handle h, const char* name, bool writable) {
    const std::string type = python_type_name(h);
    throw nb::type_error((std::string(name) + " must be a" + (writable ? " writable" : "n") +
                          " array (NumPy, PyTorch, CuPy or any DLPack producer), got " + type)
                             .c_str());
  }
  std::optional<Array> keep_;
  std::optional<MutableArray> writable_keep_;
  TensorView view_;
};

// An array argument that may be None: get() is its view, or nullptr for None.
class OptionalArrayArg {
 public:
  OptionalArrayArg(nb::handle h, const char* name, bool writable) {
    if (!h.is_none()) arg_.emplace(h, name, writable);
  }
  const TensorView* get() const { return arg_ ? &arg_->view() : nullptr; }

 private:
  std::optional<ArrayArg> arg_;
};

}  // namespace robocache::bindings
