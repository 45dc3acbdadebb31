"""Shared benchmark helpers: timers and the device-to-device copy bandwidth (the floor's denominator)."""

from __future__ import annotations

import statistics
import time


def wall_per_call(fn, sync, warmup=10, min_time=0.5, max_iters=2000, repeats=5):
    """Wall time per call of a loop of calls from Python, synchronised at the end: what a training loop
    pays, Python overhead and launch included. The median of `repeats` loops of about min_time / repeats
    each (a busy host inflates single loops)."""
    for _ in range(warmup):
        fn()
    sync()
    per_call = []
    for _ in range(repeats):
        iters = 0
        start = time.perf_counter()
        while True:
            fn()
            iters += 1
            if iters >= max_iters or (iters % 10 == 0 and time.perf_counter() - start > min_time / repeats):
                break
        sync()
        per_call.append((time.perf_counter() - start) / iters)
    return statistics.median(per_call)


def cuda_event_median(fn, torch, warmup=5, reps=30):
    """Median GPU time of one call, from CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e-3)
    return statistics.median(times)


def copy_bandwidth(torch, nbytes=2 << 30):
    """Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda").uniform_()
    dst = torch.empty_like(src)
    t = cuda_event_median(lambda: dst.copy_(src), torch, warmup=3, reps=10)
    del src, dst
    return 2 * nbytes / t


def fmt_us(seconds):
    return f"{seconds * 1e6:9.1f}"


def graph_time(fn, torch, calls=10):
    """GPU time of one call alone: `calls` calls captured in a CUDA graph, replayed, divided. Host
    overhead (Python, launch) is excluded, so this is the figure to hold against the floor."""
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    t = cuda_event_median(graph.replay, torch) / calls
    del graph
    return t
