// voxelize_dense, voxel_downsample, hard_voxelize: argument checks and dispatch to the CPU or CUDA backend.
#include "ops/common/checks.h"
#include "ops/voxelize/voxelize.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ops/common/voxel.h"

namespace robocache {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

bool is_float(DType d) { return d == DType::Float32 || d == DType::Float64; }

Status check_device(const char* name, const TensorView& v, const TensorView& points) {
  return ops::check_same_device(name, v, "points", points);
}

bool is_contiguous(const TensorView& v) {
  int64_t step = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != step) return false;
    step *= v.shape[d];
  }
  return true;
}

std::string shape_of(std::initializer_list<int64_t> dims) {
  std::string s = "[";
  bool first = true;
  for (int64_t d : dims) {
    s += (first ? "" : ", ") + std::to_string(d);
    first = false;
  }
  return s + "]";
}

bool same_shape(const TensorView& v, const std::vector<int64_t>& want) {
  if (v.ndim != static_cast<int>(want.size())) return false;
  for (int i = 0; i < v.ndim; ++i) {
    if (v.shape[i] != want[i]) return false;
  }
  return true;
}

std::string shape_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// a * b, or false when it overflows int64.
bool mul_ok(int64_t a, int64_t b, int64_t* out) {
  if (a != 0 && b > kInt64Max / a) return false;
  *out = a * b;
  return true;
}

Status check_voxel_size(const double size[3]) {
  for (int i = 0; i < 3; ++i) {
    if (!(size[i] > 0) || !std::isfinite(size[i])) {
      return invalid_argument("voxel_size must be positive and finite on every axis, got [", size[0], ", ",
                              size[1], ", ", size[2], "]");
    }
  }
  return Status::ok();
}

Status check_points(const TensorView& points, bool allow_batch, bool allow_extra_columns) {
  const bool ok_ndim = points.ndim == 2 || (allow_batch && points.ndim == 3);
  if (!ok_ndim || (allow_extra_columns ? points.size(-1) < 3 : points.size(-1) != 3)) {
    const char* want = allow_extra_columns ? "[N, C] with C >= 3 (x, y, z first)"
                       : allow_batch       ? "[N, 3] or [B, N, 3]"
                                           : "[N, 3]";
    return invalid_argument("points must have shape ", want, ", got ", points.shape_str());
  }
  if (!is_float(points.dtype)) {
    return type_error("points dtype must be float32 or float64, got ", dtype_name(points.dtype));
  }
  return Status::ok();
}

}  // namespace

Status parse_voxel_mode(std::string_view name, VoxelMode* out) {
  if (name == "occupancy") *out = VoxelMode::Occupancy;
  else if (name == "count") *out = VoxelMode::Count;
  else if (name == "sum") *out = VoxelMode::Sum;
  else if (name == "mean") *out = VoxelMode::Mean;
  else if (name == "max") *out = VoxelMode::Max;
  else {
    return invalid_argument("mode must be 'occupancy', 'count', 'sum', 'mean' or 'max', got '", std::string(name),
                            "'");
  }
  return Status::ok();
}

const char* voxel_mode_name(VoxelMode mode) {
  switch (mode) {
    case VoxelMode::Occupancy: return "occupancy";
    case VoxelMode::Count: return "count";
    case VoxelMode::Sum: return "sum";
    case VoxelMode::Mean: return "mean";
    case VoxelMode::Max: return "max";
  }
  return "?";
}

