// CPU backend of the voxelization ops, the twin of voxelize_cuda.cu.
// Dense grids: voxel keys in parallel, then each thread owns a slab of the grid and scans every key, so
// no two threads write one voxel (no atomics, and each voxel sums its points in input order).
// Downsampling and hard voxelization: a stable LSD radix sort of (64-bit key, point index), as the CUDA
// backend does with CUB, then one pass over the runs of equal keys.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "core/parallel.h"
#include "ops/common/voxel.h"
#include "ops/voxelize/voxelize.h"

namespace robocache::ops {
namespace {

int64_t cloud_length(const DenseVoxelArgs& a, int64_t b) {
  if (a.lengths == nullptr) return a.N;
  return a.lengths_int64 ? static_cast<const int64_t*>(a.lengths)[b * a.len_s]
                         : static_cast<const int32_t*>(a.lengths)[b * a.len_s];
}

constexpr int64_t kPadding = -2;  // key of a point past its cloud's length: neither kept nor dropped

template <class PT>
void dense_keys(const DenseVoxelArgs& a, int64_t* keys, std::vector<std::atomic<int64_t>>& dropped) {
  const auto* pts = static_cast<const PT*>(a.points);
  core::parallel_for(0, a.B * a.N, 32768, [&](int64_t lo, int64_t hi) {
    int64_t b = lo / a.N, local = 0, len = cloud_length(a, b);
    for (int64_t i = lo; i < hi; ++i) {
      const int64_t bi = i / a.N, n = i - bi * a.N;
      if (bi != b) {
        dropped[b] += local;
        local = 0;
        b = bi;
        len = cloud_length(a, b);
      }
      if (n >= len) {
        keys[i] = kPadding;
        continue;
      }
      const PT* p = pts + b * a.p_sb + n * a.p_sn;
      const int64_t k = voxel_key(p[0], p[a.p_sd], p[2 * a.p_sd], a.origin, a.size, a.dims);
      if (k < 0) ++local;
      keys[i] = k < 0 ? -1 : b * a.voxels + k;
    }
    dropped[b] += local;
  });
}

// Reduces the features of every kept point into voxels [lo, hi) of the batched grid.
template <class FT>
void dense_reduce_slab(const DenseVoxelArgs& a, const int64_t* keys, int32_t* count, int64_t lo, int64_t hi) {
  const int64_t total = a.B * a.N;
  switch (a.mode) {
    case VoxelMode::Occupancy: {
      auto* out = static_cast<uint8_t*>(a.out);
      for (int64_t i = 0; i < total; ++i) {
        const int64_t k = keys[i];
        if (k >= lo && k < hi) out[k] = 1;
      }
      return;
    }
    case VoxelMode::Count: {
      auto* out = static_cast<int32_t*>(a.out);
      for (int64_t i = 0; i < total; ++i) {
        const int64_t k = keys[i];
        if (k >= lo && k < hi) ++out[k];
      }
      return;
    }
    default: break;
  }
  const auto* feats = static_cast<const FT*>(a.features);
  auto* out = static_cast<FT*>(a.out);
  const bool is_max = a.mode == VoxelMode::Max;
  for (int64_t i = 0; i < total; ++i) {
    const int64_t k = keys[i];
    if (k < lo || k >= hi) continue;
    const int64_t b = i / a.N, n = i - b * a.N;
    const FT* f = feats + b * a.f_sb + n * a.f_sn;
    FT* o = out + k * a.C;
    if (is_max) {
      if (count[k] == 0) {
        for (int64_t c = 0; c < a.C; ++c) o[c] = f[c * a.f_sc];
      } else {
        for (int64_t c = 0; c < a.C; ++c) o[c] = std::max(o[c], f[c * a.f_sc]);
      }
    } else {
      for (int64_t c = 0; c < a.C; ++c) o[c] += f[c * a.f_sc];
    }
    ++count[k];
  }
}

template <class PT, class FT>
Status dense_run(const DenseVoxelArgs& a) {
  for (int64_t b = 0; b < a.B; ++b) {
    const int64_t len = cloud_length(a, b);
    if (len < 0 || len > a.N) {
      return invalid_argument("lengths[", b, "] = ", len, " is out of range: each length must be in [0, ", a.N,
                              "] (N = ", a.N, ")");
    }
  }
  const int64_t cells = a.B * a.voxels;
  const int64_t out_elems = cells * (a.C > 0 ? a.C : 1);
  const size_t out_bytes = static_cast<size_t>(out_elems) * dtype_size(a.out_dtype);
  std::vector<int32_t> scratch;
  int32_t* count = a.count;
  if (a.C > 0 && count == nullptr) {
    scratch.resize(static_cast<size_t>(cells));
    count = scratch.data();
  }
  // Zero the outputs in parallel: for large grids this is most of the memory traffic.
  core::parallel_for(0, static_cast<int64_t>(out_bytes), int64_t{1} << 20, [&](int64_t lo, int64_t hi) {
    std::memset(static_cast<char*>(a.out) + lo, 0, static_cast<size_t>(hi - lo));
  });
  if (count != nullptr) {
    core::parallel_for(0, cells, int64_t{1} << 18, [&](int64_t lo, int64_t hi) {
      std::memset(count + lo, 0, static_cast<size_t>(hi - lo) * sizeof(int32_t));
    });
  }

  std::vector<int64_t> keys(static_cast<size_t>(a.B * a.N));
  std::vector<std::atomic<int64_t>> dropped(static_cast<size_t>(a.B));
  for (auto& d : dropped) d.store(0);
  if (!keys.empty()) dense_keys<PT>(a, keys.data(), dropped);
  if (a.dropped != nullptr) {
    for (int64_t b = 0; b < a.B; ++b) a.dropped[b * a.dropped_s] = dropped[b].load();
  }
  if (keys.empty()) return Status::ok();

  const int64_t slabs = std::min<int64_t>(core::num_threads(), cells);
  core::parallel_for(0, slabs, 1, [&](int64_t s_lo, int64_t s_hi) {
    for (int64_t s = s_lo; s < s_hi; ++s) {
      dense_reduce_slab<FT>(a, keys.data(), count, cells * s / slabs, cells * (s + 1) / slabs);
    }
  });

  if (a.mode == VoxelMode::Mean || a.mode == VoxelMode::Max) {
    auto* out = static_cast<FT*>(a.out);
    const bool mean = a.mode == VoxelMode::Mean;
    core::parallel_for(0, cells, 1 << 16, [&](int64_t lo, int64_t hi) {
      for (int64_t k = lo; k < hi; ++k) {
        const int32_t n = count[k];
        if (n > 1 && mean) {
          for (int64_t c = 0; c < a.C; ++c) out[k * a.C + c] /= static_cast<FT>(n);
        }
      }
    });
  }
  return Status::ok();
}

template <class PT>
Status dense_dispatch_features(const DenseVoxelArgs& a) {
  if (a.C == 0) return dense_run<PT, float>(a);
  switch (a.feature_dtype) {
    case DType::Float32: return dense_run<PT, float>(a);
    case DType::Float64: return dense_run<PT, double>(a);
    default: return type_error("voxelize: unsupported features dtype ", dtype_name(a.feature_dtype));
  }
}

// ---- stable LSD radix sort of (key, value) pairs over the low `bits` bits of the keys ----

void radix_sort_pairs(std::vector<uint64_t>& keys, std::vector<uint32_t>& vals, int bits) {
  const int64_t n = static_cast<int64_t>(keys.size());
  if (n < 2) return;
  constexpr int kDigit = 8;
  constexpr int kBuckets = 1 << kDigit;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(core::num_threads(), n / 65536));
  std::vector<uint64_t> tk(keys.size());
  std::vector<uint32_t> tv(vals.size());
  std::vector<std::array<int64_t, kBuckets>> hist(static_cast<size_t>(chunks));
  for (int shift = 0; shift < bits; shift += kDigit) {
    core::parallel_for(0, chunks, 1, [&](int64_t c_lo, int64_t c_hi) {
      for (int64_t c = c_lo; c < c_hi; ++c) {
        auto& h = hist[c];
        h.fill(0);
        for (int64_t i = n * c / chunks, e = n * (c + 1) / chunks; i < e; ++i) ++h[(keys[i] >> shift) & 0xff];
      }
    });
    // Skip a pass in which every key has the same digit.
    int64_t running = 0;
    bool trivial = false;
    for (int d = 0; d < kBuckets; ++d) {
      int64_t in_digit = 0;
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t h = hist[c][d];
        hist[c][d] = running;
        running += h;
        in_digit += h;
      }
      if (in_digit == n) trivial = true;
    }
    if (trivial) continue;
    core::parallel_for(0, chunks, 1, [&](int64_t c_lo, int64_t c_hi) {
      for (int64_t c = c_lo; c < c_hi; ++c) {
        auto& off = hist[c];
        for (int64_t i = n * c / chunks, e = n * (c + 1) / chunks; i < e; ++i) {
          const int64_t pos = off[(keys[i] >> shift) & 0xff]++;
          tk[pos] = keys[i];
          tv[pos] = vals[i];
        }
      }
    });
    keys.swap(tk);
    vals.swap(tv);
  }
}

