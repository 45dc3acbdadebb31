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

// The shape of `data` [.., S, D] resampled onto `tgt_t` [.., T] with D channels: [.., T, D]; returns its ndim.
int result_shape(const TensorView& data, const TensorView& tgt_t, int64_t D, int64_t* shape) {
  for (int i = 0; i < data.ndim - 2; ++i) shape[i] = data.shape[i];
  shape[data.ndim - 2] = tgt_t.shape[tgt_t.ndim - 1];
  shape[data.ndim - 1] = D;
  return data.ndim;
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
          int64_t shape[3];
          result = allocate_like(data, d, d.dtype, shape, result_shape(d, t, d.shape[d.ndim - 1], shape));
        }
        const ArrayArg ov(result, "out", true);
        const OptionalArrayArg lv(src_lengths, "src_lengths", false), mv(mask, "mask", true);
        const Stream s = resolve_stream(stream, data, dv.view());
        check_without_gil([&] {
          return resample_trajectories(dv.view(), sv.view(), tv.view(), lv.get(), ov.view(), mv.get(), opt, s);
        });
        return result;
      },
      nb::arg("data"), nb::arg("src_t"), nb::arg("tgt_t"), nb::arg("src_lengths").none(), nb::arg("out").none(),
      nb::arg("mask").none(), nb::arg("method"), nb::arg("boundary"), nb::arg("backend"), nb::arg("validate"),
      nb::arg("quat_channel"), nb::arg("stream").none());

  // streams: a list of (name, data, t, lengths or None, out or None, mask or None, method, quat_channel). Outs
  // are all given (returns None), or all None: the torch fast path, where the results are allocated here
  // through PyTorch's DLPack exchange API, one [..., T, sum D_i] array when `concat` (returned, each stream
  // writing its columns) else one per stream (returned as a list). stream None: PyTorch's current stream.
  m.def(
      "fuse_multimodal",
      [](nb::list streams, nb::handle tgt_t, const std::string& boundary, bool validate, const std::string& backend,
         nb::handle stream, bool concat) -> nb::object {
        Boundary bd;
        Backend be;
        check(parse_boundary(boundary, &bd));
        check(parse_backend(backend, &be));
        const size_t n = nb::len(streams);
        if (n == 0) throw nb::value_error("streams is empty: nothing to align");
        std::vector<std::string> names(n);
        std::vector<ArrayArg> arrays;  // data, t, out (+ lengths, mask) per stream, alive for the call
        arrays.reserve(5 * n);
        std::vector<std::optional<size_t>> len_at(n), mask_at(n);
        std::vector<AlignStream> specs(n);
        std::vector<nb::handle> outs(n);
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
          outs[k] = item[4];
          if (outs[k].is_none() != outs[0].is_none()) throw nb::value_error("internal: outs must be all given or all None");
          if (!item[3].is_none()) {
            arrays.emplace_back(item[3], "lengths", false);
            len_at[k] = arrays.size() - 1;
          }
          if (!item[5].is_none()) {
            arrays.emplace_back(item[5], "mask", true);
            mask_at[k] = arrays.size() - 1;
          }
        }
        const ArrayArg tv(tgt_t, "tgt_t", false);
        const nb::handle first = nb::cast<nb::tuple>(streams[0])[1];  // stream 0's data
        nb::object result = nb::none();
        if (outs[0].is_none()) {
          // Shapes and dtypes were checked by the caller (ops.fuse_multimodal) before it chose this path.
          const TensorView& d0 = specs[0].data;
          int64_t shape[kMaxDims];
          const int nd = result_shape(d0, tv.view(), 0, shape);
          if (concat) {
            for (const AlignStream& sp : specs) shape[nd - 1] += sp.data.shape[sp.data.ndim - 1];
            result = allocate_like(first, d0, d0.dtype, shape, nd);
            const ArrayArg all(result, "out", true);
            int64_t offset = 0;
            for (AlignStream& sp : specs) {  // the stream's columns of the shared result
              sp.out = all.view();
              sp.out.shape[nd - 1] = sp.data.shape[sp.data.ndim - 1];
              sp.out.data = static_cast<char*>(sp.out.data) + offset * static_cast<int64_t>(dtype_size(d0.dtype));
              offset += sp.out.shape[nd - 1];
            }
          } else {
            nb::list list;
            for (AlignStream& sp : specs) {
              shape[nd - 1] = sp.data.shape[sp.data.ndim - 1];
              nb::object o = allocate_like(first, sp.data, sp.data.dtype, shape, nd);
              sp.out = ArrayArg(o, "out", true).view();
              list.append(o);
            }
            result = std::move(list);
          }
        } else {
          for (size_t k = 0; k < n; ++k) {
            arrays.emplace_back(outs[k], "out", true);
            specs[k].out = arrays.back().view();
          }
        }
        for (size_t k = 0; k < n; ++k) {  // pointers into `arrays` only once it stops growing
          specs[k].name = names[k].c_str();
          if (len_at[k]) specs[k].lengths = &arrays[*len_at[k]].view();
          if (mask_at[k]) specs[k].mask = &arrays[*mask_at[k]].view();
        }
        const Stream s = resolve_stream(stream, first, specs[0].data);
        check_without_gil([&] {
          return fuse_multimodal(specs.data(), static_cast<int>(n), tv.view(), bd, validate, be, s);
        });
        return result;
      },
      nb::arg("streams"), nb::arg("tgt_t"), nb::arg("boundary"), nb::arg("validate"), nb::arg("backend"),
      nb::arg("stream").none(), nb::arg("concat") = true);
}

}  // namespace robocache::bindings
