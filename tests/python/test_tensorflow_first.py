"""`import tensorflow` before `import robocache`: TensorFlow exports its own protobuf into the global symbol
scope, which used to take the place of the RLDS reader's libprotobuf-lite and crash it (segfault in
MessageLite::_InternalParse). Runs in a child process; needs TensorFlow (not a CI dependency: run where it
is installed, e.g. a TensorFlow venv)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BRIDGE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "rlds" / "bridge_dataset" / "1.0.0"


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="TensorFlow not installed here")
@pytest.mark.skipif(not BRIDGE.exists(), reason=f"{BRIDGE} not present")
def test_rlds_reader_after_import_tensorflow():
    code = f"""
import numpy as np
import tensorflow as tf
from robocache import datasets
ds = datasets.open({str(BRIDGE)!r})
for i, rec in enumerate(tf.data.TFRecordDataset(sorted(str(p) for p in __import__("pathlib").Path({str(BRIDGE)!r}).glob("*.tfrecord-*")))):
    ex = tf.io.parse_single_example(rec, {{"steps/action": tf.io.FixedLenSequenceFeature([], tf.float32, allow_missing=True),
                                          "steps/observation/image_0": tf.io.FixedLenSequenceFeature([], tf.string, allow_missing=True)}})
    ep = ds[i]
    np.testing.assert_array_equal(ep["steps/action"].numpy().ravel(), ex["steps/action"].numpy())
    img = tf.io.decode_jpeg(ex["steps/observation/image_0"][0], channels=3, dct_method="INTEGER_ACCURATE").numpy()
    np.testing.assert_array_equal(ep["steps/observation/image_0"].decode(0), img)
assert i + 1 == len(ds) == 50
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.returncode, r.stdout[-2000:], r.stderr[-4000:])