// Start of every run of equal keys below `sentinel`, plus one past the last kept element at the end.
std::vector<int64_t> run_starts(const std::vector<uint64_t>& sorted_keys, uint64_t sentinel) {
  std::vector<int64_t> starts;
  const int64_t n = static_cast<int64_t>(sorted_keys.size());
  int64_t i = 0;
  for (; i < n && sorted_keys[i] != sentinel; ++i) {
    if (i == 0 || sorted_keys[i] != sorted_keys[i - 1]) starts.push_back(i);
  }
  starts.push_back(i);
  return starts;
}

template <class T>
inline double as_double(const void* base, int64_t offset) {
  return static_cast<double>(static_cast<const T*>(base)[offset]);
}

template <class PT, class FT>
Status downsample_run(const DownsampleArgs& a, int64_t* num_voxels) {
  const auto* pts = static_cast<const PT*>(a.points);
  // Bounds of the finite points.
  double lo[3], hi[3];
  for (int i = 0; i < 3; ++i) {
    lo[i] = std::numeric_limits<double>::infinity();
    hi[i] = -lo[i];
  }
  std::mutex mu;
  core::parallel_for(0, a.N, 65536, [&](int64_t b, int64_t e) {
    double l[3] = {lo[0], lo[1], lo[2]}, h[3] = {hi[0], hi[1], hi[2]};
    for (int64_t i = b; i < e; ++i) {
      const PT* p = pts + i * a.p_sn;
      const double x = p[0], y = p[a.p_sd], z = p[2 * a.p_sd];
      if (!(x - x == 0.0 && y - y == 0.0 && z - z == 0.0)) continue;
      l[0] = std::min(l[0], x), l[1] = std::min(l[1], y), l[2] = std::min(l[2], z);
      h[0] = std::max(h[0], x), h[1] = std::max(h[1], y), h[2] = std::max(h[2], z);
    }
    std::lock_guard<std::mutex> lock(mu);
    for (int k = 0; k < 3; ++k) lo[k] = std::min(lo[k], l[k]), hi[k] = std::max(hi[k], h[k]);
  });
  *num_voxels = 0;
  if (!(lo[0] <= hi[0])) return Status::ok();  // no finite point
  DownsampleGrid g;
  ROBOCACHE_RETURN_IF_ERROR(make_downsample_grid(a, lo, hi, &g));

  std::vector<uint64_t> keys(static_cast<size_t>(a.N));
  std::vector<uint32_t> idx(static_cast<size_t>(a.N));
  core::parallel_for(0, a.N, 32768, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const PT* p = pts + i * a.p_sn;
      keys[i] = downsample_key(p[0], p[a.p_sd], p[2 * a.p_sd], g.origin, a.size, g.cmin, g.dims, g.sentinel);
      idx[i] = static_cast<uint32_t>(i);
    }
  });
  radix_sort_pairs(keys, idx, g.key_bits);
  const std::vector<int64_t> starts = run_starts(keys, g.sentinel);
  const int64_t M = static_cast<int64_t>(starts.size()) - 1;

  auto* out = static_cast<PT*>(a.out_points);
  const auto* feats = static_cast<const FT*>(a.features);
  auto* out_f = static_cast<FT*>(a.out_features);
  core::parallel_for(0, M, 1024, [&](int64_t m_lo, int64_t m_hi) {
    std::vector<double> acc(static_cast<size_t>(a.C));
    for (int64_t m = m_lo; m < m_hi; ++m) {
      double s[3] = {0, 0, 0};
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = starts[m]; j < starts[m + 1]; ++j) {
        const int64_t i = idx[j];
        const PT* p = pts + i * a.p_sn;
        s[0] += static_cast<double>(p[0]);
        s[1] += static_cast<double>(p[a.p_sd]);
        s[2] += static_cast<double>(p[2 * a.p_sd]);
        for (int64_t c = 0; c < a.C; ++c) acc[c] += static_cast<double>(feats[i * a.f_sn + c * a.f_sc]);
      }
      const double n = static_cast<double>(starts[m + 1] - starts[m]);
      for (int d = 0; d < 3; ++d) out[m * a.op_sn + d * a.op_sd] = static_cast<PT>(s[d] / n);
      for (int64_t c = 0; c < a.C; ++c) out_f[m * a.of_sn + c * a.of_sc] = static_cast<FT>(acc[c] / n);
    }
  });
  *num_voxels = M;
  return Status::ok();
}

