// The loader pipeline (include/robocache/loader.h): worker threads, staging, resampling, handoff.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <thread>

#include "core/parallel.h"
#include "loader/gather.h"
#include "loader/memory.h"
#include "loader/store_reader.h"
#include "ops/common/interp.h"
#include "robocache/episode.h"
#include "robocache/loader.h"
#include "robocache/voxelize.h"

#ifdef ROBOCACHE_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace robocache {
namespace loader {
namespace {

constexpr size_t kAlign = 256;
size_t align_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// How a stream becomes its [B, T, ...] output.
enum class PlanKind {
  Resample,  // floating-point tensor: gathered source rows, then fuse_multimodal (CPU or CUDA)
  Gather,    // integer / bool tensor: the held (nearest) sample's row, copied
  Image,     // JPEG / PNG: the held (nearest) frame, decoded on the worker
  Voxel,     // point cloud: the held (nearest) cloud, voxelized (voxelize_dense, CPU or CUDA)
};

struct Plan {
  const StoreStream* s = nullptr;
  LoaderStream spec;
  PlanKind kind = PlanKind::Resample;
  DType dtype = DType::Float32;    // Resample: the data's; Voxel: the points'
  ScalarType out_type;             // element type of the output
  std::vector<int64_t> item_shape; // output per target, after [B, T]
  size_t item_bytes = 0;           // bytes of one target's output
  int64_t max_window = 1;          // Resample: a bound on source samples per window (a staging size hint)
  int64_t max_points = 0;          // Voxel: the largest cloud of the stream
  int64_t features = 0;            // Voxel: feature channels fed to the op (0: occupancy / count)
};

Status float_dtype(const ScalarType& t, DType* out) {
  if (t.kind == 'f' && t.bytes == 2) *out = DType::Float16;
  else if (t.kind == 'f' && t.bytes == 4) *out = DType::Float32;
  else if (t.kind == 'f' && t.bytes == 8) *out = DType::Float64;
  else return type_error("not a floating-point type");
  return Status::ok();
}

// Where one batch's tensors lie in its output buffer. Masks and gathered streams first (the "direct" part,
// written by the host: on CUDA uploaded from staging in one copy), then the values computed by the ops.
struct Layout {
  std::vector<size_t> value, mask;
  size_t direct = 0, total = 0;
};

// Per worker: reusable host vectors and a ring of two staging slots, so that the host fills one while
// the GPU still copies the other.
struct Staging {
  HostBlock host;  // pinned for CUDA
  void* scratch = nullptr;  // device: the uploaded inputs and the voxel grids
  size_t scratch_bytes = 0;
  void* done = nullptr;  // cudaEvent_t after the last work that reads this slot
  bool pending = false;
};

struct Worker {
  std::thread thread;
  void* stream = nullptr;  // cudaStream_t
  Staging ring[2];
  int next = 0;
  HostBlock cpu_inputs;                    // CPU device: gathered resampling inputs
  // Staging outgrown by a larger batch: kept until the pipeline ends, because cudaFreeHost / cudaFree wait
  // for the whole device, which a worker must not do (it would stall on the consumer's training step).
  std::vector<HostBlock> old_host;
  std::vector<std::pair<void*, size_t>> old_scratch;
  // per batch
  std::vector<int64_t> lo, len;  // [plans * rows]
  std::vector<double> rel;       // one row's source times relative to its window start
  std::vector<int64_t> idx;      // [rows * T] global rows of an index stream
};

struct Ready {
  Status status;
  OutputBuffer* buf = nullptr;
  int64_t rows = 0;
  void* stream = nullptr;  // the producer's
};

}  // namespace
}  // namespace loader

using loader::Plan;
using loader::PlanKind;

struct LoaderPipeline::Impl {
  LoaderOptions opt;
  std::unique_ptr<loader::StoreReader> store;
  std::vector<Plan> plans;
  std::shared_ptr<loader::BufferPool> pool;
  std::vector<double> tgt;  // [T] seconds after the window start
  double span_s = 0;
  int64_t span_ns = 0;
  bool ns = false;
  bool cuda = false;
  int capacity = 1;
  // Staging sizes that hold any full batch (from the plans' bounds): a slot is allocated this large at once,
  // so its size does not depend on which batches it happened to build first.
  size_t bound_host = 0, bound_scratch = 0;

  mutable std::mutex mu;
  std::condition_variable work_cv, ready_cv, idle_cv;
  uint64_t run_id = 0;
  std::atomic<uint64_t> live{0};  // the run workers build for, 0 for none: read without the lock to stop early
  bool active = false, stop = false;
  std::vector<int64_t> episodes;
  std::vector<double> starts;
  int64_t n = 0, num_batches = 0, next_build = 0, next_consume = 0, in_flight = 0, building = 0;
  std::map<int64_t, loader::Ready> ready;
  std::vector<std::unique_ptr<loader::Worker>> workers;
  std::atomic<int64_t> built{0};

  ~Impl();
  bool host_written(PlanKind kind) const;
  // Hold streams' sample times are moved earlier by the tolerance (so a sample up to tolerance_s after a
  // target is taken at it), and so is the start of their pad mask; other methods keep exact times.
  double hold_shift(const Plan& pl) const { return pl.spec.method == InterpMethod::Hold ? opt.tolerance_s : 0.0; }
  Status decode_frame(const Plan& pl, int64_t row, uint8_t* to) const;
  Status init();
  loader::Layout layout(int64_t rows) const;
  Status spawn_workers();
  void worker_main(loader::Worker* w);
  Status build(loader::Worker* w, int64_t batch, uint64_t run, loader::Ready* out);
  std::vector<loader::Ready> take_ready_locked();
  std::vector<loader::Ready> cancel_locked(std::unique_lock<std::mutex>& lock);
  void release_all(std::vector<loader::Ready>& dropped);
};

