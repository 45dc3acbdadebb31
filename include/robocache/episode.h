// The episode model every dataset reader produces, and the dataset interface.
// An episode is a set of named streams; each stream owns an array [S, ...] (S samples, the stream's own
// length) and its own timestamps [S]. Unlike TensorView, these arrays own their memory: a reader allocates
// them, and a Python view shares the buffer (NumPy, then PyTorch via torch.from_numpy / DLPack, no copy).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache {

// An owned, C-contiguous CPU array. Copies share the buffer (shared_ptr), so handing one to Python or
// keeping it in several episodes never copies the samples.
struct Array {
  DType dtype = DType::UInt8;
  std::vector<int64_t> shape;
  std::shared_ptr<std::vector<uint8_t>> buffer;

  static Array empty(DType dtype, std::vector<int64_t> shape);  // allocated, uninitialised
  int64_t numel() const;
  size_t nbytes() const { return buffer ? buffer->size() : 0; }
  void* data() const { return buffer ? buffer->data() : nullptr; }
  template <class T>
  T* ptr() const {
    return static_cast<T*>(data());
  }
  std::string shape_str() const;  // "[10, 7]"
  TensorView view() const;        // non-owning view for the ops (CPU); valid while this Array lives
};

// What a stream's samples are.
enum class StreamKind : uint8_t {
  Tensor,  // `data` is [S, ...] with a numeric dtype
  Bytes,   // S variable-length items (encoded images, text): `data` is the items concatenated, uint8 [N];
           // item i is data[offsets[i] : offsets[i + 1]], `offsets` int64 [S + 1]
};

enum class TimeUnit : uint8_t {
  Nanoseconds,  // timestamps int64 [S], as ROS and MCAP record them
  Seconds,      // timestamps float64 [S]
};

// Where a stream's timestamps come from. A format without timestamps gets step_index / rate_hz, with the
// rate from the metadata or the caller; without either, rate_hz is 0 and the timestamps are the step
// indices themselves (float64), which time_source says.
enum class TimeSource : uint8_t { Recorded, StepIndexOverRate, StepIndex };

struct EpisodeStream {
  std::string name;  // "steps/observation/state", "obs/agentview_image", "rgb_static"
  StreamKind kind = StreamKind::Tensor;
  Array data;
  Array offsets;           // Bytes streams only
  std::string encoding;    // Bytes streams: "jpeg", "png", "utf-8", "bytes"; "" for tensors
  Array timestamps;        // [S]: int64 (TimeUnit::Nanoseconds) or float64 (TimeUnit::Seconds)
  TimeUnit time_unit = TimeUnit::Seconds;
  TimeSource time_source = TimeSource::StepIndex;
  double rate_hz = 0.0;    // the rate the timestamps were made from, 0 when recorded or unknown

  int64_t length() const;  // S
};

struct EpisodeMetadata {
  std::string language_instruction;
  std::string task;
  std::string robot_type;
  std::string source_file;  // the file the episode was read from (for RLDS, the shard)
  std::string source_key;   // where in that file: "offset 1234", "data/demo_3", "frames 0-63"
  // Anything else the format records per episode ("episode_metadata/file_path", HDF5 attributes, ...),
  // as text.
  std::map<std::string, std::string> extra;
};

// A camera of an episode recorded as a video file (LeRobot's mp4s). The frames stay in the file until they
// are asked for (video_frame_timestamps / decode_video_frames, FFmpeg); the reader only says where they are.
// LeRobot v2.x keeps one file per episode (from_timestamp 0, to_timestamp infinity); v3.0 puts many
// episodes back to back in one file, and the episode's frames are those with presentation time in
// [from_timestamp, to_timestamp). Episode time t is file time from_timestamp + t.
struct EpisodeVideo {
  std::string name;           // the feature key: "observation.images.cam_high"
  std::string path;           // the video file
  double from_timestamp = 0.0;
  double to_timestamp = std::numeric_limits<double>::infinity();
  double fps = 0.0;           // the metadata's frame rate, 0 when unknown
  int64_t episode_index = -1; // the dataset's episode index, for error messages
  std::string codec;          // the metadata's codec ("av1", "h264"), informative; "" when unknown
  bool exists = false;        // whether the file was on disk when the episode was read
};

