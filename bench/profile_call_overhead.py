"""Where the time of one small resample call goes (Python, DLPack import, allocation, launch, check).
    python bench/profile_call_overhead.py"""

import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
import robocache as rc  # noqa: E402
from robocache import _C  # noqa: E402
from robocache._arrays import current_stream  # noqa: E402
from robocache.ops import _torch_desc  # noqa: E402


def per_call(fn, n=3000):
    for _ in range(200):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1e6


B, S, T, D = 32, 100, 50, 16
d = torch.randn(B, S, D, device="cuda")
st = torch.cumsum(torch.rand(B, S, device="cuda", dtype=torch.float64) + 0.01, 1)
tt = st[:, :T].contiguous()
out = torch.empty(B, T, D, device="cuda")
stream = current_stream(d, "torch")
rc.resample_trajectories(d, st, tt, out=out)  # binds the torch fast path (and its dtype codes)
dd, sd, td, od = _torch_desc(d), _torch_desc(st), _torch_desc(tt), _torch_desc(out)
rows = [
    ("torch.empty (out)", lambda: torch.empty((B, T, D), dtype=d.dtype, device=d.device)),
    ("current_stream()", lambda: current_stream(d, "torch")),
    ("tensor.__dlpack__()", lambda: d.__dlpack__()),
    ("_C call, validate=False", lambda: _C.resample_trajectories(d, st, tt, None, out, None, "linear", "clamp", "", False, -1, stream)),
    ("4 x _torch_desc()", lambda: (_torch_desc(d), _torch_desc(st), _torch_desc(tt), _torch_desc(out))),
    ("_C call, descriptors, validate=False", lambda: _C.resample_trajectories(
        dd, sd, td, None, od, None, "linear", "clamp", "", False, -1, stream)),
    ("_C call, validate=True", lambda: _C.resample_trajectories(d, st, tt, None, out, None, "linear", "clamp", "", True, -1, stream)),
    ("rc.resample(out=, validate=False)", lambda: rc.resample_trajectories(d, st, tt, out=out, validate=False)),
    ("rc.resample(validate=False)", lambda: rc.resample_trajectories(d, st, tt, validate=False)),
    ("rc.resample() default", lambda: rc.resample_trajectories(d, st, tt)),
    ("torch: x.add_(1) (one launch)", lambda: out.add_(1.0)),
]
g = torch.cuda.CUDAGraph()
rc.resample_trajectories(d, st, tt, out=out, validate=False)
with torch.cuda.graph(g):
    for _ in range(20):
        rc.resample_trajectories(d, st, tt, out=out, validate=False)
rows.append(("kernel only (graph of 20, per kernel)", lambda: g.replay()))
for name, fn in rows:
    us = per_call(fn, 300 if "graph" in name else 3000)
    if "graph" in name:
        us /= 20
    print(f"{name:<40}{us:8.2f} us")
