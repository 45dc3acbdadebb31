// Public op declarations. Every op takes non-owning views, writes into caller-allocated outputs, and runs
// on the device of its inputs: on the CPU thread pool, or on `stream` (a cudaStream_t) for CUDA inputs.
#pragma once

#include <string_view>

#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache {

using Stream = void*;  // cudaStream_t for CUDA inputs (nullptr = legacy default stream); ignored on the CPU

enum class InterpMethod { Linear, Nearest, Hold };
enum class Boundary { Clamp, Extrapolate, Nan };
enum class Backend { Auto, CPU, CUDA };

Status parse_method(std::string_view name, InterpMethod* out);
Status parse_boundary(std::string_view name, Boundary* out);
Status parse_backend(std::string_view name, Backend* out);  // "", "auto", "cpu", "cuda"
const char* method_name(InterpMethod method);
const char* boundary_name(Boundary boundary);

struct ResampleOptions {
  InterpMethod method = InterpMethod::Linear;
  Boundary boundary = Boundary::Clamp;
  Backend backend = Backend::Auto;  // a forced backend must match the inputs' device; never a copy
  // Check timestamps (NaN, decreasing src_t) and src_lengths before computing. On CUDA this waits for a
  // small check kernel (not for the resampling itself); turn it off inside CUDA graph capture.
  bool validate = true;
};

// Resamples trajectories onto target times.
//   data        [B, S, D] or [S, D]      float16 / bfloat16 / float32 / float64, any strides
//   src_t       [B, S] or [S]            float32 / float64 / int64 (ns); non-decreasing per row
//   tgt_t       [B, T] or [T]            same dtype as src_t; any order
//   src_lengths [B] int32/int64 or null  valid samples per row (1..S); samples past it are ignored
//   out         [B, T, D] or [T, D]      same dtype and device as data, any strides
//   mask        [B, T] or [T] bool/null  true where tgt_t lies inside [src_t[0], src_t[len-1]]
// Equal source times are allowed: a target at that time takes the later sample.
Status resample_trajectories(const TensorView& data, const TensorView& src_t, const TensorView& tgt_t,
                             const TensorView* src_lengths, const TensorView& out, const TensorView* mask,
                             const ResampleOptions& options = {}, Stream stream = nullptr);

}  // namespace robocache