Status voxelize_dense(const TensorView& points, const TensorView* features, const TensorView* lengths,
                      const VoxelGridSpec& grid, VoxelMode mode, const TensorView& out, const TensorView* count,
                      const TensorView* dropped, Stream stream) {
  ROBOCACHE_RETURN_IF_ERROR(check_points(points, true, false));
  ROBOCACHE_RETURN_IF_ERROR(check_voxel_size(grid.voxel_size));
  for (int i = 0; i < 3; ++i) {
    if (!std::isfinite(grid.origin[i])) {
      return invalid_argument("origin must be finite, got [", grid.origin[0], ", ", grid.origin[1], ", ",
                              grid.origin[2], "]");
    }
    if (grid.grid_size[i] < 1) {
      return invalid_argument("grid_size must be >= 1 on every axis, got [", grid.grid_size[0], ", ",
                              grid.grid_size[1], ", ", grid.grid_size[2], "]");
    }
  }
  const bool batched = points.ndim == 3;
  ops::DenseVoxelArgs a;
  a.B = batched ? points.shape[0] : 1;
  a.N = points.size(-2);
  a.mode = mode;
  for (int i = 0; i < 3; ++i) {
    a.origin[i] = grid.origin[i];
    a.size[i] = grid.voxel_size[i];
    a.dims[i] = grid.grid_size[i];
  }
  int64_t grid_cells = 0;
  if (!mul_ok(a.dims[0], a.dims[1], &grid_cells) || !mul_ok(grid_cells, a.dims[2], &a.voxels)) {
    return invalid_argument("grid_size [", a.dims[0], ", ", a.dims[1], ", ", a.dims[2],
                            "] has more than 2^63 voxels; a dense grid cannot be that large (use voxel_downsample "
                            "or hard_voxelize for sparse output)");
  }
  if (a.N > std::numeric_limits<int32_t>::max()) {
    return invalid_argument("points has N = ", a.N, " points per cloud; at most 2^31 - 1 are supported (counts are int32)");
  }
  a.point_dtype = points.dtype;
  a.points = points.data;
  a.p_sb = batched ? points.strides[0] : 0;
  a.p_sn = points.stride(-2);
  a.p_sd = points.stride(-1);

  const bool needs_features = mode == VoxelMode::Sum || mode == VoxelMode::Mean || mode == VoxelMode::Max;
  if (needs_features && features == nullptr) {
    return invalid_argument("mode='", voxel_mode_name(mode), "' needs features ([N, C] values to reduce per voxel)");
  }
  if (!needs_features && features != nullptr) {
    return invalid_argument("features were given but mode='", voxel_mode_name(mode),
                            "' does not use them; use 'sum', 'mean' or 'max'");
  }
  if (features != nullptr) {
    ROBOCACHE_RETURN_IF_ERROR(check_device("features", *features, points));
    const bool ok = features->ndim == points.ndim && features->size(-2) == a.N &&
                    (!batched || features->shape[0] == a.B);
    if (!ok) {
      return invalid_argument("features must have shape ", batched ? shape_of({a.B, a.N}) : shape_of({a.N}),
                              " + [C] to match points ", points.shape_str(), ", got ", features->shape_str());
    }
    if (!is_float(features->dtype)) {
      return type_error("features dtype must be float32 or float64, got ", dtype_name(features->dtype));
    }
    a.C = features->size(-1);
    if (a.C < 1) return invalid_argument("features must have at least one channel, got ", features->shape_str());
    a.feature_dtype = features->dtype;
    a.features = features->data;
    a.f_sb = batched ? features->strides[0] : 0;
    a.f_sn = features->stride(-2);
    a.f_sc = features->stride(-1);
  }

  if (lengths != nullptr) {
    ops::LengthsArg l;
    ROBOCACHE_RETURN_IF_ERROR(ops::check_lengths("lengths", *lengths, "points", points, batched, a.B, &l));
    a.lengths = l.data;
    a.lengths_int64 = l.int64;
    a.len_s = l.stride;
  }

  // Output shape and dtype per mode.
  std::vector<int64_t> grid_shape;
  if (batched) grid_shape.push_back(a.B);
  for (int i = 0; i < 3; ++i) grid_shape.push_back(a.dims[i]);
  std::vector<int64_t> out_shape = grid_shape;
  if (needs_features) out_shape.push_back(a.C);
  int64_t total = 1;
  for (int64_t d : out_shape) {
    if (!mul_ok(total, d, &total)) {
      return invalid_argument("the dense output ", shape_str(out_shape), " has more than 2^63 elements");
    }
  }
  ROBOCACHE_RETURN_IF_ERROR(check_device("out", out, points));
  if (!same_shape(out, out_shape)) {
    return invalid_argument("out must have shape ", shape_str(out_shape), ", got ", out.shape_str());
  }
  if (mode == VoxelMode::Occupancy && out.dtype != DType::Bool && out.dtype != DType::UInt8) {
    return type_error("out dtype for mode='occupancy' must be bool or uint8, got ", dtype_name(out.dtype));
  }
  if (mode == VoxelMode::Count && out.dtype != DType::Int32) {
    return type_error("out dtype for mode='count' must be int32, got ", dtype_name(out.dtype));
  }
  if (needs_features && out.dtype != a.feature_dtype) {
    return type_error("out dtype (", dtype_name(out.dtype), ") must match features dtype (",
                      dtype_name(a.feature_dtype), ")");
  }
  if (!is_contiguous(out)) return invalid_argument("out must be C-contiguous, got strides for shape ", out.shape_str());
  a.out_dtype = out.dtype;
  a.out = out.data;

  if (count != nullptr) {
    ROBOCACHE_RETURN_IF_ERROR(check_device("count", *count, points));
    if (!same_shape(*count, grid_shape)) {
      return invalid_argument("count must have shape ", shape_str(grid_shape), ", got ", count->shape_str());
    }
    if (count->dtype != DType::Int32) return type_error("count dtype must be int32, got ", dtype_name(count->dtype));
    if (!is_contiguous(*count)) return invalid_argument("count must be C-contiguous");
    a.count = count->ptr<int32_t>();
  }
  if (dropped != nullptr) {
    ROBOCACHE_RETURN_IF_ERROR(check_device("dropped", *dropped, points));
    const bool ok = batched ? (dropped->ndim == 1 && dropped->shape[0] == a.B)
                            : (dropped->ndim == 0 || (dropped->ndim == 1 && dropped->shape[0] == 1));
    if (!ok) {
      return invalid_argument("dropped must have shape ", batched ? shape_of({a.B}) : std::string("[] or [1]"),
                              ", got ", dropped->shape_str());
    }
    if (dropped->dtype != DType::Int64) return type_error("dropped dtype must be int64, got ", dtype_name(dropped->dtype));
    a.dropped = dropped->ptr<int64_t>();
    a.dropped_s = dropped->ndim == 1 ? dropped->strides[0] : 0;
  }

  if (points.device.is_cpu()) return ops::voxelize_dense_cpu(a);
#ifdef ROBOCACHE_WITH_CUDA
  return ops::voxelize_dense_cuda(a, points.device.index, stream);
#else
  (void)stream;
  return runtime_error("points is on ", points.device.str(), " but this robocache was built without CUDA");
#endif
}

