// CUDA backend of resample_trajectories, the twin of resample_cpu.cpp.
// A block takes a tile of targets of one batch row: first one thread per target finds its bracket
// (one binary search per target row, never per element), then the whole block streams the D channels
// of the tile with 16-byte loads and stores where the layout allows.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/cuda_check.h"
#include "ops/common/interp.h"
#include "ops/common/quat.h"
#include "ops/resample/resample.h"

namespace robocache::ops {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxTile = 256;  // targets per block; one searching thread each
#ifndef ROBOCACHE_RESAMPLE_MIN_BLOCKS
#define ROBOCACHE_RESAMPLE_MIN_BLOCKS 5
#endif
// Blocks per multiprocessor the register budget must allow (measured on an H100, see BENCHMARKS.md).
constexpr int kMinBlocks = ROBOCACHE_RESAMPLE_MIN_BLOCKS;
// The lean kernel's, chosen per device (device_tuning): 6 blocks (at most 40 registers; it uses 35-39), or 8 (32
// registers, no spills) on cards that move more bytes per multiprocessor and so need more loads in flight.
// H100: 8 blocks ran the image stream alone and separate outputs faster but 8 concatenated streams and the large
// resamples slower (48.0 / 85.4 / 95.0 / 269 us against 49.2 / 87.0 / 92.6 / 265 with 6). H200: 8 blocks ran
// every alignment faster (3 streams 47.5 against 51.5 us, 8 streams 73.0 against 78.2). BENCHMARKS.md session 8.
constexpr int kLeanBlocks = 6, kLeanBlocksWide = 8;
// Blocks of kThreads a multiprocessor can hold: 6 on sm_86 / sm_87 / sm_89 (1536 threads), 8 elsewhere from
// sm_80 on. Launch bounds ask for no more (where the device code is compiled for such an architecture, ptxas
// would ignore a larger minimum with a warning).
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 890)
constexpr int kArchMaxBlocks = 6;
#else
constexpr int kArchMaxBlocks = 8;
#endif
// Peak DRAM bandwidth per multiprocessor above which a device takes kLeanBlocksWide: between the H100 SXM's
// (about 25 GB/s) and the H200's (about 37 GB/s).
constexpr double kWideBytesPerSmPerSecond = 30e9;

template <class DT>
using Acc = std::conditional_t<std::is_same_v<DT, double>, double, float>;

__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }
__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
template <class DT>
__device__ __forceinline__ DT from_acc(Acc<DT> v) {
  if constexpr (std::is_same_v<DT, __half>) {
    return __float2half_rn(v);
  } else if constexpr (std::is_same_v<DT, __nv_bfloat16>) {
    return __float2bfloat16_rn(v);
  } else {
    return v;
  }
}

// a + w * (b - a) rounded step by step, never fused into an FMA, so CUDA gives the CPU's bits.
__device__ __forceinline__ float lerp_rn(float a, float b, float w) {
  return __fadd_rn(a, __fmul_rn(w, __fsub_rn(b, a)));
}
__device__ __forceinline__ double lerp_rn(double a, double b, double w) {
  return __dadd_rn(a, __dmul_rn(w, __dsub_rn(b, a)));
}

// A target of the lean kernel (resample_kernel with LEAN_BLOCKS > 0): 32-bit element offsets and a float weight,
// 16 bytes.
// src0 < 0: missing (NaN); src1 < 0: a bit-exact copy of src0.
struct alignas(16) LeanSlot {  // one 16-byte shared-memory load per step
  int32_t src0, src1, dst;
  float w;
};

// One target of a block's tile, as element offsets, so the streaming loop needs no batch arithmetic and a
// tile may span batch rows.
struct TargetSlot {
  int64_t src0, src1;  // offsets of the two samples to blend (b * data_sb + i * data_ss)
  int64_t dst;         // offset of the output row (b * out_sb + t * out_st)
  double w;
  int kind;  // kBlend, kCopy (i0 == i1: a bit-exact copy) or kMissing
};
constexpr int kBlend = 0, kCopy = 1, kMissing = 2;

template <class I>
__device__ __forceinline__ I device_row_length(const ResampleArgs& a, I b) {
  // Clamped for memory safety only: validation rejects out-of-range lengths before results are used.
  const auto S = static_cast<I>(a.S);
  if (a.lengths == nullptr) return S;
  const I at = b * static_cast<I>(a.len_s);
  const int64_t len = a.lengths_int64 ? static_cast<const int64_t*>(a.lengths)[at]
                                      : static_cast<const int32_t*>(a.lengths)[at];
  return len < 1 ? 1 : (len > S ? S : static_cast<I>(len));
}

// Up to kMaxStreams problems (the streams of one alignment) that share dtypes, in one launch: each block
// takes a tile of `tile[k]` consecutive targets of stream k's flattened [B, T] target list, in the block
// order below. `vec[k]`: kVector (16-byte loads and stores along a unit-stride D),
// kVectorLoad (16-byte loads, element stores) or kScalar (any strides).
constexpr int kMaxStreams = 8;
constexpr int kScalar = 0, kVectorLoad = 1, kVector = 2;  // StreamTable::vec
// N: the table's capacity. A one-stream call launches with a one-entry table: the parameter block is
// copied at every launch, and 1.7 KB of unused entries cost launch time.
template <int N>
struct StreamTableN {
  int n = 0;
  int tile[N];
  int vec[N];
  // Stream by stream (rounds == 0): stream k owns blocks [block_end[k-1], block_end[k]).
  // Interleaved (rounds > 0): block b is slot b % round_blocks of round b / round_blocks; a round gives stream k
  // per_round[k] consecutive tiles (slots [round_end[k-1], round_end[k])), so the blocks of one round cover
  // about the same targets in every stream, and each output row of a concatenated result is written by all
  // its streams within a short time (while it is in L2). Slots past a stream's last tile (`tiles[k]`) are empty.
  // Either way block_end[n-1] is the number of blocks.
  int64_t block_end[N];
  int rounds = 0;
  int round_blocks = 0;
  int per_round[N];
  int round_end[N];
  int tiles[N];
  ResampleArgs s[N];
};
using StreamTable = StreamTableN<kMaxStreams>;
static_assert(sizeof(StreamTable) < 4000, "kernel parameters are limited to 4 KB");

template <int N, int M>
StreamTableN<N> shrink(const StreamTableN<M>& t) {
  StreamTableN<N> r;
  r.n = t.n;
  r.rounds = t.rounds;
  r.round_blocks = t.round_blocks;
  for (int k = 0; k < t.n; ++k) {
    r.tile[k] = t.tile[k];
    r.vec[k] = t.vec[k];
    r.block_end[k] = t.block_end[k];
    r.per_round[k] = t.per_round[k];
    r.round_end[k] = t.round_end[k];
    r.tiles[k] = t.tiles[k];
    r.s[k] = t.s[k];
  }
  return r;
}

