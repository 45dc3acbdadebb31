"""Dataset read throughput: RoboCache's native readers against the reader a user would otherwise use, on
the same files in the same run. RLDS: the `tfrecord` package (no TensorFlow here); RoboMimic/robosuite:
h5py; LeRobot: pyarrow.parquet. Reports episodes/s and MB/s (file bytes / time), best of `--repeat`.

Usage: python bench/bench_datasets.py [--repeat 5]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from robocache import datasets

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def report(name, seconds, episodes, nbytes):
    print(f"  {name:<44} {seconds * 1e3:8.1f} ms  {episodes / seconds:8.1f} episodes/s  {nbytes / seconds / 1e6:8.1f} MB/s")


def bench_rlds(repeat):
    root = DATA / "rlds" / "bridge_dataset" / "1.0.0"
    shards = sorted(root.glob("*.tfrecord-*"))
    nbytes = sum(p.stat().st_size for p in shards)
    print(f"RLDS bridge_dataset: {len(shards)} shards, {nbytes / 1e6:.1f} MB")
    ds = datasets.open(root)
    n = len(ds)

    def rc_read():
        for ep in ds:
            ep["steps/action"].numpy()

    def rc_decode():
        for ep in ds:
            for cam in range(4):
                ep[f"steps/observation/image_{cam}"].decode()

    report("robocache (CRC32C verified, images encoded)", best(rc_read, repeat), n, nbytes)
    report("robocache (+ decode 4 cameras, JPEG)", best(rc_decode, repeat), n, nbytes)
    try:
        import tfrecord

        def tf_read():
            for s in shards:
                for ex in tfrecord.tfrecord_loader(str(s), None):
                    ex["steps/action"].reshape(-1, 7)

        report("tfrecord package (no CRC check, encoded)", best(tf_read, repeat), n, nbytes)
    except ImportError:
        print("  tfrecord package not installed")


def bench_hdf5(repeat):
    import h5py

    files = sorted((DATA / "robosuite").glob("*/demo.hdf5"))
    nbytes = sum(p.stat().st_size for p in files)
    print(f"robosuite HDF5: {len(files)} files, {nbytes / 1e6:.1f} MB")

    def rc():
        for f in files:
            for ep in datasets.open(f):
                ep.numpy()

    def h5():
        for f in files:
            with h5py.File(f, "r") as h:
                for name in h["data"]:
                    g = h["data"][name]
                    g.visititems(lambda k, o: o[()] if isinstance(o, h5py.Dataset) else None)

    n = sum(len(datasets.open(f)) for f in files)
    report("robocache", best(rc, repeat), n, nbytes)
    report("h5py", best(h5, repeat), n, nbytes)


def bench_lerobot(repeat):
    import pyarrow.parquet as pq

    root = DATA / "lerobot" / "g1_v21"
    files = sorted((root / "data").rglob("*.parquet"))
    nbytes = sum(p.stat().st_size for p in files)
    print(f"LeRobot g1_v21: {len(files)} parquet files, {nbytes / 1e6:.1f} MB")
    ds = datasets.open(root)

    def rc():
        for ep in ds:
            ep["action"].numpy()

    def pa():
        for f in files:
            t = pq.read_table(f)
            t.column("action").combine_chunks().flatten().to_numpy().reshape(-1, 26)
            t.column("observation.state").combine_chunks().flatten().to_numpy().reshape(-1, 26)

    report("robocache (all columns -> arrays)", best(rc, repeat), len(ds), nbytes)
    report("pyarrow.parquet (read_table + 2 columns)", best(pa, repeat), len(ds), nbytes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"CPU: {os.cpu_count()} cores")
    for fn in (bench_rlds, bench_hdf5, bench_lerobot):
        fn(args.repeat)


if __name__ == "__main__":
    main()
