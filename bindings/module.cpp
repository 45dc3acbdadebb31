// robocache._C: the nanobind module. Converts arrays to views and Status to exceptions, nothing else.
#include <nanobind/stl/string.h>

#include "convert.h"

namespace robocache::bindings {

void throw_status(const Status& status) {
  switch (status.code()) {
    case StatusCode::InvalidArgument: throw nb::value_error(status.message().c_str());
    case StatusCode::TypeError: throw nb::type_error(status.message().c_str());
    case StatusCode::IOError:
      PyErr_SetString(PyExc_OSError, status.message().c_str());
      throw nb::python_error();
    default: throw std::runtime_error(status.message());
  }
}

void bind_resample(nb::module_& m);
void bind_voxelize(nb::module_& m);
void bind_datasets(nb::module_& m);
void bind_loader(nb::module_& m);
void bind_device_buffer(nb::module_& m);

}  // namespace robocache::bindings

NB_MODULE(_C, m) {
  namespace nb = nanobind;
  using namespace robocache;
  m.doc() = "RoboCache native core (C++/CUDA). Use the `robocache` package, not this module directly.";

  m.def("build_info", [] {
    const BuildInfo info = robocache::build_info();
    nb::dict d;
    d["version"] = info.version;
    d["cuda"] = info.cuda;
    d["cuda_architectures"] = info.cuda_architectures;
    d["cuda_runtime_version"] = info.cuda_runtime_version;
    d["compiler"] = info.compiler;
    d["cuda_compiler"] = info.cuda_compiler;
    d["cuda_device_count"] = info.cuda_device_count;
    d["num_threads"] = info.num_threads;
    return d;
  });
  m.def("set_num_threads", &robocache::set_num_threads, nb::arg("n"));
  m.def("get_num_threads", &robocache::get_num_threads);

  bindings::bind_resample(m);
  bindings::bind_voxelize(m);
  bindings::bind_datasets(m);
  bindings::bind_loader(m);
  bindings::bind_device_buffer(m);
}
