// Internal: resampling problem after checks, as raw pointers and element strides. Both backends take it.
#pragma once

#include <cstdint>

#include "robocache/ops.h"

namespace robocache::ops {

struct ResampleArgs {
  int64_t B = 0, S = 0, T = 0, D = 0;
  DType data_dtype = DType::Float32;
  DType time_dtype = DType::Float64;  // src_t
  DType tgt_dtype = DType::Float64;   // tgt_t: equal to time_dtype, or both floating
  const void* data = nullptr;  // [B, S, D]
  int64_t data_sb = 0, data_ss = 0, data_sd = 0;
  const void* src_t = nullptr;  // [B, S] (st_sb == 0 when broadcast)
  int64_t st_sb = 0, st_ss = 0;
  const void* tgt_t = nullptr;  // [B, T] (tt_sb == 0 when broadcast)
  int64_t tt_sb = 0, tt_st = 0;
  const void* lengths = nullptr;  // [B] or null (then every row has S samples)
  bool lengths_int64 = true;
  int64_t len_s = 0;
  void* out = nullptr;  // [B, T, D]
  int64_t out_sb = 0, out_st = 0, out_sd = 0;
  bool* mask = nullptr;  // [B, T] or null
  int64_t mask_sb = 0, mask_st = 0;
  InterpMethod method = InterpMethod::Linear;
  Boundary boundary = Boundary::Clamp;
  int64_t quat = -1;  // Slerp: first of the four quaternion channels
};

// Checks one resampling problem and fills `a` (shared by resample_trajectories and fuse_multimodal).
// tgt_t may differ from src_t in float precision (float32 / float64) only when `mixed_float_times`.
Status make_resample_args(const TensorView& data, const TensorView& src_t, const TensorView& tgt_t,
                          const TensorView* src_lengths, const TensorView& out, const TensorView* mask,
                          InterpMethod method, Boundary boundary, int64_t quat_channel, bool mixed_float_times,
                          ResampleArgs* a);

// Valid-sample count of row b.
inline int64_t row_length(const ResampleArgs& a, int64_t b) {
  if (a.lengths == nullptr) return a.S;
  return a.lengths_int64 ? static_cast<const int64_t*>(a.lengths)[b * a.len_s]
                         : static_cast<const int32_t*>(a.lengths)[b * a.len_s];
}

// Several problems with the same B and T (one per stream) in one parallel pass / one launch per group of
// streams sharing data and time dtypes. `names` (may be null) prefix error messages.
Status resample_cpu(const ResampleArgs* args, int n, const char* const* names, bool validate);
#ifdef ROBOCACHE_WITH_CUDA
Status resample_cuda(const ResampleArgs* args, int n, const char* const* names, int device, Stream stream,
                     bool validate);
#endif

}  // namespace robocache::ops

namespace robocache::ops {

// Prefixes a failed status with the stream it is about ("stream 'joints': ..."); ok passes through.
inline Status in_stream(Status s, const char* name) {
  if (s.is_ok() || name == nullptr) return s;
  return {s.code(), detail::concat("stream '", name, "': ", s.message())};
}

// What a timestamp check found first. The two backends find it their own way and report it here.
enum class TimeFault { None, SrcNaN, SrcDecreasing, TgtNaN, LengthOutOfRange };

template <class TT>
Status time_fault_status(TimeFault fault, const ResampleArgs& a, int64_t b, int64_t i, TT value, TT previous) {
  // Broadcast [N] timestamps are named by index alone, per-row ones by [batch, index].
  const auto at = [&](const char* name, bool broadcast, int64_t k) {
    return broadcast ? detail::concat(name, "[", k, "]") : detail::concat(name, "[", b, ", ", k, "]");
  };
  switch (fault) {
    case TimeFault::SrcNaN:
      return invalid_argument("src_t must not contain NaN: ", at("src_t", a.st_sb == 0, i), " is NaN (batch ", b,
                              ", index ", i, ")");
    case TimeFault::SrcDecreasing:
      return invalid_argument("src_t must be non-decreasing: ", at("src_t", a.st_sb == 0, i), " = ", value, " < ",
                              at("src_t", a.st_sb == 0, i - 1), " = ", previous, " (batch ", b, ", index ", i,
                              ")");
    case TimeFault::TgtNaN:
      return invalid_argument("tgt_t must not contain NaN: ", at("tgt_t", a.tt_sb == 0, i), " is NaN (batch ", b,
                              ", index ", i, ")");
    case TimeFault::LengthOutOfRange:
      return invalid_argument("src_lengths[", b, "] = ", i, " is out of range: each length must be in [1, ", a.S,
                              "] (S = ", a.S, ")");
    case TimeFault::None: break;
  }
  return Status::ok();
}

}  // namespace robocache::ops
