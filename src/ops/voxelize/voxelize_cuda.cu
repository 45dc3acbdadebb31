// CUDA backend of the voxelization ops, the twin of voxelize_cpu.cpp.
// Dense grids: one thread per point computes its voxel (the same float64 arithmetic as the CPU) and
// scatters with atomics; points of a warp that hit the same voxel add their count once.
// Downsampling and hard voxelization: stable CUB radix sort of (64-bit key, point index), run-length
// encoding of the keys, then one thread per voxel reads its points in input order. Same algorithm and
// the same float64 sums as the CPU, so the results are identical.
// Temporary memory comes from cudaMallocAsync on the caller's stream.
#include <cub/cub.cuh>

#include <cstdint>
#include <limits>
#include <vector>

#include "core/cuda_check.h"
#include "ops/common/voxel.h"
#include "ops/voxelize/voxelize.h"

namespace robocache::ops {
namespace {

constexpr int kThreads = 256;

// Stream-ordered temporary buffers, freed on the stream when the op returns (also on errors).
class Scratch {
 public:
  explicit Scratch(cudaStream_t stream) : stream_(stream) {}
  ~Scratch() {
    for (void* p : buffers_) cudaFreeAsync(p, stream_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  cudaError_t alloc(T** out, size_t count) {
    void* p = nullptr;
    const cudaError_t err = cudaMallocAsync(&p, count == 0 ? 1 : count * sizeof(T), stream_);
    if (err == cudaSuccess) buffers_.push_back(p);
    *out = static_cast<T*>(p);
    return err;
  }

 private:
  cudaStream_t stream_;
  std::vector<void*> buffers_;
};

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// ---- dense grids ----

__device__ __forceinline__ int64_t device_cloud_length(const DenseVoxelArgs& a, int64_t b) {
  // Clamped to [0, N]: the CPU backend reports an out-of-range length; here it only must stay in bounds.
  const int64_t len = a.lengths == nullptr ? a.N
                      : a.lengths_int64    ? static_cast<const int64_t*>(a.lengths)[b * a.len_s]
                                           : static_cast<const int32_t*>(a.lengths)[b * a.len_s];
  return len < 0 ? 0 : (len > a.N ? a.N : len);
}

__device__ __forceinline__ void atomic_max(float* addr, float v) {
  // Non-negative floats order like signed ints, negative ones reversed like unsigned ints; the grid
  // starts at -inf, which both orders place below every other value.
  if (v >= 0.0f) {  // -0.0 counts as +0.0 here, or its sign bit would make it lose to -inf
    atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v == 0.0f ? 0.0f : v));
  } else {
    atomicMin(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}
__device__ __forceinline__ void atomic_max(double* addr, double v) {
  if (v >= 0.0) {
    atomicMax(reinterpret_cast<long long*>(addr), __double_as_longlong(v == 0.0 ? 0.0 : v));
  } else {
    atomicMin(reinterpret_cast<unsigned long long*>(addr), static_cast<unsigned long long>(__double_as_longlong(v)));
  }
}

__device__ __forceinline__ void atomic_add4(float* o, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float4*>(o), v);  // one vector atomic instead of four (Hopper and newer)
#else
  atomicAdd(o, v.x), atomicAdd(o + 1, v.y), atomicAdd(o + 2, v.z), atomicAdd(o + 3, v.w);
#endif
}

template <class T>
__device__ __forceinline__ T combine(T x, T y, bool is_max) {
  return is_max ? (y > x ? y : x) : x + y;
}

// Inclusive scan of v over the run of lanes [start, lane] (lanes holding the same voxel, contiguous).
// Every lane of the warp calls it.
template <class T>
__device__ __forceinline__ T run_scan(T v, int lane, int start, bool is_max) {
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const T up = __shfl_up_sync(0xffffffffu, v, off);
    if (lane - off >= start) v = combine(v, up, is_max);
  }
  return v;
}

// One thread per point slot of [B, N]. Neighbouring points of an ordered scan often share a voxel, so
// each warp first reduces runs of lanes with the same voxel (shuffles), and only the last lane of a run
// writes to memory: one atomic per run instead of one per point. Every lane reaches every shuffle.
template <class PT, class FT>
__global__ void __launch_bounds__(kThreads)
    dense_scatter_kernel(const DenseVoxelArgs a, int32_t* __restrict__ count, bool vec4) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t total = a.B * a.N;
  int64_t b = -1, n = 0, g = -1;  // cloud, point, and voxel in the batched grid (-1: none)
  bool dropped = false;
  if (i < total) {
    b = a.B == 1 ? 0 : i / a.N;  // skip the 64-bit division for a single cloud
    n = i - b * a.N;
    if (n < device_cloud_length(a, b)) {
      const PT* p = static_cast<const PT*>(a.points) + b * a.p_sb + n * a.p_sn;
      const int64_t k = voxel_key(static_cast<double>(p[0]), static_cast<double>(p[a.p_sd]),
                                  static_cast<double>(p[2 * a.p_sd]), a.origin, a.size, a.dims);
      if (k < 0) {
        dropped = true;
      } else {
        g = b * a.voxels + k;
      }
    }
  }
  const unsigned full = 0xffffffffu;
  const int lane = static_cast<int>(threadIdx.x & 31u);
  if (a.dropped != nullptr) {
    // One atomic per cloud per warp for the dropped count.
    const unsigned drop_mask = __ballot_sync(full, dropped);
    const unsigned peers = __match_any_sync(full, static_cast<unsigned long long>(b)) & drop_mask;
    if (dropped && lane == __ffs(peers) - 1) {
      atomicAdd(reinterpret_cast<unsigned long long*>(a.dropped + b * a.dropped_s),
                static_cast<unsigned long long>(__popc(peers)));
    }
  }
  // Runs of lanes with the same voxel: `start` is the run's first lane, `last` marks its last.
  const long long g_prev = __shfl_up_sync(full, static_cast<long long>(g), 1);
  const long long g_next = __shfl_down_sync(full, static_cast<long long>(g), 1);
  const unsigned heads = __ballot_sync(full, lane == 0 || g_prev != g);
  const int start = 31 - __clz(heads & (full >> (31 - lane)));
  const bool last = g >= 0 && (lane == 31 || g_next != g);
  switch (a.mode) {
    case VoxelMode::Occupancy:
      if (last) static_cast<uint8_t*>(a.out)[g] = 1;
      return;
    case VoxelMode::Count:
      if (last) atomicAdd(static_cast<int32_t*>(a.out) + g, lane - start + 1);
      return;
    default: break;
  }
  if (count != nullptr && last) atomicAdd(count + g, lane - start + 1);
  const bool is_max = a.mode == VoxelMode::Max;
  const FT* f = static_cast<const FT*>(a.features) + b * a.f_sb + n * a.f_sn;  // read only where g >= 0
  FT* o = static_cast<FT*>(a.out) + g * a.C;
  if constexpr (std::is_same_v<FT, float>) {
    if (vec4) {  // C == 4, 16-byte aligned rows, sum or mean
      float4 v = g >= 0 ? make_float4(f[0], f[a.f_sc], f[2 * a.f_sc], f[3 * a.f_sc]) : make_float4(0.f, 0.f, 0.f, 0.f);
      v.x = run_scan(v.x, lane, start, false);
      v.y = run_scan(v.y, lane, start, false);
      v.z = run_scan(v.z, lane, start, false);
      v.w = run_scan(v.w, lane, start, false);
      if (last) atomic_add4(o, v);
      return;
    }
  }
  for (int64_t c = 0; c < a.C; ++c) {
    const FT v = run_scan(g >= 0 ? f[c * a.f_sc] : FT(0), lane, start, is_max);
    if (last) {
      if (is_max) {
        atomic_max(o + c, v);
      } else {
        atomicAdd(o + c, v);
      }
    }
  }
}

template <class FT>
__global__ void fill_kernel(FT* __restrict__ out, int64_t n, FT value) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = value;
  }
}

