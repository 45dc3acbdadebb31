#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>

#include "convert.h"

namespace robocache::bindings {

void bind_resample(nb::module_& m) {
  m.def(
      "resample_trajectories",
      [](nb::handle data, nb::handle src_t, nb::handle tgt_t, nb::handle src_lengths, nb::handle out,
         nb::handle mask, const std::string& method, const std::string& boundary, const std::string& backend,
         bool validate, uintptr_t stream) {
        ResampleOptions opt;
        check(parse_method(method, &opt.method));
        check(parse_boundary(boundary, &opt.boundary));
        check(parse_backend(backend, &opt.backend));
        opt.validate = validate;
        const ArrayArg dv(data, "data", false), sv(src_t, "src_t", false), tv(tgt_t, "tgt_t", false);
        const ArrayArg ov(out, "out", true);
        std::optional<ArrayArg> lv, mv;
        if (!src_lengths.is_none()) lv.emplace(src_lengths, "src_lengths", false);
        if (!mask.is_none()) mv.emplace(mask, "mask", true);
        Status s;
        {
          nb::gil_scoped_release release;
          s = resample_trajectories(dv.view(), sv.view(), tv.view(), lv ? &lv->view() : nullptr, ov.view(),
                                    mv ? &mv->view() : nullptr, opt, reinterpret_cast<Stream>(stream));
        }
        check(s);
      },
      nb::arg("data"), nb::arg("src_t"), nb::arg("tgt_t"), nb::arg("src_lengths").none(), nb::arg("out"),
      nb::arg("mask").none(), nb::arg("method"), nb::arg("boundary"), nb::arg("backend"), nb::arg("validate"),
      nb::arg("stream"));
}

}  // namespace robocache::bindings
