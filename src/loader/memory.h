// Internal: the loader's memory. Host blocks (pinned with cudaHostAlloc for CUDA staging, else ordinary),
// device blocks, and the pool of batch output buffers with the events that order their reuse. Every byte
// is counted in loader_memory().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "robocache/loader.h"

namespace robocache::loader {

struct HostBlock {
  void* data = nullptr;
  size_t bytes = 0;
  bool pinned = false;
};
Status host_alloc(size_t bytes, bool pinned, HostBlock* out);
void host_free(HostBlock* block);
Status device_alloc(int device, size_t bytes, void** out);
void device_free(int device, void* p, size_t bytes);

// One batch's output: every stream's values and masks, in one allocation on the pipeline's device.
struct OutputBuffer {
  void* data = nullptr;
  size_t bytes = 0;
  void* ready = nullptr;     // cudaEvent_t: recorded by the producer after the batch's last write
  void* released = nullptr;  // cudaEvent_t: recorded on the consumer's stream when the batch was dropped
  bool released_recorded = false;
};

// Output buffers of one size. acquire() reuses a free one (the producer's stream first waits for its
// `released` event) or allocates; release() records `released` on the stream that used the buffer last
// and puts it back. Shared by the pipeline and by every batch handed out, so a batch may outlive the
// pipeline: after close(), a released buffer is freed (once its event completed).
//
// Blocking: acquire() and release() never wait for the GPU (no event, stream or device synchronisation),
// so the pipeline may call them from worker threads and under its own lock. Only trim(), close() and a
// release() after close() wait (for the buffers' own events, then cudaFree); the pipeline calls those
// from the consumer's thread with no lock of its own held. A buffer whose `released` event could not be
// recorded (the consumer's stream broken or gone) is never reused: it is retired, and freed by close()
// after a device synchronisation, the one place where nothing narrower tells when its readers are done.
class BufferPool {
 public:
  BufferPool(Device device, size_t bytes) : device_(device), bytes_(bytes) {}
  ~BufferPool();
  Status acquire(Stream producer, OutputBuffer** out);
  void release(OutputBuffer* buffer, Stream last_user);
  void trim(size_t keep);  // frees free buffers beyond `keep` (waits for their events)
  void close();            // frees every free buffer; later releases free theirs
  int64_t count() const;
  size_t bytes() const { return bytes_; }

 private:
  void destroy(OutputBuffer* b);
  const Device device_;
  const size_t bytes_;
  mutable std::mutex mu_;
  std::vector<OutputBuffer*> free_;
  std::vector<OutputBuffer*> retired_;  // `released` not recorded: freed by close() after a device sync
  int64_t count_ = 0;
  bool closed_ = false;
};

}  // namespace robocache::loader