// One thread per voxel. Mean: divide by the count (only occupied voxels are touched). Max: an empty voxel
// (still -inf) becomes 0.
template <class FT, bool VEC4>
__global__ void dense_finish_kernel(FT* __restrict__ out, const int32_t* __restrict__ count, int64_t cells,
                                    int64_t C, bool mean) {
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < cells;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int32_t n = count[v];
    if (mean ? n <= 1 : n != 0) continue;
    if constexpr (VEC4) {
      float4* o = reinterpret_cast<float4*>(out) + v;
      float4 x = *o;
      if (mean) {
        x.x /= static_cast<float>(n), x.y /= static_cast<float>(n), x.z /= static_cast<float>(n), x.w /= static_cast<float>(n);
      } else {
        x = make_float4(0.f, 0.f, 0.f, 0.f);
      }
      *o = x;
    } else {
      for (int64_t c = 0; c < C; ++c) out[v * C + c] = mean ? out[v * C + c] / static_cast<FT>(n) : FT(0);
    }
  }
}

unsigned grid_stride_blocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks < 1 ? 1 : blocks) : 65536);
}

template <class PT, class FT>
Status dense_launch(const DenseVoxelArgs& a, cudaStream_t stream) {
  Scratch scratch(stream);
  const int64_t cells = a.B * a.voxels;
  const bool has_features = a.C > 0;
  int32_t* count = a.count;
  if (has_features && count == nullptr && a.mode != VoxelMode::Sum) {
    ROBOCACHE_CUDA_CHECK(scratch.alloc(&count, static_cast<size_t>(cells)));
  }
  const size_t out_bytes = static_cast<size_t>(cells * (has_features ? a.C : 1)) * dtype_size(a.out_dtype);
  if (a.mode == VoxelMode::Max) {
    fill_kernel<FT><<<grid_stride_blocks(cells * a.C), kThreads, 0, stream>>>(
        static_cast<FT*>(a.out), cells * a.C, -std::numeric_limits<FT>::infinity());
    ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  } else {
    ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(a.out, 0, out_bytes, stream));
  }
  if (count != nullptr) ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(count, 0, static_cast<size_t>(cells) * 4, stream));
  if (a.dropped != nullptr) {
    if (a.dropped_s == 1 || a.B == 1) {
      ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(a.dropped, 0, static_cast<size_t>(a.B) * 8, stream));
    } else {
      for (int64_t b = 0; b < a.B; ++b) {
        ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(a.dropped + b * a.dropped_s, 0, 8, stream));
      }
    }
  }
  const int64_t total = a.B * a.N;
  if (total > 0) {
    const bool vec4 = has_features && a.C == 4 && a.mode != VoxelMode::Max && std::is_same_v<FT, float> &&
                      reinterpret_cast<uintptr_t>(a.out) % 16 == 0;
    dense_scatter_kernel<PT, FT><<<blocks_for(total), kThreads, 0, stream>>>(a, count, vec4);
    ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  }
  if (has_features && a.mode != VoxelMode::Sum) {
    const bool mean = a.mode == VoxelMode::Mean;
    bool vec4 = false;
    if constexpr (std::is_same_v<FT, float>) {
      vec4 = a.C == 4 && reinterpret_cast<uintptr_t>(a.out) % 16 == 0;
      if (vec4) {
        dense_finish_kernel<float, true><<<grid_stride_blocks(cells), kThreads, 0, stream>>>(
            static_cast<float*>(a.out), count, cells, a.C, mean);
      }
    }
    if (!vec4) {
      dense_finish_kernel<FT, false><<<grid_stride_blocks(cells), kThreads, 0, stream>>>(
          static_cast<FT*>(a.out), count, cells, a.C, mean);
    }
    ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  }
  return Status::ok();
}

