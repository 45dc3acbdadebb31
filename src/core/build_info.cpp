#include "robocache/build_info.h"

#include "core/parallel.h"

#ifdef ROBOCACHE_WITH_CUDA
#include <cuda_runtime.h>
#endif

#ifndef ROBOCACHE_VERSION
#error "ROBOCACHE_VERSION must be defined by the build"
#endif

namespace robocache {

BuildInfo build_info() {
  BuildInfo info;
  info.version = ROBOCACHE_VERSION;
  info.compiler = ROBOCACHE_CXX_COMPILER;
  info.num_threads = core::num_threads();
#ifdef ROBOCACHE_WITH_CUDA
  info.cuda = true;
  info.cuda_architectures = ROBOCACHE_CUDA_ARCHITECTURES;
  info.cuda_compiler = ROBOCACHE_CUDA_COMPILER;
  info.cuda_runtime_version = std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10);
  int count = 0;
  if (cudaGetDeviceCount(&count) == cudaSuccess) {
    info.cuda_device_count = count;
  } else {
    cudaGetLastError();  // no driver or no device: report 0 and clear the error
  }
#endif
  return info;
}

void set_num_threads(int n) { core::set_num_threads(n); }
int get_num_threads() { return core::num_threads(); }

}  // namespace robocache
