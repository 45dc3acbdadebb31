#include "loader/memory.h"

#include <atomic>
#include <cstdlib>
#include <new>

#ifdef ROBOCACHE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace robocache::loader {
namespace {

std::atomic<int64_t> g_pinned{0}, g_device{0}, g_host{0};
constexpr size_t kAlign = 256;

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

Status host_alloc(size_t bytes, bool pinned, HostBlock* out) {
  bytes = round_up(bytes == 0 ? 1 : bytes);
  HostBlock b;
  b.bytes = bytes;
  b.pinned = pinned;
  if (pinned) {
#ifdef ROBOCACHE_WITH_CUDA
    ROBOCACHE_CUDA_CHECK(cudaHostAlloc(&b.data, bytes, cudaHostAllocPortable));
    g_pinned += static_cast<int64_t>(bytes);
#else
    return runtime_error("pinned memory needs the CUDA backend");
#endif
  } else {
    b.data = std::aligned_alloc(kAlign, bytes);
    if (b.data == nullptr) return runtime_error("out of host memory allocating ", bytes, " bytes for the loader");
    g_host += static_cast<int64_t>(bytes);
  }
  *out = b;
  return Status::ok();
}

void host_free(HostBlock* b) {
  if (b->data == nullptr) return;
  if (b->pinned) {
#ifdef ROBOCACHE_WITH_CUDA
    cudaFreeHost(b->data);
    g_pinned -= static_cast<int64_t>(b->bytes);
#endif
  } else {
    std::free(b->data);
    g_host -= static_cast<int64_t>(b->bytes);
  }
  *b = HostBlock{};
}

Status device_alloc(int device, size_t bytes, void** out) {
#ifdef ROBOCACHE_WITH_CUDA
  core::CudaDeviceGuard guard(device);
  ROBOCACHE_CUDA_CHECK(guard.error());
  bytes = round_up(bytes == 0 ? 1 : bytes);
  ROBOCACHE_CUDA_CHECK(cudaMalloc(out, bytes));
  g_device += static_cast<int64_t>(bytes);
  return Status::ok();
#else
  (void)device, (void)bytes, (void)out;
  return runtime_error("device memory needs the CUDA backend");
#endif
}

void device_free(int device, void* p, size_t bytes) {
#ifdef ROBOCACHE_WITH_CUDA
  if (p == nullptr) return;
  core::CudaDeviceGuard guard(device);
  cudaFree(p);
  g_device -= static_cast<int64_t>(round_up(bytes == 0 ? 1 : bytes));
#else
  (void)device, (void)p, (void)bytes;
#endif
}

// ------------------------------------------------------------------------------------------ BufferPool

BufferPool::~BufferPool() { close(); }

Status BufferPool::acquire(Stream producer, OutputBuffer** out) {
  OutputBuffer* b = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      b = free_.back();
      free_.pop_back();
    }
  }
  if (b != nullptr) {
#ifdef ROBOCACHE_WITH_CUDA
    if (device_.is_cuda() && b->released_recorded) {
      // the reuse hazard: the consumer (or a discarding producer) may still have work on this buffer queued
      core::CudaDeviceGuard guard(device_.index);
      ROBOCACHE_CUDA_CHECK(guard.error());
      ROBOCACHE_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(producer), static_cast<cudaEvent_t>(b->released), 0));
    }
#else
    (void)producer;
#endif
    *out = b;
    return Status::ok();
  }
  auto fresh = std::make_unique<OutputBuffer>();
  fresh->bytes = bytes_;
  if (device_.is_cuda()) {
#ifdef ROBOCACHE_WITH_CUDA
    ROBOCACHE_RETURN_IF_ERROR(device_alloc(device_.index, bytes_, &fresh->data));
    core::CudaDeviceGuard guard(device_.index);
    cudaEvent_t ready = nullptr, released = nullptr;
    ROBOCACHE_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    ROBOCACHE_CUDA_CHECK(cudaEventCreateWithFlags(&released, cudaEventDisableTiming));
    fresh->ready = ready;
    fresh->released = released;
#else
    return runtime_error("a CUDA output buffer needs the CUDA backend");
#endif
  } else {
    HostBlock h;
    ROBOCACHE_RETURN_IF_ERROR(host_alloc(bytes_, false, &h));
    fresh->data = h.data;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
  }
  *out = fresh.release();
  return Status::ok();
}

void BufferPool::release(OutputBuffer* b, Stream last_user) {
  bool retire = false;
#ifdef ROBOCACHE_WITH_CUDA
  if (device_.is_cuda()) {
    core::CudaDeviceGuard guard(device_.index);
    b->released_recorded =
        cudaEventRecord(static_cast<cudaEvent_t>(b->released), static_cast<cudaStream_t>(last_user)) == cudaSuccess;
    if (!b->released_recorded) {
      // The stream is gone or broken, so nothing says when its work on this buffer ends. Waiting for the
      // whole device here would stall (under the pipeline's lock, a worker, or the GIL) every thread that
      // needs this one; the buffer is retired instead and close() frees it.
      cudaGetLastError();
      retire = true;
    }
  }
#else
  (void)last_user;
#endif
  bool destroy_now = false, close_again = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (retire) {
      retired_.push_back(b);
      close_again = closed_;  // close() has run: it frees what it finds retired
    } else if (closed_) {
      destroy_now = true;
      --count_;
    } else {
      free_.push_back(b);
    }
  }
  if (destroy_now) destroy(b);
  if (close_again) close();
}

void BufferPool::trim(size_t keep) {
  std::vector<OutputBuffer*> extra;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (free_.size() > keep) {
      extra.push_back(free_.front());
      free_.erase(free_.begin());
      --count_;
    }
  }
  for (OutputBuffer* b : extra) destroy(b);
}

void BufferPool::close() {
  std::vector<OutputBuffer*> all, retired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    all.swap(free_);
    retired.swap(retired_);
    count_ -= static_cast<int64_t>(all.size() + retired.size());
  }
  for (OutputBuffer* b : all) destroy(b);
  if (retired.empty()) return;
#ifdef ROBOCACHE_WITH_CUDA
  if (device_.is_cuda()) {
    core::CudaDeviceGuard guard(device_.index);
    cudaDeviceSynchronize();  // justified above: no event covers a retired buffer's last reader
    cudaGetLastError();
  }
#endif
  for (OutputBuffer* b : retired) destroy(b);
}

int64_t BufferPool::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return count_;
}

void BufferPool::destroy(OutputBuffer* b) {
  if (device_.is_cuda()) {
#ifdef ROBOCACHE_WITH_CUDA
    core::CudaDeviceGuard guard(device_.index);
    if (b->released_recorded) cudaEventSynchronize(static_cast<cudaEvent_t>(b->released));
    if (b->ready) cudaEventSynchronize(static_cast<cudaEvent_t>(b->ready));
    device_free(device_.index, b->data, b->bytes);
    if (b->ready) cudaEventDestroy(static_cast<cudaEvent_t>(b->ready));
    if (b->released) cudaEventDestroy(static_cast<cudaEvent_t>(b->released));
#endif
  } else {
    HostBlock h{b->data, (b->bytes + kAlign - 1) / kAlign * kAlign, false};
    host_free(&h);
  }
  delete b;
}

}  // namespace robocache::loader

namespace robocache {

LoaderMemory loader_memory() {
  LoaderMemory m;
  m.pinned_bytes = loader::g_pinned.load();
  m.device_bytes = loader::g_device.load();
  m.host_bytes = loader::g_host.load();
  return m;
}

}  // namespace robocache
