"""Loader throughput: robocache.Loader (the C++ pipeline: --workers worker threads) against a PyTorch
DataLoader with the same number of worker processes doing the same reads (the same memory-mapped store
columns, the same windows in the same order) and the same resampling with NumPy (np.interp per channel for
linear streams, searchsorted for hold, one PNG decode per target frame, np.bincount for voxel occupancy).
Reports samples/s (windows/s), MB/s of batch output and the ratio to the DataLoader, best of --repeat
epochs of --batches batches. A persistent DataLoader (persistent_workers) and one Loader serve every
repeat; the Loader is rewound to epoch 0 each time, so both read the same windows.

CPU section: runs anywhere. GPU section (--device cuda): the Loader stages in pinned memory, copies and
resamples on the GPU; the DataLoader baseline resamples with NumPy in its workers, pins (pin_memory=True)
and copies to the GPU. --cold calls posix_fadvise(POSIX_FADV_DONTNEED) on every store file before each
epoch (after an fsync; the Loader's own memory maps are dropped first, since mapped pages stay cached, and
the DataLoader's workers are not persistent then), so each epoch reads from the disk, not the page cache.

--train: a small MLP policy (camera frames average-pooled to 8 x 8 first) trained on the loader's batches (and on the DataLoader's, for comparison):
step time on a resident batch, samples/s, and the fraction of wall time the GPU (model) was busy. The
target on the H100 is GPU busy >= 90% for a step >= 5 ms (pick --hidden / --layers so the step is >= 5 ms).

Data: the LeRobot G1 sample (../shared/data/lerobot/g1_v21, 30 Hz state and action, float32[26]) converted
to a store; the Bridge RLDS sample (../shared/data/rlds/bridge_dataset, 50 real WidowX episodes of 10 steps,
5 Hz: state and action float32[7] resampled linearly, plus the 64x64 JPEG camera image_0 held and decoded;
the DataLoader baseline decodes each distinct frame of a window once, as the Loader decodes each distinct
frame of a batch once); plus the multi-rate demo store (robocache.store.demo_dataset: 100 Hz joints, 50 Hz quaternion,
10 Hz actions and gripper, 15 Hz PNG camera, 10 Hz lidar) without the camera, with it, and with the lidar
voxelized (16 x 16 x 8 occupancy).

Usage: python bench/bench_loader.py [--workers 2] [--batch-size 64] [--batches 200] [--device cpu|cuda] [--cold]
       python bench/bench_loader.py --device cuda --train [--hidden 4096 --layers 4]   (GPU busy fraction)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import robocache
from robocache import datasets, store
from robocache.loader import drop_page_cache

DATA = Path(os.environ.get("ROBOCACHE_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


class NumpyWindows(torch.utils.data.Dataset):
    """What a user writes without RoboCache: one window per item, read from the memory-mapped store and
    resampled with NumPy."""

    def __init__(self, path, streams, methods, window_ep, window_start, T, hz, voxelize=None, decode_once=False):
        self.path, self.streams, self.methods, self.voxelize = path, streams, methods, voxelize or {}
        self.decode_once = decode_once  # decode each distinct frame of a window once (else once per target)
        self.ep, self.start, self.T, self.hz = window_ep, window_start, T, hz
        self.st = None

    def __len__(self):
        return len(self.ep)

    def __getitem__(self, i):
        if self.st is None:  # open in the worker (memory maps do not cross fork well)
            self.st = store.open_store(self.path, verify=False)
        e = int(self.ep[i])
        cols = [self.st.streams[n] for n in self.streams]
        origin = min(c.timestamps[c.episodes[e]] for c in cols)
        tgt = origin + self.start[i] + np.arange(self.T) / self.hz
        out = {}
        for n, c in zip(self.streams, cols):
            a, b = int(c.episodes[e]), int(c.episodes[e + 1])
            ts = np.asarray(c.timestamps[a:b])
            hold = c.kind != "tensor" or self.methods.get(n) == "hold"
            if hold:  # with the Loader's default tolerance_s
                idx = np.clip(np.searchsorted(ts, tgt + 1e-4, "right") - 1, 0, b - a - 1) + a
                if c.kind == "pointcloud":
                    g = self.voxelize[n]
                    size, origin, dims = np.broadcast_to(g["voxel_size"], 3), np.asarray(g["origin"]), g["grid_size"]
                    grids = []
                    for r in idx:
                        p = np.asarray(c.data[c.items[r]:c.items[r + 1]])[:, :3]
                        v = np.floor((p - origin) / size).astype(np.int64)
                        v = v[np.all((v >= 0) & (v < dims), 1)]
                        flat = (v[:, 0] * dims[1] + v[:, 1]) * dims[2] + v[:, 2]
                        grids.append(np.bincount(flat, minlength=int(np.prod(dims))).reshape(dims) > 0)
                    v = np.stack(grids)
                elif c.kind == "bytes" and self.decode_once:
                    rows, which = np.unique(idx, return_inverse=True)
                    frames = np.stack([datasets.decode_image(c.data[c.items[r]:c.items[r + 1]].tobytes()) for r in rows])
                    v = frames[which.reshape(-1)]
                elif c.kind == "bytes":
                    v = np.stack([datasets.decode_image(c.data[c.items[r]:c.items[r + 1]].tobytes()) for r in idx])
                else:
                    v = np.asarray(c.data[idx])
            else:
                lo = max(int(np.searchsorted(ts, tgt[0], "right")) - 1, 0)
                hi = min(int(np.searchsorted(ts, tgt[-1], "left")) + 1, b - a)
                d = np.asarray(c.data[a + lo:a + hi]).reshape(hi - lo, -1)
                v = np.stack([np.interp(tgt, ts[lo:hi], d[:, k]) for k in range(d.shape[1])], 1).astype(d.dtype)
                v = v.reshape((self.T,) + c.shape)
            out[n] = torch.from_numpy(v)
            out[n + ".mask"] = torch.from_numpy((tgt >= ts[0] - (1e-4 if hold else 0.0)) & (tgt <= ts[-1]))
        return out


def run_epoch(it, batches, device):
    n = nbytes = 0
    t0 = time.perf_counter()
    for i, b in enumerate(it):
        for v in b.values():
            if isinstance(v, torch.Tensor):
                nbytes += v.numel() * v.element_size()
        n += len(next(iter(b.values())))
        if i + 1 == batches:
            break
    if device != "cpu":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return n / dt, nbytes / dt / 1e6


def store_mb(path):
    """Bytes of every file of a store directory, in MB (10^6)."""
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, names in os.walk(path) for f in names) / 1e6


def bench(name, path, streams, methods, args, voxelize=None, decode_once=False):
    kw = dict(batch_size=args.batch_size, window=args.window, target_hz=args.hz, streams=streams, methods=methods,
              seed=0, num_threads=args.workers, prefetch=2, device=args.device, voxelize=voxelize)
    loader = robocache.Loader(path, **kw)
    batches = min(args.batches, len(loader))
    order = np.concatenate([np.asarray(w[:, 0]) for w in loader.windows(0)]).astype(np.int64)
    starts = np.concatenate([w[:, 1] for w in loader.windows(0)])
    ds = NumpyWindows(loader.store.path, streams, methods, order, starts, loader.T, args.hz, voxelize, decode_once)
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                                     pin_memory=args.device != "cpu", prefetch_factor=2 if args.workers else None,
                                     # cold: fresh workers every epoch, so no worker keeps the pages mapped
                                     persistent_workers=args.workers > 0 and not args.cold)

    def loader_run():
        if args.cold:
            loader.evict_page_cache()  # its own maps too: mapped pages stay in the page cache otherwise
        loader.load_state_dict(dict(loader.state_dict(), epoch=0, batch=0))  # the same epoch 0 every repeat
        return run_epoch(loader, batches, args.device)

    def dl_run():
        if args.cold:
            drop_page_cache(path)
        if args.device == "cpu":
            return run_epoch(dl, batches, "cpu")

        def moved():
            for b in dl:
                yield {k: v.to(args.device, non_blocking=True) for k, v in b.items()}
        return run_epoch(moved(), batches, args.device)

    res = {}
    for label, fn in ((f"robocache.Loader ({args.workers} threads)", loader_run),
                      (f"DataLoader+NumPy ({args.workers} workers)", dl_run)):
        res[label] = max((fn() for _ in range(args.repeat)), key=lambda r: r[0])
    print(f"{name}: store {store_mb(path):.1f} MB, {loader.num_windows} windows, T={loader.T}, batch "
          f"{args.batch_size}, {batches} batches, device {args.device}{', cold page cache' if args.cold else ''}")
    base = list(res.values())[1][0]
    for label, (sps, mbs) in res.items():
        print(f"  {label:<36} {sps:10.0f} samples/s  {mbs:8.1f} MB/s  {sps / base:5.2f}x")
    sys.stdout.flush()
    del dl
    return ds


def bench_training(path, streams, args, ds, methods=None):
    """A small MLP policy trained on the loader's batches, then on the DataLoader's (same windows, same
    worker count). The model's busy fraction is estimated as steps x (time of one step on a batch already
    on the device) / wall time of the loop fed by the loader."""
    import torch.nn as nn

    kw = dict(batch_size=args.batch_size, window=args.window, target_hz=args.hz, streams=streams, methods=methods,
              device=args.device)
    loader = robocache.Loader(path, seed=0, num_threads=args.workers, **kw)
    first = next(iter(robocache.Loader(path, seed=1, num_threads=1, **kw)))
    def features(batch):
        # image streams ([B, T, H, W, C] uint8) pooled to 8 x 8 per frame; the rest flattened
        xs = []
        for n in streams:
            v = batch[n]
            if v.dim() >= 4:
                b, t, h, w, c = v.shape
                v = nn.functional.adaptive_avg_pool2d(v.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float(), 8)
            xs.append(v.reshape(len(batch[n]), -1).float())
        return torch.cat(xs, 1)

    width = features(first).shape[1]
    model = nn.Sequential(nn.Linear(width, args.hidden), nn.GELU(), *[m for _ in range(args.layers) for m in
                          (nn.Linear(args.hidden, args.hidden), nn.GELU())], nn.Linear(args.hidden, width)).to(args.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(batch):
        x = features(batch)
        loss = nn.functional.mse_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if args.device != "cpu" else (lambda: None)
    for _ in range(10):
        step(first)
    sync()
    t0 = time.perf_counter()
    for _ in range(50):
        step(first)
    sync()
    step_s = (time.perf_counter() - t0) / 50

    def epochs(make, evict):
        """Batches of epoch after epoch (a store may hold fewer windows than the timed steps)."""
        while True:
            if args.cold:
                evict()  # before every epoch: each epoch reads from the disk
            yield from make()

    def fed(batches, warmup=10):
        # steady state: worker start-up, pinned and device allocations happen in the untimed warm-up steps
        for _ in range(warmup):
            step(next(batches))
        sync()
        t0 = time.perf_counter()
        for _ in range(args.batches):
            step(next(batches))
        sync()
        return args.batches, time.perf_counter() - t0

    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
                                     pin_memory=args.device != "cpu", prefetch_factor=2 if args.workers else None,
                                     persistent_workers=args.workers > 0 and not args.cold)
    moved = epochs(lambda: ({k: v.to(args.device, non_blocking=True) for k, v in b.items()} for b in dl),
                   lambda: drop_page_cache(path))
    what = "GPU" if args.device != "cpu" else "model"
    print(f"training: MLP {args.layers}x{args.hidden}, step {step_s * 1e3:.2f} ms on a resident batch, "
          f"{args.batches} timed steps after 10 warm-up steps{', cold page cache every epoch' if args.cold else ''}")
    for label, batches in ((f"robocache.Loader ({args.workers} threads)", epochs(lambda: iter(loader), loader.evict_page_cache)),
                           (f"DataLoader+NumPy ({args.workers} workers)", moved)):
        n, wall = fed(batches)
        print(f"  {label:<36} {wall / n * 1e3:7.2f} ms/step  {n * args.batch_size / wall:8.0f} samples/s  "
              f"{what} busy ~{min(1.0, n * step_s / wall) * 100:.0f}%")
        batches.close()
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--window", type=float, default=1.0)
    ap.add_argument("--hz", type=float, default=50.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train", action="store_true", help="GPU: also time a small MLP training loop fed by the loader")
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--cold", action="store_true",
                    help="posix_fadvise(DONTNEED) the store's files before each epoch: cold reads, not the page cache")
    args = ap.parse_args()
    print(f"robocache {robocache.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"build {robocache.build_info()['compiler']}, cuda={robocache.build_info()['cuda']}")
    with tempfile.TemporaryDirectory() as tmp:
        g1 = DATA / "lerobot" / "g1_v21"
        if g1.exists():
            st = store.convert(g1, os.path.join(tmp, "g1"), progress=False)
            ds = bench("LeRobot G1 (state+action, linear)", st.path, ["observation.state", "action"], {}, args)
            if args.train:
                bench_training(st.path, ["observation.state", "action"], args, ds)
        else:
            print(f"skipping LeRobot G1: {g1} not present")
        bridge = DATA / "rlds" / "bridge_dataset"
        if bridge.exists():
            # RLDS records no timestamps: steps at BridgeData's 5 Hz control rate
            st = store.convert(bridge, os.path.join(tmp, "bridge"), progress=False, rate_hz=5.0)
            low = ["steps/observation/state", "steps/action"]
            ds = bench("Bridge RLDS (state+action 5 Hz, linear)", st.path, low, {}, args)
            if args.train:
                bench_training(st.path, low, args, ds)
            cam = low + ["steps/observation/image_0"]
            ds = bench("Bridge RLDS + 5 Hz JPEG camera image_0 64x64 (decoded)", st.path, cam,
                       {"steps/observation/image_0": "hold"}, args, decode_once=True)
            if args.train:
                bench_training(st.path, cam, args, ds, methods={"steps/observation/image_0": "hold"})
        else:
            print(f"skipping Bridge RLDS: {bridge} not present")
        demo = store.demo_dataset(os.path.join(tmp, "demo"), episodes=16)
        low = ["joint_state", "ee_quat", "action", "gripper"]
        bench("demo multi-rate (joints 100 Hz, quat 50 Hz, action/gripper 10 Hz)", demo.path, low,
              {"gripper": "hold"}, args)
        bench("demo multi-rate + 15 Hz PNG camera 32x32", demo.path, low + ["camera"],
              {"gripper": "hold", "camera": "hold"}, args)
        bench("demo multi-rate + 10 Hz lidar voxelized 16x16x8", demo.path, low + ["lidar"],
              {"gripper": "hold", "lidar": "hold"}, args,
              voxelize={"lidar": dict(store.DEMO_LIDAR_GRID, mode="occupancy")})


if __name__ == "__main__":
    main()
