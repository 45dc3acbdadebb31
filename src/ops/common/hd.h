// Host/device qualifiers for math shared by the CPU and CUDA backends.
#pragma once

#if defined(__CUDACC__)
#define RC_HD __host__ __device__ __forceinline__
#else
#define RC_HD inline
#endif
