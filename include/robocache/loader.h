// The loader pipeline: training batches of fixed-length windows from an episode store, built by C++ worker
// threads and resampled onto one target rate on the CPU or on a CUDA GPU. No Python anywhere below this
// header; robocache.Loader (python/robocache/loader.py) computes the window order and drives it.
//
// Data path of one batch, on one worker thread:
//   store columns (memory-mapped .npy) -> the source rows covering each window, gathered (and images
//   decoded) into a staging buffer (pinned host memory for CUDA) -> CUDA: cudaMemcpyAsync to the device on
//   the worker's own stream -> resampling (fuse_multimodal), voxelization (voxelize_dense) and, for images
//   and voxel grids, the expansion of a batch's distinct frames / grids to [B, T, ...] into an output
//   buffer -> an event recorded for the batch.
// The consumer's `next` hands batches out in order; on CUDA the consumer's stream waits on the batch's
// event (the host does not). Memory: at most `prefetch * num_threads` batches are built or ready ahead of
// the consumer; a batch handed out keeps its output buffer until the consumer drops every tensor of it.
//
// Buffer reuse hazard: an output buffer is written again only after the work that the consumer queued on
// its stream (the stream passed to `next`) before dropping the batch is done. At release an event is
// recorded on that stream and the next producer stream waits on it. Tensors used on another stream must be
// ordered with the consumer stream by the user (as for any tensor from PyTorch's caching allocator).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "robocache/ops.h"
#include "robocache/status.h"
#include "robocache/tensor.h"
#include "robocache/voxelize.h"

namespace robocache {

// An element type as the store keeps it: NumPy's kind and size ('f' 4 = float32, 'i' 1 = int8,
// 'u' 2 = uint16, 'b' 1 = bool). Gathered (held / nearest) streams keep their stored type.
struct ScalarType {
  char kind = 'f';
  int bytes = 4;
  bool operator==(const ScalarType& o) const { return kind == o.kind && bytes == o.bytes; }
};

struct LoaderStream {
  std::string name;
  // Floating-point tensor streams: any method. Integer / bool tensors, JPEG / PNG images and point clouds:
  // Hold or Nearest (they are gathered, never blended).
  InterpMethod method = InterpMethod::Linear;
  int64_t quat_channel = -1;  // as ResampleOptions::quat_channel (Slerp)
  // Point-cloud streams: each target's cloud voxelized onto this dense grid (required for point clouds).
  bool voxelize = false;
  VoxelGridSpec grid;
  VoxelMode voxel_mode = VoxelMode::Occupancy;
};

struct LoaderOptions {
  std::string store;  // the store directory (manifest.json, streams/NNN/*.npy)
  std::vector<LoaderStream> streams;
  int64_t batch_size = 1;
  int64_t steps = 1;       // T: targets per window, at start + k / target_hz
  double target_hz = 1.0;
  Device device;           // cpu, or cuda:N
  int num_threads = 1;     // worker threads
  int prefetch = 2;        // batches built ahead per worker thread
  // Hold: a sample up to this many seconds after a target counts as at the target (recorded timestamps
  // carry rounding: float32 seconds, PTS rounded to ns), so a stream sampled on the target grid is not
  // read one sample late. >= 0; 0 is the exact "last sample at or before the target".
  double tolerance_s = 1e-4;
  // Per episode: the time of its first sample over the selected streams (the windows' origin), in the
  // streams' unit: origin_ns for int64-nanosecond stores, origin_s for float64-second stores.
  std::vector<int64_t> origin_ns;
  std::vector<double> origin_s;
};

// One tensor of a batch: a stream's values [B, T, ...] or its pad mask [B, T] (bool).
struct BatchTensor {
  std::string name;  // the stream
  bool is_mask = false;
  ScalarType type;
  std::vector<int64_t> shape;
  void* data = nullptr;
  Device device;
};

struct LoaderBatch {
  int64_t index = 0;  // batch number within the run
  std::vector<BatchTensor> tensors;
  // Holds the batch's output buffer. When the last copy goes, the buffer returns to the pipeline (after
  // the consumer stream's work, see above), or is freed if the pipeline is gone.
  std::shared_ptr<void> owner;
};

struct LoaderStats {
  int64_t batches_built = 0;     // by this pipeline, since it was made
  int64_t output_buffers = 0;    // output buffers this pipeline owns (free, in flight or handed out)
  int64_t output_buffer_bytes = 0;  // the size of each
};

// Bytes currently allocated by every loader pipeline of the process (buffers handed out included).
struct LoaderMemory {
  int64_t pinned_bytes = 0;  // cudaHostAlloc staging
  int64_t device_bytes = 0;  // cudaMalloc outputs and scratch
  int64_t host_bytes = 0;    // ordinary host memory: CPU outputs and staging
};
LoaderMemory loader_memory();

class LoaderPipeline {
 public:
  // Opens the store's selected streams (memory maps, checks every column's header against the manifest),
  // checks the options; no thread starts before the first `start`.
  static Status create(const LoaderOptions& options, std::unique_ptr<LoaderPipeline>* out);
  ~LoaderPipeline();  // cancels the run, joins the workers; batches already handed out stay valid

  // Begins a run over n windows: window i is (episodes[i], starts[i] seconds after that episode's origin),
  // batched in order by batch_size. Cancels a run in progress. `run` identifies it for next / cancel.
  Status start(const int64_t* episodes, const double* starts, int64_t n, uint64_t* run);
  // The run's next batch, in order; blocks until it is built. `consumer` (a cudaStream_t, CUDA only) is
  // made to wait for the batch. A worker's error is returned here, for the batch it happened in, and ends
  // the run. Past the last batch, or for a run that was cancelled or replaced: an error.
  Status next(uint64_t run, Stream consumer, LoaderBatch* out);
  void cancel(uint64_t run);  // stops building for `run`; returns once no worker is on it
  int64_t num_batches(uint64_t run) const;
  // Drops the store's pages from this process and from the page cache (posix_fadvise DONTNEED after a
  // write-back), so the next reads come from the disk: for cold-read benchmarks.
  void evict_page_cache() const;
  LoaderStats stats() const;

  struct Impl;

 private:
  explicit LoaderPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace robocache