// The quaternion channels of one target were blended linearly with the rest; redo them along the arc,
// in float64.
template <class DT>
__device__ __forceinline__ void slerp_target(const TargetSlot sl, const DT* data, DT* out, int64_t data_sd,
                                             int64_t out_sd, int64_t quat) {
  if (sl.kind == kMissing) return;
  double qa[4], qb[4], q[4];
#pragma unroll
  for (int c = 0; c < 4; ++c) {
    qa[c] = static_cast<double>(to_acc(data[sl.src0 + (quat + c) * data_sd]));
    qb[c] = static_cast<double>(to_acc(data[sl.src1 + (quat + c) * data_sd]));
  }
  slerp(qa, qb, sl.w, q);
#pragma unroll
  for (int c = 0; c < 4; ++c) out[sl.dst + (quat + c) * out_sd] = from_acc<DT>(static_cast<Acc<DT>>(q[c]));
}

template <class TT, class TG>
using CompareT = std::conditional_t<std::is_same_v<TT, TG>, TT, double>;

// Where target f (an index into the flattened [B, T] targets) of stream `a` falls: its batch row *b, its target
// *t and its blend (one binary search); writes the mask. I: int64_t in the general kernel; int32_t in the lean
// kernel, whose launcher checked that every index and offset fits (lean_fits): 32-bit arithmetic leaves it
// registers for more blocks per multiprocessor.
template <class TT, class TG, class I>
__device__ __forceinline__ BlendI<I> find_blend(const ResampleArgs& a, I f, I* b_out, I* t_out) {
  using CT = CompareT<TT, TG>;
  const auto T = static_cast<I>(a.T);
  I b;
  if constexpr (sizeof(I) == 4) {
    b = static_cast<I>(static_cast<uint32_t>(f) / static_cast<uint32_t>(T));  // f >= 0, T > 0: the cheaper division
  } else {
    b = f / T;
  }
  const I t = f - b * T;
  const TimeRow<TT, CT, I> row{static_cast<const TT*>(a.src_t) + b * static_cast<I>(a.st_sb), static_cast<I>(a.st_ss)};
  const I len = device_row_length(a, b);
  const I at = b * static_cast<I>(a.tt_sb) + t * static_cast<I>(a.tt_st);
  const CT tv = static_cast<CT>(static_cast<const TG*>(a.tgt_t)[at]);
  const I ub = upper_bound(row, I{0}, len, tv);
  const BlendI<I> bl = make_blend(row, len, tv, ub, a.method, a.boundary);
  if (a.mask != nullptr) a.mask[b * static_cast<I>(a.mask_sb) + t * static_cast<I>(a.mask_st)] = bl.inside;
  *b_out = b;
  *t_out = t;
  return bl;
}

// The slot of target f: the general kernel's, and the lean kernel's.
template <class TT, class TG>
__device__ __forceinline__ TargetSlot search_target(const ResampleArgs& a, int64_t f) {
  int64_t b, t;
  const Blend bl = find_blend<TT, TG>(a, f, &b, &t);
  return TargetSlot{b * a.data_sb + bl.i0 * a.data_ss, b * a.data_sb + bl.i1 * a.data_ss, b * a.out_sb + t * a.out_st,
                    bl.w, bl.missing ? kMissing : (bl.i0 == bl.i1 ? kCopy : kBlend)};
}
template <class TT, class TG>
__device__ __forceinline__ LeanSlot search_lean(const ResampleArgs& a, int32_t f) {
  int32_t b, t;
  const BlendI<int32_t> bl = find_blend<TT, TG>(a, f, &b, &t);
  const int32_t base = b * static_cast<int32_t>(a.data_sb);
  const auto ss = static_cast<int32_t>(a.data_ss);
  return LeanSlot{bl.missing ? -1 : base + bl.i0 * ss, bl.missing || bl.i0 == bl.i1 ? -1 : base + bl.i1 * ss,
                  b * static_cast<int32_t>(a.out_sb) + t * static_cast<int32_t>(a.out_st), static_cast<float>(bl.w)};
}

// 0 builds the kernels without the time-row prefetch below (to compare: H100, 3 streams 63.6 against 68.5 us
// without, 8 streams 94.3 against 99.7; B256 S500 T250 D32 10.8 against 9.7; BENCHMARKS.md session 7).
#ifndef ROBOCACHE_RESAMPLE_PREFETCH
#define ROBOCACHE_RESAMPLE_PREFETCH 1
#endif
// Cache lines of source times a tile may prefetch per target: about what its binary searches would touch.
constexpr int64_t kPrefetchLinesPerTarget = 8;

// Before a tile's searches, the block asks for the source-time rows the tile spans, one prefetch per
// 128-byte line into L1 (a hint: no value is read, nothing is waited for), so that the searches' dependent
// steps hit L1 instead of each waiting for L2 or DRAM. Rows too long for the tile's targets are left alone.
template <class TT, class I>
__device__ __forceinline__ void prefetch_times(const ResampleArgs& a, I f0, int n_t) {
  if (!ROBOCACHE_RESAMPLE_PREFETCH) return;
  const int64_t step_bytes = a.st_ss * static_cast<int64_t>(sizeof(TT));
  if (step_bytes <= 0) return;
  // I: int64_t, or uint32_t in the lean kernel (every index below 2^31), whose divisions are cheaper.
  const I per_line = step_bytes >= 128 ? 1 : I{128} / static_cast<I>(step_bytes);  // samples per prefetch
  const auto S = static_cast<I>(a.S), T = static_cast<I>(a.T);
  // A row that does not start on a 128-byte boundary may end in a line this misses: a hint, so a cost in time
  // only (prefetching the last sample too measured no faster: H100, 8 streams 92.1-92.3 against 92.3-92.5 us,
  // B256 S500 9.9-10.0 against 9.8; BENCHMARKS.md session 8).
  const I row_lines = (S + per_line - 1) / per_line;
  const I b0 = f0 / T;
  const I rows = a.st_sb == 0 ? 1 : (f0 + n_t - 1) / T - b0 + 1;
  if (static_cast<int64_t>(row_lines) * static_cast<int64_t>(rows) > kPrefetchLinesPerTarget * n_t) return;
  const auto lines = static_cast<unsigned>(row_lines * rows), per_row = static_cast<unsigned>(row_lines);
  const TT* first = static_cast<const TT*>(a.src_t) + (a.st_sb == 0 ? 0 : b0 * a.st_sb);
  for (unsigned q = threadIdx.x; q < lines; q += blockDim.x) {
    const unsigned r = q / per_row;
    const TT* p = first + r * a.st_sb + static_cast<int64_t>(q - r * per_row) * per_line * a.st_ss;
    asm volatile("prefetch.L1 [%0];" ::"l"(p));  // generic address
  }
}

// What a slot says, read the same way for both kinds, so that one blend serves both kernels with the same
// arithmetic (the accumulator type and rounding steps) and so the same bits.
__device__ __forceinline__ bool slot_missing(const TargetSlot& sl) { return sl.kind == kMissing; }
__device__ __forceinline__ bool slot_missing(const LeanSlot& sl) { return sl.src0 < 0; }
__device__ __forceinline__ bool slot_copy(const TargetSlot& sl) { return sl.kind == kCopy; }
__device__ __forceinline__ bool slot_copy(const LeanSlot& sl) { return sl.src1 < 0; }
template <class A>
__device__ __forceinline__ A slot_weight(const TargetSlot& sl) {
  return static_cast<A>(sl.w);
}
template <class A>
__device__ __forceinline__ A slot_weight(const LeanSlot& sl) {
  static_assert(std::is_same_v<A, float>, "the lean kernel takes float32 / float16 / bfloat16 data");
  return sl.w;
}
__device__ __forceinline__ int64_t slot_dst(const TargetSlot& sl) { return sl.dst; }
__device__ __forceinline__ int32_t slot_dst(const LeanSlot& sl) { return sl.dst; }
// The type of a slot's element offsets in address arithmetic: int64_t in the general kernel (strides may be
// negative), uint32_t in the lean kernel (non-negative and below 2^31: one IMAD.WIDE.U32 per address).
template <class Slot>
using SlotIndex = std::conditional_t<std::is_same_v<Slot, LeanSlot>, uint32_t, int64_t>;

