#include <stdexcept>

#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
    case DType::Bool: return "bool";
  }
  return "unknown";
}

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float16:
    case DType::BFloat16: return 2;
    case DType::Float32:
    case DType::Int32: return 4;
    case DType::Float64:
    case DType::Int64: return 8;
    case DType::UInt8:
    case DType::Bool: return 1;
  }
  return 0;
}

std::string Device::str() const {
  return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

std::string TensorView::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += detail::concat(i ? ", " : "", shape[i]);
  return s + "]";
}

TensorView make_view(void* data, DType dtype, Device device, std::initializer_list<int64_t> shape,
                     std::initializer_list<int64_t> strides) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.device = device;
  v.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) v.shape[i++] = s;
  if (strides.size() != 0 && strides.size() != shape.size()) {
    // A programming error in the caller, not bad data: no Status to return from a view constructor.
    throw std::invalid_argument(detail::concat("make_view: ", strides.size(), " strides for ", shape.size(),
                                               " dimensions"));
  }
  if (shape.size() > static_cast<size_t>(kMaxDims)) {
    throw std::invalid_argument(detail::concat("make_view: ", shape.size(), " dimensions, at most ", kMaxDims));
  }
  if (strides.size() == shape.size()) {
    i = 0;
    for (int64_t s : strides) v.strides[i++] = s;
  } else {
    int64_t step = 1;
    for (int d = v.ndim - 1; d >= 0; --d) {
      v.strides[d] = step;
      step *= v.shape[d];
    }
  }
  return v;
}

}  // namespace robocache
