#include <nanobind/stl/array.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <array>
#include <optional>
#include <string>

#include "convert.h"
#include "robocache/voxelize.h"

namespace robocache::bindings {

void bind_pointcloud_io(nb::module_& m);  // bindings/pointcloud_io.cpp

void bind_voxelize(nb::module_& m) {
  m.def(
      "voxelize_dense",
      [](const Array& points, std::optional<Array> features, std::optional<Array> lengths,
         std::array<double, 3> voxel_size, std::array<double, 3> origin, std::array<int64_t, 3> grid_size,
         const std::string& mode, MutableArray out, std::optional<MutableArray> count,
         std::optional<MutableArray> dropped, uintptr_t stream) {
        VoxelGridSpec grid;
        for (int i = 0; i < 3; ++i) {
          grid.voxel_size[i] = voxel_size[i];
          grid.origin[i] = origin[i];
          grid.grid_size[i] = grid_size[i];
        }
        VoxelMode vm;
        check(parse_voxel_mode(mode, &vm));
        const TensorView pv = to_view(points, "points"), ov = to_view(out, "out");
        TensorView fv, lv, cv, dv;
        if (features) fv = to_view(*features, "features");
        if (lengths) lv = to_view(*lengths, "lengths");
        if (count) cv = to_view(*count, "count");
        if (dropped) dv = to_view(*dropped, "dropped");
        check_without_gil([&] {
          return voxelize_dense(pv, features ? &fv : nullptr, lengths ? &lv : nullptr, grid, vm, ov,
                                count ? &cv : nullptr, dropped ? &dv : nullptr, reinterpret_cast<Stream>(stream));
        });
      },
      nb::arg("points"), nb::arg("features").none(), nb::arg("lengths").none(), nb::arg("voxel_size"),
      nb::arg("origin"), nb::arg("grid_size"), nb::arg("mode"), nb::arg("out"), nb::arg("count").none(),
      nb::arg("dropped").none(), nb::arg("stream"));

  m.def(
      "voxel_downsample",
      [](const Array& points, std::array<double, 3> voxel_size, std::optional<std::array<double, 3>> origin,
         std::optional<Array> features, MutableArray out_points, std::optional<MutableArray> out_features,
         uintptr_t stream) {
        const TensorView pv = to_view(points, "points"), opv = to_view(out_points, "out_points");
        TensorView fv, ofv;
        if (features) fv = to_view(*features, "features");
        if (out_features) ofv = to_view(*out_features, "out_features");
        int64_t num_voxels = 0;
        check_without_gil([&] {
          return voxel_downsample(pv, voxel_size.data(), origin ? origin->data() : nullptr, features ? &fv : nullptr,
                                  opv, out_features ? &ofv : nullptr, &num_voxels, reinterpret_cast<Stream>(stream));
        });
        return num_voxels;
      },
      nb::arg("points"), nb::arg("voxel_size"), nb::arg("origin").none(), nb::arg("features").none(),
      nb::arg("out_points"), nb::arg("out_features").none(), nb::arg("stream"));

  m.def(
      "hard_voxelize",
      [](const Array& points, std::array<double, 3> voxel_size, std::array<double, 6> point_cloud_range,
         int64_t max_points, int64_t max_voxels, bool coords_xyz, MutableArray voxels, MutableArray coords,
         MutableArray num_points, uintptr_t stream) {
        HardVoxelizeOptions o;
        for (int i = 0; i < 3; ++i) {
          o.voxel_size[i] = voxel_size[i];
          o.range_min[i] = point_cloud_range[i];
          o.range_max[i] = point_cloud_range[3 + i];
        }
        o.max_points = max_points;
        o.max_voxels = max_voxels;
        o.coords_xyz = coords_xyz;
        const TensorView pv = to_view(points, "points"), vv = to_view(voxels, "voxels"),
                         cv = to_view(coords, "coords"), nv = to_view(num_points, "num_points");
        int64_t num_voxels = 0;
        check_without_gil([&] {
          return hard_voxelize(pv, o, vv, cv, nv, &num_voxels, reinterpret_cast<Stream>(stream));
        });
        return num_voxels;
      },
      nb::arg("points"), nb::arg("voxel_size"), nb::arg("point_cloud_range"), nb::arg("max_points"),
      nb::arg("max_voxels"), nb::arg("coords_xyz"), nb::arg("voxels"), nb::arg("coords"), nb::arg("num_points"),
      nb::arg("stream"));

  bind_pointcloud_io(m);
}

}  // namespace robocache::bindings