namespace {

using namespace loader;

// The window of row j of stream p: the sample at or before its start, the one at or after its end, and
// everything between (as the Python reference, loader.py's former _read); also every sample up to `late_s`
// after the end (hold's tolerance: a sample that late counts as at the last target) and every repeat of
// a time there (the later of equal times is the one taken).
struct Window {
  int64_t a = 0, b = 0, lo = 0, hi = 0;
  int64_t t0_ns = 0;
  double t0_s = 0;
};

Window find_window(const StoreStream& s, int64_t e, double start, bool ns, const LoaderOptions& o, double span_s,
                   int64_t span_ns, double late_s) {
  Window w;
  w.a = s.episodes[e];
  w.b = s.episodes[e + 1];
  if (ns) {
    const auto* ts = static_cast<const int64_t*>(s.timestamps);
    w.t0_ns = o.origin_ns[e] + static_cast<int64_t>(std::nearbyint(start * 1e9));
    const int64_t t1 = w.t0_ns + span_ns;
    const int64_t ub = std::upper_bound(ts + w.a, ts + w.b, w.t0_ns) - ts;
    const int64_t lb = std::lower_bound(ts + w.a, ts + w.b, t1) - ts;
    // + 1 ns: the loader compares times in float64 seconds, which may round a sample this close either way
    const int64_t late = std::upper_bound(ts + w.a, ts + w.b, t1 + static_cast<int64_t>(std::ceil(late_s * 1e9)) + 1) - ts;
    w.lo = std::max(ub - 1, w.a);
    w.hi = std::max(std::max(std::min(lb + 1, w.b), late), w.lo + 1);
  } else {
    const auto* ts = static_cast<const double*>(s.timestamps);
    w.t0_s = o.origin_s[e] + start;
    const double t1 = w.t0_s + span_s;
    const int64_t ub = std::upper_bound(ts + w.a, ts + w.b, w.t0_s) - ts;
    const int64_t lb = std::lower_bound(ts + w.a, ts + w.b, t1) - ts;
    const int64_t late = std::upper_bound(ts + w.a, ts + w.b, t1 + late_s + 1e-9) - ts;
    w.lo = std::max(ub - 1, w.a);
    w.hi = std::max(std::max(std::min(lb + 1, w.b), late), w.lo + 1);
  }
  return w;
}

// Seconds after the window start of sample r.
inline double rel_time(const StoreStream& s, const Window& w, int64_t r, bool ns) {
  if (ns) return static_cast<double>(static_cast<const int64_t*>(s.timestamps)[r] - w.t0_ns) * 1e-9;
  return (static_cast<const double*>(s.timestamps)[r] - w.t0_s) * 1.0;
}

// A bound on the samples of one window: the most samples in any closed interval of `span`, plus the one
// before and the one after (a staging size hint only; a larger window grows the staging).
int64_t window_bound(const StoreStream& s, int64_t num_episodes, bool ns, double span_s, int64_t span_ns) {
  int64_t best = 1;
  for (int64_t e = 0; e < num_episodes; ++e) {
    const int64_t a = s.episodes[e], b = s.episodes[e + 1];
    int64_t j = a;
    for (int64_t i = a; i < b; ++i) {
      if (j < i) j = i;
      if (ns) {
        const auto* ts = static_cast<const int64_t*>(s.timestamps);
        while (j + 1 < b && ts[j + 1] - ts[i] <= span_ns + 1) ++j;
      } else {
        const auto* ts = static_cast<const double*>(s.timestamps);
        while (j + 1 < b && ts[j + 1] - ts[i] <= span_s * (1 + 1e-12) + 1e-12) ++j;
      }
      best = std::max(best, std::min(j - i + 3, b - a));
    }
  }
  return best;
}

Status cancelled() { return runtime_error("cancelled"); }

}  // namespace

// ------------------------------------------------------------------------------------------ setup

Status LoaderPipeline::create(const LoaderOptions& options, std::unique_ptr<LoaderPipeline>* out) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  ROBOCACHE_RETURN_IF_ERROR(impl->init());
  out->reset(new LoaderPipeline(std::move(impl)));
  return Status::ok();
}

LoaderPipeline::LoaderPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LoaderPipeline::~LoaderPipeline() = default;

Status LoaderPipeline::Impl::init() {
  const LoaderOptions& o = opt;
  if (o.batch_size < 1) return invalid_argument("batch_size must be >= 1, got ", o.batch_size);
  if (o.steps < 1) return invalid_argument("steps (T) must be >= 1, got ", o.steps);
  if (!(o.target_hz > 0) || !std::isfinite(o.target_hz))
    return invalid_argument("target_hz must be a finite number > 0, got ", o.target_hz);
  if (o.num_threads < 1) return invalid_argument("num_threads must be >= 1, got ", o.num_threads);
  if (o.prefetch < 1) return invalid_argument("prefetch must be >= 1, got ", o.prefetch);
  if (!(o.tolerance_s >= 0) || !std::isfinite(o.tolerance_s))
    return invalid_argument("tolerance_s must be a finite number of seconds >= 0, got ", o.tolerance_s);
  if (o.streams.empty()) return invalid_argument("streams is empty: name at least one stream of the store");
  cuda = o.device.is_cuda();
#ifndef ROBOCACHE_WITH_CUDA
  if (cuda) return invalid_argument("device='", o.device.str(), "': this RoboCache build has no CUDA backend");
#else
  if (cuda) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || o.device.index < 0 || o.device.index >= count) {
      cudaGetLastError();
      return invalid_argument("device='", o.device.str(), "': CUDA sees ", count, " GPU(s)");
    }
  }