namespace ops {

Status make_downsample_grid(const DownsampleArgs& a, const double lo[3], const double hi[3], DownsampleGrid* g) {
  uint64_t total = 1;
  for (int i = 0; i < 3; ++i) {
    g->origin[i] = a.has_origin ? a.origin[i] : lo[i] - a.size[i] * 0.5;
    const double cmin = std::floor((lo[i] - g->origin[i]) / a.size[i]);
    const double cmax = std::floor((hi[i] - g->origin[i]) / a.size[i]);
    constexpr double kLimit = 4611686018427387904.0;  // 2^62: coordinates and their spans stay exact in int64
    if (!(std::fabs(cmin) < kLimit && std::fabs(cmax) < kLimit)) {
      return invalid_argument("voxel_size [", a.size[0], ", ", a.size[1], ", ", a.size[2],
                              "] is too small for the cloud's extent along axis ", i, " (", lo[i], " .. ", hi[i],
                              "): voxel coordinates would not fit in 64 bits");
    }
    g->cmin[i] = static_cast<int64_t>(cmin);
    g->dims[i] = static_cast<int64_t>(cmax) - g->cmin[i] + 1;
    // total * dims < 2^63 keeps every key and the sentinel (= total) in 63 bits.
    if (static_cast<uint64_t>(g->dims[i]) > (uint64_t{1} << 63) / total) {
      return invalid_argument("voxel_size [", a.size[0], ", ", a.size[1], ", ", a.size[2],
                              "] is too small for the cloud's extent [", lo[0], " .. ", hi[0], "] x [", lo[1], " .. ",
                              hi[1], "] x [", lo[2], " .. ", hi[2], "]: it spans more than 2^63 voxels");
    }
    total *= static_cast<uint64_t>(g->dims[i]);
  }
  g->sentinel = total;
  g->key_bits = bits_for(total);
  return Status::ok();
}

}  // namespace ops

