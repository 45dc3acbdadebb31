// The loader pipeline: arguments in, batches out as PyTorch tensors over the pipeline's buffers (DLPack,
// no copy; one capsule per batch owns the buffer). Waiting for a batch releases the GIL.
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "robocache/loader.h"

namespace robocache::bindings {
namespace {

Device parse_device(const std::string& s) {
  if (s == "cpu") return Device{};
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    if (!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos) {
      return Device{DeviceType::CUDA, std::stoi(idx)};
    }
  }
  throw nb::value_error(("device must be 'cpu' or 'cuda:N', got '" + s + "'").c_str());
}

nb::dlpack::dtype dlpack_of(const ScalarType& t) {
  using code = nb::dlpack::dtype_code;
  const code c = t.kind == 'f' ? code::Float : t.kind == 'i' ? code::Int : t.kind == 'u' ? code::UInt : code::Bool;
  return nb::dlpack::dtype{static_cast<uint8_t>(c), static_cast<uint8_t>(t.bytes * 8), 1};
}

template <size_t N, class T>
void fill3(nb::handle seq, T (&out)[N], const char* what) {
  if (nb::len(seq) != N) throw nb::value_error((std::string(what) + " must have 3 entries").c_str());
  for (size_t i = 0; i < N; ++i) out[i] = nb::cast<T>(seq[i]);
}

class PyPipeline {
 public:
  // streams: list of (name, method, quat_channel, voxel) with voxel None or
  // (voxel_size[3], origin[3], grid_size[3], mode)
  PyPipeline(const std::string& store, nb::list streams, int64_t batch_size, int64_t steps, double target_hz,
             const std::string& device, int num_threads, int prefetch, nb::handle origin, double tolerance_s) {
    LoaderOptions o;
    o.store = store;
    o.batch_size = batch_size;
    o.steps = steps;
    o.target_hz = target_hz;
    o.device = parse_device(device);
    o.num_threads = num_threads;
    o.prefetch = prefetch;
    o.tolerance_s = tolerance_s;
    for (nb::handle h : streams) {
      nb::tuple t = nb::cast<nb::tuple>(h);
      LoaderStream s;
      s.name = nb::cast<std::string>(t[0]);
      check(parse_method(nb::cast<std::string>(t[1]), &s.method));
      s.quat_channel = nb::cast<int64_t>(t[2]);
      if (!t[3].is_none()) {
        nb::tuple v = nb::cast<nb::tuple>(t[3]);
        s.voxelize = true;
        fill3(v[0], s.grid.voxel_size, "voxel_size");
        fill3(v[1], s.grid.origin, "origin");
        fill3(v[2], s.grid.grid_size, "grid_size");
        check(parse_voxel_mode(nb::cast<std::string>(v[3]), &s.voxel_mode));
      }
      o.streams.push_back(s);
    }
    const ArrayArg ov(origin, "origin", false);
    const TensorView& v = ov.view();
    if (v.ndim != 1 || !v.device.is_cpu() || (v.dtype != DType::Int64 && v.dtype != DType::Float64))
      throw nb::type_error("origin must be a 1-D int64 or float64 CPU array");
    for (int64_t i = 0; i < v.shape[0]; ++i) {
      if (v.dtype == DType::Int64) o.origin_ns.push_back(v.ptr<int64_t>()[i * v.strides[0]]);
      else o.origin_s.push_back(v.ptr<double>()[i * v.strides[0]]);
    }
    check_without_gil([&] { return LoaderPipeline::create(o, &pipe_); });
  }

  uint64_t start(nb::handle episodes, nb::handle starts) {
    const ArrayArg ev(episodes, "episodes", false), sv(starts, "starts", false);
    const TensorView &e = ev.view(), &s = sv.view();
    if (e.ndim != 1 || e.dtype != DType::Int64 || e.strides[0] != 1 || !e.device.is_cpu())
      throw nb::type_error("episodes must be a contiguous 1-D int64 CPU array");
    if (s.ndim != 1 || s.dtype != DType::Float64 || s.strides[0] != 1 || s.shape[0] != e.shape[0])
      throw nb::type_error("starts must be a contiguous 1-D float64 CPU array as long as episodes");
    uint64_t run = 0;
    LoaderPipeline& p = pipe();
    check_without_gil([&] { return p.start(e.ptr<int64_t>(), s.ptr<double>(), e.shape[0], &run); });
    return run;
  }

  // (values: {name: tensor}, masks: {name: tensor})
  nb::tuple next(uint64_t run, uintptr_t stream) {
    LoaderBatch b;
    LoaderPipeline& p = pipe();
    check_without_gil([&] { return p.next(run, reinterpret_cast<Stream>(stream), &b); });
    auto* keep = new std::shared_ptr<void>(std::move(b.owner));
    nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<std::shared_ptr<void>*>(p); });
    nb::dict values, masks;
    for (const BatchTensor& t : b.tensors) {
      std::vector<size_t> shape(t.shape.begin(), t.shape.end());
      const int dev = t.device.is_cuda() ? nb::device::cuda::value : nb::device::cpu::value;
      nb::ndarray<nb::pytorch> a(t.data, shape.size(), shape.data(), owner, nullptr, dlpack_of(t.type), dev,
                                 t.device.index);
      (t.is_mask ? masks : values)[t.name.c_str()] = nb::cast(a);
    }
    return nb::make_tuple(values, masks);
  }

  void cancel(uint64_t run) {
    if (!pipe_) return;
    nb::gil_scoped_release release;
    pipe_->cancel(run);
  }

  void evict_page_cache() {
    nb::gil_scoped_release release;
    pipe().evict_page_cache();
  }

  nb::dict stats() const {
    nb::dict d;
    if (pipe_) {
      const LoaderStats s = pipe_->stats();
      d["batches_built"] = s.batches_built;
      d["output_buffers"] = s.output_buffers;
      d["output_buffer_bytes"] = s.output_buffer_bytes;
    }
    return d;
  }

 private:
  LoaderPipeline& pipe() const {
    if (!pipe_) throw nb::value_error("the loader pipeline is closed");
    return *pipe_;
  }
  std::unique_ptr<LoaderPipeline> pipe_;
};

}  // namespace

void bind_loader(nb::module_& m) {
  nb::class_<PyPipeline>(m, "LoaderPipeline")
      .def(nb::init<const std::string&, nb::list, int64_t, int64_t, double, const std::string&, int, int, nb::handle,
                    double>(),
           nb::arg("store"), nb::arg("streams"), nb::arg("batch_size"), nb::arg("steps"), nb::arg("target_hz"),
           nb::arg("device"), nb::arg("num_threads"), nb::arg("prefetch"), nb::arg("origin"),
           nb::arg("tolerance_s"))
      .def("start", &PyPipeline::start, nb::arg("episodes"), nb::arg("starts"))
      .def("next", &PyPipeline::next, nb::arg("run"), nb::arg("stream"))
      .def("cancel", &PyPipeline::cancel, nb::arg("run"))
      .def("evict_page_cache", &PyPipeline::evict_page_cache)
      .def("stats", &PyPipeline::stats);
  m.def("loader_memory", [] {
    const LoaderMemory mem = loader_memory();
    nb::dict d;
    d["pinned_bytes"] = mem.pinned_bytes;
    d["device_bytes"] = mem.device_bytes;
    d["host_bytes"] = mem.host_bytes;
    return d;
  });
}

}  // namespace robocache::bindings