#endif
  std::vector<std::string> names;
  for (const LoaderStream& s : o.streams) {
    if (std::find(names.begin(), names.end(), s.name) != names.end())
      return invalid_argument("streams names '", s.name, "' twice");
    names.push_back(s.name);
  }
  ROBOCACHE_RETURN_IF_ERROR(StoreReader::open(o.store, names, &store));
  const int64_t E = store->num_episodes();
  ns = store->streams()[0].ns;
  for (const StoreStream& s : store->streams()) {
    if (s.ns != ns) return invalid_argument("streams mix time units (s and ns); load them with separate loaders");
  }
  if (ns ? static_cast<int64_t>(o.origin_ns.size()) != E : static_cast<int64_t>(o.origin_s.size()) != E)
    return invalid_argument("origin must have one entry per episode (", E, "), got ",
                            ns ? o.origin_ns.size() : o.origin_s.size());
  const int64_t T = o.steps;
  tgt.resize(T);
  for (int64_t k = 0; k < T; ++k) tgt[k] = static_cast<double>(k) / o.target_hz;
  span_s = static_cast<double>(T - 1) / o.target_hz;
  span_ns = static_cast<int64_t>(std::nearbyint(span_s * 1e9));

  // a plan's staging hint: its windows reach hold's tolerance (and 2 ns of rounding) past the last target
  const auto bound = [&](const Plan& p) {
    const double late = hold_shift(p);
    return window_bound(*p.s, E, ns, span_s + late + 2e-9, span_ns + static_cast<int64_t>(std::ceil(late * 1e9)) + 2);
  };
  for (size_t i = 0; i < o.streams.size(); ++i) {
    Plan p;
    p.s = &store->streams()[i];
    p.spec = o.streams[i];
    const StoreStream& s = *p.s;
    const std::string& n = s.name;
    const bool index_method = p.spec.method == InterpMethod::Hold || p.spec.method == InterpMethod::Nearest;
    if (s.kind == StoreKind::Tensor && s.type.kind == 'f') {
      p.kind = PlanKind::Resample;
      ROBOCACHE_RETURN_IF_ERROR(float_dtype(s.type, &p.dtype));
      p.out_type = s.type;
      p.item_shape = s.shape;
      if (p.spec.method == InterpMethod::Slerp) {
        const int64_t q = p.spec.quat_channel;
        if ((q < 0 && s.width != 4) || (q >= 0 && q > s.width - 4))
          return invalid_argument("stream '", n, "' has ", s.width, " channels; slerp needs 4 or a quat_channel in [0, ",
                                  s.width - 4, "], got ", q);
      }
      p.max_window = bound(p);
    } else if (p.spec.voxelize && s.kind != StoreKind::PointCloud) {
      return invalid_argument("voxelize['", n, "']: stream '", n, "' does not hold point clouds");
    } else if (!index_method) {
      return invalid_argument("methods['", n, "'] = '", method_name(p.spec.method), "' cannot interpolate ",
                              s.kind == StoreKind::Tensor ? "integer samples" : "these samples", " of stream '", n,
                              "'; use 'hold' or 'nearest'");
    } else if (s.kind == StoreKind::Tensor) {
      p.kind = PlanKind::Gather;
      p.out_type = s.type;
      p.item_shape = s.shape;
    } else if (s.kind == StoreKind::Bytes) {
      if (s.encoding != "jpeg" && s.encoding != "png")
        return invalid_argument("stream '", n, "' holds ", s.encoding, " bytes; the loader yields tensors, so only "
                                "tensor streams, JPEG/PNG image streams and point clouds can be loaded");
      p.kind = PlanKind::Image;
      p.out_type = {'u', 1};
      if (s.num_samples == 0) return invalid_argument("stream '", n, "' has no images");
      Array first;
      ROBOCACHE_RETURN_IF_ERROR(decode_image(s.data + s.items[0], static_cast<size_t>(s.items[1] - s.items[0]),
                                             n + "[0] in store " + o.store, &first));
      p.item_shape = first.shape;
      p.max_window = bound(p);
    } else {  // point cloud
      if (!p.spec.voxelize)
        return invalid_argument("stream '", n, "' holds point clouds of varying size; voxelize it (voxelize={'", n,
                                "': dict(voxel_size=..., origin=..., grid_size=..., mode=...)}) to get a tensor");
      if (s.type.kind != 'f' || (s.type.bytes != 4 && s.type.bytes != 8))
        return type_error("stream '", n, "': point clouds must be float32 or float64, got '", s.type.kind, s.type.bytes, "'");
      if (s.width < 3) return invalid_argument("stream '", n, "': points have ", s.width, " values, need x, y, z first");
      p.kind = PlanKind::Voxel;
      ROBOCACHE_RETURN_IF_ERROR(float_dtype(s.type, &p.dtype));
      const VoxelGridSpec& g = p.spec.grid;
      for (int d = 0; d < 3; ++d) {
        if (!(g.voxel_size[d] > 0) || !std::isfinite(g.voxel_size[d]) || !std::isfinite(g.origin[d]))
          return invalid_argument("voxelize['", n, "']: voxel_size must be finite and > 0 and origin finite");
        if (g.grid_size[d] < 1) return invalid_argument("voxelize['", n, "']: grid_size must be >= 1 per axis");
        p.item_shape.push_back(g.grid_size[d]);
      }
      const VoxelMode m = p.spec.voxel_mode;
      if (m == VoxelMode::Occupancy) {
        p.out_type = {'b', 1};
      } else if (m == VoxelMode::Count) {
        p.out_type = {'i', 4};
      } else {
        p.features = s.width - 3;
        if (p.features < 1)
          return invalid_argument("voxelize['", n, "']: mode '", voxel_mode_name(m), "' reduces features, but the "
                                  "points of stream '", n, "' have only x, y, z");
        p.out_type = s.type;
        p.item_shape.push_back(p.features);
      }
      for (int64_t r = 0; r < s.num_samples; ++r) p.max_points = std::max(p.max_points, s.items[r + 1] - s.items[r]);
      p.max_window = bound(p);
    }
    p.item_bytes = static_cast<size_t>(p.out_type.bytes);
    for (int64_t d : p.item_shape) p.item_bytes *= static_cast<size_t>(d);
    plans.push_back(std::move(p));
  }
  capacity = o.prefetch * o.num_threads;
  pool = std::make_shared<BufferPool>(o.device, layout(o.batch_size).total);
  // the same sizes as build() computes, with every window at its bound
  const int64_t B = o.batch_size;
  size_t upload = align_up(static_cast<size_t>(T) * 8), grids = 0;
  for (const Plan& p : plans) {
    const StoreStream& s = *p.s;
    if (p.kind == PlanKind::Resample) {
      const int64_t S = p.max_window;
      upload = align_up(upload + static_cast<size_t>(B * S * s.width) * s.type.bytes);
      upload = align_up(upload + static_cast<size_t>(B * S) * 8);
      upload = align_up(upload + static_cast<size_t>(B) * 8);
    } else if (p.kind == PlanKind::Voxel && cuda) {
      const int64_t U = std::min(B * std::min(T, p.max_window), s.num_samples);
      upload = align_up(upload + static_cast<size_t>(U * std::max<int64_t>(p.max_points, 1) * s.width) * s.type.bytes);
      upload = align_up(upload + static_cast<size_t>(U) * 8);
      upload = align_up(upload + static_cast<size_t>(B * T) * 4);
      grids = align_up(grids + static_cast<size_t>(U) * p.item_bytes);
    } else if (p.kind == PlanKind::Image && cuda) {
      const int64_t U = std::min(B * std::min(T, p.max_window), s.num_samples);
      upload = align_up(upload + static_cast<size_t>(U) * p.item_bytes);
      upload = align_up(upload + static_cast<size_t>(B * T) * 4);
    }
  }
  bound_host = cuda ? layout(B).direct + upload : upload;
  bound_scratch = upload + grids;
  return Status::ok();
}

// Streams the host writes into the batch directly: gathered tensors, and decoded images on the CPU. On
// CUDA a batch's distinct frames are uploaded once and expanded to [B, T] on the device (a camera held
// onto a faster clock repeats each frame several times), as the voxel grids of distinct clouds are.
bool LoaderPipeline::Impl::host_written(PlanKind kind) const {
  return kind == PlanKind::Gather || (kind == PlanKind::Image && !cuda);
}

