// The CPU thread pool every CPU kernel runs on.
// Our own small pool rather than OpenMP: its size is set at run time (robocache.set_num_threads), it
// never clashes with the OpenMP runtime PyTorch or NumPy loaded, and nested calls run inline.
#pragma once

#include <cstdint>
#include <functional>

namespace robocache::core {

int num_threads();
void set_num_threads(int n);  // n <= 0: hardware concurrency (or ROBOCACHE_NUM_THREADS)

// Calls fn(chunk_begin, chunk_end) over [begin, end) in chunks of at least `grain` items, on all pool
// threads and the calling one; returns when every chunk is done. Called from inside a pool task it runs
// inline on the calling thread.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

// While one lives, parallel_for on this thread runs inline, as inside a pool task. The loader's workers use
// it: each builds whole batches on its own thread, so the ops they call must not queue on the shared pool.
class InlineScope {
 public:
  InlineScope();
  ~InlineScope();
  InlineScope(const InlineScope&) = delete;
  InlineScope& operator=(const InlineScope&) = delete;

 private:
  bool was_inline_;
};

}  // namespace robocache::core
