// Public op declarations. Every op takes non-owning views, writes into caller-allocated outputs, and runs
// on the device of its inputs: on the CPU thread pool, or on `stream` (a cudaStream_t) for CUDA inputs.
#pragma once

#include <string_view>

#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache {

using Stream = void*;  // cudaStream_t for CUDA inputs (nullptr = legacy default stream); ignored on the CPU

// Slerp: four quaternion channels (see ResampleOptions::quat_channel) are interpolated along the shortest
// arc and normalized; any other channels of the stream are interpolated linearly.
enum class InterpMethod { Linear, Nearest, Hold, Slerp };
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
  // With Slerp: the first of the four consecutive quaternion channels (x, y, z, w or w, x, y, z: slerp
  // treats the four components alike, so either layout works). -1: the data has D == 4, all quaternion.
  int64_t quat_channel = -1;
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

// One stream of a multimodal alignment: its samples, times, optional lengths, where its output goes, and
// how it is interpolated. Streams may differ in S, D, data dtype and time dtype.
struct AlignStream {
  const char* name = "";          // for error messages
  TensorView data;                // [B, S_i, D_i] or [S_i, D_i]
  TensorView t;                   // [B, S_i] or [S_i]
  const TensorView* lengths = nullptr;  // [B] or null
  TensorView out;                 // [B, T, D_i] or [T, D_i], same dtype as data (a column slice of a shared
                                  // [B, T, sum D_i] array for concatenated output)
  const TensorView* mask = nullptr;     // [B, T] bool or null
  InterpMethod method = InterpMethod::Linear;
  int64_t quat_channel = -1;      // as in ResampleOptions
};

// Aligns every stream onto tgt_t ([B, T] or [T]) in one pass: on CUDA one launch for all streams that share
// a data dtype and time dtype (the usual case: one launch in all), on the CPU one parallel pass.
// Stream times and tgt_t are both int64 (ns), or both floating (float32 / float64, compared as float64).
Status fuse_multimodal(const AlignStream* streams, int num_streams, const TensorView& tgt_t, Boundary boundary,
                       bool validate, Backend backend = Backend::Auto, Stream stream = nullptr);

}  // namespace robocache
