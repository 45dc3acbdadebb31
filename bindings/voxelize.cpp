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
      [](nb::handle points, nb::handle features, nb::handle lengths, std::array<double, 3> voxel_size,
         std::array<double, 3> origin, std::array<int64_t, 3> grid_size, const std::string& mode, nb::handle out,
         nb::handle count, nb::handle dropped, uintptr_t stream) {
        VoxelGridSpec grid;
        for (int i = 0; i < 3; ++i) {
          grid.voxel_size[i] = voxel_size[i];
          grid.origin[i] = origin[i];
          grid.grid_size[i] = grid_size[i];
        }
        VoxelMode vm;
        check(parse_voxel_mode(mode, &vm));
        const ArrayArg pa(points, "points", false), oa(out, "out", true);
        const OptionalArrayArg fa(features, "features", false), la(lengths, "lengths", false),
            ca(count, "count", true), da(dropped, "dropped", true);
        check_without_gil([&] {
          return voxelize_dense(pa.view(), fa.get(), la.get(), grid, vm, oa.view(), ca.get(), da.get(),
                                reinterpret_cast<Stream>(stream));
        });
      },
      nb::arg("points"), nb::arg("features").none(), nb::arg("lengths").none(), nb::arg("voxel_size"),
      nb::arg("origin"), nb::arg("grid_size"), nb::arg("mode"), nb::arg("out"), nb::arg("count").none(),
      nb::arg("dropped").none(), nb::arg("stream"));

  m.def(
      "voxel_downsample",
      [](nb::handle points, std::array<double, 3> voxel_size, std::optional<std::array<double, 3>> origin,
         nb::handle features, nb::handle out_points, nb::handle out_features, uintptr_t stream) {
        const ArrayArg pa(points, "points", false), opa(out_points, "out_points", true);
        const OptionalArrayArg fa(features, "features", false), ofa(out_features, "out_features", true);
        int64_t num_voxels = 0;
        check_without_gil([&] {
          return voxel_downsample(pa.view(), voxel_size.data(), origin ? origin->data() : nullptr, fa.get(),
                                  opa.view(), ofa.get(), &num_voxels, reinterpret_cast<Stream>(stream));
        });
        return num_voxels;
      },
      nb::arg("points"), nb::arg("voxel_size"), nb::arg("origin").none(), nb::arg("features").none(),
      nb::arg("out_points"), nb::arg("out_features").none(), nb::arg("stream"));

  m.def(
      "hard_voxelize",
      [](nb::handle points, std::array<double, 3> voxel_size, std::array<double, 6> point_cloud_range,
         int64_t max_points, int64_t max_voxels, bool coords_xyz, nb::handle voxels, nb::handle coords,
         nb::handle num_points, uintptr_t stream) {
        HardVoxelizeOptions o;
        for (int i = 0; i < 3; ++i) {
          o.voxel_size[i] = voxel_size[i];
          o.range_min[i] = point_cloud_range[i];
          o.range_max[i] = point_cloud_range[3 + i];
        }
        o.max_points = max_points;
        o.max_voxels = max_voxels;
        o.coords_xyz = coords_xyz;
        const ArrayArg pa(points, "points", false), va(voxels, "voxels", true), ca(coords, "coords", true),
            na(num_points, "num_points", true);
        int64_t num_voxels = 0;
        check_without_gil([&] {
          return hard_voxelize(pa.view(), o, va.view(), ca.view(), na.view(), &num_voxels,
                               reinterpret_cast<Stream>(stream));
        });
        return num_voxels;
      },
      nb::arg("points"), nb::arg("voxel_size"), nb::arg("point_cloud_range"), nb::arg("max_points"),
      nb::arg("max_voxels"), nb::arg("coords_xyz"), nb::arg("voxels"), nb::arg("coords"), nb::arg("num_points"),
      nb::arg("stream"));

  bind_pointcloud_io(m);
}

}  // namespace robocache::bindings