Status voxel_downsample(const TensorView& points, const double voxel_size[3], const double* origin,
                        const TensorView* features, const TensorView& out_points, const TensorView* out_features,
                        int64_t* num_voxels, Stream stream) {
  ROBOCACHE_RETURN_IF_ERROR(check_points(points, false, false));
  ROBOCACHE_RETURN_IF_ERROR(check_voxel_size(voxel_size));
  ops::DownsampleArgs a;
  a.N = points.shape[0];
  if (a.N > std::numeric_limits<uint32_t>::max()) {
    return invalid_argument("points has N = ", a.N, " points; at most 2^32 - 1 are supported");
  }
  for (int i = 0; i < 3; ++i) a.size[i] = voxel_size[i];
  if (origin != nullptr) {
    a.has_origin = true;
    for (int i = 0; i < 3; ++i) {
      if (!std::isfinite(origin[i])) {
        return invalid_argument("origin must be finite, got [", origin[0], ", ", origin[1], ", ", origin[2], "]");
      }
      a.origin[i] = origin[i];
    }
  }
  a.point_dtype = points.dtype;
  a.points = points.data;
  a.p_sn = points.strides[0];
  a.p_sd = points.strides[1];
  if ((features == nullptr) != (out_features == nullptr)) {
    return invalid_argument("features and out_features must be given together");
  }
  if (features != nullptr) {
    ROBOCACHE_RETURN_IF_ERROR(check_device("features", *features, points));
    if (features->ndim != 2 || features->shape[0] != a.N) {
      return invalid_argument("features must have shape [", a.N, ", C] to match points ", points.shape_str(),
                              ", got ", features->shape_str());
    }
    if (!is_float(features->dtype)) {
      return type_error("features dtype must be float32 or float64, got ", dtype_name(features->dtype));
    }
    a.C = features->shape[1];
    a.feature_dtype = features->dtype;
    a.features = features->data;
    a.f_sn = features->strides[0];
    a.f_sc = features->strides[1];
    ROBOCACHE_RETURN_IF_ERROR(check_device("out_features", *out_features, points));
    if (!same_shape(*out_features, {a.N, a.C}) || out_features->dtype != a.feature_dtype) {
      return invalid_argument("out_features must be ", dtype_name(a.feature_dtype), " of shape [", a.N, ", ", a.C,
                              "], got ", dtype_name(out_features->dtype), " ", out_features->shape_str());
    }
    a.out_features = out_features->data;
    a.of_sn = out_features->strides[0];
    a.of_sc = out_features->strides[1];
  }
  ROBOCACHE_RETURN_IF_ERROR(check_device("out_points", out_points, points));
  if (!same_shape(out_points, {a.N, 3}) || out_points.dtype != points.dtype) {
    return invalid_argument("out_points must be ", dtype_name(points.dtype), " of shape [", a.N, ", 3], got ",
                            dtype_name(out_points.dtype), " ", out_points.shape_str());
  }
  a.out_points = out_points.data;
  a.op_sn = out_points.strides[0];
  a.op_sd = out_points.strides[1];

  *num_voxels = 0;
  if (a.N == 0) return Status::ok();
  if (points.device.is_cpu()) return ops::voxel_downsample_cpu(a, num_voxels);
#ifdef ROBOCACHE_WITH_CUDA
  return ops::voxel_downsample_cuda(a, points.device.index, stream, num_voxels);
#else
  (void)stream;
  return runtime_error("points is on ", points.device.str(), " but this robocache was built without CUDA");
#endif
}