loader::Layout LoaderPipeline::Impl::layout(int64_t rows) const {
  Layout L;
  const size_t P = plans.size();
  L.value.resize(P);
  L.mask.resize(P);
  const size_t BT = static_cast<size_t>(rows * opt.steps);
  size_t off = 0;
  for (size_t p = 0; p < P; ++p) {
    L.mask[p] = off;
    off = align_up(off + BT);
  }
  for (size_t p = 0; p < P; ++p) {
    if (host_written(plans[p].kind)) {
      L.value[p] = off;
      off = align_up(off + BT * plans[p].item_bytes);
    }
  }
  L.direct = off;
  for (size_t p = 0; p < P; ++p) {
    if (!host_written(plans[p].kind)) {
      L.value[p] = off;
      off = align_up(off + BT * plans[p].item_bytes);
    }
  }
  L.total = off;
  return L;
}

// ------------------------------------------------------------------------------------------ threads

Status LoaderPipeline::Impl::spawn_workers() {
  for (int i = 0; i < opt.num_threads; ++i) {
    auto w = std::make_unique<Worker>();
#ifdef ROBOCACHE_WITH_CUDA
    if (cuda) {
      core::CudaDeviceGuard guard(opt.device.index);
      ROBOCACHE_CUDA_CHECK(guard.error());
      cudaStream_t s = nullptr;
      ROBOCACHE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      w->stream = s;
      for (Staging& st : w->ring) {
        cudaEvent_t e = nullptr;
        ROBOCACHE_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        st.done = e;
      }
    }
#endif
    Worker* raw = w.get();
    workers.push_back(std::move(w));
    raw->thread = std::thread([this, raw] { worker_main(raw); });
  }
  return Status::ok();
}

LoaderPipeline::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    active = false;
    live = 0;
  }
  work_cv.notify_all();
  ready_cv.notify_all();
  for (auto& w : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  std::vector<loader::Ready> dropped = take_ready_locked();  // no other thread is left
  release_all(dropped);
  // Each worker's own stream is waited for before its staging is freed (the frees then find nothing of
  // the loader's left running).
  for (auto& w : workers) {
#ifdef ROBOCACHE_WITH_CUDA
    if (cuda) {
      core::CudaDeviceGuard guard(opt.device.index);
      cudaStreamSynchronize(static_cast<cudaStream_t>(w->stream));
      for (Staging& st : w->ring) {
        host_free(&st.host);
        device_free(opt.device.index, st.scratch, st.scratch_bytes);
        cudaEventDestroy(static_cast<cudaEvent_t>(st.done));
      }
      for (HostBlock& h : w->old_host) host_free(&h);
      for (auto& [p, bytes] : w->old_scratch) device_free(opt.device.index, p, bytes);
      cudaStreamDestroy(static_cast<cudaStream_t>(w->stream));
    }
#endif
    host_free(&w->cpu_inputs);
  }
  if (pool) pool->close();
}

// The built batches nobody will take, for release_all() once `mu` is unlocked: no CUDA call is made
// under `mu` that could wait, and none is made under it at all on these paths.
std::vector<loader::Ready> LoaderPipeline::Impl::take_ready_locked() {
  std::vector<loader::Ready> out;
  out.reserve(ready.size());
  for (auto& [i, r] : ready) out.push_back(r);
  ready.clear();
  return out;
}

void LoaderPipeline::Impl::release_all(std::vector<loader::Ready>& dropped) {
  for (loader::Ready& r : dropped) {
    if (r.buf != nullptr) pool->release(r.buf, r.stream);
    r.buf = nullptr;
  }
  dropped.clear();
}

std::vector<loader::Ready> LoaderPipeline::Impl::cancel_locked(std::unique_lock<std::mutex>& lock) {
  active = false;
  live = 0;
  std::vector<loader::Ready> dropped = take_ready_locked();
  ready_cv.notify_all();  // a consumer waiting for this run returns (with an error)
  // predicate-guarded: a worker decrements `building` and notifies under `mu`, so no wakeup is lost
  idle_cv.wait(lock, [&] { return building == 0; });
  return dropped;
}

void LoaderPipeline::Impl::worker_main(Worker* w) {
#ifdef ROBOCACHE_WITH_CUDA
  if (cuda) cudaSetDevice(opt.device.index);
#endif
  core::InlineScope inline_ops;  // this thread is one of the loader's parallel builders
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    work_cv.wait(lock, [&] { return stop || (active && next_build < num_batches && in_flight < capacity); });
    if (stop) return;
    const int64_t i = next_build++;
    const uint64_t run = run_id;
    ++in_flight;
    ++building;
    lock.unlock();
    Ready r;
    try {
      r.status = build(w, i, run, &r);
    } catch (const std::bad_alloc&) {
      r.status = runtime_error("out of memory building batch ", i);
    } catch (const std::exception& e) {
      r.status = runtime_error("building batch ", i, ": ", e.what());
    }
    r.stream = w->stream;
    ++built;  // before the batch is published: a consumer that took it sees it counted
    bool keep = false;
    {
      // decided under `mu`, but a stale batch's buffer is released after it: release() records an event
      // (a driver call), and no thread waiting for `mu` should wait for the driver too
      std::lock_guard<std::mutex> guard(mu);
      keep = run == run_id && active;
      if (keep) {
        ready[i] = r;
        ready_cv.notify_all();
      }
    }
    if (!keep && r.buf != nullptr) pool->release(r.buf, r.stream);
    lock.lock();
    --building;
    if (building == 0) idle_cv.notify_all();
  }
}

// ------------------------------------------------------------------------------------------ one batch

// Decodes image `row` of an Image plan's stream into `to` (item_bytes), or names the image and the store.
Status LoaderPipeline::Impl::decode_frame(const Plan& pl, int64_t row, uint8_t* to) const {
  const StoreStream& s = *pl.s;
  Array img;
  const std::string what = s.name + "[" + std::to_string(row) + "] in store " + opt.store;
  ROBOCACHE_RETURN_IF_ERROR(decode_image(s.data + s.items[row], static_cast<size_t>(s.items[row + 1] - s.items[row]),
                                         what, &img));
  if (img.shape != pl.item_shape) {
    Array ref{DType::UInt8, pl.item_shape, nullptr};
    return invalid_argument(what, " decodes to ", img.shape_str(), " but the stream's first image is ",
                            ref.shape_str(), "; the loader needs one image shape per stream");
  }
  std::memcpy(to, img.data(), pl.item_bytes);
  return Status::ok();
}

