"""LeRobot frame/sample access: RoboCache against the LeRobot library, on the same files, in the same run.

Datasets (made under --workdir from ../shared/data/lerobot/g1_v21; LeRobot >= 0.4 reads only v3.0, so its
own converter, lerobot.datasets.v30.convert_dataset_v21_to_v30, writes the v3.0 copies both libraries read):
  g1       all 100 episodes, 35,965 frames, state + action float32[26] at 30 fps. The video feature is
           dropped: 98 of its 100 videos are not in the sample data, and LeRobot needs them all.
  g1video  episodes 1 and 2 (the two with their real AV1 640x480 camera video, keyframe every 2 frames),
           renumbered 0 and 1; LeRobot's converter puts both videos back to back in one mp4.

Measured (samples/s, best of --repeat passes; each figure beside LeRobot's, same process):
  1. random access of N samples: state + action (+ the camera frame at the sample's timestamp, g1video)
     - LeRobot: LeRobotDataset(root)[i] (video through torchcodec, its default, and through PyAV)
     - RoboCache: robocache.datasets.open (v3.0 and the original v2.1 files), episode cached after its
       first read, Episode.videos[key].frames_at(t) for the frame
  2. windows (issue 6): LeRobotDataset with delta_timestamps (action chunk of 1 s at the data's 30 Hz)
     through torch.utils.data.DataLoader, against robocache.Loader on a store converted from the same data
     (window 1 s, target_hz 30, streams state + action, edges="pad" as LeRobot pads, device cpu); also
     Loader at 50 Hz, which LeRobot cannot give (its deltas must be multiples of 1/fps).

Usage: python bench/bench_lerobot.py [--samples 3000] [--video-samples 400] [--batches 60] [--workdir DIR]
Needs lerobot (pip install lerobot, into its own venv) for the LeRobot figures; without it, only
RoboCache's figures are printed (the v3.0 copies are then written by tests/python/lerobot_v3_writer.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local

from robocache import datasets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))
from lerobot_v3_writer import v21_subset, write_v3  # noqa: E402
G1 = ROOT.parent / "shared" / "data" / "lerobot" / "g1_v21"
CAM = "observation.images.cam_high"


def have_lerobot() -> bool:
    try:
        import lerobot  # noqa: F401
        return True
    except ImportError:
        return False


# ------------------------------------------------------------------------------------------ datasets

def to_v30(v21: Path, name: str) -> Path:
    """Converts the v2.1 dataset `v21` (a directory called `name`) to v3.0 in place, with LeRobot's own
    converter when lerobot is installed, else with the tests' pyarrow writer. Returns the v3.0 path."""
    if have_lerobot():
        from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

        convert_dataset(repo_id=name, root=str(v21.parent), push_to_hub=False)  # v21 -> name_old, v3.0 -> name
        return v21
    tmp = v21.parent / f"{name}_v30"
    write_v3(v21, tmp, episodes_per_file=1000, videos_per_file=1000)
    v21.rename(v21.parent / f"{name}_old")
    tmp.rename(v21)
    return v21