template <class PT>
Status dense_dispatch_features(const DenseVoxelArgs& a, cudaStream_t stream) {
  if (a.C == 0) return dense_launch<PT, float>(a, stream);
  switch (a.feature_dtype) {
    case DType::Float32: return dense_launch<PT, float>(a, stream);
    case DType::Float64: return dense_launch<PT, double>(a, stream);
    default: return type_error("voxelize: unsupported features dtype ", dtype_name(a.feature_dtype));
  }
}

// ---- sorted runs of voxel keys, shared by downsampling and hard voxelization ----

// Sorted (key, point) pairs and the runs of equal keys below the sentinel.
struct Runs {
  uint64_t* keys = nullptr;   // [N] sorted
  uint32_t* idx = nullptr;    // [N] point indices, input order within a key
  uint64_t* unique = nullptr;  // [R] key of each run
  uint32_t* counts = nullptr;  // [R] points per run
  uint32_t* offsets = nullptr;  // [R] first sorted position of each run
  int64_t R = 0;               // runs of kept points (the sentinel run, if any, excluded)
};

// Sorts `keys_in` / `idx_in` (both [N], consumed) and finds the runs. Waits for the stream once.
Status sort_runs(Scratch& scratch, cudaStream_t stream, uint64_t* keys_in, uint32_t* idx_in, int64_t N,
                 int key_bits, uint64_t sentinel, Runs* runs) {
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&runs->keys, N));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&runs->idx, N));
  size_t temp_bytes = 0, need = 0;
  ROBOCACHE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, need, keys_in, runs->keys, idx_in, runs->idx, N, 0,
                                                       key_bits, stream));
  temp_bytes = need;
  int64_t* num_runs = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&runs->unique, N));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&runs->counts, N));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&num_runs, 1));
  ROBOCACHE_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(nullptr, need, runs->keys, runs->unique, runs->counts,
                                                          num_runs, N, stream));
  temp_bytes = std::max(temp_bytes, need);
  void* temp = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(reinterpret_cast<char**>(&temp), temp_bytes));
  need = temp_bytes;
  ROBOCACHE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, need, keys_in, runs->keys, idx_in, runs->idx, N, 0,
                                                       key_bits, stream));
  need = temp_bytes;
  ROBOCACHE_CUDA_CHECK(cub::DeviceRunLengthEncode::Encode(temp, need, runs->keys, runs->unique, runs->counts,
                                                          num_runs, N, stream));
  int64_t host_runs = 0;
  ROBOCACHE_CUDA_CHECK(cudaMemcpyAsync(&host_runs, num_runs, sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
  ROBOCACHE_CUDA_CHECK(cudaStreamSynchronize(stream));
  uint64_t last = 0;
  if (host_runs > 0) {
    ROBOCACHE_CUDA_CHECK(cudaMemcpyAsync(&last, runs->unique + host_runs - 1, sizeof(uint64_t),
                                         cudaMemcpyDeviceToHost, stream));
    ROBOCACHE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  runs->R = host_runs - (host_runs > 0 && last == sentinel ? 1 : 0);
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&runs->offsets, runs->R));
  if (runs->R > 0) {
    void* scan_temp = nullptr;
    size_t scan_bytes = 0;
    ROBOCACHE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(nullptr, scan_bytes, runs->counts, runs->offsets, runs->R,
                                                       stream));
    ROBOCACHE_CUDA_CHECK(scratch.alloc(reinterpret_cast<char**>(&scan_temp), scan_bytes));
    ROBOCACHE_CUDA_CHECK(cub::DeviceScan::ExclusiveSum(scan_temp, scan_bytes, runs->counts, runs->offsets, runs->R,
                                                       stream));
  }
  return Status::ok();
}