Status LoaderPipeline::Impl::build(Worker* w, int64_t batch, uint64_t run, Ready* out) {
  const int64_t B0 = opt.batch_size, T = opt.steps;
  const int64_t first = batch * B0;
  const int64_t rows = std::min(B0, n - first);
  out->rows = rows;
  const int64_t* eps = episodes.data() + first;
  const double* sts = starts.data() + first;
  const size_t P = plans.size();
  const Layout L = layout(rows);

  // 1. Every stream's window in every row.
  std::vector<Window> win(P * rows);
  for (size_t p = 0; p < P; ++p) {
    for (int64_t j = 0; j < rows; ++j) win[p * rows + j] = find_window(*plans[p].s, eps[j], sts[j], ns, opt, span_s, span_ns,
                                                                   hold_shift(plans[p]));
  }

  // 2. Sizes of the inputs the ops read: per Resample plan data [rows, S, D], times [rows, S], lengths
  //    [rows]; tgt [T]; per Voxel plan (CUDA) the distinct clouds [U, N, W], lengths [U], index [rows*T];
  //    per Image plan (CUDA) the distinct frames [U, H, W, C], index [rows*T].
  struct Inputs {
    int64_t S = 0;
    size_t data = 0, times = 0, lengths = 0;  // offsets in the inputs block
    // Voxel, Image (CUDA)
    std::vector<int64_t> uniq;   // distinct global rows
    std::vector<int32_t> which;  // [rows * T] position in uniq
    int64_t N = 0;
    size_t distinct = 0, clens = 0, index = 0, grids = 0;  // distinct: the clouds [U, N, W] or frames [U, ...]
  };
  std::vector<Inputs> in(P);
  std::vector<std::vector<int64_t>> rows_of(P);  // index plans: [rows * T] global row of each target
  size_t upload = 0;
  const size_t tgt_off = 0;
  upload = align_up(static_cast<size_t>(T) * 8);
  for (size_t p = 0; p < P; ++p) {
    const Plan& pl = plans[p];
    const StoreStream& s = *pl.s;
    if (pl.kind == PlanKind::Resample) {
      int64_t S = 1;
      for (int64_t j = 0; j < rows; ++j) S = std::max(S, win[p * rows + j].hi - win[p * rows + j].lo);
      in[p].S = S;
      in[p].data = upload;
      upload = align_up(upload + static_cast<size_t>(rows * S * s.width) * s.type.bytes);
      in[p].times = upload;
      upload = align_up(upload + static_cast<size_t>(rows * S) * 8);
      in[p].lengths = upload;
      upload = align_up(upload + static_cast<size_t>(rows) * 8);
      continue;
    }
    // index streams: the held / nearest sample of every target, as the ops pick it (make_blend, clamp)
    std::vector<int64_t>& idx = rows_of[p];
    idx.resize(static_cast<size_t>(rows * T));
    std::vector<double>& rel = w->rel;
    for (int64_t j = 0; j < rows; ++j) {
      const Window& wd = win[p * rows + j];
      const int64_t len = wd.hi - wd.lo;
      rel.resize(static_cast<size_t>(len));
      const double shift = hold_shift(pl);
      for (int64_t i = 0; i < len; ++i) rel[i] = rel_time(s, wd, wd.lo + i, ns) - shift;
      const ops::TimeRow<double> row{rel.data(), 1};
      for (int64_t k = 0; k < T; ++k) {
        const int64_t ub = ops::upper_bound(row, int64_t{0}, len, tgt[k]);
        const ops::Blend bl = ops::make_blend(row, len, tgt[k], ub, pl.spec.method, Boundary::Clamp);
        idx[j * T + k] = wd.lo + bl.i0;
      }
    }
    if (pl.kind == PlanKind::Voxel || (pl.kind == PlanKind::Image && cuda)) {
      Inputs& v = in[p];
      v.uniq = idx;
      std::sort(v.uniq.begin(), v.uniq.end());
      v.uniq.erase(std::unique(v.uniq.begin(), v.uniq.end()), v.uniq.end());
      v.which.resize(idx.size());
      for (size_t t = 0; t < idx.size(); ++t)
        v.which[t] = static_cast<int32_t>(std::lower_bound(v.uniq.begin(), v.uniq.end(), idx[t]) - v.uniq.begin());
      const int64_t U = static_cast<int64_t>(v.uniq.size());
      if (pl.kind == PlanKind::Image) {
        v.distinct = upload;
        upload = align_up(upload + static_cast<size_t>(U) * pl.item_bytes);
        v.index = upload;
        upload = align_up(upload + idx.size() * 4);
        continue;
      }
      for (int64_t r : v.uniq) v.N = std::max(v.N, s.items[r + 1] - s.items[r]);
      if (cuda) {
        v.distinct = upload;
        upload = align_up(upload + static_cast<size_t>(U * std::max<int64_t>(v.N, 1) * s.width) * s.type.bytes);
        v.clens = upload;
        upload = align_up(upload + static_cast<size_t>(U) * 8);
        v.index = upload;
        upload = align_up(upload + idx.size() * 4);
      }
    }
  }
  size_t scratch_need = upload;
  for (size_t p = 0; p < P; ++p) {
    if (plans[p].kind == PlanKind::Voxel && cuda) {
      in[p].grids = scratch_need;
      scratch_need = align_up(scratch_need + in[p].uniq.size() * plans[p].item_bytes);
    }
  }

  // 3. Staging: a slot of the worker's ring (CUDA: pinned, the previous use of the slot finished), sized.
  Staging* st = nullptr;
  uint8_t* host_direct = nullptr;
  uint8_t* host_in = nullptr;
  OutputBuffer* buf = nullptr;
  Stream stream = w->stream;
  if (cuda) {
#ifdef ROBOCACHE_WITH_CUDA
    st = &w->ring[w->next];
    w->next ^= 1;
    if (st->pending) {
      ROBOCACHE_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(st->done)));
      st->pending = false;
    }
    const size_t host_need = L.direct + upload;
    // The slot is idle (its `done` event completed), but freeing its blocks here would wait for the whole
    // device (cudaFreeHost / cudaFree do): outgrown blocks are kept until the pipeline ends. The first
    // allocation is at the plans' bounds, so a batch outgrows it only when a bound was a hint too small.
    if (st->host.bytes < host_need) {
      const size_t grow = st->host.bytes == 0 ? std::max(host_need, bound_host) : host_need + host_need / 4;
      HostBlock fresh;
      ROBOCACHE_RETURN_IF_ERROR(host_alloc(grow, true, &fresh));
      if (st->host.data != nullptr) w->old_host.push_back(st->host);
      st->host = fresh;
    }
    if (st->scratch_bytes < scratch_need) {
      const size_t grow = st->scratch_bytes == 0 ? std::max(scratch_need, bound_scratch) : scratch_need + scratch_need / 4;
      void* fresh = nullptr;
      ROBOCACHE_RETURN_IF_ERROR(device_alloc(opt.device.index, grow, &fresh));
      if (st->scratch != nullptr) w->old_scratch.emplace_back(st->scratch, st->scratch_bytes);
      st->scratch = fresh;
      st->scratch_bytes = grow;
    }
    host_direct = static_cast<uint8_t*>(st->host.data);
    host_in = host_direct + L.direct;
