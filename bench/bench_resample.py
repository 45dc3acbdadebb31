"""Benchmark resample_trajectories against what a user would otherwise write, and against the floor.

GPU (when visible): RoboCache CUDA; PyTorch on the same GPU (searchsorted + gather + lerp), eager and
as a CUDA graph; floor = bytes that must move / measured device copy bandwidth.
CPU: RoboCache CPU; a per-episode numpy.interp loop; the same PyTorch code on the CPU.

    python bench/bench_resample.py [--cpu] [--gpu] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import robocache as rc  # noqa: E402
from common import copy_bandwidth, cuda_event_median, fmt_us, graph_time, wall_per_call  # noqa: E402

GPU_SIZES = [(32, 100, 50, 16), (256, 500, 250, 32), (1024, 2048, 1024, 64)]
CPU_SIZES = [(256, 500, 250, 32), (1024, 2048, 1024, 64)]


def make_problem(torch, B, S, T, D, dtype, device, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    steps = torch.rand(B, S, generator=g, dtype=torch.float64) * 0.02 + 0.005  # jittered ~80 Hz
    src_t = torch.cumsum(steps, 1)
    span = src_t[:, -1:] - src_t[:, :1]
    tgt_t = src_t[:, :1] + span * (torch.arange(T, dtype=torch.float64) + 0.5) / T  # sorted, inside
    data = torch.randn(B, S, D, generator=g).to(dtype)
    return data.to(device), src_t.to(device), tgt_t.to(device)


def torch_resample(torch, data, src_t, tgt_t):
    """The PyTorch code a user would write: searchsorted + gather + lerp."""
    B, S, D = data.shape
    hi = torch.searchsorted(src_t, tgt_t, right=True).clamp_(1, S - 1)
    lo = hi - 1
    t0, t1 = src_t.gather(1, lo), src_t.gather(1, hi)
    w = ((tgt_t - t0) / (t1 - t0)).clamp_(0, 1).to(data.dtype).unsqueeze(-1)
    a = data.gather(1, lo.unsqueeze(-1).expand(-1, -1, D))
    b = data.gather(1, hi.unsqueeze(-1).expand(-1, -1, D))
    return torch.lerp(a, b, w)


def floor_bytes(B, S, T, D, elem):
    # data read once, output written once, both timestamp arrays read once (float64)
    return B * S * D * elem + B * T * D * elem + B * S * 8 + B * T * 8


def bench_gpu(results):
    import torch

    bw = copy_bandwidth(torch)
    name = torch.cuda.get_device_name()
    print(f"\nGPU: {name}; device copy bandwidth {bw / 1e9:.0f} GB/s (read + write); torch {torch.__version__}")
    print("robocache: default call (validated); no-val: validate=False (allocates the output); no-val out=: "
          "validate=False, out= given")
    print(f"{'problem':<34}{'robocache':>10}{'no-val':>9}{'no-val out=':>12}{'rc gpu':>9}{'torch':>9}"
          f"{'torch graph':>12}{'floor':>8}{'vs torch':>9}{'% of bw':>8}")
    print(f"{'':<34}{'us/call':>10}{'us/call':>9}{'us/call':>12}{'graph us':>9}{'us/call':>9}{'us':>12}{'us':>8}")
    sync = torch.cuda.synchronize
    for dtype in (torch.float32, torch.bfloat16):
        for B, S, T, D in GPU_SIZES:
            data, src_t, tgt_t = make_problem(torch, B, S, T, D, dtype, "cuda")
            out = torch.empty(B, T, D, dtype=dtype, device="cuda")
            ref = torch_resample(torch, data.double(), src_t, tgt_t)
            got = rc.resample_trajectories(data, src_t, tgt_t)
            err = (got.double() - ref).abs().max().item()
            assert err < (1e-5 if dtype == torch.float32 else 5e-2), f"mismatch vs torch: {err}"

            rc_call = wall_per_call(lambda: rc.resample_trajectories(data, src_t, tgt_t), sync)
            rc_noval_alloc = wall_per_call(lambda: rc.resample_trajectories(data, src_t, tgt_t, validate=False), sync)
            rc_noval = wall_per_call(lambda: rc.resample_trajectories(data, src_t, tgt_t, out=out, validate=False), sync)
            rc_gpu = graph_time(lambda: rc.resample_trajectories(data, src_t, tgt_t, out=out, validate=False), torch)
            th_call = wall_per_call(lambda: torch_resample(torch, data, src_t, tgt_t), sync)
            th_graph = graph_time(lambda: torch_resample(torch, data, src_t, tgt_t), torch, calls=1)
            floor = floor_bytes(B, S, T, D, data.element_size()) / bw
            label = f"B{B} S{S} T{T} D{D} {str(dtype).split('.')[-1]}"
            print(f"{label:<34}{fmt_us(rc_call)}{fmt_us(rc_noval_alloc)}{fmt_us(rc_noval):>12}{fmt_us(rc_gpu):>9}"
                  f"{fmt_us(th_call):>9}"
                  f"{fmt_us(th_graph):>12}{fmt_us(floor):>8}{th_call / rc_call:8.1f}x{100 * floor / rc_gpu:7.0f}%")
            results.append(dict(where="gpu", device=name, problem=label, robocache_us_per_call=rc_call * 1e6,
                                robocache_no_validate_alloc_us_per_call=rc_noval_alloc * 1e6,
                                robocache_no_validate_us_per_call=rc_noval * 1e6, robocache_gpu_us=rc_gpu * 1e6,
                                torch_us_per_call=th_call * 1e6, torch_graph_us=th_graph * 1e6,
                                floor_us=floor * 1e6, copy_bw_gbs=bw / 1e9))
            del data, src_t, tgt_t, out
            torch.cuda.empty_cache()


def numpy_interp_loop(data, src_t, tgt_t):
    B, S, D = data.shape
    out = np.empty((B, tgt_t.shape[1], D), data.dtype)
    for b in range(B):
        for d in range(D):
            out[b, :, d] = np.interp(tgt_t[b], src_t[b], data[b, :, d])
    return out


def bench_cpu(results):
    import torch

    threads = rc.get_num_threads()
    torch.set_num_threads(threads)
    print(f"\nCPU: {os.cpu_count()} cores; robocache threads {threads}; torch threads {torch.get_num_threads()}")
    print(f"{'problem':<34}{'robocache':>10}{'np.interp':>11}{'torch cpu':>11}{'vs numpy':>9}{'vs torch':>9}")
    print(f"{'':<34}{'ms':>10}{'ms':>11}{'ms':>11}")
    for B, S, T, D in CPU_SIZES:
        data, src_t, tgt_t = make_problem(torch, B, S, T, D, torch.float32, "cpu")
        dn, sn, tn = data.numpy(), src_t.numpy(), tgt_t.numpy()
        got = rc.resample_trajectories(dn, sn, tn)
        ref = numpy_interp_loop(dn, sn, tn)
        assert np.abs(got - ref).max() < 1e-4
        rc_t = wall_per_call(lambda: rc.resample_trajectories(dn, sn, tn), lambda: None, warmup=2, min_time=1.0)
        np_t = wall_per_call(lambda: numpy_interp_loop(dn, sn, tn), lambda: None, warmup=1, min_time=1.0, max_iters=3)
        th_t = wall_per_call(lambda: torch_resample(torch, data, src_t, tgt_t), lambda: None, warmup=1, min_time=1.0)
        label = f"B{B} S{S} T{T} D{D} float32"
        print(f"{label:<34}{rc_t * 1e3:10.2f}{np_t * 1e3:11.1f}{th_t * 1e3:11.1f}{np_t / rc_t:8.1f}x{th_t / rc_t:8.1f}x")
        results.append(dict(where="cpu", problem=label, threads=threads, robocache_ms=rc_t * 1e3,
                            numpy_interp_ms=np_t * 1e3, torch_cpu_ms=th_t * 1e3))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the CPU section")
    ap.add_argument("--gpu", action="store_true", help="run the GPU section")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    import torch

    run_gpu = args.gpu or not args.cpu
    run_cpu = args.cpu or not args.gpu
    print(f"robocache {rc.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results = []
    if run_gpu:
        if not torch.cuda.is_available():
            sys.exit("--gpu: no CUDA GPU visible")
        bench_gpu(results)
    if run_cpu:
        bench_cpu(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
