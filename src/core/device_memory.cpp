#include "robocache/device_memory.h"

#ifdef ROBOCACHE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace robocache {

Status device_malloc(Device device, size_t bytes, void** out) {
  *out = nullptr;
  if (!device.is_cuda()) return invalid_argument("device_malloc: ", device.str(), " is not a CUDA device");
#ifdef ROBOCACHE_WITH_CUDA
  core::CudaDeviceGuard guard(device.index);
  ROBOCACHE_CUDA_CHECK(guard.error());
  ROBOCACHE_CUDA_CHECK(cudaMalloc(out, bytes == 0 ? 1 : bytes));
  return Status::ok();
#else
  (void)bytes;
  return runtime_error("device memory needs the CUDA backend, which this build does not have");
#endif
}

void device_free(Device device, void* ptr) {
#ifdef ROBOCACHE_WITH_CUDA
  if (ptr == nullptr || !device.is_cuda()) return;
  core::CudaDeviceGuard guard(device.index);
  cudaFree(ptr);
#else
  (void)device, (void)ptr;
#endif
}

Status stream_synchronize(Device device, Stream stream) {
  if (!device.is_cuda()) return Status::ok();
#ifdef ROBOCACHE_WITH_CUDA
  core::CudaDeviceGuard guard(device.index);
  ROBOCACHE_CUDA_CHECK(guard.error());
  ROBOCACHE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
  return Status::ok();
#else
  (void)stream;
  return runtime_error("CUDA streams need the CUDA backend, which this build does not have");
#endif
}

}  // namespace robocache