#endif
  } else if (w->cpu_inputs.bytes < upload) {
    const size_t grow = w->cpu_inputs.bytes == 0 ? std::max(upload, bound_host) : upload + upload / 4;
    host_free(&w->cpu_inputs);
    ROBOCACHE_RETURN_IF_ERROR(host_alloc(grow, false, &w->cpu_inputs));
  }
  if (!cuda) host_in = static_cast<uint8_t*>(w->cpu_inputs.data);
  if (live.load() != run) return cancelled();
  ROBOCACHE_RETURN_IF_ERROR(pool->acquire(stream, &buf));
  out->buf = buf;
  auto* outp = static_cast<uint8_t*>(buf->data);
  if (!cuda) host_direct = outp;
  std::memcpy(host_in + tgt_off, tgt.data(), static_cast<size_t>(T) * 8);

  // 4. The host's part: masks, gathered rows, decoded frames, the resampling inputs.
  for (size_t p = 0; p < P; ++p) {
    if (live.load() != run) return cancelled();
    const Plan& pl = plans[p];
    const StoreStream& s = *pl.s;
    // pad mask: targets within the stream's first and last sample of the episode (1 ns of slack, so a window
    // that ends exactly on the last sample is not marked padded by rounding)
    bool* mask = reinterpret_cast<bool*>(host_direct + L.mask[p]);
    for (int64_t j = 0; j < rows; ++j) {
      const Window& wd = win[p * rows + j];
      const double e0 = rel_time(s, wd, wd.a, ns) - hold_shift(pl), e1 = rel_time(s, wd, wd.b - 1, ns);
      for (int64_t k = 0; k < T; ++k) mask[j * T + k] = tgt[k] >= e0 - 1e-9 && tgt[k] <= e1 + 1e-9;
    }
    if (pl.kind == PlanKind::Resample) {
      const Inputs& v = in[p];
      const size_t row_bytes = static_cast<size_t>(s.width) * s.type.bytes;
      auto* data = host_in + v.data;
      auto* times = reinterpret_cast<double*>(host_in + v.times);
      auto* lengths = reinterpret_cast<int64_t*>(host_in + v.lengths);
      for (int64_t j = 0; j < rows; ++j) {
        const Window& wd = win[p * rows + j];
        const int64_t len = wd.hi - wd.lo;
        lengths[j] = len;
        std::memcpy(data + static_cast<size_t>(j * v.S) * row_bytes, s.data + static_cast<size_t>(wd.lo) * row_bytes,
                    static_cast<size_t>(len) * row_bytes);
        for (int64_t i = 0; i < v.S; ++i) {
          const int64_t r = wd.lo + std::min(i, len - 1);  // padded with the last sample, which lengths exclude
          if (i >= len) std::memcpy(data + static_cast<size_t>(j * v.S + i) * row_bytes, s.data + r * row_bytes, row_bytes);
          times[j * v.S + i] = rel_time(s, wd, r, ns) - hold_shift(pl);
        }
      }
    } else if (pl.kind == PlanKind::Gather) {
      const std::vector<int64_t>& idx = rows_of[p];
      uint8_t* dst = host_direct + L.value[p];
      for (size_t t = 0; t < idx.size(); ++t)
        std::memcpy(dst + t * pl.item_bytes, s.data + static_cast<size_t>(idx[t]) * pl.item_bytes, pl.item_bytes);
    } else if (pl.kind == PlanKind::Image && cuda) {
      // the distinct frames, in row order, and the index that expands them on the device
      const Inputs& v = in[p];
      for (size_t u = 0; u < v.uniq.size(); ++u) {
        ROBOCACHE_RETURN_IF_ERROR(decode_frame(pl, v.uniq[u], host_in + v.distinct + u * pl.item_bytes));
      }
      std::memcpy(host_in + v.index, v.which.data(), v.which.size() * 4);
    } else if (pl.kind == PlanKind::Image) {
      const std::vector<int64_t>& idx = rows_of[p];
      uint8_t* dst = host_direct + L.value[p];
      std::vector<std::pair<int64_t, size_t>> order(idx.size());
      for (size_t t = 0; t < idx.size(); ++t) order[t] = {idx[t], t};
      std::sort(order.begin(), order.end());
      for (size_t t = 0; t < order.size(); ++t) {
        uint8_t* to = dst + order[t].second * pl.item_bytes;
        if (t > 0 && order[t].first == order[t - 1].first) {
          std::memcpy(to, dst + order[t - 1].second * pl.item_bytes, pl.item_bytes);
          continue;
        }
        ROBOCACHE_RETURN_IF_ERROR(decode_frame(pl, order[t].first, to));
      }
    } else if (pl.kind == PlanKind::Voxel && cuda) {
      const Inputs& v = in[p];
      const int64_t U = static_cast<int64_t>(v.uniq.size());
      const size_t point_bytes = static_cast<size_t>(s.width) * s.type.bytes;
      const size_t cloud_bytes = static_cast<size_t>(std::max<int64_t>(v.N, 1)) * point_bytes;
      auto* clouds = host_in + v.distinct;
      auto* clens = reinterpret_cast<int64_t*>(host_in + v.clens);
      for (int64_t u = 0; u < U; ++u) {
        const int64_t r = v.uniq[u], a = s.items[r], np = s.items[r + 1] - a;
        clens[u] = np;
        std::memcpy(clouds + u * cloud_bytes, s.data + static_cast<size_t>(a) * point_bytes, static_cast<size_t>(np) * point_bytes);
        std::memset(clouds + u * cloud_bytes + np * point_bytes, 0, cloud_bytes - np * point_bytes);
      }
      std::memcpy(host_in + v.index, v.which.data(), v.which.size() * 4);
    }
  }
  if (live.load() != run) return cancelled();

  // 5. The ops: resampling of every float stream in one fuse_multimodal call, then voxelization.
  // Once the first copy is queued, the slot's `done` event is recorded whatever happens next (an op may
  // fail after queuing work that reads the slot), so the slot is never refilled under a pending copy.
  bool queued = false;
