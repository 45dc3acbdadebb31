#include "robocache/episode.h"

#include "robocache/status.h"

namespace robocache {

Array Array::empty(DType dtype, std::vector<int64_t> shape) {
  Array a;
  a.dtype = dtype;
  a.shape = std::move(shape);
  a.buffer = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(a.numel()) * dtype_size(dtype));
  return a;
}

int64_t Array::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string Array::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += detail::concat(i ? ", " : "", shape[i]);
  return s + "]";
}

TensorView Array::view() const {
  TensorView v;
  v.data = data();
  v.dtype = dtype;
  v.ndim = static_cast<int>(shape.size());
  int64_t stride = 1;
  for (int i = v.ndim - 1; i >= 0; --i) {
    v.shape[i] = shape[i];
    v.strides[i] = stride;
    stride *= shape[i];
  }
  return v;
}

int64_t EpisodeStream::length() const {
  if (kind == StreamKind::Bytes) return offsets.shape.empty() ? 0 : offsets.shape[0] - 1;
  return data.shape.empty() ? 0 : data.shape[0];
}

const EpisodeStream* Episode::find(const std::string& name) const {
  for (const EpisodeStream& s : streams)
    if (s.name == name) return &s;
  return nullptr;
}

const EpisodeVideo* Episode::find_video(const std::string& name) const {
  for (const EpisodeVideo& v : videos)
    if (v.name == name) return &v;
  return nullptr;
}

void set_step_timestamps(EpisodeStream* stream, double rate_hz) {
  const int64_t n = stream->length();
  stream->timestamps = Array::empty(DType::Float64, {n});
  double* t = stream->timestamps.ptr<double>();
  for (int64_t i = 0; i < n; ++i) t[i] = rate_hz > 0 ? static_cast<double>(i) / rate_hz : static_cast<double>(i);
  stream->time_unit = TimeUnit::Seconds;
  stream->time_source = rate_hz > 0 ? TimeSource::StepIndexOverRate : TimeSource::StepIndex;
  stream->rate_hz = rate_hz > 0 ? rate_hz : 0.0;
}

Status Dataset::read_episode(int64_t index, Episode* out) const {
  if (index < 0 || index >= num_episodes()) {
    return invalid_argument("episode index ", index, " is out of range for ", num_episodes(), " episodes in ", path());
  }
  return read_episode_at(index, out);
}

}  // namespace robocache
