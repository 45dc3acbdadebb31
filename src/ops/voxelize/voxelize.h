// Internal: voxelization problems after checks, as raw pointers and element strides. Both backends take them.
#pragma once

#include <cstdint>

#include "ops/common/hd.h"
#include "robocache/voxelize.h"

namespace robocache::ops {

struct DenseVoxelArgs {
  int64_t B = 1, N = 0, C = 0;  // clouds, points per cloud, feature channels (0 without features)
  double origin[3] = {0, 0, 0}, size[3] = {1, 1, 1};
  int64_t dims[3] = {0, 0, 0};  // X, Y, Z
  int64_t voxels = 0;           // X * Y * Z (per cloud)
  VoxelMode mode = VoxelMode::Count;
  DType point_dtype = DType::Float32;
  const void* points = nullptr;  // [B, N, 3]
  int64_t p_sb = 0, p_sn = 0, p_sd = 0;
  DType feature_dtype = DType::Float32;
  const void* features = nullptr;  // [B, N, C] or null
  int64_t f_sb = 0, f_sn = 0, f_sc = 0;
  const void* lengths = nullptr;  // [B] or null (then every cloud has N points)
  bool lengths_int64 = true;
  int64_t len_s = 0;
  DType out_dtype = DType::Int32;
  void* out = nullptr;      // [B, X, Y, Z(, C)], C-contiguous
  int32_t* count = nullptr;  // [B, X, Y, Z] C-contiguous, or null
  int64_t* dropped = nullptr;  // [B] or null
  int64_t dropped_s = 0;
};

struct DownsampleArgs {
  int64_t N = 0, C = 0;
  double size[3] = {1, 1, 1};
  bool has_origin = false;
  double origin[3] = {0, 0, 0};  // used when has_origin; else min - size / 2 (Open3D's anchor)
  DType point_dtype = DType::Float32;
  const void* points = nullptr;  // [N, 3]
  int64_t p_sn = 0, p_sd = 0;
  DType feature_dtype = DType::Float32;
  const void* features = nullptr;  // [N, C] or null
  int64_t f_sn = 0, f_sc = 0;
  void* out_points = nullptr;  // [N, 3]
  int64_t op_sn = 0, op_sd = 0;
  void* out_features = nullptr;  // [N, C] or null
  int64_t of_sn = 0, of_sc = 0;
};

// The key space of a downsampling problem, fixed once the finite points' bounds are known.
struct DownsampleGrid {
  double origin[3] = {0, 0, 0};
  int64_t cmin[3] = {0, 0, 0};  // smallest voxel coordinate per axis
  int64_t dims[3] = {1, 1, 1};  // voxels per axis spanned by the cloud
  uint64_t sentinel = 0;        // dims product: the key of a dropped (non-finite) point, sorts last
  int key_bits = 1;             // bits that hold every key including the sentinel
};

// Fills `grid` from the bounds of the finite points (lo <= hi), or fails when the keys would not fit in
// 63 bits. Shared by both backends so they build the same keys.
Status make_downsample_grid(const DownsampleArgs& a, const double lo[3], const double hi[3], DownsampleGrid* grid);

struct HardVoxelArgs {
  int64_t N = 0, C = 0;
  double origin[3] = {0, 0, 0}, size[3] = {1, 1, 1};
  int64_t dims[3] = {0, 0, 0};
  uint64_t sentinel = 0;  // X * Y * Z: the key of a dropped point
  int key_bits = 1;
  int64_t max_points = 0, max_voxels = 0;
  bool coords_xyz = false;
  DType point_dtype = DType::Float32;
  const void* points = nullptr;  // [N, C]
  int64_t p_sn = 0, p_sc = 0;
  void* voxels = nullptr;  // [max_voxels, max_points, C] C-contiguous
  int32_t* coords = nullptr;  // [max_voxels, 3]
  int64_t c_sm = 0, c_sd = 0;
  int32_t* num_points = nullptr;  // [max_voxels]
  int64_t n_s = 0;
};

// Hard-voxelization output row m: the voxel's grid coordinates, (z, y, x) or (x, y, z), and its point
// count. The CPU and CUDA backends both write rows through this.
RC_HD void write_hard_voxel_row(const HardVoxelArgs& a, int64_t m, int64_t key, int64_t n) {
  const int64_t z = key % a.dims[2], y = (key / a.dims[2]) % a.dims[1], x = key / (a.dims[2] * a.dims[1]);
  int32_t* co = a.coords + m * a.c_sm;
  co[0] = static_cast<int32_t>(a.coords_xyz ? x : z);
  co[a.c_sd] = static_cast<int32_t>(y);
  co[2 * a.c_sd] = static_cast<int32_t>(a.coords_xyz ? z : x);
  a.num_points[m * a.n_s] = static_cast<int32_t>(n);
}

Status voxelize_dense_cpu(const DenseVoxelArgs& args);
Status voxel_downsample_cpu(const DownsampleArgs& args, int64_t* num_voxels);
Status hard_voxelize_cpu(const HardVoxelArgs& args, int64_t* num_voxels);
#ifdef ROBOCACHE_WITH_CUDA
Status voxelize_dense_cuda(const DenseVoxelArgs& args, int device, Stream stream);
Status voxel_downsample_cuda(const DownsampleArgs& args, int device, Stream stream, int64_t* num_voxels);
Status hard_voxelize_cuda(const HardVoxelArgs& args, int device, Stream stream, int64_t* num_voxels);
#endif

}  // namespace robocache::ops