Status hard_voxelize(const TensorView& points, const HardVoxelizeOptions& o, const TensorView& voxels,
                     const TensorView& coords, const TensorView& num_points, int64_t* num_voxels, Stream stream) {
  ROBOCACHE_RETURN_IF_ERROR(check_points(points, false, true));
  ROBOCACHE_RETURN_IF_ERROR(check_voxel_size(o.voxel_size));
  ops::HardVoxelArgs a;
  a.N = points.shape[0];
  a.C = points.shape[1];
  if (a.N > std::numeric_limits<uint32_t>::max()) {
    return invalid_argument("points has N = ", a.N, " points; at most 2^32 - 1 are supported");
  }
  uint64_t total = 1;
  for (int i = 0; i < 3; ++i) {
    if (!std::isfinite(o.range_min[i]) || !std::isfinite(o.range_max[i]) || !(o.range_max[i] > o.range_min[i])) {
      return invalid_argument("point_cloud_range must be [x_min, y_min, z_min, x_max, y_max, z_max] with min < max, "
                              "got [", o.range_min[0], ", ", o.range_min[1], ", ", o.range_min[2], ", ",
                              o.range_max[0], ", ", o.range_max[1], ", ", o.range_max[2], "]");
    }
    const double n = std::round((o.range_max[i] - o.range_min[i]) / o.voxel_size[i]);
    if (!(n >= 1) || n > 4611686018427387904.0 || static_cast<uint64_t>(n) > (uint64_t{1} << 62) / total) {
      return invalid_argument("point_cloud_range / voxel_size gives ", n, " voxels along axis ", i,
                              (n >= 1 ? " and more than 2^62 in all" : "; need at least 1"));
    }
    a.origin[i] = o.range_min[i];
    a.size[i] = o.voxel_size[i];
    a.dims[i] = static_cast<int64_t>(n);
    total *= static_cast<uint64_t>(n);
  }
  a.sentinel = total;
  a.key_bits = ops::bits_for(total);
  if (o.max_points < 1 || o.max_voxels < 1) {
    return invalid_argument("max_points and max_voxels must be >= 1, got max_points = ", o.max_points,
                            ", max_voxels = ", o.max_voxels);
  }
  a.max_points = o.max_points;
  a.max_voxels = o.max_voxels;
  a.coords_xyz = o.coords_xyz;
  a.point_dtype = points.dtype;
  a.points = points.data;
  a.p_sn = points.strides[0];
  a.p_sc = points.strides[1];

  ROBOCACHE_RETURN_IF_ERROR(check_device("voxels", voxels, points));
  ROBOCACHE_RETURN_IF_ERROR(check_device("coords", coords, points));
  ROBOCACHE_RETURN_IF_ERROR(check_device("num_points", num_points, points));
  if (!same_shape(voxels, {a.max_voxels, a.max_points, a.C}) || voxels.dtype != points.dtype || !is_contiguous(voxels)) {
    return invalid_argument("voxels must be a C-contiguous ", dtype_name(points.dtype), " array of shape [",
                            a.max_voxels, ", ", a.max_points, ", ", a.C, "], got ", dtype_name(voxels.dtype), " ",
                            voxels.shape_str());
  }
  if (!same_shape(coords, {a.max_voxels, 3}) || coords.dtype != DType::Int32) {
    return invalid_argument("coords must be int32 of shape [", a.max_voxels, ", 3], got ", dtype_name(coords.dtype),
                            " ", coords.shape_str());
  }
  if (!same_shape(num_points, {a.max_voxels}) || num_points.dtype != DType::Int32) {
    return invalid_argument("num_points must be int32 of shape [", a.max_voxels, "], got ",
                            dtype_name(num_points.dtype), " ", num_points.shape_str());
  }
  for (int i = 0; i < 3; ++i) {
    if (a.dims[i] > std::numeric_limits<int32_t>::max()) {
      return invalid_argument("grid has ", a.dims[i], " voxels along axis ", i, "; int32 coords hold at most 2^31 - 1");
    }
  }
  a.voxels = voxels.data;
  a.coords = coords.ptr<int32_t>();
  a.c_sm = coords.strides[0];
  a.c_sd = coords.strides[1];
  a.num_points = num_points.ptr<int32_t>();
  a.n_s = num_points.strides[0];

  *num_voxels = 0;
  if (a.N == 0) return Status::ok();
  if (points.device.is_cpu()) return ops::hard_voxelize_cpu(a, num_voxels);
#ifdef ROBOCACHE_WITH_CUDA
  return ops::hard_voxelize_cuda(a, points.device.index, stream, num_voxels);
#else
  (void)stream;
  return runtime_error("points is on ", points.device.str(), " but this robocache was built without CUDA");
#endif
}

}  // namespace robocache