template <class PT>
Status hard_run(const HardVoxelArgs& a, int64_t* num_voxels) {
  const auto* pts = static_cast<const PT*>(a.points);
  std::vector<uint64_t> keys(static_cast<size_t>(a.N));
  std::vector<uint32_t> idx(static_cast<size_t>(a.N));
  core::parallel_for(0, a.N, 32768, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const PT* p = pts + i * a.p_sn;
      const int64_t k = voxel_key(p[0], p[a.p_sc], p[2 * a.p_sc], a.origin, a.size, a.dims);
      keys[i] = k < 0 ? a.sentinel : static_cast<uint64_t>(k);
      idx[i] = static_cast<uint32_t>(i);
    }
  });
  radix_sort_pairs(keys, idx, a.key_bits);
  const std::vector<int64_t> starts = run_starts(keys, a.sentinel);
  const int64_t R = static_cast<int64_t>(starts.size()) - 1;

  // Voxels in order of their first point: sort runs by the index of their first point.
  std::vector<uint64_t> first(static_cast<size_t>(R));
  std::vector<uint32_t> run(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    first[r] = idx[starts[r]];
    run[r] = static_cast<uint32_t>(r);
  }
  radix_sort_pairs(first, run, bits_for(static_cast<uint64_t>(a.N)));
  const int64_t M = std::min(R, a.max_voxels);

  auto* vox = static_cast<PT*>(a.voxels);
  core::parallel_for(0, M, 256, [&](int64_t m_lo, int64_t m_hi) {
    for (int64_t m = m_lo; m < m_hi; ++m) {
      const int64_t r = run[m];
      const int64_t n = std::min(starts[r + 1] - starts[r], a.max_points);
      PT* dst = vox + m * a.max_points * a.C;
      for (int64_t j = 0; j < n; ++j) {
        const PT* p = pts + static_cast<int64_t>(idx[starts[r] + j]) * a.p_sn;
        for (int64_t c = 0; c < a.C; ++c) dst[j * a.C + c] = p[c * a.p_sc];
      }
      std::fill(dst + n * a.C, dst + a.max_points * a.C, PT(0));
      write_hard_voxel_row(a, m, static_cast<int64_t>(keys[starts[r]]), n);
    }
  });
  *num_voxels = M;
  return Status::ok();
}

}  // namespace