def prepare(workdir: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, episodes, video in (("g1", list(range(100)), False), ("g1video", [1, 2], True)):
        path = workdir / name
        if not (path / "meta" / "info.json").exists():
            shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(workdir / f"{name}_old", ignore_errors=True)
            v21_subset(G1, path, episodes, video)
            to_v30(path, name)
        out[name] = path
        out[name + "_v21"] = workdir / f"{name}_old"
    return out


# ------------------------------------------------------------------------------------------ samplers

class RoboCacheSamples:
    """Sample i (global frame index) of a dataset read by robocache.datasets: state, action and, when the
    episode has a video, the frame at the sample's timestamp. Episodes are read on first use and kept."""

    def __init__(self, path):
        self.ds = datasets.open(path)
        self.lengths = None
        self.cache = {}

    def _episode(self, e):
        ep = self.cache.get(e)
        if ep is None:
            ep = self.ds[e]
            ep = (ep["observation.state"].numpy(), ep["action"].numpy(), ep["timestamp"].numpy(), ep.videos.get(CAM))
            self.cache[e] = ep
        return ep

    def index(self):
        n = [len(self._episode(e)[0]) for e in range(len(self.ds))]
        self.starts = np.concatenate([[0], np.cumsum(n)])
        self.cache.clear()

    def __call__(self, i, video=True):
        e = int(np.searchsorted(self.starts, i, side="right") - 1)
        state, action, ts, vid = self._episode(e)
        r = i - self.starts[e]
        out = {"observation.state": state[r], "action": action[r]}
        if video and vid is not None:
            out[CAM] = vid.frames_at(float(ts[r]))[0]
        return out


REPEAT = 3


def rate(fn, items, reset=None):
    """Items per second, best of REPEAT passes over `items` (`reset` runs before each pass, untimed)."""
    best = 0.0
    for _ in range(REPEAT):
        if reset:
            reset()
        t0 = time.perf_counter()
        for i in items:
            fn(i)
        best = max(best, len(items) / (time.perf_counter() - t0))
    return best


def line(name, per_s, base=None, unit="samples/s"):
    rel = f"   {per_s / base:6.2f}x LeRobot" if base else ""
    print(f"  {name:<62} {per_s:10.1f} {unit}{rel}", flush=True)


# ------------------------------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=3000)
    ap.add_argument("--video-samples", type=int, default=400)
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workdir", default="/tmp/robocache-bench-lerobot")
    ap.add_argument("--repeat", type=int, default=3, help="passes per figure; the best is reported")
    args = ap.parse_args()
    global REPEAT
    REPEAT = args.repeat
    import robocache

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}; robocache {robocache.__version__}", end="")
    lr = have_lerobot()
    if lr:
        import lerobot
        import torch

        print(f"; lerobot {lerobot.__version__}; torch {torch.__version__}")
    else:
        print("; lerobot NOT installed: RoboCache figures only")
    paths = prepare(Path(args.workdir))
    rng = np.random.default_rng(0)

    # ---- 1a. random samples, state + action
    print(f"\n1a. random access, state + action: {args.samples} random samples of g1 (100 episodes, 35,965 frames)")
    n_frames = 35965
    idx = rng.integers(0, n_frames, args.samples)
    base = None
    if lr:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        t0 = time.perf_counter()
        lds = LeRobotDataset("local/g1", root=paths["g1"])
        print(f"  (LeRobotDataset construction {time.perf_counter() - t0:.2f} s)")
        lds[0]
        base = rate(lambda i: lds[int(i)], idx)
        line("LeRobot LeRobotDataset[i] (v3.0)", base)
    for label, key in (("v3.0", "g1"), ("v2.1 files", "g1_v21")):
        t0 = time.perf_counter()
        s = RoboCacheSamples(paths[key])
        s.index()
        print(f"  (robocache open + index {label}: {time.perf_counter() - t0:.2f} s)")
        line(f"RoboCache datasets.open ({label}), episodes read on first use", rate(s, idx, s.cache.clear), base)
        rate(s, idx)
        line(f"RoboCache datasets.open ({label}), episodes already read", rate(s, idx), base)
    if lr:
        sample = lds[int(idx[0])]
        s = RoboCacheSamples(paths["g1"])
        s.index()
        mine = s(int(idx[0]))
        assert np.array_equal(sample["action"].numpy(), mine["action"]) and \
            np.array_equal(sample["observation.state"].numpy(), mine["observation.state"])

    # ---- 1b. random samples with the camera frame
    vid_frames = 393 + 343
    print(f"\n1b. random access with the camera frame: {args.video_samples} random samples of g1video "
          f"(2 episodes, {vid_frames} frames, AV1 640x480, one v3.0 mp4)")
    vidx = rng.integers(0, vid_frames, args.video_samples)
    base = None
    if lr:
        for backend in ("torchcodec", "pyav"):
            try:
                vds = LeRobotDataset("local/g1video", root=paths["g1video"], video_backend=backend)
                vds[0]
                r = rate(lambda i: vds[int(i)], vidx)
                line(f"LeRobot LeRobotDataset[i] (v3.0), video_backend={backend}", r, base)
                base = base or r
            except Exception as e:  # noqa: BLE001 - report and go on
                print(f"  LeRobot video_backend={backend}: failed: {type(e).__name__}: {e}")
    for label, key in (("v3.0", "g1video"), ("v2.1 files", "g1video_v21")):
        s = RoboCacheSamples(paths[key])
        s.index()
        s(0)
        line(f"RoboCache datasets.open ({label}) + Video.frames_at", rate(lambda i: s(i), vidx), base)
    # one frame at a time in order (a replay / a policy rollout viewer): the decoder keeps going
    s = RoboCacheSamples(paths["g1video"])
    s.index()
    line("RoboCache, every frame in order (one frames_at call each)", rate(lambda i: s(i), np.arange(vid_frames)), None)
    if lr:
        vds = LeRobotDataset("local/g1video", root=paths["g1video"])
        line("LeRobot, every frame in order (torchcodec)", rate(lambda i: vds[int(i)], np.arange(vid_frames)), None)
        # the same pixels? LeRobot returns float [3, H, W] in [0, 1]
        diffs = []
        for i in vidx[:20]:
            want = (vds[int(i)][CAM].permute(1, 2, 0).numpy() * 255).round().astype(np.int16)
            diffs.append(np.abs(want - s(int(i))[CAM].astype(np.int16)).max())
        print(f"  frames equal to LeRobot's (torchcodec) up to {max(diffs)} levels of 255 on 20 samples")

    # ---- 2. windows: delta_timestamps against the store + Loader
    B, nb = args.batch_size, args.batches
    print(f"\n2. windows, 1 s action chunks, batch {B}, {nb} batches, shuffled, device cpu, g1")
    fps = 30
    base = None
    if lr:
        import torch

        delta = {"action": [k / fps for k in range(fps)]}
        wds = LeRobotDataset("local/g1", root=paths["g1"], delta_timestamps=delta)
        item = wds[0]
        assert tuple(item["action"].shape) == (fps, 26)
        for workers in (0, 2):
            dl = torch.utils.data.DataLoader(wds, batch_size=B, shuffle=True, num_workers=workers,
                                             generator=torch.Generator().manual_seed(0))
            r = 0.0
            for _ in range(REPEAT):
                it = iter(dl)
                next(it)
                t0 = time.perf_counter()
                for _ in range(nb):
                    next(it)
                r = max(r, nb * B / (time.perf_counter() - t0))
            line(f"LeRobot delta_timestamps action 1 s @30 Hz, DataLoader workers={workers}", r)
            base = max(base or 0, r)
            del it, dl
        try:
            LeRobotDataset("local/g1", root=paths["g1"], delta_timestamps={"action": [k / 50 for k in range(50)]})
            print("  LeRobot delta_timestamps at 50 Hz: accepted")
        except Exception as e:  # noqa: BLE001
            print(f"  LeRobot delta_timestamps at 50 Hz on 30 fps data: refused ({type(e).__name__})")
    from robocache import Loader
    from robocache.store import convert

    store = Path(args.workdir) / "g1_store"
    if not store.exists():
        t0 = time.perf_counter()
        convert(paths["g1"], store, progress=False)
        print(f"  (robocache store conversion of g1 v3.0: {time.perf_counter() - t0:.2f} s, once)")
    for hz in (30, 50):
        loader = Loader(store, batch_size=B, window=1.0, target_hz=hz, streams=["observation.state", "action"],
                        device="cpu", edges="pad", seed=0)
        r = 0.0
        for _ in range(REPEAT):
            it = iter(loader)
            batch = next(it)
            assert tuple(batch["action"].shape) == (B, hz, 26)
            t0 = time.perf_counter()
            for _ in range(nb):
                next(it)
            r = max(r, nb * B / (time.perf_counter() - t0))
        line(f"RoboCache store + Loader, window 1 s @{hz} Hz (state + action), {loader.num_threads} threads", r,
             base if hz == 30 else None)
        del it


if __name__ == "__main__":
    main()