// ---- voxel downsampling ----

// float64 in an order-preserving uint64 encoding, so atomicMin / atomicMax order doubles.
__device__ __forceinline__ unsigned long long ordered(double v) {
  const auto u = static_cast<unsigned long long>(__double_as_longlong(v));
  return (u >> 63) ? ~u : (u | (1ull << 63));
}
__host__ __device__ inline double unordered(unsigned long long u) {
  const unsigned long long bits = (u >> 63) ? (u & ~(1ull << 63)) : ~u;
  double d;
  memcpy(&d, &bits, 8);
  return d;
}

// Own functors: cub::Min / cuda::minimum moved between CCCL versions.
struct MinOp {
  __device__ double operator()(double x, double y) const { return fmin(x, y); }
};
struct MaxOp {
  __device__ double operator()(double x, double y) const { return fmax(x, y); }
};

// bounds[0..2] = ordered min, bounds[3..5] = ordered max of the finite points.
template <class PT>
__global__ void __launch_bounds__(kThreads)
    bounds_kernel(const DownsampleArgs a, unsigned long long* __restrict__ bounds) {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double lo[3], hi[3];
  for (int k = 0; k < 3; ++k) lo[k] = kInf, hi[k] = -kInf;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < a.N;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const PT* p = static_cast<const PT*>(a.points) + i * a.p_sn;
    const double v[3] = {static_cast<double>(p[0]), static_cast<double>(p[a.p_sd]), static_cast<double>(p[2 * a.p_sd])};
    if (!(v[0] - v[0] == 0.0 && v[1] - v[1] == 0.0 && v[2] - v[2] == 0.0)) continue;
    for (int k = 0; k < 3; ++k) lo[k] = fmin(lo[k], v[k]), hi[k] = fmax(hi[k], v[k]);
  }
  using BlockReduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename BlockReduce::TempStorage temp;
  for (int k = 0; k < 3; ++k) {
    const double m = BlockReduce(temp).Reduce(lo[k], MinOp{});
    __syncthreads();
    const double M = BlockReduce(temp).Reduce(hi[k], MaxOp{});
    __syncthreads();
    if (threadIdx.x == 0 && m <= M) {
      atomicMin(bounds + k, ordered(m));
      atomicMax(bounds + 3 + k, ordered(M));
    }
  }
}