// The blend of source elements [d, d + VEC) of target `sl` as one 16-byte vector (NaN where missing, the
// bits of the sample where i0 == i1).
template <class DT, int VEC, class Slot>
__device__ __forceinline__ uint4 blend_vec(const DT* data, const Slot& sl, unsigned d) {
  using A = Acc<DT>;
  using I = SlotIndex<Slot>;
  union Pack {
    uint4 raw;
    DT e[VEC];
  };
  Pack po;
  if (slot_missing(sl)) {
#pragma unroll
    for (int e = 0; e < VEC; ++e) po.e[e] = from_acc<DT>(std::numeric_limits<A>::quiet_NaN());
    return po.raw;
  }
  Pack pa;
  pa.raw = __ldg(reinterpret_cast<const uint4*>(data + static_cast<I>(sl.src0 + d)));
  if (slot_copy(sl)) return pa.raw;  // bit-exact copy
  Pack pb;
  pb.raw = __ldg(reinterpret_cast<const uint4*>(data + static_cast<I>(sl.src1 + d)));
  const A w = slot_weight<A>(sl);
#pragma unroll
  for (int e = 0; e < VEC; ++e) po.e[e] = from_acc<DT>(lerp_rn(to_acc(pa.e[e]), to_acc(pb.e[e]), w));
  return po.raw;
}

// Calls fn(j, c) for each (target j < n_t, column c < ncol) of a tile that this thread takes: pair
// j * ncol + c for threadIdx.x, threadIdx.x + kThreads, ... Both advance per step without a division (a
// division per vector measured 3-6% slower at small tiles), unless kDivide: one division per pair, which
// holds fewer registers (the general kernel's element path spills 180 bytes with the stepping).
template <bool kDivide = false, class Fn>
__device__ __forceinline__ void for_each_column(unsigned ncol, int n_t, Fn&& fn) {
  if (ncol == 0) return;  // D == 0: nothing to write (and no division by 0)
  if constexpr (kDivide) {
    const unsigned n = static_cast<unsigned>(n_t) * ncol;
    for (unsigned idx = threadIdx.x; idx < n; idx += kThreads) {
      const unsigned j = idx / ncol;
      fn(j, idx - j * ncol);
    }
    return;
  }
  unsigned j = threadIdx.x / ncol, c = threadIdx.x - j * ncol;
  const unsigned step_j = kThreads / ncol, step_c = kThreads - step_j * ncol;
  while (j < static_cast<unsigned>(n_t)) {
    fn(j, c);
    j += step_j;
    c += step_c;
    if (c >= ncol) {
      c -= ncol;
      ++j;
    }
  }
}

// The block writes the D / VEC vectors of each of the n_t targets in `slots` (16-byte loads; 16-byte stores
// where store_vec, else element stores).
template <class DT, int VEC, class Slot>
__device__ __forceinline__ void stream_vectors(const DT* data, DT* out, unsigned nvec, int n_t, bool store_vec,
                                               const Slot* slots) {
  union Pack {
    uint4 raw;
    DT e[VEC];
  };
  for_each_column(nvec, n_t, [&](unsigned j, unsigned c) {
    const Slot sl = slots[j];
    const unsigned d = c * VEC;
    Pack po;
    po.raw = blend_vec<DT, VEC>(data, sl, d);
    DT* o = out + static_cast<SlotIndex<Slot>>(slot_dst(sl) + d);
    if (store_vec) {
      *reinterpret_cast<uint4*>(o) = po.raw;
    } else {
#pragma unroll
      for (int e = 0; e < VEC; ++e) o[e] = po.e[e];
    }
  });
}

// The blend of one element, `off` elements past the target's samples (any stride).
template <class DT, class Slot>
__device__ __forceinline__ DT blend_elem(const DT* data, const Slot& sl, SlotIndex<Slot> off) {
  using A = Acc<DT>;
  using I = SlotIndex<Slot>;
  if (slot_missing(sl)) return from_acc<DT>(std::numeric_limits<A>::quiet_NaN());
  const A va = to_acc(data[static_cast<I>(sl.src0 + off)]);
  const A vb = slot_copy(sl) ? va : lerp_rn(va, to_acc(data[static_cast<I>(sl.src1 + off)]), slot_weight<A>(sl));
  return from_acc<DT>(vb);
}

// The block writes the channels of the n_t targets in `slots` (searched) of one stream. VEC: elements per
// 16-byte vector of DT, used where `vec` allows (the launcher checked unit stride along D and alignment);
// otherwise the scalar path, any strides. 32-bit index arithmetic: the launcher keeps tile * D below 2^31.
template <class DT, int VEC, class Slot>
__device__ __forceinline__ void stream_tile(const ResampleArgs& a, int vec, const Slot* slots, int n_t) {
  const auto* data = static_cast<const DT*>(a.data);
  auto* out = static_cast<DT*>(a.out);
  if (VEC > 1 && vec != kScalar) {
    // One 16-byte vector per step; stored as one vector too where the output rows are aligned (kVector),
    // else element by element (kVectorLoad: e.g. a stream at an odd offset of a concatenated output).
    // (A 4-way unrolled variant that issued all loads first ran slower, 418 vs 277 us at B1024 S2048 T1024
    // D64 f32 on an H100: registers cost occupancy; loads staged through shared memory with cp.async did not
    // pay either, BENCHMARKS.md session 4.)
    stream_vectors<DT, VEC>(data, out, static_cast<unsigned>(a.D / VEC), n_t, vec == kVector, slots);
  } else {
    using I = SlotIndex<Slot>;
    const auto data_sd = static_cast<I>(a.data_sd), out_sd = static_cast<I>(a.out_sd);
    constexpr bool kDivide = !std::is_same_v<Slot, LeanSlot>;
    for_each_column<kDivide>(static_cast<unsigned>(a.D), n_t, [&](unsigned j, unsigned c) {
      const Slot sl = slots[j];
      out[static_cast<I>(slot_dst(sl) + c * out_sd)] = blend_elem<DT>(data, sl, c * data_sd);
    });
  }
}

// The stream k and tile index `local` (within stream k) of block `blk`, in the order of StreamTableN; false for
// an empty slot of an interleaved launch (block-uniform).
template <int N>
__device__ __forceinline__ bool tile_of(const StreamTableN<N>& table, int64_t blk, int* k_out, int64_t* local) {
  int k = 0;
  if (table.rounds > 0) {  // 32-bit: the launcher interleaves launches of fewer than 2^31 blocks only
    const unsigned b32 = static_cast<unsigned>(blk);
    const unsigned round = b32 / static_cast<unsigned>(table.round_blocks);
    const int slot = static_cast<int>(b32 - round * static_cast<unsigned>(table.round_blocks));
    while (slot >= table.round_end[k]) ++k;
    const int l = static_cast<int>(round) * table.per_round[k] + (slot - (k > 0 ? table.round_end[k - 1] : 0));
    if (l >= table.tiles[k]) return false;
    *local = l;
  } else {
    while (blk >= table.block_end[k]) ++k;
    *local = blk - (k > 0 ? table.block_end[k - 1] : 0);
  }
  *k_out = k;
  return true;
}

