"""Seed corpora for the fuzz targets: real Bridge TFRecord records (one per file, framing kept) and .npy
arrays as NumPy writes them (CALVIN keys and dtypes, Fortran order, widened integers, scalars).
Usage: python3 tests/fuzz/make_seeds.py OUT_DIR  -> OUT_DIR/tfrecord, OUT_DIR/npy"""

import io
import struct
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
(out / "tfrecord").mkdir(parents=True, exist_ok=True)
(out / "npy").mkdir(parents=True, exist_ok=True)

shard = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rlds" / "bridge_dataset" / "1.0.0"
         / "bridge_dataset-train.tfrecord-00000-of-00001")
if shard.exists():
    raw = shard.read_bytes()
    pos = 0
    for i in range(3):
        (length,) = struct.unpack_from("<Q", raw, pos)
        end = pos + 12 + length + 4
        (out / "tfrecord" / f"bridge_record_{i}").write_bytes(raw[pos:end])
        pos = end

rng = np.random.default_rng(0)
arrays = {
    "actions": rng.normal(size=7),
    "robot_obs": rng.normal(size=15),
    "rgb_gripper": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
    "depth_gripper": rng.normal(size=(8, 8)).astype(np.float32),
    "ep_start_end_ids": np.array([[0, 64], [65, 120]], dtype=np.int64),
    "fortran": np.asfortranarray(rng.normal(size=(3, 4, 2))),
    "int16": rng.integers(-9, 9, (5,), dtype=np.int16),
    "uint32": rng.integers(0, 9, (4,), dtype=np.uint32),
    "bool": rng.integers(0, 2, (6,)).astype(bool),
    "scalar": np.float64(1.5),
    "empty": np.zeros((0, 3), np.float32),
}
for name, a in arrays.items():
    buf = io.BytesIO()
    np.save(buf, a)
    (out / "npy" / f"{name}.npy").write_bytes(buf.getvalue())
print(f"seeds in {out}: {len(list((out / 'tfrecord').iterdir()))} tfrecord, {len(arrays)} npy")
