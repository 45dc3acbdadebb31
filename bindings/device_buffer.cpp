// Device memory RoboCache owns, for results handed to JAX on a GPU: JAX arrays are immutable, so a result is
// written into a DeviceBuffer and then handed to JAX through DLPack (nanobind's JAX export), the buffer kept
// alive by the JAX array.
#include <nanobind/stl/vector.h>

#include <atomic>
#include <vector>

#include "convert.h"

namespace robocache::bindings {
namespace {

struct DeviceBuffer {
  Device device;
  void* ptr = nullptr;
  size_t bytes = 0;
  static inline std::atomic<int64_t> alive{0};  // buffers not yet freed (tests check results are released)
  DeviceBuffer(int device_index, size_t n) : device{DeviceType::CUDA, device_index}, bytes(n) {
    check(device_malloc(device, n, &ptr));
    ++alive;
  }
  ~DeviceBuffer() {
    device_free(device, ptr);
    --alive;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

void bind_device_buffer(nb::module_& m) {
  nb::class_<DeviceBuffer>(m, "DeviceBuffer")
      .def(nb::init<int, size_t>(), nb::arg("device"), nb::arg("nbytes"))
      .def_prop_ro("ptr", [](const DeviceBuffer& b) { return reinterpret_cast<uintptr_t>(b.ptr); })
      .def_prop_ro("device", [](const DeviceBuffer& b) { return b.device.index; })
      .def_prop_ro("nbytes", [](const DeviceBuffer& b) { return b.bytes; })
      .def_static("alive", [] { return DeviceBuffer::alive.load(); }, "The number of DeviceBuffers not yet freed.");

  // A view of `buffer` (element offset, shape, element strides, robocache dtype code) as a jax.Array on the
  // buffer's GPU, once the work queued on `stream` there is done (JAX reads it on its own streams).
  m.def(
      "to_jax",
      [](nb::handle buffer, int64_t offset, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
         int dtype_code, uintptr_t stream) {
        const DeviceBuffer& b = nb::cast<const DeviceBuffer&>(buffer);
        if (dtype_code < 0 || dtype_code > static_cast<int>(DType::Bool) || shape.size() != strides.size() ||
            offset < 0) {
          throw nb::value_error("internal: bad to_jax view");
        }
        const auto dtype = static_cast<DType>(dtype_code);
        // The view must lie inside the buffer: offset + sum((shape - 1) * stride) + 1 elements at most.
        int64_t last = offset;
        bool empty = false;
        for (size_t i = 0; i < shape.size(); ++i) {
          if (shape[i] < 0 || strides[i] < 0) throw nb::value_error("internal: bad to_jax view");
          if (shape[i] == 0) empty = true;
          else last += (shape[i] - 1) * strides[i];
        }
        if (!empty && static_cast<uint64_t>(last + 1) * dtype_size(dtype) > b.bytes) {
          throw nb::value_error("internal: to_jax view past the end of its buffer");
        }
        check_without_gil([&] { return stream_synchronize(b.device, reinterpret_cast<Stream>(stream)); });
        std::vector<size_t> ushape(shape.begin(), shape.end());
        void* data = static_cast<char*>(b.ptr) + offset * static_cast<int64_t>(dtype_size(dtype));
        return nb::ndarray<nb::jax>(data, ushape.size(), ushape.data(), buffer, strides.data(), dlpack_dtype(dtype),
                                    nb::device::cuda::value, b.device.index);
      },
      nb::arg("buffer"), nb::arg("offset"), nb::arg("shape"), nb::arg("strides"), nb::arg("dtype_code"),
      nb::arg("stream"));
}

}  // namespace robocache::bindings
