// resample_trajectories: argument checks and dispatch to the CPU or CUDA backend.
#include "ops/resample/resample.h"

#include "ops/common/checks.h"

#include <vector>

namespace robocache {
namespace {

bool is_float_data(DType d) {
  return d == DType::Float16 || d == DType::BFloat16 || d == DType::Float32 || d == DType::Float64;
}
bool is_time(DType d) { return d == DType::Float32 || d == DType::Float64 || d == DType::Int64; }

Status check_device(const char* name, const TensorView& v, const TensorView& data) {
  return ops::check_same_device(name, v, "data", data);
}

// A [B, N] or broadcast [N] timestamp array; fills the row stride (0 when broadcast).
Status check_times(const char* name, const TensorView& t, bool batched, int64_t B, int64_t* n,
                   int64_t* sb, int64_t* sn) {
  if (t.ndim == 1) {
    *n = t.shape[0];
    *sb = 0;
    *sn = t.strides[0];
    return Status::ok();
  }
  if (batched && t.ndim == 2) {
    if (t.shape[0] != B) {
      return invalid_argument(name, " must have shape [B, ", name[0] == 's' ? "S" : "T", "] with B = ", B,
                              " (data's batch size), got ", t.shape_str());
    }
    *n = t.shape[1];
    *sb = t.strides[0];
    *sn = t.strides[1];
    return Status::ok();
  }
  return invalid_argument(name, " must have shape ", batched ? "[B, N] or [N]" : "[N]", " for ",
                          batched ? "batched [B, S, D]" : "unbatched [S, D]", " data, got ", t.shape_str());
}

}  // namespace

namespace ops {

Status make_resample_args(const TensorView& data, const TensorView& src_t, const TensorView& tgt_t,
                          const TensorView* src_lengths, const TensorView& out, const TensorView* mask,
                          InterpMethod method, Boundary boundary, int64_t quat_channel, bool mixed_float_times,
                          ResampleArgs* args) {
  ResampleArgs& a = *args;
  a = ResampleArgs{};
  if (data.ndim != 2 && data.ndim != 3) {
    return invalid_argument("data must have shape [B, S, D] or [S, D], got ", data.shape_str());
  }
  if (!is_float_data(data.dtype)) {
    return type_error("data dtype must be float16, bfloat16, float32 or float64, got ",
                      dtype_name(data.dtype));
  }
  if (!is_time(src_t.dtype)) {
    return type_error("src_t dtype must be float32, float64 or int64 (nanoseconds), got ",
                      dtype_name(src_t.dtype));
  }
  const bool both_float = src_t.dtype != DType::Int64 && tgt_t.dtype != DType::Int64;
  if (tgt_t.dtype != src_t.dtype && !(mixed_float_times && both_float && is_time(tgt_t.dtype))) {
    return type_error("tgt_t dtype (", dtype_name(tgt_t.dtype), ") must match src_t dtype (",
                      dtype_name(src_t.dtype), "): mixing clocks or units is ambiguous");
  }
  ROBOCACHE_RETURN_IF_ERROR(check_device("src_t", src_t, data));
  ROBOCACHE_RETURN_IF_ERROR(check_device("tgt_t", tgt_t, data));
  ROBOCACHE_RETURN_IF_ERROR(check_device("out", out, data));

  const bool batched = data.ndim == 3;
  a.B = batched ? data.shape[0] : 1;
  a.S = data.size(-2);
  a.D = data.size(-1);
  a.data_dtype = data.dtype;
  a.time_dtype = src_t.dtype;
  a.tgt_dtype = tgt_t.dtype;
  a.data = data.data;
  a.data_sb = batched ? data.strides[0] : 0;
  a.data_ss = data.stride(-2);
  a.data_sd = data.stride(-1);

  int64_t n_src = 0;
  ROBOCACHE_RETURN_IF_ERROR(check_times("src_t", src_t, batched, a.B, &n_src, &a.st_sb, &a.st_ss));
  if (n_src != a.S) {
    return invalid_argument("src_t must have ", a.S, " samples (data has S = ", a.S, "), got shape ",
                            src_t.shape_str());
  }
  ROBOCACHE_RETURN_IF_ERROR(check_times("tgt_t", tgt_t, batched, a.B, &a.T, &a.tt_sb, &a.tt_st));
  a.src_t = src_t.data;
  a.tgt_t = tgt_t.data;

  if (out.ndim != data.ndim || (batched && out.shape[0] != a.B) || out.size(-2) != a.T || out.size(-1) != a.D) {
    return invalid_argument("out must have shape ",
                            batched ? detail::concat("[", a.B, ", ", a.T, ", ", a.D, "]")
                                    : detail::concat("[", a.T, ", ", a.D, "]"),
                            ", got ", out.shape_str());
  }
  if (out.dtype != data.dtype) {
    return type_error("out dtype (", dtype_name(out.dtype), ") must match data dtype (",
                      dtype_name(data.dtype), ")");
  }
  for (int i = 0; i < out.ndim && out.numel() > 0; ++i) {
    if (out.shape[i] > 1 && out.strides[i] == 0) {
      return invalid_argument("out must not be a broadcast (stride-0) view, got strides along dim ", i);
    }
  }
  a.out = out.data;
  a.out_sb = batched ? out.strides[0] : 0;
  a.out_st = out.stride(-2);
  a.out_sd = out.stride(-1);

  if (mask != nullptr) {
    ROBOCACHE_RETURN_IF_ERROR(check_device("mask", *mask, data));
    if (mask->dtype != DType::Bool) {
      return type_error("mask dtype must be bool, got ", dtype_name(mask->dtype));
    }
    const bool ok = batched ? (mask->ndim == 2 && mask->shape[0] == a.B && mask->shape[1] == a.T)
                            : (mask->ndim == 1 && mask->shape[0] == a.T);
    if (!ok) {
      return invalid_argument("mask must have shape ",
                              batched ? detail::concat("[", a.B, ", ", a.T, "]") : detail::concat("[", a.T, "]"),
                              ", got ", mask->shape_str());
    }
    a.mask = mask->ptr<bool>();
    a.mask_sb = batched ? mask->strides[0] : 0;
    a.mask_st = mask->stride(-1);
  }

  if (src_lengths != nullptr) {
    ops::LengthsArg l;
    ROBOCACHE_RETURN_IF_ERROR(ops::check_lengths("src_lengths", *src_lengths, "data", data, batched, a.B, &l));
    a.lengths = l.data;
    a.lengths_int64 = l.int64;
    a.len_s = l.stride;
  }

  a.method = method;
  a.boundary = boundary;
  if (method == InterpMethod::Slerp) {
    if (quat_channel < 0) {
      if (a.D != 4) {
        return invalid_argument("method='slerp' needs D = 4 quaternion channels or quat_channel naming the first "
                                "of four; data has D = ", a.D);
      }
      quat_channel = 0;
    }
    if (quat_channel + 4 > a.D) {
      return invalid_argument("quat_channel = ", quat_channel, " names channels ", quat_channel, "..",
                              quat_channel + 3, " but data has D = ", a.D);
    }
    a.quat = quat_channel;
  } else if (quat_channel >= 0) {
    return invalid_argument("quat_channel = ", quat_channel, " is only for method='slerp', got method='",
                            method_name(method), "'");
  }
  if (a.B > 0 && a.T > 0 && a.S == 0) {
    return invalid_argument("data has S = 0 source samples but T = ", a.T,
                            " target times were requested; there is nothing to resample from");
  }
  return Status::ok();
}

}  // namespace ops

namespace {

Status check_backend(Backend backend, const TensorView& data) {
  if (backend == Backend::CPU && !data.device.is_cpu()) {
    return invalid_argument("backend='cpu' but data is on ", data.device.str());
  }
  if (backend == Backend::CUDA && !data.device.is_cuda()) {
    return invalid_argument("backend='cuda' but data is on ", data.device.str());
  }
  return Status::ok();
}

Status run_backend(const ops::ResampleArgs* args, int n, const char* const* names, const Device& device,
                   bool validate, Stream stream) {
  if (device.is_cpu()) return ops::resample_cpu(args, n, names, validate);
#ifdef ROBOCACHE_WITH_CUDA
  return ops::resample_cuda(args, n, names, device.index, stream, validate);
#else
  (void)stream;
  return runtime_error("data is on ", device.str(), " but this robocache was built without CUDA");
#endif
}

}  // namespace

Status resample_trajectories(const TensorView& data, const TensorView& src_t, const TensorView& tgt_t,
                             const TensorView* src_lengths, const TensorView& out, const TensorView* mask,
                             const ResampleOptions& options, Stream stream) {
  ops::ResampleArgs a;
  ROBOCACHE_RETURN_IF_ERROR(ops::make_resample_args(data, src_t, tgt_t, src_lengths, out, mask, options.method,
                                                    options.boundary, options.quat_channel, false, &a));
  ROBOCACHE_RETURN_IF_ERROR(check_backend(options.backend, data));
  if (a.B == 0 || a.T == 0) return Status::ok();
  return run_backend(&a, 1, nullptr, data.device, options.validate, stream);
}

Status fuse_multimodal(const AlignStream* streams, int num_streams, const TensorView& tgt_t, Boundary boundary,
                       bool validate, Backend backend, Stream stream) {
  if (num_streams <= 0) return invalid_argument("fuse_multimodal needs at least one stream, got ", num_streams);
  std::vector<ops::ResampleArgs> args(num_streams);
  std::vector<const char*> names(num_streams);
  const TensorView& first = streams[0].data;
  for (int k = 0; k < num_streams; ++k) {
    const AlignStream& s = streams[k];
    names[k] = s.name;
    ROBOCACHE_RETURN_IF_ERROR(ops::in_stream(
        ops::make_resample_args(s.data, s.t, tgt_t, s.lengths, s.out, s.mask, s.method, boundary, s.quat_channel,
                                true, &args[k]),
        s.name));
    if (!(s.data.device == first.device)) {
      return invalid_argument("stream '", s.name, "' is on ", s.data.device.str(), " but stream '", streams[0].name,
                              "' is on ", first.device.str(), "; all streams must be on one device");
    }
    if (s.data.ndim != first.ndim || (args[k].B != args[0].B)) {
      return invalid_argument("stream '", s.name, "' has data of shape ", s.data.shape_str(), " but stream '",
                              streams[0].name, "' has ", first.shape_str(), "; all streams need the same batch size B");
    }
  }
  ROBOCACHE_RETURN_IF_ERROR(check_backend(backend, first));
  if (args[0].B == 0 || args[0].T == 0) return Status::ok();
  return run_backend(args.data(), num_streams, names.data(), first.device, validate, stream);
}

}  // namespace robocache