// Each block takes a tile of `tile[k]` consecutive targets of one stream k, in the order of StreamTableN.
// LEAN_BLOCKS > 0: the lean kernel, for launches whose streams all have float32 / float16 / bfloat16 data, 32-bit
// offsets (lean_fits) and no slerp: 16-byte slots (the general kernel's are 40) and 32-bit searches leave
// registers for LEAN_BLOCKS blocks per multiprocessor; the same bits as the general kernel (LEAN_BLOCKS == 0).
template <class DT, class TT, class TG, int VEC, int N, int LEAN_BLOCKS>
__global__ void __launch_bounds__(kThreads, LEAN_BLOCKS > 0 ? std::min(LEAN_BLOCKS, kArchMaxBlocks) : kMinBlocks)
    resample_kernel(const __grid_constant__ StreamTableN<N> table) {
  constexpr bool LEAN = LEAN_BLOCKS > 0;
  using Slot = std::conditional_t<LEAN, LeanSlot, TargetSlot>;
  __shared__ Slot slots[kMaxTile];
  const int64_t total = table.block_end[table.n - 1];

  for (int64_t blk = blockIdx.x; blk < total; blk += gridDim.x) {
    int k = 0;
    int64_t local = 0;
    if (!tile_of(table, blk, &k, &local)) continue;
    // The general kernel copies the stream's arguments: fields read in the inner loops stay in registers
    // (through the reference to the __grid_constant__ table, the compiler reloaded them around every store).
    // The lean kernel reads them in place, which leaves it its register budget.
    std::conditional_t<LEAN, const ResampleArgs&, const ResampleArgs> a = table.s[k];
    const int64_t f0 = local * table.tile[k];
    const int n_t = static_cast<int>(min(static_cast<int64_t>(table.tile[k]), a.B * a.T - f0));
    prefetch_times<TT>(a, static_cast<SlotIndex<Slot>>(f0), n_t);
    if (static_cast<int>(threadIdx.x) < n_t) {
      if constexpr (LEAN) {
        slots[threadIdx.x] = search_lean<TT, TG>(a, static_cast<int32_t>(f0) + static_cast<int32_t>(threadIdx.x));
      } else {
        slots[threadIdx.x] = search_target<TT, TG>(a, f0 + threadIdx.x);
      }
    }
    __syncthreads();
    stream_tile<DT, VEC>(a, table.vec[k], slots, n_t);
    if constexpr (!LEAN) {
      if (a.method == InterpMethod::Slerp) {
        __syncthreads();
        if (static_cast<int>(threadIdx.x) < n_t) {
          slerp_target<DT>(slots[threadIdx.x], static_cast<const DT*>(a.data), static_cast<DT*>(a.out), a.data_sd,
                           a.out_sd, a.quat);
        }
      }
    }
    __syncthreads();
  }
}

// Timestamp and length checks. Faults are keyed by their flat position so atomicMin keeps the first one.
struct FaultKeys {
  unsigned long long length;  // b
  unsigned long long src;     // (b * S + i) * 2 + (1 if decreasing else 0 for NaN)
  unsigned long long tgt;     // b * T + t
};

// Device-side state of the check: the running keys and a count of finished blocks. The last block to
// finish publishes the keys to pinned host memory and resets the state for the next call, so a call
// costs one launch: no memset and no copy.
struct FaultState {
  FaultKeys keys;
  unsigned int blocks_done;
};

template <class TT>
__device__ __forceinline__ bool device_is_nan(TT v) {
  if constexpr (std::is_floating_point_v<TT>) {
    return v != v;
  } else {
    return false;
  }
}

// The checks of up to kMaxStreams streams in one launch. Stream k owns blocks [block_end[k-1],
// block_end[k]): first len_blocks[k] blocks over its lengths, then one block per kCheckChunk source times
// of each source row, then the same over each target row. No division per element.
constexpr int kCheckChunk = 2048;
template <int N>
struct CheckTableN {
  int n = 0;
  int slot[N];  // entry q uses state[slot[q]] and host[slot[q]]; the counter is state[slot[0]]'s
  int64_t block_end[N];
  int64_t len_blocks[N];
  int64_t src_blocks[N];
  ResampleArgs s[N];
};
using CheckTable = CheckTableN<kMaxStreams>;
static_assert(sizeof(CheckTable) < 4000, "kernel parameters are limited to 4 KB");

CheckTableN<1> shrink_check(const CheckTable& t) {
  CheckTableN<1> r;
  r.n = 1;
  r.slot[0] = t.slot[0];
  r.block_end[0] = t.block_end[0];
  r.len_blocks[0] = t.len_blocks[0];
  r.src_blocks[0] = t.src_blocks[0];
  r.s[0] = t.s[0];
  return r;
}

template <class TT, class TG, int N>
__global__ void validate_kernel(const __grid_constant__ CheckTableN<N> table, FaultState* state, FaultKeys* host) {
  const int64_t total = table.block_end[table.n - 1];
  for (int64_t blk = blockIdx.x; blk < total; blk += gridDim.x) {
    int k = 0;
    while (blk >= table.block_end[k]) ++k;
    const ResampleArgs& a = table.s[k];
    FaultKeys* keys = &state[table.slot[k]].keys;
    int64_t local = blk - (k > 0 ? table.block_end[k - 1] : 0);
    if (local < table.len_blocks[k]) {
      const int64_t end = min(a.B, (local + 1) * kCheckChunk);
      for (int64_t b = local * kCheckChunk + threadIdx.x; b < end; b += blockDim.x) {
        const int64_t len = a.lengths_int64 ? static_cast<const int64_t*>(a.lengths)[b * a.len_s]
                                            : static_cast<const int32_t*>(a.lengths)[b * a.len_s];
        if (len < 1 || len > a.S) atomicMin(&keys->length, static_cast<unsigned long long>(b));
      }
      continue;
    }
    local -= table.len_blocks[k];
    if (local < table.src_blocks[k]) {
      const int64_t chunks = (a.S + kCheckChunk - 1) / kCheckChunk;
      const int64_t b = local / chunks;
      const int64_t i0 = (local - b * chunks) * kCheckChunk;
      // A broadcast src_t is checked over all S samples; a per-row one over its valid length.
      int64_t len = a.S;
      if (a.st_sb != 0 && a.lengths != nullptr) {
        len = a.lengths_int64 ? static_cast<const int64_t*>(a.lengths)[b * a.len_s]
                              : static_cast<const int32_t*>(a.lengths)[b * a.len_s];
        len = len < 0 ? 0 : (len > a.S ? a.S : len);
      }
      const int64_t end = min(len, i0 + kCheckChunk);
      const TimeRow<TT> row{static_cast<const TT*>(a.src_t) + b * a.st_sb, a.st_ss};
      for (int64_t i = i0 + threadIdx.x; i < end; i += blockDim.x) {
        const TT v = row[i];
        const auto flat = static_cast<unsigned long long>(b * a.S + i);
        if (device_is_nan(v)) {
          atomicMin(&keys->src, flat * 2);
        } else if (i > 0 && v < row[i - 1]) {
          atomicMin(&keys->src, flat * 2 + 1);
        }
      }
      continue;
    }
    local -= table.src_blocks[k];
    const int64_t chunks = (a.T + kCheckChunk - 1) / kCheckChunk;
    const int64_t b = local / chunks;
    const int64_t t0 = (local - b * chunks) * kCheckChunk;
    const int64_t end = min(a.T, t0 + kCheckChunk);
    const auto* tgt_t = static_cast<const TG*>(a.tgt_t) + b * a.tt_sb;
    for (int64_t t = t0 + threadIdx.x; t < end; t += blockDim.x) {
      if (device_is_nan(tgt_t[t * a.tt_st])) atomicMin(&keys->tgt, static_cast<unsigned long long>(b * a.T + t));
    }
  }
  // The last block to finish publishes every stream's keys and resets them.
  __threadfence();
  __syncthreads();
  __shared__ bool last;
  if (threadIdx.x == 0) last = atomicAdd(&state[table.slot[0]].blocks_done, 1u) == gridDim.x - 1;
  __syncthreads();
  if (last && static_cast<int>(threadIdx.x) < table.n) {
    __threadfence();
    constexpr unsigned long long none = ~0ull;
    const int q = table.slot[threadIdx.x];
    FaultKeys* keys = &state[q].keys;
    host[q].length = atomicExch(&keys->length, none);
    host[q].src = atomicExch(&keys->src, none);
    host[q].tgt = atomicExch(&keys->tgt, none);
    if (threadIdx.x == 0) state[q].blocks_done = 0;
    __threadfence_system();
  }
}