Status voxelize_dense_cpu(const DenseVoxelArgs& a) {
  switch (a.point_dtype) {
    case DType::Float32: return dense_dispatch_features<float>(a);
    case DType::Float64: return dense_dispatch_features<double>(a);
    default: return type_error("voxelize: unsupported points dtype ", dtype_name(a.point_dtype));
  }
}

Status voxel_downsample_cpu(const DownsampleArgs& a, int64_t* num_voxels) {
  const bool f64 = a.features != nullptr && a.feature_dtype == DType::Float64;
  switch (a.point_dtype) {
    case DType::Float32: return f64 ? downsample_run<float, double>(a, num_voxels) : downsample_run<float, float>(a, num_voxels);
    case DType::Float64: return f64 ? downsample_run<double, double>(a, num_voxels) : downsample_run<double, float>(a, num_voxels);
    default: return type_error("voxel_downsample: unsupported points dtype ", dtype_name(a.point_dtype));
  }
}

Status hard_voxelize_cpu(const HardVoxelArgs& a, int64_t* num_voxels) {
  switch (a.point_dtype) {
    case DType::Float32: return hard_run<float>(a, num_voxels);
    case DType::Float64: return hard_run<double>(a, num_voxels);
    default: return type_error("hard_voxelize: unsupported points dtype ", dtype_name(a.point_dtype));
  }
}

}  // namespace robocache::ops