struct Episode {
  int64_t index = 0;  // position in the dataset
  std::vector<EpisodeStream> streams;
  std::vector<EpisodeVideo> videos;  // cameras kept as video files, decoded on request
  EpisodeMetadata metadata;

  const EpisodeStream* find(const std::string& name) const;      // nullptr when absent
  const EpisodeVideo* find_video(const std::string& name) const;  // nullptr when absent
};

// Timestamps step_index / rate_hz (float64 seconds), or the step indices when rate_hz is 0.
void set_step_timestamps(EpisodeStream* stream, double rate_hz);

struct DatasetOptions {
  std::string split;     // RLDS: "train", "val", ...; "" = every split, in dataset_info.json's order
  double rate_hz = 0.0;  // for formats without timestamps or a stated rate; 0 = use step indices
  bool verify_checksums = true;  // RLDS: masked CRC32C of every record (length and data)
};

// A dataset on disk. Reading an episode is const and safe from several threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::string format() const = 0;  // "rlds", "calvin", "robomimic", ...
  virtual std::string path() const = 0;
  virtual int64_t num_episodes() const = 0;
  // Checks `index` against num_episodes(), then reads the episode through the format's reader.
  Status read_episode(int64_t index, Episode* out) const;

 protected:
  virtual Status read_episode_at(int64_t index, Episode* out) const = 0;  // index already checked
};

// Recognises the format of `path` (a directory or a file) and opens it. A format whose reader was not
// built gives an error that says so, never a silent skip.
Status open_dataset(const std::string& path, const DatasetOptions& options, std::unique_ptr<Dataset>* out);

// Readers compiled into this build: {"rlds": true, "calvin": true, "robomimic": false, ...}.
std::map<std::string, bool> dataset_readers();

// ---- video (FFmpeg; CMake option ROBOCACHE_WITH_VIDEO; without it these return an error that says so) ----

// Presentation times of the episode's frames, in episode seconds (pts - from_timestamp), ascending,
// float64 [F]. Only the episode's part of the file is read (its packets, not decoded). A missing file is
// an error naming the video's key and the path; a corrupt one names the file.
Status video_frame_timestamps(const EpisodeVideo& video, Array* out);

// The frames at episode times t[0..n) (any order, repeats allowed): for each, the frame whose presentation
// time is nearest, which must lie within tolerance_s (else an error naming the time, the nearest frame and
// the file), as uint8 RGB [n, H, W, 3]. Decoding seeks to the keyframe before each needed frame unless the
// decoder is already on its way there; it never decodes from the start of the file for every request.
// Several threads may decode at once (open decoders are pooled per file).
Status decode_video_frames(const EpisodeVideo& video, const double* t, int64_t n, double tolerance_s, Array* out);

// Process-wide counts since start: decoders opened, seeks, packets fed to decoders, frames decoded (for
// tests and benchmarks: how much work the requests cost). Empty without video decoding.
std::map<std::string, int64_t> video_decoder_counters();

// Describes a stand-alone video file as a one-episode video (from_timestamp 0, to the end), checking that
// it exists; `name` (may be empty) is used in errors.
Status open_video(const std::string& path, const std::string& name, EpisodeVideo* out);

// Decodes one encoded image (JPEG or PNG, found from its first bytes) into uint8 [H, W, C].
// `what` names the item in errors ("steps/observation/image_0[3] in <file>").
Status decode_image(const uint8_t* data, size_t size, const std::string& what, Array* out);

// Decodes every item of an encoded-image stream (kind Bytes, encoding "jpeg" or "png") into uint8
// [S, H, W, C] on the CPU thread pool; every image must have the first one's shape.
Status decode_images(const EpisodeStream& stream, Array* out);

}  // namespace robocache
