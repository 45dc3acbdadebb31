// Point-cloud voxelization: dense grids, voxel downsampling and hard (PointPillars-style) voxelization.
// Same conventions as ops.h: non-owning views in, caller-allocated outputs, the inputs' device decides
// the backend, CUDA work runs on `stream`.
//
// Voxel of a point, on every backend and in every op: c = floor((p - origin) / voxel_size) per axis,
// computed in float64 (float32 points are widened exactly). Voxel i along an axis covers
// [origin + i*size, origin + (i+1)*size): a point exactly on a boundary belongs to the upper voxel, a
// point on the far face of the grid is outside. Points with NaN or inf coordinates and points outside the
// grid are dropped, never clamped. Voxel keys are 64-bit, so grids with more than 2^31 voxels work for the
// sparse outputs (downsampling, hard voxelization).
#pragma once

#include <cstdint>
#include <string_view>

#include "robocache/ops.h"

namespace robocache {

enum class VoxelMode { Occupancy, Count, Sum, Mean, Max };

Status parse_voxel_mode(std::string_view name, VoxelMode* out);  // "occupancy", "count", "sum", "mean", "max"
const char* voxel_mode_name(VoxelMode mode);

struct VoxelGridSpec {
  double voxel_size[3] = {1, 1, 1};  // > 0 and finite, per axis (x, y, z)
  double origin[3] = {0, 0, 0};      // corner of voxel (0, 0, 0)
  int64_t grid_size[3] = {0, 0, 0};  // X, Y, Z voxels, >= 1
};

// Dense grid, indexed out[b, x, y, z(, c)].
//   points   [N, 3] or [B, N, 3]          float32 / float64, any strides (extra columns are not allowed:
//                                         slice points[..., :3])
//   features [N, C] or [B, N, C] or null  float32 / float64; required for sum, mean and max
//   lengths  [B] int32 / int64 or null    valid points per cloud (0..N); points past it are ignored
//   out      occupancy: [B?, X, Y, Z] bool or uint8      1 where at least one point landed
//            count:     [B?, X, Y, Z] int32              points per voxel
//            sum, mean, max: [B?, X, Y, Z, C], features' dtype; C-contiguous
//            Empty voxels hold 0 in every mode (also max: tell empty from a max of 0 with `count`).
//   count    [B?, X, Y, Z] int32 or null  points per voxel, written alongside sum / mean / max
//   dropped  [B] or [] int64 or null      points dropped per cloud (NaN / inf / outside the grid)
// Occupancy and count are exact on every backend; sum and mean accumulate in the features' dtype in an
// order that may differ between backends (equal within float tolerance). Max is exact; a NaN feature
// gives an unspecified value in its voxel, so keep features finite.
Status voxelize_dense(const TensorView& points, const TensorView* features, const TensorView* lengths,
                      const VoxelGridSpec& grid, VoxelMode mode, const TensorView& out, const TensorView* count,
                      const TensorView* dropped, Stream stream = nullptr);

// Voxel downsampling: one point per occupied voxel at the centroid (float64 mean) of its points, and the
// mean of their features. The grid is anchored as Open3D's voxel_down_sample anchors it, at the minimum
// finite coordinate minus half a voxel per axis, unless `origin` is given. Non-finite points are dropped.
// Output order: occupied voxels sorted by voxel coordinate, x first, then y, then z (the 64-bit key
// ((x - x0) * Y + (y - y0)) * Z + (z - z0)); within a voxel points are summed in input order, so CPU and
// CUDA results are bit-identical.
//   points       [N, 3]           float32 / float64, any strides
//   features     [N, C] or null   float32 / float64
//   out_points   [N, 3]           points' dtype; rows [0, M) are written
//   out_features [N, C] or null   features' dtype; rows [0, M) are written
//   num_voxels   M, on the host (CUDA: the call waits for the stream)
Status voxel_downsample(const TensorView& points, const double voxel_size[3], const double* origin,
                        const TensorView* features, const TensorView& out_points, const TensorView* out_features,
                        int64_t* num_voxels, Stream stream = nullptr);

// Hard voxelization with mmcv's `Voxelization` (max_voxels > 0) semantics: voxels are numbered in the
// order in which their first point appears in the input; a voxel keeps its first `max_points` points in
// input order; at most `max_voxels` voxels (later voxels are dropped whole). The grid is
// range_min .. range_max with round((max - min) / voxel_size) voxels per axis, as mmcv computes it.
//   points      [N, C] (C >= 3, x y z first)  float32 / float64, any strides
//   voxels      [max_voxels, max_points, C]   points' dtype, C-contiguous; rows [0, M), unused slots 0
//   coords      [max_voxels, 3] int32         rows [0, M): (z, y, x) like mmcv, or (x, y, z) if coords_xyz
//   num_points  [max_voxels] int32            rows [0, M)
//   num_voxels  M, on the host (CUDA: the call waits for the stream)
struct HardVoxelizeOptions {
  double voxel_size[3] = {1, 1, 1};
  double range_min[3] = {0, 0, 0};
  double range_max[3] = {1, 1, 1};
  int64_t max_points = 0;  // >= 1
  int64_t max_voxels = 0;  // >= 1
  bool coords_xyz = false;
};
Status hard_voxelize(const TensorView& points, const HardVoxelizeOptions& options, const TensorView& voxels,
                     const TensorView& coords, const TensorView& num_points, int64_t* num_voxels,
                     Stream stream = nullptr);

}  // namespace robocache
