// Internal: the loader's one kernel. dst[i] = src[index[i]] for rows of `row_bytes` bytes, on `stream`:
// expands the grids of the distinct point clouds of a batch into its [B, T, ...] output on the device.
#pragma once

#include <cstddef>
#include <cstdint>

#include "robocache/ops.h"

namespace robocache::loader {

#ifdef ROBOCACHE_WITH_CUDA
Status gather_rows_cuda(const void* src,       // [U, row_bytes]
                        const int32_t* index,  // [n], each in [0, U)
                        int64_t n, size_t row_bytes,
                        void* dst,             // [n, row_bytes]
                        Stream stream);
#endif

}  // namespace robocache::loader