template <class PT>
__global__ void downsample_keys_kernel(const DownsampleArgs a, const DownsampleGrid g, uint64_t* __restrict__ keys,
                                       uint32_t* __restrict__ idx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= a.N) return;
  const PT* p = static_cast<const PT*>(a.points) + i * a.p_sn;
  keys[i] = downsample_key(static_cast<double>(p[0]), static_cast<double>(p[a.p_sd]), static_cast<double>(p[2 * a.p_sd]),
                           g.origin, a.size, g.cmin, g.dims, g.sentinel);
  idx[i] = static_cast<uint32_t>(i);
}

// One thread per voxel: float64 sums over its points in input order, like the CPU.
template <class PT, class FT>
__global__ void centroid_kernel(const DownsampleArgs a, const uint32_t* __restrict__ idx,
                                const uint32_t* __restrict__ counts, const uint32_t* __restrict__ offsets, int64_t M) {
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (m >= M) return;
  const PT* pts = static_cast<const PT*>(a.points);
  const FT* feats = static_cast<const FT*>(a.features);
  double s[3] = {0, 0, 0};
  const int64_t begin = offsets[m], end = begin + counts[m];
  for (int64_t j = begin; j < end; ++j) {
    const PT* p = pts + static_cast<int64_t>(idx[j]) * a.p_sn;
    s[0] += static_cast<double>(p[0]);
    s[1] += static_cast<double>(p[a.p_sd]);
    s[2] += static_cast<double>(p[2 * a.p_sd]);
  }
  const double n = static_cast<double>(end - begin);
  PT* out = static_cast<PT*>(a.out_points) + m * a.op_sn;
  for (int d = 0; d < 3; ++d) out[d * a.op_sd] = static_cast<PT>(s[d] / n);
  FT* out_f = static_cast<FT*>(a.out_features) + m * a.of_sn;
  for (int64_t c = 0; c < a.C; ++c) {
    double acc = 0;
    for (int64_t j = begin; j < end; ++j) acc += static_cast<double>(feats[static_cast<int64_t>(idx[j]) * a.f_sn + c * a.f_sc]);
    out_f[c * a.of_sc] = static_cast<FT>(acc / n);
  }
}