// Per host thread and device: the check states (one per stream checked together), their pinned (mapped)
// results, and an event. A call waits for its checks before returning, so no two checks of one thread
// overlap. Freed when the thread ends (a program that starts threads to call with validate=True kept them all
// before); errors are ignored there, as at process exit a CUDA runtime that is unloading reports them.
struct CheckScratch {
  FaultState* state = nullptr;  // [kMaxStreams]
  FaultKeys* host = nullptr;    // [kMaxStreams], cudaHostAllocMapped: the kernel writes it directly
  cudaEvent_t done = nullptr;
  bool ready = false;  // the state was initialised (and that finished)
  int device = -1;

  CheckScratch() = default;
  CheckScratch(const CheckScratch&) = delete;
  CheckScratch& operator=(const CheckScratch&) = delete;
  ~CheckScratch() {
    if (state == nullptr && host == nullptr && done == nullptr) return;
    core::CudaDeviceGuard guard(device);
    if (guard.error() != cudaSuccess) return;
    if (done != nullptr) {
      cudaEventSynchronize(done);  // the thread's last check (each call waits for its own; this is a safeguard)
      cudaEventDestroy(done);
    }
    if (host != nullptr) cudaFreeHost(host);
    if (state != nullptr) cudaFree(state);
  }
};

// The first check of a thread initialises its state on the caller's stream and waits for that stream
// only: a device-wide synchronisation here would also wait for every other thread's work (a loader's
// workers, another training thread) and for the legacy stream. Later checks of the thread may use other
// streams; they start after this one's wait, so the state is initialised by then.
Status get_scratch(int device, cudaStream_t stream, CheckScratch** out) {
  static thread_local CheckScratch scratch[64];
  if (device < 0 || device >= 64) return invalid_argument("CUDA device index ", device, " is out of range");
  CheckScratch& s = scratch[device];
  if (!s.ready) {  // each step is kept, so a call after a failure here resumes without leaking
    s.device = device;
    if (s.state == nullptr) ROBOCACHE_CUDA_CHECK(cudaMalloc(&s.state, kMaxStreams * sizeof(FaultState)));
    if (s.host == nullptr) ROBOCACHE_CUDA_CHECK(cudaHostAlloc(&s.host, kMaxStreams * sizeof(FaultKeys), cudaHostAllocMapped));
    if (s.done == nullptr) ROBOCACHE_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    for (int k = 0; k < kMaxStreams; ++k) {
      ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(&s.state[k].keys, 0xff, sizeof(FaultKeys), stream));
      ROBOCACHE_CUDA_CHECK(cudaMemsetAsync(&s.state[k].blocks_done, 0, sizeof(unsigned int), stream));
    }
    ROBOCACHE_CUDA_CHECK(cudaEventRecord(s.done, stream));
    ROBOCACHE_CUDA_CHECK(cudaEventSynchronize(s.done));
    s.ready = true;
  }
  *out = &s;
  return Status::ok();
}

