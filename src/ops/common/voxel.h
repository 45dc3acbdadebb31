// Voxel arithmetic shared by the CPU and CUDA backends, so both put every point in the same voxel.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/common/hd.h"

namespace robocache::ops {

// Voxel coordinate of p along one axis, or -1 when p is NaN, inf or outside [0, n) voxels.
// float64 throughout; `!(c >= 0 && c < n)` is also true for NaN.
RC_HD int64_t voxel_coord(double p, double origin, double size, int64_t n) {
  const double c = floor((p - origin) / size);
  if (!(c >= 0.0 && c < static_cast<double>(n))) return -1;
  return static_cast<int64_t>(c);
}

// x-major linear key of a voxel: ((x * Y) + y) * Z + z; -1 when the point is dropped.
RC_HD int64_t voxel_key(double x, double y, double z, const double origin[3], const double size[3],
                        const int64_t dims[3]) {
  const int64_t cx = voxel_coord(x, origin[0], size[0], dims[0]);
  const int64_t cy = voxel_coord(y, origin[1], size[1], dims[1]);
  const int64_t cz = voxel_coord(z, origin[2], size[2], dims[2]);
  if ((cx | cy | cz) < 0) return -1;
  return (cx * dims[1] + cy) * dims[2] + cz;
}

// Downsampling key of a point relative to the cloud's smallest voxel coordinate `cmin`, or `sentinel` when
// a coordinate is NaN or inf (c - c is NaN exactly then).
RC_HD uint64_t downsample_key(double x, double y, double z, const double origin[3], const double size[3],
                              const int64_t cmin[3], const int64_t dims[3], uint64_t sentinel) {
  const double cx = floor((x - origin[0]) / size[0]);
  const double cy = floor((y - origin[1]) / size[1]);
  const double cz = floor((z - origin[2]) / size[2]);
  if (!(cx - cx == 0.0 && cy - cy == 0.0 && cz - cz == 0.0)) return sentinel;
  return static_cast<uint64_t>(((static_cast<int64_t>(cx) - cmin[0]) * dims[1] + (static_cast<int64_t>(cy) - cmin[1])) *
                                   dims[2] +
                               (static_cast<int64_t>(cz) - cmin[2]));
}

// Number of low bits that hold every value in [0, n].
RC_HD int bits_for(uint64_t n) {
  int b = 0;
  while (b < 64 && (n >> b) != 0) ++b;
  return b == 0 ? 1 : b;
}

}  // namespace robocache::ops
