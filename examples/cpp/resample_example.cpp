// Resample a 100 Hz joint trajectory onto a 30 Hz camera clock with the C++ API: non-owning views over
// the caller's memory, errors as Status values.
#include <cmath>
#include <cstdio>
#include <vector>

#include "robocache/robocache.h"

int main() {
  const int64_t S = 100, T = 30, D = 2;  // one second of samples
  std::vector<int64_t> joint_t(S), camera_t(T);
  std::vector<float> joints(S * D), out(T * D);
  for (int64_t s = 0; s < S; ++s) {
    joint_t[s] = 1'700'000'000'000'000'000 + s * 10'000'000;  // int64 nanoseconds, as ROS records them
    joints[s * D + 0] = std::sin(0.1f * static_cast<float>(s));
    joints[s * D + 1] = std::cos(0.1f * static_cast<float>(s));
  }
  for (int64_t t = 0; t < T; ++t) camera_t[t] = joint_t[0] + t * 33'333'333;

  namespace rc = robocache;
  rc::ResampleOptions options;
  options.method = rc::InterpMethod::Linear;
  const rc::Status status = rc::resample_trajectories(
      rc::make_view(joints.data(), rc::DType::Float32, {}, {S, D}),
      rc::make_view(joint_t.data(), rc::DType::Int64, {}, {S}),
      rc::make_view(camera_t.data(), rc::DType::Int64, {}, {T}), nullptr,
      rc::make_view(out.data(), rc::DType::Float32, {}, {T, D}), nullptr, options);
  if (!status.is_ok()) {
    std::fprintf(stderr, "resample failed: %s\n", status.message().c_str());
    return 1;
  }
  const rc::BuildInfo info = rc::build_info();
  std::printf("robocache %s (CUDA %s): joint 0 at camera frame 10 = %.6f (sin(3.3333) = %.6f)\n",
              info.version.c_str(), info.cuda ? "on" : "off", out[10 * D], std::sin(3.33333f));
  return std::fabs(out[10 * D] - std::sin(3.33333f)) < 2e-3 ? 0 : 1;
}