template <class TT>
Status read_fault(const ResampleArgs& a, const FaultKeys& k) {
  constexpr auto none = std::numeric_limits<unsigned long long>::max();
  const auto fetch = [](const TT* p, TT* v) { return cudaMemcpy(v, p, sizeof(TT), cudaMemcpyDeviceToHost); };
  if (k.length != none) {
    const auto b = static_cast<int64_t>(k.length);
    int64_t len = 0;
    if (a.lengths_int64) {
      ROBOCACHE_CUDA_CHECK(cudaMemcpy(&len, static_cast<const int64_t*>(a.lengths) + b * a.len_s, 8,
                                      cudaMemcpyDeviceToHost));
    } else {
      int32_t len32 = 0;
      ROBOCACHE_CUDA_CHECK(cudaMemcpy(&len32, static_cast<const int32_t*>(a.lengths) + b * a.len_s, 4,
                                      cudaMemcpyDeviceToHost));
      len = len32;
    }
    return time_fault_status<TT>(TimeFault::LengthOutOfRange, a, b, len, TT{}, TT{});
  }
  if (k.src != none) {
    const auto flat = static_cast<int64_t>(k.src / 2);
    const int64_t b = flat / a.S, i = flat - b * a.S;
    const auto* row = static_cast<const TT*>(a.src_t) + b * a.st_sb;
    TT v{}, prev{};
    ROBOCACHE_CUDA_CHECK(fetch(row + i * a.st_ss, &v));
    if (i > 0) ROBOCACHE_CUDA_CHECK(fetch(row + (i - 1) * a.st_ss, &prev));
    return time_fault_status<TT>((k.src & 1) ? TimeFault::SrcDecreasing : TimeFault::SrcNaN, a, b, i, v, prev);
  }
  if (k.tgt != none) {
    const auto flat = static_cast<int64_t>(k.tgt);
    const int64_t b = flat / a.T, t = flat - b * a.T;
    return time_fault_status<TT>(TimeFault::TgtNaN, a, b, t, TT{}, TT{});
  }
  return Status::ok();
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// How a stream's channels can be moved: 16-byte loads need a unit-stride, aligned source with D a whole
// number of vectors; 16-byte stores need the same of the output.
int vector_mode(const ResampleArgs& a) {
  const int64_t e = static_cast<int64_t>(dtype_size(a.data_dtype));
  const int64_t vec = 16 / e;
  const bool load = a.data_sd == 1 && a.D % vec == 0 && aligned16(a.data) && (a.data_ss * e) % 16 == 0 &&
                    (a.data_sb * e) % 16 == 0;
  if (!load || a.out_sd != 1) return kScalar;
  const bool store = aligned16(a.out) && (a.out_st * e) % 16 == 0 && (a.out_sb * e) % 16 == 0;
  return store ? kVector : kVectorLoad;
}

// A tuning variable from the environment; a value that is not an integer in range is reported on stderr and
// not used.
int env_int(const char* name, int lo, int hi, int fallback) {
  const char* e = std::getenv(name);
  if (e == nullptr) return fallback;
  char* end = nullptr;
  const long v = std::strtol(e, &end, 10);
  if (end == e || *end != '\0' || v < lo || v > hi) {
    std::fprintf(stderr, "robocache: ignoring %s=%s (not an integer in [%d, %d]); using %d\n", name, e, lo, hi, fallback);
    return fallback;
  }
  return static_cast<int>(v);
}
// Elements or vectors per thread a tile aims at: 16 (H100: 3 streams 72.7 us against 75.4 with 8, B1024
// S2048 T1024 D64 f32 285 against 293 us), and 8 for interleaved launches (concatenated alignments: 8 streams
// 101-102 us against 107-108 with 16, 3 streams 67-68 against 69.5-70; the image stream alone and separate
// outputs are slower with 8; BENCHMARKS.md sessions 2 and 5). The lean kernel: 8, and 4 for interleaved
// launches (3 streams 63.6 us against 64.8 with 8; the image stream alone 50.3 against 50.7 with 4; 2 was
// slower everywhere; session 7). ROBOCACHE_RESAMPLE_TILE_WORK (1..256) sets all four, and
// ROBOCACHE_RESAMPLE_LEAN_TILE_WORK the lean kernel's, to tune them (bench/bench_fuse.py --sweep
// ROBOCACHE_RESAMPLE_TILE_WORK=8,16 runs each value in its own process).
int tile_work(bool interleaved, bool lean) {
  static const int work = env_int("ROBOCACHE_RESAMPLE_TILE_WORK", 1, 256, 0);
  static const int lean_work = env_int("ROBOCACHE_RESAMPLE_LEAN_TILE_WORK", 1, 256, 0);
  if (lean && lean_work > 0) return lean_work;
  if (work > 0) return work;
  return lean ? (interleaved ? 4 : 8) : (interleaved ? 8 : 16);
}
// ROBOCACHE_RESAMPLE_TRACE=1: each resampling launch reports its kernel, block order and tiles on stderr (for
// tuning, and for tests that check which kernel a launch takes).
bool trace_launches() {
  static const int trace = env_int("ROBOCACHE_RESAMPLE_TRACE", 0, 1, 0);
  return trace == 1;
}
// Whether launches that can use the lean kernel do (ROBOCACHE_RESAMPLE_LEAN=0: never, to compare them).
bool lean_enabled() {
  static const int lean = env_int("ROBOCACHE_RESAMPLE_LEAN", 0, 1, 1);
  return lean == 1;
}
// Whether every index and element offset of a stream fits in 32 bits, with non-negative strides: the lean
// kernel's slots, searches and prefetches take them so. Each span is the offset of the last element along the
// dimensions given (0 for an empty one), computed without overflow.
bool lean_fits(const ResampleArgs& a) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  for (const int64_t stride : {a.data_sb, a.data_ss, a.data_sd, a.out_sb, a.out_st, a.out_sd, a.st_sb, a.st_ss,
                               a.tt_sb, a.tt_st, a.len_s, a.mask_sb, a.mask_st}) {
    if (stride < 0) return false;
  }
  const auto span = [](std::initializer_list<std::pair<int64_t, int64_t>> dims) {  // (size, stride) pairs
    int64_t end = 0;
    for (const auto& [size, stride] : dims) {
      int64_t step = 0;
      if (size > 1 && (__builtin_mul_overflow(size - 1, stride, &step) || __builtin_add_overflow(end, step, &end))) {
        return std::numeric_limits<int64_t>::max();
      }
    }
    return end;
  };
  int64_t targets = 0;
  const int64_t ends[] = {
      span({{a.B, a.data_sb}, {a.S, a.data_ss}, {a.D, a.data_sd}}),  // samples
      span({{a.B, a.out_sb}, {a.T, a.out_st}, {a.D, a.out_sd}}),     // outputs
      span({{a.B, a.st_sb}, {a.S, a.st_ss}}),                        // source times
      span({{a.B, a.tt_sb}, {a.T, a.tt_st}}),                        // target times
      span({{a.B, a.len_s}}),                                        // lengths
      span({{a.B, a.mask_sb}, {a.T, a.mask_st}}),                    // mask
      __builtin_mul_overflow(a.B, a.T, &targets) ? std::numeric_limits<int64_t>::max() : targets,  // flat targets
      a.S,
  };
  return std::all_of(std::begin(ends), std::end(ends), [](int64_t e) { return e < kMax; });
}
// The block order of a multi-stream launch where the streams share output rows (shares_rows): 1 interleaved
// (StreamTableN), 0 stream by stream as elsewhere (ROBOCACHE_RESAMPLE_ORDER, to compare them). (Row tiles, in
// which one block wrote all streams' parts of its targets' rows, measured slower: 8 streams 117 against 108
// us, 3 streams 74 against 70; BENCHMARKS.md session 4.)
int block_order() {
  static const int order = env_int("ROBOCACHE_RESAMPLE_ORDER", 0, 1, 1);
  return order;
}

// Tiles (targets per block) for the streams of one launch: about `work` elements or vectors per thread
// (at most kMaxTile targets), then halved, largest first, while the launch would not fill every
// multiprocessor with kMinBlocks blocks (`min_blocks`), down to 16 targets.
void plan_tiles(StreamTable* table, int64_t min_blocks, int work) {
  const auto targets = [&](int k) { return table->s[k].B * table->s[k].T; };
  for (int k = 0; k < table->n; ++k) {
    const ResampleArgs& a = table->s[k];
    const int64_t nvec = table->vec[k] != kScalar ? a.D / (16 / static_cast<int64_t>(dtype_size(a.data_dtype))) : a.D;
    const int64_t want = (work * kThreads + nvec - 1) / std::max<int64_t>(nvec, 1);
    table->tile[k] = static_cast<int>(std::min<int64_t>(std::max<int64_t>(want, 1), kMaxTile));
  }
  for (;;) {
    int64_t blocks = 0;
    int widest = -1;
    for (int k = 0; k < table->n; ++k) {
      blocks += (targets(k) + table->tile[k] - 1) / table->tile[k];
      if (table->tile[k] > 16 && table->tile[k] < 2 * targets(k) &&
          (widest < 0 || table->tile[k] > table->tile[widest])) {
        widest = k;
      }
    }
    if (blocks >= min_blocks || widest < 0) break;
    table->tile[widest] /= 2;
  }
}

