// CPU backend of resample_trajectories: rows of targets in parallel on the pool, one pass over D per
// target, and a forward walk through the source times while targets come in order.
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/half.h"
#include "core/parallel.h"
#include "ops/common/interp.h"
#include "ops/common/quat.h"
#include "ops/resample/resample.h"

namespace robocache::ops {
namespace {

using core::BFloat16;
using core::Half;

template <class DT>
using Acc = std::conditional_t<std::is_same_v<DT, double>, double, float>;

inline float load(const float* p) { return *p; }
inline double load(const double* p) { return *p; }
inline float load(const Half* p) { return core::to_float(*p); }
inline float load(const BFloat16* p) { return core::to_float(*p); }
inline void store(float* p, float v) { *p = v; }
inline void store(double* p, double v) { *p = v; }
inline void store(Half* p, float v) { *p = core::to_half(v); }
inline void store(BFloat16* p, float v) { *p = core::to_bfloat16(v); }

template <class TT>
bool is_nan(TT v) {
  if constexpr (std::is_floating_point_v<TT>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// One target row of D channels. `unit` = both D strides are 1, which lets the compiler vectorize.
template <class DT, bool unit>
inline void blend_row(const DT* __restrict src, int64_t ss, int64_t sd, DT* __restrict dst, int64_t od,
                      int64_t D, const Blend& bl) {
  using A = Acc<DT>;
  if (bl.missing) {
    const A nan = std::numeric_limits<A>::quiet_NaN();
    for (int64_t d = 0; d < D; ++d) store(dst + (unit ? d : d * od), nan);
    return;
  }
  const DT* __restrict a = src + bl.i0 * ss;
  if (bl.i0 == bl.i1) {  // a copy, bit-exact (hold, nearest, clamped ends)
    for (int64_t d = 0; d < D; ++d) dst[unit ? d : d * od] = a[unit ? d : d * sd];
    return;
  }
  const DT* __restrict b = src + bl.i1 * ss;
  const A w = static_cast<A>(bl.w);
  for (int64_t d = 0; d < D; ++d) {
    const A va = load(a + (unit ? d : d * sd));
    const A vb = load(b + (unit ? d : d * sd));
    store(dst + (unit ? d : d * od), va + w * (vb - va));
  }
}

// Both rows' times are compared in CT: the stored type when src_t and tgt_t agree, else float64.
template <class TT, class TG>
using CompareT = std::conditional_t<std::is_same_v<TT, TG>, TT, double>;

template <class DT>
double load64(const DT* p) {
  return static_cast<double>(load(p));
}

// Overwrites the four quaternion channels of a target row with the slerp of the bracketing samples.
template <class DT>
void slerp_row(const ResampleArgs& a, const DT* src, DT* dst, const Blend& bl) {
  double qa[4], qb[4], q[4];
  for (int k = 0; k < 4; ++k) {
    qa[k] = load64(src + bl.i0 * a.data_ss + (a.quat + k) * a.data_sd);
    qb[k] = load64(src + bl.i1 * a.data_ss + (a.quat + k) * a.data_sd);
  }
  slerp(qa, qb, bl.w, q);
  for (int k = 0; k < 4; ++k) store(dst + (a.quat + k) * a.out_sd, static_cast<Acc<DT>>(q[k]));
}

template <class DT, class TT, class TG>
void resample_range(const ResampleArgs& a, int64_t begin, int64_t end) {
  using CT = CompareT<TT, TG>;
  const auto* data = static_cast<const DT*>(a.data);
  auto* out = static_cast<DT*>(a.out);
  const auto* src_t = static_cast<const TT*>(a.src_t);
  const auto* tgt_t = static_cast<const TG*>(a.tgt_t);
  const bool unit = a.data_sd == 1 && a.out_sd == 1;
  for (int64_t b = begin / a.T; b * a.T < end; ++b) {
    const TimeRow<TT, CT> row{src_t + b * a.st_sb, a.st_ss};
    const int64_t len = row_length(a, b);
    const DT* src = data + b * a.data_sb;
    const int64_t t_lo = std::max(begin - b * a.T, int64_t{0});
    const int64_t t_hi = std::min(end - b * a.T, a.T);
    int64_t ub = 0;
    CT prev{};
    for (int64_t t = t_lo; t < t_hi; ++t) {
      const CT tv = static_cast<CT>(tgt_t[b * a.tt_sb + t * a.tt_st]);
      if (t > t_lo && tv >= prev) {
        // Targets in order: walk forward a few samples, then finish with a binary search.
        int64_t steps = 0;
        while (ub < len && row[ub] <= tv && steps < 8) {
          ++ub;
          ++steps;
        }
        if (steps == 8) ub = upper_bound(row, ub, len, tv);
      } else {
        ub = upper_bound(row, int64_t{0}, len, tv);
      }
      prev = tv;
      const Blend bl = make_blend(row, len, tv, ub, a.method, a.boundary);
      if (a.mask != nullptr) a.mask[b * a.mask_sb + t * a.mask_st] = bl.inside;
      DT* dst = out + b * a.out_sb + t * a.out_st;
      if (unit) {
        blend_row<DT, true>(src, a.data_ss, 1, dst, 1, a.D, bl);
      } else {
        blend_row<DT, false>(src, a.data_ss, a.data_sd, dst, a.out_sd, a.D, bl);
      }
      if (a.method == InterpMethod::Slerp && !bl.missing) slerp_row(a, src, dst, bl);
    }
  }
}

template <class TT, class TG>
Status validate(const ResampleArgs& a) {
  for (int64_t b = 0; b < a.B; ++b) {
    const int64_t len = row_length(a, b);
    if (len < 1 || len > a.S) return time_fault_status<TT>(TimeFault::LengthOutOfRange, a, b, len, TT{}, TT{});
  }
  const auto* src_t = static_cast<const TT*>(a.src_t);
  const auto* tgt_t = static_cast<const TG*>(a.tgt_t);
  // First fault per row, found in parallel; the lowest row wins so the report is deterministic.
  const int64_t src_rows = a.st_sb == 0 ? 1 : a.B;
  const int64_t tgt_rows = a.tt_sb == 0 ? 1 : a.B;
  std::vector<TimeFault> fault(a.B, TimeFault::None);
  std::vector<int64_t> where(a.B, 0);
  core::parallel_for(0, std::max(src_rows, tgt_rows), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo; b < hi; ++b) {
      if (b < src_rows) {
        const TimeRow<TT> row{src_t + b * a.st_sb, a.st_ss};
        // A broadcast src_t is checked over all S samples; a per-row one over its valid length.
        const int64_t len = a.st_sb == 0 ? a.S : row_length(a, b);
        for (int64_t i = 0; i < len; ++i) {
          if (is_nan(row[i])) {
            fault[b] = TimeFault::SrcNaN;
          } else if (i > 0 && row[i] < row[i - 1]) {
            fault[b] = TimeFault::SrcDecreasing;
          } else {
            continue;
          }
          where[b] = i;
          break;
        }
      }
      if (fault[b] == TimeFault::None && b < tgt_rows) {
        for (int64_t t = 0; t < a.T; ++t) {
          if (is_nan(tgt_t[b * a.tt_sb + t * a.tt_st])) {
            fault[b] = TimeFault::TgtNaN;
            where[b] = t;
            break;
          }
        }
      }
    }
  });
  for (int64_t b = 0; b < a.B; ++b) {
    if (fault[b] == TimeFault::None) continue;
    const int64_t i = where[b];
    const TimeRow<TT> row{src_t + b * a.st_sb, a.st_ss};
    return time_fault_status<TT>(fault[b], a, b, i, row[i], i > 0 ? row[i - 1] : TT{});
  }
  return Status::ok();
}

using RangeFn = void (*)(const ResampleArgs&, int64_t, int64_t);

template <class TT, class TG>
RangeFn pick_data(DType d) {
  switch (d) {
    case DType::Float32: return &resample_range<float, TT, TG>;
    case DType::Float64: return &resample_range<double, TT, TG>;
    case DType::Float16: return &resample_range<Half, TT, TG>;
    case DType::BFloat16: return &resample_range<BFloat16, TT, TG>;
    default: return nullptr;
  }
}

// The kernel and checker for one problem's dtypes; one switch, naming what is unsupported.
Status pick(const ResampleArgs& a, RangeFn* fn, Status (**check)(const ResampleArgs&)) {
  const DType s = a.time_dtype, g = a.tgt_dtype;
  if (s == DType::Int64 && g == DType::Int64) {
    *fn = pick_data<int64_t, int64_t>(a.data_dtype);
    *check = &validate<int64_t, int64_t>;
  } else if (s == DType::Float64 && g == DType::Float64) {
    *fn = pick_data<double, double>(a.data_dtype);
    *check = &validate<double, double>;
  } else if (s == DType::Float32 && g == DType::Float32) {
    *fn = pick_data<float, float>(a.data_dtype);
    *check = &validate<float, float>;
  } else if (s == DType::Float32 && g == DType::Float64) {
    *fn = pick_data<float, double>(a.data_dtype);
    *check = &validate<float, double>;
  } else if (s == DType::Float64 && g == DType::Float32) {
    *fn = pick_data<double, float>(a.data_dtype);
    *check = &validate<double, float>;
  } else {
    return type_error("resample: unsupported timestamp dtypes src_t ", dtype_name(s), ", tgt_t ", dtype_name(g));
  }
  if (*fn == nullptr) return type_error("resample: unsupported data dtype ", dtype_name(a.data_dtype));
  return Status::ok();
}

}  // namespace

Status resample_cpu(const ResampleArgs* args, int n, const char* const* names, bool check) {
  std::vector<RangeFn> fns(n);
  int64_t rows = 0, max_d = 1;
  for (int k = 0; k < n; ++k) {
    Status (*checker)(const ResampleArgs&) = nullptr;
    ROBOCACHE_RETURN_IF_ERROR(in_stream(pick(args[k], &fns[k], &checker), names ? names[k] : nullptr));
    if (check) ROBOCACHE_RETURN_IF_ERROR(in_stream(checker(args[k]), names ? names[k] : nullptr));
    rows += args[k].B * args[k].T;
    max_d = std::max(max_d, args[k].D);
  }
  // One parallel pass over every stream's target rows. All streams share B and T.
  const int64_t per_stream = args[0].B * args[0].T;
  const int64_t grain = std::max<int64_t>(1, 16384 / max_d);
  core::parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t k = lo / per_stream; k * per_stream < hi; ++k) {
      const int64_t begin = std::max(lo - k * per_stream, int64_t{0});
      const int64_t end = std::min(hi - k * per_stream, per_stream);
      fns[k](args[k], begin, end);
    }
  });
  return Status::ok();
}

}  // namespace robocache::ops
