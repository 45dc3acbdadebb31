"""GPU time of resample_trajectories alone (CUDA-graph replay of validate=False calls), for tuning.
    python bench/tune_resample.py"""
import torch

import robocache as rc
from bench_resample import make_problem
from common import cuda_event_median

for dtype in (torch.float32, torch.bfloat16):
    for B, S, T, D in [(256, 500, 250, 32), (1024, 2048, 1024, 64)]:
        data, src_t, tgt_t = make_problem(torch, B, S, T, D, dtype, "cuda")
        out = torch.empty(B, T, D, dtype=dtype, device="cuda")
        rc.resample_trajectories(data, src_t, tgt_t, out=out, validate=False)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(10):
                rc.resample_trajectories(data, src_t, tgt_t, out=out, validate=False)
        t = cuda_event_median(g.replay, torch) / 10
        print(f"B{B} S{S} T{T} D{D} {str(dtype)[6:]}: {t * 1e6:8.1f} us (graph, per call)")