#ifdef ROBOCACHE_WITH_CUDA
  auto* cs = static_cast<cudaStream_t>(stream);
#endif
  const Status ops = [&]() -> Status {
    uint8_t* dev_in = cuda ? static_cast<uint8_t*>(st->scratch) : host_in;
#ifdef ROBOCACHE_WITH_CUDA
    if (cuda) {
      core::CudaDeviceGuard guard(opt.device.index);
      ROBOCACHE_CUDA_CHECK(guard.error());
      queued = true;
      ROBOCACHE_CUDA_CHECK(cudaMemcpyAsync(outp, host_direct, L.direct, cudaMemcpyHostToDevice, cs));
      ROBOCACHE_CUDA_CHECK(cudaMemcpyAsync(dev_in, host_in, upload, cudaMemcpyHostToDevice, cs));
    }
#endif
    const Device dev = cuda ? opt.device : Device{};
    std::vector<AlignStream> align;
    std::vector<TensorView> lengths_views;
    lengths_views.reserve(P);
    for (size_t p = 0; p < P; ++p) {
      const Plan& pl = plans[p];
      if (pl.kind != PlanKind::Resample) continue;
      const Inputs& v = in[p];
      const int64_t D = pl.s->width;
      AlignStream a;
      a.name = pl.s->name.c_str();
      a.data = make_view(dev_in + v.data, pl.dtype, dev, {rows, v.S, D});
      a.t = make_view(dev_in + v.times, DType::Float64, dev, {rows, v.S});
      lengths_views.push_back(make_view(dev_in + v.lengths, DType::Int64, dev, {rows}));
      a.lengths = &lengths_views.back();
      a.out = make_view(outp + L.value[p], pl.dtype, dev, {rows, T, D});
      a.method = pl.spec.method;
      a.quat_channel = pl.spec.quat_channel;
      align.push_back(a);
    }
    if (!align.empty()) {
      const TensorView tv = make_view(dev_in + tgt_off, DType::Float64, dev, {T});
      // timestamps were checked when the loader was made, and these relative ones keep their order
      ROBOCACHE_RETURN_IF_ERROR(fuse_multimodal(align.data(), static_cast<int>(align.size()), tv, Boundary::Clamp,
                                                /*validate=*/false, cuda ? Backend::CUDA : Backend::CPU, stream));
    }
#ifdef ROBOCACHE_WITH_CUDA
    for (size_t p = 0; p < P && cuda; ++p) {
      if (plans[p].kind != PlanKind::Image) continue;
      const Inputs& v = in[p];
      ROBOCACHE_RETURN_IF_ERROR(gather_rows_cuda(dev_in + v.distinct, reinterpret_cast<const int32_t*>(dev_in + v.index),
                                                 rows * T, plans[p].item_bytes, outp + L.value[p], stream));
    }
#endif
    for (size_t p = 0; p < P; ++p) {
      const Plan& pl = plans[p];
      if (pl.kind != PlanKind::Voxel) continue;
      const StoreStream& s = *pl.s;
      const Inputs& v = in[p];
      const int64_t W = s.width, C = pl.features;
      const VoxelMode mode = pl.spec.voxel_mode;
      const DType grid_dtype = mode == VoxelMode::Occupancy ? DType::Bool : mode == VoxelMode::Count ? DType::Int32 : pl.dtype;
      const int64_t X = pl.spec.grid.grid_size[0], Y = pl.spec.grid.grid_size[1], Z = pl.spec.grid.grid_size[2];
      const int64_t U = static_cast<int64_t>(v.uniq.size());
      if (!cuda) {
        const std::vector<int64_t>& idx = rows_of[p];
        uint8_t* dst = outp + L.value[p];
        std::vector<int64_t> first_at(U, -1);
        for (size_t t = 0; t < idx.size(); ++t) {
          const int64_t u = v.which[t];
          uint8_t* to = dst + t * pl.item_bytes;
          if (first_at[u] >= 0) {
            std::memcpy(to, dst + static_cast<size_t>(first_at[u]) * pl.item_bytes, pl.item_bytes);
            continue;
          }
          first_at[u] = static_cast<int64_t>(t);
          const int64_t r = idx[t], a = s.items[r], np = s.items[r + 1] - a;
          if (np == 0) {
            std::memset(to, 0, pl.item_bytes);
            continue;
          }
          auto* pts = const_cast<uint8_t*>(s.data) + static_cast<size_t>(a * W) * s.type.bytes;
          const TensorView points = make_view(pts, pl.dtype, {}, {np, 3}, {W, 1});
          const TensorView feats = make_view(pts + 3 * s.type.bytes, pl.dtype, {}, {np, std::max<int64_t>(C, 1)}, {W, 1});
          const TensorView o = C > 0 ? make_view(to, grid_dtype, {}, {X, Y, Z, C}) : make_view(to, grid_dtype, {}, {X, Y, Z});
          ROBOCACHE_RETURN_IF_ERROR(
              voxelize_dense(points, C > 0 ? &feats : nullptr, nullptr, pl.spec.grid, mode, o, nullptr, nullptr, nullptr));
        }
        continue;
      }
#ifdef ROBOCACHE_WITH_CUDA
      const int64_t N = std::max<int64_t>(v.N, 1);
      uint8_t* clouds = dev_in + v.distinct;
      const TensorView points = make_view(clouds, pl.dtype, dev, {U, N, 3}, {N * W, W, 1});
      const TensorView feats = make_view(clouds + 3 * s.type.bytes, pl.dtype, dev, {U, N, std::max<int64_t>(C, 1)}, {N * W, W, 1});
      const TensorView lens = make_view(dev_in + v.clens, DType::Int64, dev, {U});
      uint8_t* grids = dev_in + v.grids;
      const TensorView o = C > 0 ? make_view(grids, grid_dtype, dev, {U, X, Y, Z, C}) : make_view(grids, grid_dtype, dev, {U, X, Y, Z});
      ROBOCACHE_RETURN_IF_ERROR(
          voxelize_dense(points, C > 0 ? &feats : nullptr, &lens, pl.spec.grid, mode, o, nullptr, nullptr, stream));
      ROBOCACHE_RETURN_IF_ERROR(gather_rows_cuda(grids, reinterpret_cast<const int32_t*>(dev_in + v.index),
                                                 rows * T, pl.item_bytes, outp + L.value[p], stream));
#endif
    }
    return Status::ok();
  }();