template <class PT, class FT>
Status downsample_launch(const DownsampleArgs& a, cudaStream_t stream, int64_t* num_voxels) {
  Scratch scratch(stream);
  unsigned long long* bounds = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&bounds, 6));
  // 0 and ~0 are below / above every ordered double.
  ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(bounds, 0xff, 3 * sizeof(unsigned long long), stream));
  ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(bounds + 3, 0, 3 * sizeof(unsigned long long), stream));
  bounds_kernel<PT><<<std::min<unsigned>(blocks_for(a.N), 1024), kThreads, 0, stream>>>(a, bounds);
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  unsigned long long host_bounds[6];
  ROBOCACHE_CUDA_CHECK(cudaMemcpyAsync(host_bounds, bounds, sizeof(host_bounds), cudaMemcpyDeviceToHost, stream));
  ROBOCACHE_CUDA_CHECK(cudaStreamSynchronize(stream));
  *num_voxels = 0;
  if (host_bounds[0] == ~0ull) return Status::ok();  // no finite point
  double lo[3], hi[3];
  for (int k = 0; k < 3; ++k) lo[k] = unordered(host_bounds[k]), hi[k] = unordered(host_bounds[3 + k]);
  DownsampleGrid g;
  ROBOCACHE_RETURN_IF_ERROR(make_downsample_grid(a, lo, hi, &g));

  uint64_t* keys = nullptr;
  uint32_t* idx = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&keys, a.N));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&idx, a.N));
  downsample_keys_kernel<PT><<<blocks_for(a.N), kThreads, 0, stream>>>(a, g, keys, idx);
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  Runs runs;
  ROBOCACHE_RETURN_IF_ERROR(sort_runs(scratch, stream, keys, idx, a.N, g.key_bits, g.sentinel, &runs));
  if (runs.R > 0) {
    centroid_kernel<PT, FT><<<blocks_for(runs.R), kThreads, 0, stream>>>(a, runs.idx, runs.counts, runs.offsets, runs.R);
    ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  }
  *num_voxels = runs.R;
  return Status::ok();
}

// ---- hard voxelization ----

template <class PT>
__global__ void hard_keys_kernel(const HardVoxelArgs a, uint64_t* __restrict__ keys, uint32_t* __restrict__ idx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (i >= a.N) return;
  const PT* p = static_cast<const PT*>(a.points) + i * a.p_sn;
  const int64_t k = voxel_key(static_cast<double>(p[0]), static_cast<double>(p[a.p_sc]),
                              static_cast<double>(p[2 * a.p_sc]), a.origin, a.size, a.dims);
  keys[i] = k < 0 ? a.sentinel : static_cast<uint64_t>(k);
  idx[i] = static_cast<uint32_t>(i);
}

__global__ void first_point_kernel(const uint32_t* __restrict__ idx, const uint32_t* __restrict__ offsets, int64_t R,
                                   uint32_t* __restrict__ first, uint32_t* __restrict__ run) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (r >= R) return;
  first[r] = idx[offsets[r]];
  run[r] = static_cast<uint32_t>(r);
}

// One thread per (voxel, point slot): copies the slot's point or writes zeros.
template <class PT>
__global__ void hard_fill_kernel(const HardVoxelArgs a, const uint64_t* __restrict__ unique,
                                 const uint32_t* __restrict__ counts, const uint32_t* __restrict__ offsets,
                                 const uint32_t* __restrict__ idx, const uint32_t* __restrict__ run_of_voxel,
                                 int64_t M) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= M * a.max_points) return;
  const int64_t m = t / a.max_points, j = t - m * a.max_points;
  const int64_t r = run_of_voxel[m];
  const int64_t cnt = counts[r];
  const int64_t n = cnt < a.max_points ? cnt : a.max_points;
  PT* dst = static_cast<PT*>(a.voxels) + t * a.C;
  if (j < n) {
    const PT* p = static_cast<const PT*>(a.points) + static_cast<int64_t>(idx[offsets[r] + j]) * a.p_sn;
    for (int64_t c = 0; c < a.C; ++c) dst[c] = p[c * a.p_sc];
  } else {
    for (int64_t c = 0; c < a.C; ++c) dst[c] = PT(0);
  }
  if (j == 0) {
    write_hard_voxel_row(a, m, static_cast<int64_t>(unique[r]), n);
  }
}

