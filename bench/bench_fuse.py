"""Benchmark fuse_multimodal (multi-stream alignment) on the GPU against PyTorch doing one resample per
stream plus torch.cat, and against the floor (bytes that must move / measured device copy bandwidth).

    python bench/bench_fuse.py [--json PATH]
    python bench/bench_fuse.py --sweep ROBOCACHE_RESAMPLE_TILE_WORK=8,16   (GPU time only, one process per
        value of a tuning variable: ROBOCACHE_RESAMPLE_TILE_WORK, the vectors per thread a tile aims at, or
        ROBOCACHE_RESAMPLE_ORDER, the block order of concatenated alignments; also three resample sizes)

Floor bytes: the output, the target times, and per stream the source rows a linear interpolation must
read (min(S, 2T) rows of D channels per episode) with their times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import robocache as rc  # noqa: E402
from bench_resample import torch_resample  # noqa: E402
from common import copy_bandwidth, fmt_us, graph_time, wall_per_call  # noqa: E402

B, T = 256, 128
THREE = [("image_features", 100, 512), ("joints", 500, 64), ("force", 2000, 12)]
EIGHT = THREE + [("proprio", 200, 32), ("language_tokens", 50, 256), ("actions", 1000, 7),
                 ("ee_pose", 300, 7), ("gripper", 30, 1)]


def make(torch, spec, seed=0):
    g = torch.Generator().manual_seed(seed)
    streams = {}
    for name, S, D in spec:
        t = torch.cumsum(torch.rand(B, S, generator=g, dtype=torch.float64) + 0.5, 1) * (2.0 / S)
        streams[name] = (torch.randn(B, S, D, generator=g).cuda(), t.cuda())
    tgt = torch.linspace(0.1, 1.9, T, dtype=torch.float64).cuda().expand(B, T).contiguous()
    return streams, tgt


def floor_bytes(spec):
    rows = sum(min(S, 2 * T) * (D * 4 + 8) for _, S, D in spec)
    return B * (rows + T * 8 + T * sum(D for _, _, D in spec) * 4)


def gpu_only(torch, rows=None):
    """GPU time (CUDA graph) of the alignment problems and three resampling sizes, against the floor; `rows`:
    only the rows whose label starts with one of these."""
    from bench_resample import floor_bytes as resample_floor, make_problem

    bw = copy_bandwidth(torch)
    row = [f"{os.environ.get('ROBOCACHE_SWEEP', 'default')}:"]
    for label, spec, concat in (("image only", THREE[:1], True), ("3 streams", THREE, True), ("8 streams", EIGHT, True),
                                ("8 streams concat=False", EIGHT, False)):
        if rows and not any(label.startswith(r) for r in rows):
            continue
        streams, tgt = make(torch, spec)
        t = graph_time(lambda: rc.fuse_multimodal(streams, tgt, validate=False, concat=concat), torch)
        # A plain device copy that moves the floor's bytes (half read, half written), timed the same way: the
        # floor at this size rather than at the 2 GiB of copy_bandwidth().
        half = floor_bytes(spec) // 8 // 1024 * 1024  # float32 elements read (and written); a whole number of vectors
        src, dst = torch.empty(half, device="cuda").uniform_(), torch.empty(half, device="cuda")
        c = graph_time(lambda: dst.copy_(src), torch)
        row.append(f"{label} {t * 1e6:6.1f} us {t * bw / floor_bytes(spec):4.2f}x (same-bytes copy {c * 1e6:5.1f} us)")
        del streams, src, dst
    for B, S, T, D, dt in ((256, 500, 250, 32, torch.float32), (1024, 2048, 1024, 64, torch.float32),
                           (1024, 2048, 1024, 64, torch.bfloat16)):
        if rows and not any(f"B{B} S{S} {str(dt)[6:]}".startswith(r) for r in rows):
            continue
        d, st, tt = make_problem(torch, B, S, T, D, dt, "cuda")
        out = torch.empty(B, T, D, dtype=dt, device="cuda")
        t = graph_time(lambda: rc.resample_trajectories(d, st, tt, out=out, validate=False), torch)
        row.append(f"B{B} S{S} {str(dt)[6:]} {t * 1e6:6.1f} us {t * bw / resample_floor(B, S, T, D, d.element_size()):4.2f}x")
        del d, st, tt, out
    print(" | ".join(row), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json")
    ap.add_argument("--sweep", metavar="VAR=V1,V2", help="run the GPU-only timings once per value of VAR")
    ap.add_argument("--gpu-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help="with --sweep: only these GPU-only rows (comma-separated label prefixes, "
                    "e.g. 'image only,3 streams,B1024 S2048 float32')")
    args = ap.parse_args()
    import torch

    if args.sweep:
        import subprocess
        var, _, values = args.sweep.partition("=")
        if not var.startswith("ROBOCACHE_") or not values:
            ap.error(f"--sweep: expected ROBOCACHE_...=V1,V2, got {args.sweep!r}")
        for v in values.split(","):
            subprocess.run([sys.executable, __file__, "--gpu-only"] + (["--rows", args.rows] if args.rows else []),
                           check=True,
                           env=dict(os.environ, **{var: v, "ROBOCACHE_SWEEP": f"{var}={v}"}))
        return
    if args.gpu_only:
        return gpu_only(torch, args.rows.split(",") if args.rows else None)

    if not torch.cuda.is_available():
        sys.exit("bench_fuse: no CUDA GPU visible")
    bw = copy_bandwidth(torch)
    print(f"\nfuse_multimodal on {torch.cuda.get_device_name()}; copy bandwidth {bw / 1e9:.0f} GB/s; B={B}, T={T}")
    print(f"{'problem':<28}{'rc us/call':>11}{'rc no-val':>10}{'rc graph':>10}{'torch us/call':>14}"
          f"{'torch graph':>12}{'floor us':>9}{'rc gpu/floor':>13}")
    results = []
    sync = torch.cuda.synchronize
    for label, spec in (("3 streams", THREE), ("8 streams", EIGHT)):
        streams, tgt = make(torch, spec)
        out = torch.empty(B, T, sum(D for _, _, D in spec), device="cuda")

        def rc_call():
            return rc.fuse_multimodal(streams, tgt)

        def rc_fast():
            return rc.fuse_multimodal(streams, tgt, validate=False)

        def torch_call():
            return torch.cat([torch_resample(torch, d, t, tgt) for d, t in streams.values()], dim=-1)

        err = (rc_call() - torch_call()).abs().max().item()
        assert err < 1e-4, f"robocache and torch disagree by {err}"
        r_call = wall_per_call(rc_call, sync)
        r_fast = wall_per_call(rc_fast, sync)
        r_gpu = graph_time(rc_fast, torch)
        t_call = wall_per_call(torch_call, sync)
        t_gpu = graph_time(torch_call, torch, calls=1)
        floor = floor_bytes(spec) / bw
        print(f"{label:<28}{fmt_us(r_call):>11}{fmt_us(r_fast):>10}{fmt_us(r_gpu):>10}{fmt_us(t_call):>14}"
              f"{fmt_us(t_gpu):>12}{fmt_us(floor):>9}{r_gpu / floor:12.2f}x")
        results.append(dict(problem=label, robocache_us_per_call=r_call * 1e6, robocache_no_validate_us=r_fast * 1e6,
                            robocache_gpu_us=r_gpu * 1e6, torch_us_per_call=t_call * 1e6, torch_gpu_us=t_gpu * 1e6,
                            floor_us=floor * 1e6, device=torch.cuda.get_device_name()))
        del streams, out
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
