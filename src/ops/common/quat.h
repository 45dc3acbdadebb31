// Quaternion slerp shared by the CPU and CUDA backends. Float64 throughout; the four components are
// treated alike, so x-y-z-w and w-x-y-z layouts give the same answer.
#pragma once

#include <cmath>

#include "ops/common/hd.h"

namespace robocache::ops {

// q = slerp(a, b, w) along the shortest arc (b is flipped when a . b < 0: q and -q are one rotation),
// normalized. Inputs need not be unit length. w outside [0, 1] continues along the same great circle
// (boundary="extrapolate"). A zero-length input gives NaN: there is no rotation to interpolate.
RC_HD void slerp(const double* a, const double* b, double w, double* q) {
  double na = 0.0, nb = 0.0, dot = 0.0;
  for (int k = 0; k < 4; ++k) {
    na += a[k] * a[k];
    nb += b[k] * b[k];
    dot += a[k] * b[k];
  }
  na = sqrt(na);
  nb = sqrt(nb);
  const double sb = (dot < 0.0 ? -1.0 : 1.0) / nb;
  double ua[4], ub[4], diff = 0.0, sum = 0.0;
  for (int k = 0; k < 4; ++k) {
    ua[k] = a[k] / na;
    ub[k] = b[k] * sb;
    diff += (ua[k] - ub[k]) * (ua[k] - ub[k]);
    sum += (ua[k] + ub[k]) * (ua[k] + ub[k]);
  }
  // The angle between the unit 4-vectors, accurate at every size (acos of the dot product is not near 0).
  const double theta = 2.0 * atan2(sqrt(diff), sqrt(sum));
  double s0 = 1.0 - w, s1 = w;  // the chord, for (numerically) identical rotations
  if (theta > 1e-12) {
    const double inv = 1.0 / sin(theta);
    s0 = sin((1.0 - w) * theta) * inv;
    s1 = sin(w * theta) * inv;
  }
  double n = 0.0;
  for (int k = 0; k < 4; ++k) {
    q[k] = s0 * ua[k] + s1 * ub[k];
    n += q[k] * q[k];
  }
  n = 1.0 / sqrt(n);
  for (int k = 0; k < 4; ++k) q[k] *= n;
}

}  // namespace robocache::ops
