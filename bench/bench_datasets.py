"""Dataset read throughput: RoboCache's native readers against the reader a user would otherwise use, on
the same files in the same run. RLDS: the `tfrecord` package, and TensorFlow where it is installed
(tf.data.TFRecordDataset + tf.io.parse_single_example, and tensorflow_datasets' builder_from_directory),
each with JPEG decoding excluded and included; RoboMimic/robosuite: h5py; RoboMimic windows: robomimic's
SequenceDataset where robomimic is installed; LeRobot: pyarrow.parquet. Reports episodes/s (windows/s) and
MB/s (file bytes / time), best of `--repeat`.

TensorFlow and robomimic are optional baselines, never dependencies: without them those lines say so.

Usage: python bench/bench_datasets.py [--repeat 5] [--only rlds,hdf5,windows,lerobot]
"""

import argparse
import importlib.util
import os
import subprocess
import sys
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
    print(f"  {name:<56} {seconds * 1e3:8.1f} ms  {episodes / seconds:8.1f} episodes/s  {nbytes / seconds / 1e6:8.1f} MB/s")


def bench_rlds(repeat, baseline="all"):
    """baseline: "tfrecord" (the `tfrecord` package), "tensorflow" (TensorFlow's readers), or "all": the
    first here and the second in a child process of the same interpreter, right after. TensorFlow and the
    `tfrecord` package register the same protobuf names (tensorflow.BytesList, ...) in the one protobuf
    descriptor pool, so whichever is imported second fails: each runs in its own process, each beside
    RoboCache's figures measured again in that process."""
    root = DATA / "rlds" / "bridge_dataset" / "1.0.0"
    shards = sorted(root.glob("*.tfrecord-*"))
    nbytes = sum(p.stat().st_size for p in shards)
    print(f"RLDS bridge_dataset: {len(shards)} shards, {nbytes / 1e6:.1f} MB" +
          (" (process 2: RoboCache and TensorFlow)" if baseline == "tensorflow" else ""))
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
    if baseline in ("all", "tfrecord"):
        try:
            import tfrecord

            def tf_read():
                for s in shards:
                    for ex in tfrecord.tfrecord_loader(str(s), None):
                        ex["steps/action"].reshape(-1, 7)

            report("tfrecord package (no CRC check, encoded)", best(tf_read, repeat), n, nbytes)
        except ImportError:
            print("  tfrecord package not installed")
    if baseline == "tensorflow":
        bench_rlds_tensorflow(root, shards, ds, nbytes, repeat)
    elif baseline == "all":
        if importlib.util.find_spec("tensorflow") is None:
            print(f"  TensorFlow not installed in {sys.executable}: TensorFlow baselines skipped "
                  "(pip install tensorflow-cpu tensorflow-datasets)")
            return
        sys.stdout.flush()
        subprocess.run([sys.executable, __file__, "--only", "rlds", "--rlds-baseline", "tensorflow",
                        "--repeat", str(repeat)], check=True)


