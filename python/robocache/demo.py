"""``robocache demo``: the main job on built-in sample data, no downloads.

1. Alignment: a synthesised multi-rate recording (30 Hz camera features, 200 Hz joints with an
   end-effector quaternion, a 1 kHz force sensor, a gripper flag, each on its own jittered clock) is put on
   one 50 Hz timeline with ``fuse_multimodal``, checked against NumPy and timed against it.
2. Training: a small multi-rate dataset is written as a RoboCache store (or ``--data PATH`` is converted
   into one), and a small MLP policy (observation window -> action window) trains for ``--steps`` steps on
   batches from ``robocache.Loader``; it prints samples/s, step time and how busy the GPU was.
"""

from __future__ import annotations

import sys
import time

import numpy as np

import robocache as rc


def _clock(rng, n, hz, B):
    steps = rng.uniform(0.8, 1.2, (B, n)) / hz
    steps[:, 0] = rng.uniform(0, 0.01, B)
    return np.cumsum(steps, axis=1)


def make_sample(episodes: int, seed: int, seconds: float = 4.0):
    rng = np.random.default_rng(seed)
    B = episodes
    cam_t, joint_t, force_t = (_clock(rng, int(seconds * hz), hz, B) for hz in (30, 200, 1000))
    angle = np.cumsum(rng.normal(0, 0.02, (B, joint_t.shape[1])), axis=1)
    quat = np.stack([np.zeros_like(angle), np.zeros_like(angle), np.sin(angle / 2), np.cos(angle / 2)], -1)
    joints = np.concatenate([np.cumsum(rng.normal(0, 0.01, (B, joint_t.shape[1], 7)), axis=1), quat], -1)
    return {
        "camera": (rng.normal(size=(B, cam_t.shape[1], 64)).astype(np.float32), cam_t),
        "joints": (joints.astype(np.float32), joint_t),
        "force": (rng.normal(size=(B, force_t.shape[1], 6)).astype(np.float32), force_t),
        "gripper": ((rng.random((B, cam_t.shape[1], 1)) < 0.5).astype(np.float32), cam_t),
    }


METHODS = {"camera": "hold", "joints": "slerp", "force": "linear", "gripper": "hold"}
QUAT = {"joints": 7}


def numpy_align(streams, tgt_t):
    """What users write today: a per-episode, per-channel np.interp loop (linear for everything)."""
    outs = []
    for data, t in streams.values():
        o = np.empty((data.shape[0], tgt_t.shape[0], data.shape[2]), np.float32)
        for b in range(data.shape[0]):
            for d in range(data.shape[2]):
                o[b, :, d] = np.interp(tgt_t, t[b], data[b, :, d])
        outs.append(o)
    return np.concatenate(outs, axis=-1)


def _float_streams(store):
    return [n for n, s in store.streams.items() if s.kind == "tensor" and s.dtype.kind == "f"]


