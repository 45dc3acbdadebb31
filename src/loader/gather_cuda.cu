#include "loader/gather.h"

#include <algorithm>

#include "core/cuda_check.h"

namespace robocache::loader {
namespace {

constexpr int kThreads = 256;

// One block per (output row, chunk of the row); V-byte vectors when rows and pointers allow.
template <class V>
__global__ void gather_rows_kernel(const V* __restrict__ src,    // [U, words]
                                   const int32_t* __restrict__ index,  // [n]
                                   int64_t words, int64_t chunks,
                                   V* __restrict__ dst) {  // [n, words]
  const int64_t row = blockIdx.x / chunks;
  const int64_t chunk = blockIdx.x - row * chunks;
  const int64_t per_chunk = (words + chunks - 1) / chunks;
  const int64_t lo = chunk * per_chunk;
  const int64_t hi = min(words, lo + per_chunk);
  const V* s = src + static_cast<int64_t>(index[row]) * words;
  V* d = dst + row * words;
  for (int64_t w = lo + threadIdx.x; w < hi; w += blockDim.x) d[w] = s[w];
}

template <class V>
Status launch(const void* src, const int32_t* index, int64_t n, size_t row_bytes, void* dst, cudaStream_t stream) {
  const int64_t words = static_cast<int64_t>(row_bytes / sizeof(V));
  // about 16 KiB of a row per block, at most 2^31 - 1 blocks in all
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>((words * sizeof(V) + 16383) / 16384,
                                                                 (int64_t{1} << 31) / 2 / std::max<int64_t>(n, 1)));
  gather_rows_kernel<V><<<static_cast<unsigned>(n * chunks), kThreads, 0, stream>>>(
      static_cast<const V*>(src), index, words, chunks, static_cast<V*>(dst));
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  return Status::ok();
}

}  // namespace

Status gather_rows_cuda(const void* src, const int32_t* index, int64_t n, size_t row_bytes, void* dst, Stream stream) {
  if (n == 0 || row_bytes == 0) return Status::ok();
  auto* s = static_cast<cudaStream_t>(stream);
  const auto aligned = [&](size_t a) {
    return row_bytes % a == 0 && reinterpret_cast<uintptr_t>(src) % a == 0 && reinterpret_cast<uintptr_t>(dst) % a == 0;
  };
  if (aligned(16)) return launch<uint4>(src, index, n, row_bytes, dst, s);
  if (aligned(4)) return launch<uint32_t>(src, index, n, row_bytes, dst, s);
  return launch<uint8_t>(src, index, n, row_bytes, dst, s);
}

}  // namespace robocache::loader
