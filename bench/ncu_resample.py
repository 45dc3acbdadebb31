"""One validate=False call of each benchmark problem, for Nsight Compute (kernel metrics, not timings):
    ncu -k regex:resample_kernel --metrics ... python3 bench/ncu_resample.py [--streams]
--streams: also each stream of the eight-stream alignment alone (which stream is far from its floor)."""

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import robocache as rc  # noqa: E402
from bench_fuse import B, EIGHT, T, THREE, floor_bytes, make  # noqa: E402

problems = [("3 streams", THREE), ("8 streams", EIGHT)]
if "--streams" in sys.argv:
    problems += [(f"stream {name}", [(name, S, D)]) for name, S, D in EIGHT]
for label, spec in problems:
    streams, tgt = make(torch, spec)
    print(f"{label}: floor bytes {floor_bytes(spec) / 1e6:.1f} MB", flush=True)
    rc.fuse_multimodal(streams, tgt, validate=False)
if "--streams" not in sys.argv:
    for Bs, S, Ts, D in ((256, 500, 250, 32), (1024, 2048, 1024, 64)):
        d = torch.randn(Bs, S, D, device="cuda")
        st = torch.cumsum(torch.rand(Bs, S, device="cuda", dtype=torch.float64) + 0.5, 1)
        tt = torch.linspace(1, float(S), Ts, device="cuda", dtype=torch.float64).expand(Bs, Ts).contiguous()
        print(f"B{Bs} S{S} T{Ts} D{D}", flush=True)
        rc.resample_trajectories(d, st, tt, validate=False)
torch.cuda.synchronize()