template <class PT>
Status hard_launch(const HardVoxelArgs& a, cudaStream_t stream, int64_t* num_voxels) {
  Scratch scratch(stream);
  uint64_t* keys = nullptr;
  uint32_t* idx = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&keys, a.N));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&idx, a.N));
  hard_keys_kernel<PT><<<blocks_for(a.N), kThreads, 0, stream>>>(a, keys, idx);
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  Runs runs;
  ROBOCACHE_RETURN_IF_ERROR(sort_runs(scratch, stream, keys, idx, a.N, a.key_bits, a.sentinel, &runs));
  *num_voxels = 0;
  if (runs.R == 0) return Status::ok();

  // Voxels in order of their first point.
  uint32_t *first = nullptr, *run = nullptr, *first_sorted = nullptr, *run_sorted = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&first, runs.R));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&run, runs.R));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&first_sorted, runs.R));
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&run_sorted, runs.R));
  first_point_kernel<<<blocks_for(runs.R), kThreads, 0, stream>>>(runs.idx, runs.offsets, runs.R, first, run);
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  size_t bytes = 0;
  const int bits = bits_for(static_cast<uint64_t>(a.N));
  ROBOCACHE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, first, first_sorted, run, run_sorted, runs.R, 0,
                                                       bits, stream));
  char* temp = nullptr;
  ROBOCACHE_CUDA_CHECK(scratch.alloc(&temp, bytes));
  ROBOCACHE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, bytes, first, first_sorted, run, run_sorted, runs.R, 0,
                                                       bits, stream));
  const int64_t M = runs.R < a.max_voxels ? runs.R : a.max_voxels;
  hard_fill_kernel<PT><<<blocks_for(M * a.max_points), kThreads, 0, stream>>>(a, runs.unique, runs.counts, runs.offsets,
                                                                             runs.idx, run_sorted, M);
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  *num_voxels = M;
  return Status::ok();
}

}  // namespace

Status voxelize_dense_cuda(const DenseVoxelArgs& a, int device, Stream stream) {
  core::CudaDeviceGuard guard(device);
  ROBOCACHE_CUDA_CHECK(guard.error());
  const auto s = static_cast<cudaStream_t>(stream);
  switch (a.point_dtype) {
    case DType::Float32: return dense_dispatch_features<float>(a, s);
    case DType::Float64: return dense_dispatch_features<double>(a, s);
    default: return type_error("voxelize: unsupported points dtype ", dtype_name(a.point_dtype));
  }
}

Status voxel_downsample_cuda(const DownsampleArgs& a, int device, Stream stream, int64_t* num_voxels) {
  core::CudaDeviceGuard guard(device);
  ROBOCACHE_CUDA_CHECK(guard.error());
  const auto s = static_cast<cudaStream_t>(stream);
  const bool f64 = a.features != nullptr && a.feature_dtype == DType::Float64;
  switch (a.point_dtype) {
    case DType::Float32:
      return f64 ? downsample_launch<float, double>(a, s, num_voxels) : downsample_launch<float, float>(a, s, num_voxels);
    case DType::Float64:
      return f64 ? downsample_launch<double, double>(a, s, num_voxels) : downsample_launch<double, float>(a, s, num_voxels);
    default: return type_error("voxel_downsample: unsupported points dtype ", dtype_name(a.point_dtype));
  }
}

Status hard_voxelize_cuda(const HardVoxelArgs& a, int device, Stream stream, int64_t* num_voxels) {
  core::CudaDeviceGuard guard(device);
  ROBOCACHE_CUDA_CHECK(guard.error());
  const auto s = static_cast<cudaStream_t>(stream);
  switch (a.point_dtype) {
    case DType::Float32: return hard_launch<float>(a, s, num_voxels);
    case DType::Float64: return hard_launch<double>(a, s, num_voxels);
    default: return type_error("hard_voxelize: unsupported points dtype ", dtype_name(a.point_dtype));
  }
}

}  // namespace robocache::ops
