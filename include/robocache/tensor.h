// Non-owning tensor views: the only array type the C++ API speaks.
// A view never allocates or frees; the caller (PyTorch, NumPy, CuPy, a C++ program) owns the memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace robocache {

enum class DType : uint8_t { Float16, BFloat16, Float32, Float64, Int32, Int64, UInt8, Bool };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device& other) const { return type == other.type && index == other.index; }
  std::string str() const;  // "cpu", "cuda:1"
};

constexpr int kMaxDims = 6;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::Float32;
  Device device{};
  int ndim = 0;
  std::array<int64_t, kMaxDims> shape{};
  std::array<int64_t, kMaxDims> strides{};  // in elements, may be 0 (broadcast) or negative

  int64_t size(int dim) const { return shape[dim < 0 ? dim + ndim : dim]; }
  int64_t stride(int dim) const { return strides[dim < 0 ? dim + ndim : dim]; }
  int64_t numel() const;
  std::string shape_str() const;  // "[4, 100, 7]"
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data);
  }
};

// Builds a view; empty `strides` means C-contiguous. Throws std::invalid_argument when `strides` is not
// empty and does not have one entry per dimension, or for more than kMaxDims dimensions.
TensorView make_view(void* data, DType dtype, Device device, std::initializer_list<int64_t> shape,
                     std::initializer_list<int64_t> strides = {});

}  // namespace robocache