// Whether the streams write column ranges of one output array (fuse_multimodal's concatenated result): the
// same row strides, and every stream's output within one row of the first's. Interleaving the blocks pays
// there (8 streams 108 against 117 us on an H100) and costs where each stream has its own array (96
// against 91 us), BENCHMARKS.md.
template <int N>
bool shares_rows(const StreamTableN<N>& t) {
  const auto* first = static_cast<const char*>(t.s[0].out);
  const int64_t row = t.s[0].out_st * static_cast<int64_t>(dtype_size(t.s[0].data_dtype));
  for (int k = 1; k < t.n; ++k) {
    const int64_t gap = static_cast<const char*>(t.s[k].out) - first;
    if (t.s[k].out_st != t.s[0].out_st || t.s[k].out_sb != t.s[0].out_sb || gap < 0 || gap >= row) return false;
  }
  return true;
}

// What a launch needs to know of its device, queried once per process and device.
struct DeviceTuning {
  int sms = 0;          // multiprocessors
  int lean_blocks = 0;  // kLeanBlocks or kLeanBlocksWide
  double bytes_per_sm_per_second = 0;
};

// One launch for `idx` (streams of one dtype group, at most kMaxStreams).
template <class DT, class TT, class TG>
Status launch_group(const ResampleArgs* args, const int* idx, int n, const DeviceTuning& dev, cudaStream_t stream) {
  StreamTable table;
  table.n = n;
  for (int j = 0; j < n; ++j) {
    table.s[j] = args[idx[j]];
    table.vec[j] = vector_mode(table.s[j]);
    if (table.s[j].D * kMaxTile >= (int64_t{1} << 31)) {
      return invalid_argument("resample (CUDA): D = ", table.s[j].D, " channels per sample is more than this "
                              "backend supports (", (int64_t{1} << 31) / kMaxTile - 1, ")");
    }
  }
  bool lean = !std::is_same_v<DT, double> && lean_enabled();
  for (int j = 0; j < n; ++j) {
    lean = lean && table.s[j].method != InterpMethod::Slerp && lean_fits(table.s[j]);
  }
  const bool interleave = n > 1 && block_order() == 1 && shares_rows(table);
  plan_tiles(&table, static_cast<int64_t>(dev.sms) * (lean ? dev.lean_blocks : kMinBlocks),
             tile_work(interleave, lean));
  if (interleave) {
    // Powers of two: the streams share B * T targets, so every stream's tiles then cover exactly the same targets
    // per round, where a tile of 146 targets (the 8-stream benchmark's 7-channel streams) drifted 36 targets
    // ahead per round. (H100: 8 streams 92.2-92.3 against 92.5-92.6 us; tile work 6 92.2 against 108 us, 8
    // 97.6 against 115 us; BENCHMARKS.md session 8.)
    for (int j = 0; j < n; ++j) {
      int t = 1;
      while (2 * t <= table.tile[j]) t *= 2;
      table.tile[j] = t;
    }
  }
  int64_t blocks = 0, fewest = std::numeric_limits<int64_t>::max();
  for (int j = 0; j < n; ++j) {
    const int64_t tiles = (table.s[j].B * table.s[j].T + table.tile[j] - 1) / table.tile[j];
    blocks += tiles;
    table.block_end[j] = blocks;
    fewest = std::min(fewest, tiles);
  }
  if (interleave && fewest > 0 && blocks < (int64_t{1} << 30)) {
    // Interleaved, in as many rounds as the stream with the fewest tiles has tiles.
    int per = 0;
    for (int j = 0; j < n; ++j) {
      table.tiles[j] = static_cast<int>(table.block_end[j] - (j > 0 ? table.block_end[j - 1] : 0));
      table.per_round[j] = static_cast<int>((table.tiles[j] + fewest - 1) / fewest);
      per += table.per_round[j];
      table.round_end[j] = per;
    }
    table.rounds = static_cast<int>(fewest);
    table.round_blocks = per;
    blocks = fewest * per;
    table.block_end[n - 1] = blocks;
  }
  const auto grid = static_cast<unsigned>(std::min<int64_t>(blocks, int64_t{1} << 30));
  const auto run = [&](auto kernel) {  // std::integral_constant<int, LEAN_BLOCKS>: which kernel
    constexpr int kLeanBlocksOf = decltype(kernel)::value;
    constexpr int VEC = 16 / sizeof(DT);
    if (trace_launches()) {  // the kernel launched below, as one write
      char line[512];
      int len = std::snprintf(line, sizeof line,
                              "robocache: resample launch: %s kernel, %d blocks/SM (device: %d SMs, %.1f GB/s per "
                              "SM), %d stream(s), %s, %lld blocks, tiles",
                              kLeanBlocksOf > 0 ? "lean" : "general", kLeanBlocksOf > 0 ? kLeanBlocksOf : kMinBlocks,
                              dev.sms, dev.bytes_per_sm_per_second / 1e9, n,
                              table.rounds > 0 ? "interleaved" : "stream by stream", static_cast<long long>(blocks));
      for (int j = 0; j < n && len > 0 && len < static_cast<int>(sizeof line) - 16; ++j) {
        len += std::snprintf(line + len, sizeof line - len, " %d", table.tile[j]);
      }
      std::fprintf(stderr, "%s\n", line);
    }
    if (n == 1) {
      resample_kernel<DT, TT, TG, VEC, 1, kLeanBlocksOf><<<grid, kThreads, 0, stream>>>(shrink<1>(table));
    } else {
      resample_kernel<DT, TT, TG, VEC, kMaxStreams, kLeanBlocksOf><<<grid, kThreads, 0, stream>>>(table);
    }
  };
  if constexpr (std::is_same_v<DT, double>) {
    run(std::integral_constant<int, 0>{});  // `lean` is false for float64 data
  } else if (lean && dev.lean_blocks == kLeanBlocksWide) {
    run(std::integral_constant<int, kLeanBlocksWide>{});
  } else if (lean) {
    run(std::integral_constant<int, kLeanBlocks>{});
  } else {
    run(std::integral_constant<int, 0>{});
  }
  ROBOCACHE_CUDA_CHECK(cudaGetLastError());
  return Status::ok();
}

template <class TT, class TG>
Status launch_times(const ResampleArgs* args, const int* idx, int n, const DeviceTuning& dev, cudaStream_t stream) {
  switch (args[idx[0]].data_dtype) {
    case DType::Float32: return launch_group<float, TT, TG>(args, idx, n, dev, stream);
    case DType::Float64: return launch_group<double, TT, TG>(args, idx, n, dev, stream);
    case DType::Float16: return launch_group<__half, TT, TG>(args, idx, n, dev, stream);
    case DType::BFloat16: return launch_group<__nv_bfloat16, TT, TG>(args, idx, n, dev, stream);
    default: return type_error("resample: unsupported data dtype ", dtype_name(args[idx[0]].data_dtype));
  }
}

// The one switch over timestamp dtypes; `Fn` is called with the (src, tgt) types.
template <class Fn>
Status with_time_types(DType s, DType g, Fn&& fn) {
  if (s == DType::Int64 && g == DType::Int64) return fn(int64_t{}, int64_t{});
  if (s == DType::Float64 && g == DType::Float64) return fn(double{}, double{});
  if (s == DType::Float32 && g == DType::Float32) return fn(float{}, float{});
  if (s == DType::Float32 && g == DType::Float64) return fn(float{}, double{});
  if (s == DType::Float64 && g == DType::Float32) return fn(double{}, float{});
  return type_error("resample: unsupported timestamp dtypes src_t ", dtype_name(s), ", tgt_t ", dtype_name(g));
}