#ifdef ROBOCACHE_WITH_CUDA
  if (cuda && queued) {
    core::CudaDeviceGuard guard(opt.device.index);
    const cudaError_t err = cudaEventRecord(static_cast<cudaEvent_t>(st->done), cs);
    st->pending = err == cudaSuccess;
    if (!st->pending) {
      cudaGetLastError();
      // no event: wait for this worker's own stream (not the device) before the slot is used again
      ROBOCACHE_CUDA_CHECK(cudaStreamSynchronize(cs));
    }
    ROBOCACHE_CUDA_CHECK(err);
  }
#endif
  (void)queued;
  ROBOCACHE_RETURN_IF_ERROR(ops);
#ifdef ROBOCACHE_WITH_CUDA
  if (cuda) {
    core::CudaDeviceGuard guard(opt.device.index);
    ROBOCACHE_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(buf->ready), cs));
  }
#endif
  return Status::ok();
}

// ------------------------------------------------------------------------------------------ runs

Status LoaderPipeline::start(const int64_t* episodes, const double* starts, int64_t n, uint64_t* run) {
  Impl& m = *impl_;
  const int64_t E = m.store->num_episodes();
  for (int64_t i = 0; i < n; ++i) {
    if (episodes[i] < 0 || episodes[i] >= E)
      return invalid_argument("episodes[", i, "] = ", episodes[i], " is out of range for ", E, " episodes");
    if (!std::isfinite(starts[i])) return invalid_argument("starts[", i, "] = ", starts[i], " is not finite");
    for (const Plan& p : m.plans) {
      if (p.s->episodes[episodes[i] + 1] == p.s->episodes[episodes[i]])
        return invalid_argument("episodes[", i, "] = ", episodes[i], ": stream '", p.s->name,
                                "' has no samples in that episode, so it has no window");
    }
  }
  std::unique_lock<std::mutex> lock(m.mu);
  if (m.stop) return runtime_error("the loader pipeline is shut down");
  std::vector<loader::Ready> dropped = m.cancel_locked(lock);
  if (m.workers.empty()) {
    const Status spawned = m.spawn_workers();  // creates streams and events: no wait for the GPU
    if (!spawned.is_ok()) {
      lock.unlock();
      m.release_all(dropped);
      return spawned;
    }
  }
  m.episodes.assign(episodes, episodes + n);
  m.starts.assign(starts, starts + n);
  m.n = n;
  m.num_batches = (n + m.opt.batch_size - 1) / m.opt.batch_size;
  m.next_build = m.next_consume = m.in_flight = 0;
  *run = ++m.run_id;
  m.active = true;
  m.live = m.run_id;
  lock.unlock();
  m.work_cv.notify_all();
  m.release_all(dropped);
  // Buffers held back beyond what a run keeps in flight are returned (the consumer may have kept many).
  // This waits for their events and frees them (cudaFree waits for the device), so it runs here, on the
  // consumer's thread with no lock held, never in a worker and never under `mu`.
  m.pool->trim(static_cast<size_t>(m.capacity) + 1);
  return Status::ok();
}

Status LoaderPipeline::next(uint64_t run, Stream consumer, LoaderBatch* out) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mu);
  const auto gone = [&] { return m.stop || run != m.run_id || !m.active; };
  if (gone()) return runtime_error("this loader run was cancelled or replaced by a newer iteration of the loader");
  if (m.next_consume >= m.num_batches)
    return invalid_argument("the run has no batch left: all ", m.num_batches, " were handed out");
  m.ready_cv.wait(lock, [&] { return gone() || m.ready.count(m.next_consume) > 0; });
  if (gone()) return runtime_error("the loader run was cancelled or shut down while waiting for a batch");
  auto it = m.ready.find(m.next_consume);
  Ready r = it->second;
  m.ready.erase(it);
  const int64_t index = m.next_consume++;
  --m.in_flight;
  if (!r.status.is_ok()) {
    std::vector<loader::Ready> dropped = m.cancel_locked(lock);  // the error ends the run
    lock.unlock();
    if (r.buf != nullptr) m.pool->release(r.buf, r.stream);
    m.release_all(dropped);
    return r.status;
  }
  lock.unlock();
  m.work_cv.notify_all();
#ifdef ROBOCACHE_WITH_CUDA
  if (m.cuda) {
    core::CudaDeviceGuard guard(m.opt.device.index);
    ROBOCACHE_CUDA_CHECK(guard.error());
    const cudaError_t err = cudaStreamWaitEvent(static_cast<cudaStream_t>(consumer), static_cast<cudaEvent_t>(r.buf->ready), 0);
    if (err != cudaSuccess) {
      m.pool->release(r.buf, r.stream);
      ROBOCACHE_CUDA_CHECK(err);
    }
  }
#else
  (void)consumer;
#endif
  std::shared_ptr<loader::BufferPool> pool = m.pool;
  OutputBuffer* buf = r.buf;
  const Stream user = m.cuda ? consumer : nullptr;
  out->owner = std::shared_ptr<void>(buf->data, [pool, buf, user](void*) { pool->release(buf, user); });
  out->index = index;
  out->tensors.clear();
  const Layout L = m.layout(r.rows);
  auto* base = static_cast<uint8_t*>(buf->data);
  for (size_t p = 0; p < m.plans.size(); ++p) {
    const Plan& pl = m.plans[p];
    BatchTensor v;
    v.name = pl.s->name;
    v.type = pl.out_type;
    v.shape = {r.rows, m.opt.steps};
    v.shape.insert(v.shape.end(), pl.item_shape.begin(), pl.item_shape.end());
    v.data = base + L.value[p];
    v.device = m.opt.device;
    out->tensors.push_back(std::move(v));
  }
  for (size_t p = 0; p < m.plans.size(); ++p) {
    BatchTensor k;
    k.name = m.plans[p].s->name;
    k.is_mask = true;
    k.type = {'b', 1};
    k.shape = {r.rows, m.opt.steps};
    k.data = base + L.mask[p];
    k.device = m.opt.device;
    out->tensors.push_back(std::move(k));
  }
  return Status::ok();
}

void LoaderPipeline::cancel(uint64_t run) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mu);
  if (run != m.run_id || !m.active) return;
  std::vector<loader::Ready> dropped = m.cancel_locked(lock);
  lock.unlock();
  m.release_all(dropped);
}

int64_t LoaderPipeline::num_batches(uint64_t run) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return run == impl_->run_id ? impl_->num_batches : 0;
}

void LoaderPipeline::evict_page_cache() const { impl_->store->evict(); }

LoaderStats LoaderPipeline::stats() const {
  LoaderStats s;
  s.batches_built = impl_->built.load();
  s.output_buffers = impl_->pool->count();
  s.output_buffer_bytes = static_cast<int64_t>(impl_->pool->bytes());
  return s;
}

}  // namespace robocache
