#pragma once

#include <string>

namespace robocache {

struct BuildInfo {
  std::string version;
  bool cuda = false;                 // compiled with the CUDA backend
  std::string cuda_architectures;    // as given to CMake, e.g. "80-real;86-real;89-real;90"
  std::string cuda_runtime_version;  // "13.0" or ""
  std::string compiler;              // C++ compiler id and version
  std::string cuda_compiler;         // nvcc version or ""
  int cuda_device_count = 0;         // GPUs visible now (0 without CUDA or without a driver)
  int num_threads = 0;               // CPU thread pool size
};

BuildInfo build_info();

void set_num_threads(int n);  // resize the CPU pool; n <= 0 means hardware concurrency
int get_num_threads();

}  // namespace robocache
