#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>
#include <vector>

#include "convert.h"

namespace robocache::bindings {

namespace {
Status in_stream_name(Status s, const std::string& name) {
  if (s.is_ok()) return s;
  return {s.code(), "stream '" + name + "': " + s.message()};
}
}  // namespace

void bind_resample(nb::module_& m) {
  m.def(
      "resample_trajectories",
      [](nb::handle data, nb::handle src_t, nb::handle tgt_t, nb::handle src_lengths, nb::handle out,
         nb::handle mask, const std::string& method, const std::string& boundary, const std::string& backend,
         bool validate, int64_t quat_channel, nb::handle stream) {
        ResampleOptions opt;
        opt.quat_channel = quat_channel;
        check(parse_method(method, &opt.method));
        check(parse_boundary(boundary, &opt.boundary));
        check(parse_backend(backend, &opt.backend));
        opt.validate = validate;
        const ArrayArg dv(data, "data", false), sv(src_t, "src_t", false), tv(tgt_t, "tgt_t", false);
        nb::object result = nb::borrow(out);
        if (out.is_none()) {
          // The torch fast path: the result is allocated here, through PyTorch's DLPack exchange API.
          const TensorView& d = dv.view();
          const TensorView& t = tv.view();
          if ((d.ndim != 2 && d.ndim != 3) || (t.ndim != 1 && t.ndim != 2)) {
            throw nb::value_error("out=None needs data [B, S, D] or [S, D] and tgt_t [B, T] or [T]");
          }
          const int64_t shape[3] = {d.shape[0], t.shape[t.ndim - 1], d.shape[d.ndim - 1]};
          result = d.ndim == 3 ? allocate_like(data, d, d.dtype, shape, 3) : allocate_like(data, d, d.dtype, shape + 1, 2);
        }
        const ArrayArg ov(result, "out", true);
        std::optional<ArrayArg> lv, mv;
        if (!src_lengths.is_none()) lv.emplace(src_lengths, "src_lengths", false);
        if (!mask.is_none()) mv.emplace(mask, "mask", true);
        const Stream s = resolve_stream(stream, data, dv.view());
        check_without_gil([&] {
          return resample_trajectories(dv.view(), sv.view(), tv.view(), lv ? &lv->view() : nullptr, ov.view(),
                                       mv ? &mv->view() : nullptr, opt, s);
        });
        return result;
      },
      nb::arg("data"), nb::arg("src_t"), nb::arg("tgt_t"), nb::arg("src_lengths").none(), nb::arg("out").none(),
      nb::arg("mask").none(), nb::arg("method"), nb::arg("boundary"), nb::arg("backend"), nb::arg("validate"),
      nb::arg("quat_channel"), nb::arg("stream").none());

  // streams: a list of (name, data, t, lengths or None, out, mask or None, method, quat_channel)
  m.def(
      "fuse_multimodal",
      [](nb::list streams, nb::handle tgt_t, const std::string& boundary, bool validate, const std::string& backend,
         uintptr_t stream) {
        Boundary bd;
        Backend be;
        check(parse_boundary(boundary, &bd));
        check(parse_backend(backend, &be));
        const size_t n = nb::len(streams);
        std::vector<std::string> names(n);
        std::vector<ArrayArg> arrays;  // data, t, out (+ lengths, mask) per stream, alive for the call
        arrays.reserve(5 * n);
        std::vector<std::optional<size_t>> len_at(n), mask_at(n);
        std::vector<AlignStream> specs(n);
        for (size_t k = 0; k < n; ++k) {
          nb::tuple item = nb::cast<nb::tuple>(streams[k]);
          if (nb::len(item) != 8) throw nb::value_error("internal: stream descriptor must have 8 fields");
          names[k] = nb::cast<std::string>(item[0]);
          AlignStream& sp = specs[k];
          check(in_stream_name(parse_method(nb::cast<std::string>(item[6]), &sp.method), names[k]));
          sp.quat_channel = nb::cast<int64_t>(item[7]);
          arrays.emplace_back(item[1], "data", false);
          sp.data = arrays.back().view();
          arrays.emplace_back(item[2], "t", false);
          sp.t = arrays.back().view();
          arrays.emplace_back(item[4], "out", true);
          sp.out = arrays.back().view();
          if (!item[3].is_none()) {
            arrays.emplace_back(item[3], "lengths", false);
            len_at[k] = arrays.size() - 1;
          }
          if (!item[5].is_none()) {
            arrays.emplace_back(item[5], "mask", true);
            mask_at[k] = arrays.size() - 1;
          }
        }
        for (size_t k = 0; k < n; ++k) {  // pointers into `arrays` only once it stops growing
          specs[k].name = names[k].c_str();
          if (len_at[k]) specs[k].lengths = &arrays[*len_at[k]].view();
          if (mask_at[k]) specs[k].mask = &arrays[*mask_at[k]].view();
        }
        const ArrayArg tv(tgt_t, "tgt_t", false);
        check_without_gil([&] {
          return fuse_multimodal(specs.data(), static_cast<int>(n), tv.view(), bd, validate, be,
                                 reinterpret_cast<Stream>(stream));
        });
      },
      nb::arg("streams"), nb::arg("tgt_t"), nb::arg("boundary"), nb::arg("validate"), nb::arg("backend"),
      nb::arg("stream"));
}

}  // namespace robocache::bindings
