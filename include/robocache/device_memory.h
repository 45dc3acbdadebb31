// Device memory that RoboCache allocates itself, for results handed to a framework that cannot allocate for
// it through DLPack (JAX: its arrays are immutable, so a result cannot be written into one).
#pragma once

#include <cstddef>

#include "robocache/ops.h"
#include "robocache/status.h"
#include "robocache/tensor.h"

namespace robocache {

// cudaMalloc on `device` (a CUDA device); an error without the CUDA backend.
Status device_malloc(Device device, size_t bytes, void** out);
// cudaFree on `device`; nullptr is a no-op.
void device_free(Device device, void* ptr);
// Waits on the host until the work queued on `stream` (nullptr: the legacy default stream) of `device` is done.
Status stream_synchronize(Device device, Stream stream);

}  // namespace robocache