// ROBOCACHE_RESAMPLE_LEAN_BLOCKS=6 or 8 sets the lean kernel's blocks per multiprocessor on every device (to
// compare them); unset or 0, each device's bandwidth per multiprocessor chooses.
int lean_blocks_override() {
  static const int blocks = [] {
    const int v = env_int("ROBOCACHE_RESAMPLE_LEAN_BLOCKS", 0, kLeanBlocksWide, 0);
    if (v == 0 || v == kLeanBlocks || v == kLeanBlocksWide) return v;
    std::fprintf(stderr, "robocache: ignoring ROBOCACHE_RESAMPLE_LEAN_BLOCKS=%d (not %d or %d)\n", v, kLeanBlocks,
                 kLeanBlocksWide);
    return 0;
  }();
  return blocks;
}

Status device_tuning(int device, DeviceTuning* out) {
  if (device < 0 || device >= 64) return invalid_argument("CUDA device index ", device, " is out of range");
  static std::mutex mu;
  static DeviceTuning cache[64];
  std::lock_guard<std::mutex> lock(mu);
  DeviceTuning& t = cache[device];
  if (t.sms == 0) {
    int sms = 0, clock_khz = 0, bus_bits = 0;
    ROBOCACHE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    ROBOCACHE_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, device));
    ROBOCACHE_CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, device));
    // Peak DRAM bandwidth: two transfers per clock over the bus.
    t.bytes_per_sm_per_second = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / std::max(sms, 1);
    t.lean_blocks = t.bytes_per_sm_per_second > kWideBytesPerSmPerSecond ? kLeanBlocksWide : kLeanBlocks;
    t.sms = sms;
  }
  *out = t;
  if (lean_blocks_override() != 0) out->lean_blocks = lean_blocks_override();
  return Status::ok();
}

// Groups streams by (data dtype, time dtypes) and launches each group once.
Status launch_all(const ResampleArgs* args, int n, int device, cudaStream_t stream) {
  DeviceTuning dev;
  ROBOCACHE_RETURN_IF_ERROR(device_tuning(device, &dev));
  std::vector<bool> done(n, false);
  for (int k = 0; k < n; ++k) {
    if (done[k]) continue;
    int idx[kMaxStreams];
    int m = 0;
    for (int j = k; j < n && m < kMaxStreams; ++j) {
      if (done[j] || args[j].data_dtype != args[k].data_dtype || args[j].time_dtype != args[k].time_dtype ||
          args[j].tgt_dtype != args[k].tgt_dtype) {
        continue;
      }
      idx[m++] = j;
      done[j] = true;
    }
    ROBOCACHE_RETURN_IF_ERROR(with_time_types(args[k].time_dtype, args[k].tgt_dtype, [&](auto tt, auto tg) {
      return launch_times<decltype(tt), decltype(tg)>(args, idx, m, dev, stream);
    }));
  }
  return Status::ok();
}

}  // namespace

Status resample_cuda(const ResampleArgs* args, int n, const char* const* names, int device, Stream stream_ptr,
                     bool check) {
  auto* stream = static_cast<cudaStream_t>(stream_ptr);
  core::CudaDeviceGuard guard(device);
  ROBOCACHE_CUDA_CHECK(guard.error());
  if (device < 0 || device >= 64) return invalid_argument("CUDA device index ", device, " is out of range");
  if (!check) return launch_all(args, n, device, stream);

  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  ROBOCACHE_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  if (capture != cudaStreamCaptureStatusNone) {
    return invalid_argument("validate=True needs to read its check result on the host, which a stream under "
                            "CUDA graph capture cannot do; pass validate=False inside capture");
  }
  CheckScratch* s = nullptr;
  ROBOCACHE_RETURN_IF_ERROR(get_scratch(device, stream, &s));
  // Once a check kernel is queued, the call waits for it on every way out, an error included: the kernel writes
  // this thread's scratch, which the thread's next check reuses and its end frees.
  struct WaitForChecks {
    CheckScratch* s;
    cudaStream_t stream;
    bool queued = false;
    ~WaitForChecks() {
      if (queued && cudaEventRecord(s->done, stream) == cudaSuccess) cudaEventSynchronize(s->done);
    }
  };
  for (int k0 = 0; k0 < n; k0 += kMaxStreams) {
    const int m = std::min(n - k0, kMaxStreams);
    WaitForChecks wait{s, stream};
    // One check launch per group of streams that share time dtypes (usually all of them); stream j of
    // this chunk uses state and result slot j.
    bool queued[kMaxStreams] = {};
    for (int j0 = 0; j0 < m; ++j0) {
      if (queued[j0]) continue;
      const ResampleArgs& first = args[k0 + j0];
      CheckTable table;
      int64_t blocks = 0;
      for (int j = j0; j < m; ++j) {
        const ResampleArgs& a = args[k0 + j];
        if (queued[j] || a.time_dtype != first.time_dtype || a.tgt_dtype != first.tgt_dtype) continue;
        queued[j] = true;
        const int q = table.n++;
        table.slot[q] = j;
        table.s[q] = a;
        table.len_blocks[q] = a.lengths == nullptr ? 0 : (a.B + kCheckChunk - 1) / kCheckChunk;
        table.src_blocks[q] = (a.st_sb == 0 ? 1 : a.B) * ((a.S + kCheckChunk - 1) / kCheckChunk);
        blocks += table.len_blocks[q] + table.src_blocks[q] +
                  (a.tt_sb == 0 ? 1 : a.B) * ((a.T + kCheckChunk - 1) / kCheckChunk);
        table.block_end[q] = blocks;
      }
      const auto grid = static_cast<unsigned>(std::min<int64_t>(blocks, 8192));
      ROBOCACHE_RETURN_IF_ERROR(with_time_types(first.time_dtype, first.tgt_dtype, [&](auto tt, auto tg) {
        using TT = decltype(tt);
        using TG = decltype(tg);
        if (table.n == 1) {
          validate_kernel<TT, TG, 1><<<grid, kThreads, 0, stream>>>(shrink_check(table), s->state, s->host);
        } else {
          validate_kernel<TT, TG, kMaxStreams><<<grid, kThreads, 0, stream>>>(table, s->state, s->host);
        }
        ROBOCACHE_CUDA_CHECK(cudaGetLastError());
        wait.queued = true;
        return Status::ok();
      }));
    }
    ROBOCACHE_CUDA_CHECK(cudaEventRecord(s->done, stream));
    // The resampling is queued before the host waits, so only the check's latency is exposed. It is
    // memory-safe on bad input (lengths are clamped in-kernel); on a fault its output is discarded.
    if (k0 + m >= n) ROBOCACHE_RETURN_IF_ERROR(launch_all(args, n, device, stream));
    ROBOCACHE_CUDA_CHECK(cudaEventSynchronize(s->done));
    wait.queued = false;
    for (int j = 0; j < m; ++j) {
      const ResampleArgs& a = args[k0 + j];
      const FaultKeys keys = s->host[j];
      ROBOCACHE_RETURN_IF_ERROR(in_stream(with_time_types(a.time_dtype, a.tgt_dtype, [&](auto tt, auto) {
                                            return read_fault<decltype(tt)>(a, keys);
                                          }),
                                          names ? names[k0 + j] : nullptr));
    }
  }
  return Status::ok();
}

}  // namespace robocache::ops
