#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>

#include "convert.h"
#include "robocache/pointcloud_io.h"

namespace robocache::bindings {

void bind_pointcloud_io(nb::module_& m) {
  m.def(
      "read_point_cloud",
      [](const std::string& path, int bin_columns) {
        auto* cloud = new PointCloudFile();
        Status s;
        {
          nb::gil_scoped_release release;
          s = read_point_cloud(path, cloud, bin_columns);
        }
        if (!s.is_ok()) {
          delete cloud;
          check(s);
        }
        // The NumPy array owns the reader's buffer: no copy.
        nb::capsule owner(cloud, [](void* p) noexcept { delete static_cast<PointCloudFile*>(p); });
        const size_t shape[2] = {static_cast<size_t>(cloud->num_points), cloud->fields.size()};
        nb::ndarray<nb::numpy, float> values(cloud->values.data(), 2, shape, owner);
        return nb::make_tuple(values, cloud->fields, cloud->width, cloud->height);
      },
      nb::arg("path"), nb::arg("bin_columns") = 0);
}

}  // namespace robocache::bindings
