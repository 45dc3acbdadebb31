// One checking macro for every CUDA runtime call: a failure becomes a Status naming the call, file and line.
#pragma once

#include <cuda_runtime.h>

#include "robocache/status.h"

#define ROBOCACHE_CUDA_CHECK(expr)                                                                     \
  do {                                                                                                 \
    const cudaError_t _rc_err = (expr);                                                                \
    if (_rc_err != cudaSuccess) {                                                                      \
      return ::robocache::runtime_error("CUDA error ", cudaGetErrorName(_rc_err), " (",               \
                                        cudaGetErrorString(_rc_err), ") in ", #expr, " at ", __FILE__, \
                                        ":", __LINE__);                                                \
    }                                                                                                  \
  } while (0)

namespace robocache::core {

// Makes `device` current for the scope and restores the caller's device after.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int device) {
    error_ = cudaGetDevice(&previous_);
    if (error_ == cudaSuccess && previous_ != device) {
      error_ = cudaSetDevice(device);
      changed_ = error_ == cudaSuccess;
    }
  }
  cudaError_t error() const { return error_; }  // check with ROBOCACHE_CUDA_CHECK before launching
  ~CudaDeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

 private:
  cudaError_t error_ = cudaSuccess;
  int previous_ = -1;
  bool changed_ = false;
};

}  // namespace robocache::core
