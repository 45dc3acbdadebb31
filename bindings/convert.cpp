// Array helpers shared by the bindings: DLPack dtypes and fields <-> robocache's, the DLPack exchange API,
// and the stream of a call.
#include <string>
#include <string_view>

#include "convert.h"

namespace robocache::bindings {

nb::dlpack::dtype dlpack_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float16: return {uint8_t(nb::dlpack::dtype_code::Float), 16, 1};
    case DType::BFloat16: return {uint8_t(nb::dlpack::dtype_code::Bfloat), 16, 1};
    case DType::Float32: return nb::dtype<float>();
    case DType::Float64: return nb::dtype<double>();
    case DType::Int32: return nb::dtype<int32_t>();
    case DType::Int64: return nb::dtype<int64_t>();
    case DType::UInt8: return nb::dtype<uint8_t>();
    case DType::Bool: return nb::dtype<bool>();
  }
  throw nb::type_error("unknown dtype");
}

std::string python_type_name(nb::handle h) {
  return nb::cast<std::string>(nb::str(nb::handle(reinterpret_cast<PyObject*>(Py_TYPE(h.ptr())))));
}

TensorView dl_view(void* data, nb::dlpack::dtype dt, int32_t device_type, int32_t device_id, size_t ndim,
                   const int64_t* shape, const int64_t* strides, const char* name) {
  TensorView v;
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
  if (device_type == nb::device::cpu::value || device_type == nb::device::cuda_host::value) {
    v.device = Device{DeviceType::CPU, 0};
  } else if (device_type == nb::device::cuda::value || device_type == nb::device::cuda_managed::value) {
    v.device = Device{DeviceType::CUDA, device_id};
  } else {
    throw nb::value_error((std::string(name) + " is on an unsupported device (DLPack device type " +
                           std::to_string(device_type) + "); RoboCache runs on the CPU and on CUDA GPUs")
                              .c_str());
  }
  if (ndim > static_cast<size_t>(kMaxDims)) {
    throw nb::value_error((std::string(name) + " has " + std::to_string(ndim) + " dimensions; at most " +
                           std::to_string(kMaxDims) + " are supported")
                              .c_str());
  }
  v.ndim = static_cast<int>(ndim);
  int64_t compact = 1;
  for (int i = v.ndim - 1; i >= 0; --i) {
    v.shape[i] = shape[i];
    v.strides[i] = strides != nullptr ? strides[i] : compact;
    compact *= shape[i];
  }
  v.data = data;
  return v;
}

const DLPackExchangeAPI* exchange_api(nb::handle h) {
  // Called with the GIL held, which guards the cache. Types live as long as the process in practice;
  // a type object freed and another allocated at its address would be looked up again only if the
  // attribute differed, so each entry also keeps a reference to its type.
  struct Entry {
    PyTypeObject* type;
    const DLPackExchangeAPI* api;
  };
  static Entry cache[16];
  static int used = 0;
  PyTypeObject* type = Py_TYPE(h.ptr());
  for (int i = 0; i < used; ++i) {
    if (cache[i].type == type) return cache[i].api;
  }
  const DLPackExchangeAPI* api = nullptr;
  // PyTorch's table only, the one tested: another producer's no-sync functions might hand over a buffer that
  // is not ready yet (e.g. an array JAX is still computing); other arrays go through __dlpack__.
  bool torch_type = false;
  if (PyObject* module = PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__module__")) {
    const char* m = PyUnicode_Check(module) ? PyUnicode_AsUTF8(module) : nullptr;
    torch_type = m != nullptr && (std::string_view(m) == "torch" || std::string_view(m).rfind("torch.", 0) == 0);
    Py_DECREF(module);
  }
  PyErr_Clear();
  PyObject* attr = torch_type ? PyObject_GetAttrString(reinterpret_cast<PyObject*>(type), "__dlpack_c_exchange_api__")
                              : nullptr;
  if (attr == nullptr) {
    PyErr_Clear();
  } else {
    void* p = nullptr;
    if (PyCapsule_CheckExact(attr)) {
      p = PyCapsule_GetPointer(attr, "dlpack_exchange_api");  // PyTorch publishes a named capsule
    } else if (PyLong_Check(attr)) {
      p = PyLong_AsVoidPtr(attr);  // the specification's form: the table's address as an integer
    }
    if (p == nullptr) PyErr_Clear();
    Py_DECREF(attr);
    // Only a major version 1 table has the layout declared in convert.h.
    const auto* candidate = static_cast<const DLPackExchangeAPI*>(p);
    if (candidate != nullptr && candidate->header.major == 1 && candidate->header.minor >= 2 &&
        candidate->dltensor_from_py_object_no_sync != nullptr && candidate->current_work_stream != nullptr) {
      api = candidate;
    }
  }
  if (used < static_cast<int>(std::size(cache))) {
    Py_INCREF(type);
    cache[used++] = Entry{type, api};
  }
  return api;
}

nb::object allocate_like(nb::handle like, const TensorView& like_view, DType dtype, const int64_t* shape, int ndim) {
  const DLPackExchangeAPI* api = exchange_api(like);
  if (api == nullptr || api->managed_tensor_allocator == nullptr || api->managed_tensor_to_py_object_no_sync == nullptr) {
    throw nb::value_error(("out=None needs the framework of the input to allocate through the DLPack exchange API, "
                           "which " + python_type_name(like) + " does not publish; pass out")
                              .c_str());
  }
  nb::dlpack::dltensor proto{};
  proto.device.device_type = like_view.device.is_cuda() ? nb::device::cuda::value : nb::device::cpu::value;
  proto.device.device_id = like_view.device.is_cuda() ? like_view.device.index : 0;
  proto.ndim = ndim;
  proto.dtype = dlpack_dtype(dtype);
  proto.shape = const_cast<int64_t*>(shape);
  struct Failure {
    std::string kind, message;
  } failure;
  const auto set_error = [](void* ctx, const char* kind, const char* message) {
    auto* f = static_cast<Failure*>(ctx);
    f->kind = kind != nullptr ? kind : "";
    f->message = message != nullptr ? message : "";
  };
  DLManagedTensorVersioned* tensor = nullptr;
  if (api->managed_tensor_allocator(&proto, &tensor, &failure, set_error) != 0 || tensor == nullptr) {
    if (PyErr_Occurred()) throw nb::python_error();
    throw std::runtime_error("allocating the output (" + failure.kind + "): " + failure.message);
  }
  void* object = nullptr;
  if (api->managed_tensor_to_py_object_no_sync(tensor, &object) != 0 || object == nullptr) {  // takes `tensor`
    if (PyErr_Occurred()) throw nb::python_error();
    throw std::runtime_error("the DLPack exchange API returned no array for the allocated output");
  }
  return nb::steal(static_cast<PyObject*>(object));
}

Stream resolve_stream(nb::handle stream, nb::handle data, const TensorView& view) {
  if (!stream.is_none()) return reinterpret_cast<Stream>(nb::cast<uintptr_t>(stream));
  if (view.device.type != DeviceType::CUDA) return nullptr;
  const DLPackExchangeAPI* api = exchange_api(data);
  if (api == nullptr) {
    throw nb::value_error(("stream=None needs data's framework to report its current CUDA stream through the "
                           "DLPack exchange API, which " + python_type_name(data) + " does not publish; pass the stream")
                              .c_str());
  }
  void* s = nullptr;
  if (api->current_work_stream(nb::device::cuda::value, view.device.index, &s) != 0) throw nb::python_error();
  return static_cast<Stream>(s);
}

}  // namespace robocache::bindings
