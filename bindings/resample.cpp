#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>

#include "convert.h"

namespace robocache::bindings {

void bind_resample(nb::module_& m) {
  m.def(
      "resample_trajectories",
      [](const Array& data, const Array& src_t, const Array& tgt_t, std::optional<Array> src_lengths,
         MutableArray out, std::optional<MutableArray> mask, const std::string& method,
         const std::string& boundary, const std::string& backend, bool validate, uintptr_t stream) {
        ResampleOptions opt;
        check(parse_method(method, &opt.method));
        check(parse_boundary(boundary, &opt.boundary));
        check(parse_backend(backend, &opt.backend));
        opt.validate = validate;
        const TensorView dv = to_view(data, "data"), sv = to_view(src_t, "src_t"), tv = to_view(tgt_t, "tgt_t");
        const TensorView ov = to_view(out, "out");
        TensorView lv, mv;
        if (src_lengths) lv = to_view(*src_lengths, "src_lengths");
        if (mask) mv = to_view(*mask, "mask");
        Status s;
        {
          nb::gil_scoped_release release;
          s = resample_trajectories(dv, sv, tv, src_lengths ? &lv : nullptr, ov, mask ? &mv : nullptr, opt,
                                    reinterpret_cast<Stream>(stream));
        }
        check(s);
      },
      nb::arg("data"), nb::arg("src_t"), nb::arg("tgt_t"), nb::arg("src_lengths").none(), nb::arg("out"),
      nb::arg("mask").none(), nb::arg("method"), nb::arg("boundary"), nb::arg("backend"), nb::arg("validate"),
      nb::arg("stream"));
}

}  // namespace robocache::bindings