def bench_rlds_tensorflow(root, shards, ds, nbytes, repeat):
    """TensorFlow's readers on the same shards: what an RLDS user runs today."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as e:
        print(f"  TensorFlow not installed ({e}): TensorFlow baselines skipped (pip install tensorflow-cpu)")
        return
    print(f"  -- TensorFlow {tf.__version__} (tf.data with AUTOTUNE parallelism, CRC checked by its record reader)")
    n = len(ds)
    cams = [f"steps/observation/image_{c}" for c in range(4)]
    # The parse spec a user writes for these flat RLDS keys: every feature a sequence over the steps.
    first = tf.train.Example.FromString(next(iter(tf.data.TFRecordDataset([str(shards[0])]))).numpy())
    kinds = {"bytes_list": tf.string, "float_list": tf.float32, "int64_list": tf.int64}
    spec = {k: tf.io.FixedLenSequenceFeature([], kinds[v.WhichOneof("kind")], allow_missing=True)
            for k, v in first.features.feature.items()}

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        ex["steps/action"] = tf.reshape(ex["steps/action"], [-1, 7])
        return ex

    def parse_decode(dct_method):
        def fn(record):
            ex = parse(record)
            for cam in cams:
                ex[cam] = tf.map_fn(lambda b: tf.io.decode_jpeg(b, channels=3, dct_method=dct_method), ex[cam],
                                    fn_output_signature=tf.uint8)
            return ex
        return fn

    records = tf.data.TFRecordDataset([str(s) for s in shards])
    parsed = records.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    # TensorFlow's default IDCT ("" = fast integer) differs from libjpeg's default (accurate integer, which
    # RoboCache decodes with) by up to ~12 levels; "INTEGER_ACCURATE" gives RoboCache's pixels exactly.
    decoded = records.map(parse_decode(""), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    accurate = records.map(parse_decode("INTEGER_ACCURATE"), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    # Same episodes, same values as RoboCache (checked once, outside the timing).
    got = [ex["steps/action"].numpy() for ex in parsed]
    assert len(got) == n, (len(got), n)
    for i, (a, ex) in enumerate(zip(got, accurate)):
        np.testing.assert_array_equal(a, ds[i]["steps/action"].numpy())
        for cam in cams:
            np.testing.assert_array_equal(ex[cam].numpy(), ds[i][cam].decode())

    def tf_read():
        for ex in parsed:
            ex["steps/action"].numpy()

    def tf_decode(pipeline):
        def fn():
            for ex in pipeline:
                for cam in cams:
                    ex[cam].numpy()
        return fn

    report("tf.data + parse_single_example (encoded)", best(tf_read, repeat), n, nbytes)
    report("tf.data + parse + decode_jpeg 4 cams (default IDCT)", best(tf_decode(decoded), repeat), n, nbytes)
    report("tf.data + parse + decode_jpeg 4 cams (INTEGER_ACCURATE)", best(tf_decode(accurate), repeat), n, nbytes)

    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        print(f"  tensorflow_datasets not installed ({e}): tfds baseline skipped")
        return
    builder = tfds.builder_from_directory(str(root))
    splits = "+".join(builder.info.splits.keys())
    no_cache = tfds.ReadConfig(try_autocache=False)  # else a small dataset is served from memory after one pass
    skip = {"steps": {"observation": {f"image_{c}": tfds.decode.SkipDecoding() for c in range(4)}}}

    def episodes(decoders):
        eps = builder.as_dataset(split=splits, read_config=no_cache, decoders=decoders)
        # RLDS steps are a nested dataset; batching them into one element per episode is what RLDS loaders
        # (dlimp, octo) do.
        return eps.map(lambda ep: ep["steps"].batch(1 << 30).get_single_element(),
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    tfds_enc, tfds_dec = episodes(skip), episodes(None)

    def tfds_read():
        for steps in tfds_enc:
            steps["action"].numpy()

    def tfds_decode():
        for steps in tfds_dec:
            for c in range(4):
                steps["observation"][f"image_{c}"].numpy()

    assert sum(1 for _ in tfds_enc) == n
    report(f"tfds builder_from_directory {tfds.__version__} (encoded)", best(tfds_read, repeat), n, nbytes)
    report("tfds builder_from_directory (+ decode 4 cameras)", best(tfds_decode, repeat), n, nbytes)


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


def build_robomimic_file(path, image_hw=84):
    """A RoboMimic image dataset's layout (obs/next_obs with two low-dim keys and two 84x84 cameras,
    actions, rewards, dones, states, num_samples, mask/train) from the robosuite PickPlace and NutAssembly
    demos cut into 100-step demos. The demos hold no rendered images: the cameras are pixels made from
    the states, which costs the reader the same bytes."""
    import h5py

    n_demo = 0
    with h5py.File(path, "w") as f:
        for task in ("pick-place", "nut-assembly"):
            with h5py.File(DATA / "robosuite" / task / "demo.hdf5", "r") as src:
                states, actions = src["data/demo_1/states"][()], src["data/demo_1/actions"][()]
            states = states[:, :45]
            for start in range(0, len(states) - 99, 100):
                s, a = states[start:start + 100], actions[start:start + 100]
                g = f.create_group(f"data/demo_{n_demo}")
                g.attrs["num_samples"] = len(s)
                obs = {"robot0_eef_pos": s[:, 1:4].astype(np.float32), "object": s[:, 10:24],
                       "agentview_image": (np.resize(np.abs(s) * 4099.0, (len(s), image_hw, image_hw, 3)) % 256).astype(np.uint8),
                       "robot0_eye_in_hand_image": (np.resize(np.abs(s) * 977.0, (len(s), image_hw, image_hw, 3)) % 256).astype(np.uint8)}
                for k, v in obs.items():
                    g[f"obs/{k}"] = v
                    g[f"next_obs/{k}"] = np.concatenate([v[1:], v[-1:]])
                g["actions"], g["states"] = a, s
                g["rewards"] = np.zeros(len(s))
                g["dones"] = np.arange(len(s)) == len(s) - 1
                n_demo += 1
        f["data"].attrs["env_args"] = "{}"
        f["mask/train"] = np.array([f"demo_{i}" for i in range(n_demo)], dtype="S")
    return path


def bench_windows(repeat):
    """RoboMimic training windows, read in a shuffled order as a training loop does: RoboCache's
    RoboMimicWindows against robomimic's SequenceDataset (when robomimic is installed) on the same file."""
    import tempfile

    if not (DATA / "robosuite").exists():
        print("RoboMimic windows: no robosuite demos, skipped")
        return
    tmp = tempfile.mkdtemp()
    path = build_robomimic_file(Path(tmp) / "image.hdf5")
    obs_keys = ["robot0_eef_pos", "object", "agentview_image", "robot0_eye_in_hand_image"]
    dataset_keys = ["actions", "rewards", "dones"]
    kw = dict(frame_stack=2, seq_length=10, get_pad_mask=True, filter_by_attribute="train")
    w = datasets.RoboMimicWindows(path, obs_keys=obs_keys, dataset_keys=dataset_keys, **kw)
    n = len(w)
    item_bytes = sum(v.nbytes for g in w[0].values() for v in (g.values() if isinstance(g, dict) else [g]))
    order = np.random.default_rng(0).permutation(n)
    sample = order[: min(n, 600)]
    print(f"RoboMimic windows: {path.stat().st_size / 1e6:.1f} MB file, {len(w.demos)} demos, {n} windows "
          f"(frame_stack 2, seq_length 10, obs + next_obs of 2 low-dim keys and 2 84x84 cameras, "
          f"{item_bytes / 1e6:.2f} MB per window), {len(sample)} shuffled windows per pass")

    def windows_report(name, seconds, count):  # MB/s: window bytes handed out
        print(f"  {name:<62} {seconds * 1e3:8.1f} ms  {count / seconds:8.0f} windows/s  "
              f"{count * item_bytes / seconds / 1e6:8.1f} MB/s")

    for cache in (False, True):
        t0 = time.perf_counter()
        ours = datasets.RoboMimicWindows(path, obs_keys=obs_keys, dataset_keys=dataset_keys, cache=cache, **kw)
        setup = time.perf_counter() - t0
        windows_report(f"robocache RoboMimicWindows cache={cache} (open {setup * 1e3:.0f} ms)",
                       best(lambda: [ours[int(i)] for i in sample], repeat), len(sample))
        batches = [sample[i:i + 100] for i in range(0, len(sample), 100)]
        windows_report(f"robocache get_batch(100) cache={cache}",
                       best(lambda: [ours.get_batch(b) for b in batches], repeat), len(sample))
    if importlib.util.find_spec("robomimic") is None:
        print(f"  robomimic not installed in {sys.executable}: SequenceDataset baseline skipped "
              "(pip install --no-deps robomimic==0.3.0 tqdm termcolor)")
        return
    import contextlib
    import io

    import robomimic
    import robomimic.utils.obs_utils as ObsUtils
    from robomimic.utils.dataset import SequenceDataset

    ObsUtils.initialize_obs_modality_mapping_from_dict(
        {"low_dim": obs_keys[:2], "rgb": obs_keys[2:]})
    for mode in (None, "low_dim", "all"):
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ref = SequenceDataset(str(path), obs_keys=obs_keys, dataset_keys=dataset_keys, hdf5_cache_mode=mode,
                                  hdf5_use_swmr=False, **kw)
        setup = time.perf_counter() - t0
        assert len(ref) == n
        if mode == "all":  # __getitem__ is a list lookup: the work is in the open, every window precomputed
            print(f"  robomimic {robomimic.__version__} SequenceDataset cache=all: open precomputes all {n} windows in "
                  f"{setup * 1e3:.0f} ms = {n / setup:.0f} windows/s ({n * item_bytes / 1e6:.0f} MB held in memory)")
            continue
        windows_report(f"robomimic {robomimic.__version__} SequenceDataset cache={mode} (open {setup * 1e3:.0f} ms)",
                       best(lambda: [ref[int(i)] for i in sample], repeat), len(sample))


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
    ap.add_argument("--only", default="rlds,hdf5,windows,lerobot", help="comma-separated: rlds,hdf5,windows,lerobot")
    ap.add_argument("--rlds-baseline", default="all", choices=["all", "tfrecord", "tensorflow"])
    args = ap.parse_args()
    only = args.only.split(",")
    unknown = set(only) - {"rlds", "hdf5", "windows", "lerobot"}
    if unknown:
        ap.error(f"--only: unknown {sorted(unknown)}")
    if args.rlds_baseline != "tensorflow":
        print(f"CPU: {os.cpu_count()} cores")
    if "rlds" in only:
        bench_rlds(args.repeat, args.rlds_baseline)
    if "hdf5" in only:
        bench_hdf5(args.repeat)
    if "windows" in only:
        bench_windows(args.repeat)
    if "lerobot" in only:
        bench_lerobot(args.repeat)


if __name__ == "__main__":
    main()
