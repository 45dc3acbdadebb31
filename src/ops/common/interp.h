// Where a target time falls among the source samples, and how to blend them. Shared, line for line, by
// the CPU and CUDA backends so that the two give the same answers.
#pragma once

#include <cstdint>

#include "ops/common/hd.h"
#include "robocache/ops.h"

namespace robocache::ops {

// Time differences in float64. int64 differences are taken in int64 first, so epoch-sized nanosecond
// stamps (1.7e18) keep full precision; float64 differences of nearby stamps are exact (Sterbenz).
RC_HD double time_diff(int64_t a, int64_t b) { return static_cast<double>(a - b); }
RC_HD double time_diff(double a, double b) { return a - b; }
RC_HD double time_diff(float a, float b) { return static_cast<double>(a) - static_cast<double>(b); }

// A strided row of source times: t(i) = ptr[i * stride], read as CT (float32 stream times are compared
// with float64 targets as float64). I: the index type (int32_t where the caller knows every offset of the row
// fits, which saves the CUDA kernel registers).
template <class TT, class CT = TT, class I = int64_t>
struct TimeRow {
  using value_type = CT;
  const TT* ptr;
  I stride;
  RC_HD CT operator[](I i) const { return static_cast<CT>(ptr[i * stride]); }
};

// First index in [lo, hi) whose time is > t (hi if none).
template <class Row, class I, class TT>
RC_HD I upper_bound(Row row, I lo, I hi, TT t) {
  while (lo < hi) {
    const I mid = lo + ((hi - lo) >> 1);
    if (row[mid] > t) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// First index in [lo, hi) whose time is >= t (hi if none).
template <class Row, class I, class TT>
RC_HD I lower_bound(Row row, I lo, I hi, TT t) {
  while (lo < hi) {
    const I mid = lo + ((hi - lo) >> 1);
    if (row[mid] < t) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// out = src[i0] + w * (src[i1] - src[i0]), or NaN when `missing`.
template <class I = int64_t>
struct BlendI {
  I i0 = 0;
  I i1 = 0;
  double w = 0.0;
  bool inside = false;   // target within [t(0), t(len-1)]
  bool missing = false;  // outside and boundary == nan
};
using Blend = BlendI<int64_t>;

// `ub` = upper_bound(row, 0, len, t): the number of samples at or before t.
// Slerp brackets like Linear; the quaternion channels are then blended along the arc (ops/common/quat.h).
template <class Row, class I, class TT>
RC_HD BlendI<I> make_blend(Row row, I len, TT t, I ub, InterpMethod method, Boundary boundary) {
  BlendI<I> r;
  const TT last = row[len - 1];
  if (ub > 0 && (ub < len || t == last)) {
    r.inside = true;
    if (ub == len) {  // t == last sample time (the later of any duplicates)
      r.i0 = r.i1 = len - 1;
      return r;
    }
    const I lo = ub - 1;  // row[lo] <= t < row[ub]
    if (method == InterpMethod::Hold) {
      r.i0 = r.i1 = lo;
    } else if (method == InterpMethod::Nearest) {
      // ties go to the later sample
      r.i0 = r.i1 = (time_diff(row[ub], t) <= time_diff(t, row[lo])) ? ub : lo;
    } else {
      r.i0 = lo;
      r.i1 = ub;
      r.w = time_diff(t, row[lo]) / time_diff(row[ub], row[lo]);
    }
    return r;
  }
  // Outside [t(0), t(len-1)].
  if (boundary == Boundary::Nan) {
    r.missing = true;
    return r;
  }
  const bool below = (ub == 0);
  const I end = below ? 0 : len - 1;
  r.i0 = r.i1 = end;
  if (boundary == Boundary::Extrapolate && (method == InterpMethod::Linear || method == InterpMethod::Slerp)) {
    // Extend the first (last) interval of positive length; with none, hold the end value.
    I lo, hi;
    if (below) {
      lo = upper_bound(row, I{0}, len, row[0]) - 1;  // the later of any samples at t(0)
      hi = lo + 1;
    } else {
      hi = len - 1;
      lo = lower_bound(row, I{0}, len, last) - 1;  // the last sample strictly before t(len-1)
    }
    if (lo >= 0 && hi < len) {
      r.i0 = lo;
      r.i1 = hi;
      r.w = time_diff(t, row[lo]) / time_diff(row[hi], row[lo]);
    }
  }
  return r;
}

}  // namespace robocache::ops
