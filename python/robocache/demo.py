"""``robocache demo``: align a built-in multi-rate robot recording onto one 50 Hz timeline and time it.

The recording is synthesised here (no downloads): per episode a 30 Hz camera feature stream, 200 Hz
joint states with an end-effector quaternion, a 1 kHz force/torque sensor and a gripper flag, each on its
own jittered clock. Until the episode store and loader land (issue 6), this is the main job: the same
alignment a training loop would run per batch, checked against NumPy and timed against it.
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


def run(device: str | None = None, episodes: int = 256, seed: int = 0) -> int:
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
    return 0