def train(device: str, steps: int, data: str | None = None, seed: int = 0) -> int:
    """Trains a small MLP policy on loader batches; returns 0 on success."""
    import os
    import tempfile

    try:
        import torch
    except ImportError:
        print("demo: training needs PyTorch (pip install torch); skipped", file=sys.stderr)
        return 0
    from . import store as rc_store
    from .loader import Loader

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="robocache-demo-") as tmp:
        path = os.path.join(tmp, "store")
        if data is None:
            st = rc_store.demo_dataset(path, episodes=32, seed=seed)
            methods = {"ee_quat": "slerp"}
            # the lidar clouds, voxelized by the loader (occupancy grid of the window's last step is an input)
            voxelize = {"lidar": dict(rc_store.DEMO_LIDAR_GRID, mode="occupancy")}
        else:
            print(f"converting {data} into a store", file=sys.stderr)
            st = rc_store.convert(data, path)
            methods = {}
            voxelize = {}
        floats = _float_streams(st)
        action = next((n for n in floats if "action" in n), floats[-1] if floats else None)
        obs = [n for n in floats if n != action]
        if action is None or not obs:
            print(f"demo: {data} needs at least two float streams (observations and an action); it has {floats}",
                  file=sys.stderr)
            return 1
        clouds = list(voxelize)
        loader = Loader(st, batch_size=64, window=1.0, target_hz=50, streams=obs + [action] + clouds, device=device,
                        methods={k: v for k, v in methods.items() if k in obs + [action]}, seed=seed,
                        voxelize=voxelize)

        def inputs(batch):
            x = [batch[n].flatten(1) for n in obs] + [batch[n][:, -1].flatten(1) for n in clouds]
            return torch.cat([v.float() for v in x], 1)

        first = next(iter(loader))
        x_dim = inputs(first).shape[1]
        y_dim = first[action][0].numel()
        dev = torch.device(device)
        model = torch.nn.Sequential(torch.nn.Linear(x_dim, 1024), torch.nn.GELU(), torch.nn.Linear(1024, 1024),
                                    torch.nn.GELU(), torch.nn.Linear(1024, y_dim)).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        print(f"training: {len(st)} episodes, obs {obs + [c + ' (voxelized)' for c in clouds]} -> {action}, {steps} steps of 64 windows x 1 s at 50 Hz "
              f"on {device}", file=sys.stderr)
        cuda = dev.type == "cuda"
        busy, losses, seen, step = 0.0, [], 0, 0
        start = time.perf_counter()
        while step < steps:
            for batch in loader:
                x = inputs(batch)
                y = batch[action].flatten(1).float()
                if cuda:
                    ev = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                    ev[0].record()
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if cuda:
                    ev[1].record()
                    ev[1].synchronize()
                    busy += ev[0].elapsed_time(ev[1]) * 1e-3
                losses.append(loss.item())
                seen += x.shape[0]
                step += 1
                if step % max(1, steps // 5) == 0:
                    print(f"  step {step:5d}  loss {np.mean(losses[-20:]):.4f}", file=sys.stderr)
                if step >= steps:
                    break
        wall = time.perf_counter() - start
    print(f"training on {device}: {seen / wall:,.0f} samples/s, {wall / steps * 1e3:.2f} ms/step, loss "
          f"{np.mean(losses[:10]):.4f} -> {np.mean(losses[-10:]):.4f}"
          + (f", GPU busy {100 * busy / wall:.0f}% of wall time" if cuda else " (CPU: no GPU busy figure)"))
    return 0 if np.isfinite(losses[-1]) else 1


def run(device: str | None = None, episodes: int = 256, seed: int = 0, steps: int = 200,
        data: str | None = None) -> int:
    info = rc.build_info()
    if device is None:
        device = "cuda" if info["gpu_visible"] else "cpu"
    print(f"robocache {info['version']} (CUDA {'on' if info['cuda'] else 'off'}, "
          f"{info['cuda_device_count']} GPU(s) visible); running the demo on {device}", file=sys.stderr)
    streams = make_sample(episodes, seed)
    tgt_t = np.arange(0.1, 3.9, 1 / 50)
    sizes = {k: v[0].shape for k, v in streams.items()}
    print(f"{episodes} episodes: " + ", ".join(f"{k} {s[1]}x{s[2]}" for k, s in sizes.items())
          + f" -> {len(tgt_t)} steps at 50 Hz", file=sys.stderr)

    if device == "cuda":
        import torch

        dev_streams = {k: (torch.from_numpy(d).cuda(), torch.from_numpy(t).cuda()) for k, (d, t) in streams.items()}
        dev_tgt = torch.from_numpy(tgt_t).cuda()
        sync = torch.cuda.synchronize
    elif device == "cpu":
        dev_streams, dev_tgt, sync = streams, tgt_t, (lambda: None)
    else:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")

    def align():
        return rc.fuse_multimodal(dev_streams, dev_tgt, methods=METHODS, quat_channels=QUAT)

    fused = align()
    sync()
    # Check against NumPy on the channels where both are linear (force) and the copies (hold streams).
    ref = numpy_align(streams, tgt_t)
    got = fused.cpu().numpy() if device == "cuda" else fused
    force = slice(64 + 11, 64 + 11 + 6)
    err = float(np.abs(got[..., force] - ref[..., force]).max())
    print(f"max |robocache - numpy.interp| on the force channels: {err:.2e}", file=sys.stderr)
    if not err < 1e-4:
        print("demo: results disagree with NumPy", file=sys.stderr)
        return 1

    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        align()
    sync()
    rc_s = (time.perf_counter() - start) / reps
    start = time.perf_counter()
    numpy_align(streams, tgt_t)
    np_s = time.perf_counter() - start
    moved = sum(d.nbytes + t.nbytes for d, t in streams.values()) + got.nbytes
    print(f"robocache.fuse_multimodal ({device}): {rc_s * 1e3:8.2f} ms per batch of {episodes} episodes "
          f"({episodes / rc_s:,.0f} episodes/s, {moved / rc_s / 1e9:.1f} GB/s)")
    print(f"numpy.interp loop (cpu):        {np_s * 1e3:8.2f} ms per batch ({np_s / rc_s:.0f}x slower)")
    if steps <= 0:
        return 0
    return train(device, steps, data=data, seed=seed)
