"""Readers release the GIL and may be called from several threads at once: results equal serial reads."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from robocache import datasets

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CASES = [
    ("rlds", DATA / "rlds" / "bridge_dataset", "steps/observation/state"),
    ("robomimic", DATA / "robosuite" / "SawyerLift" / "demo.hdf5", "states"),
    ("lerobot", DATA / "lerobot" / "g1_v21", "action"),
]


@pytest.mark.parametrize("fmt,path,key", CASES, ids=[c[0] for c in CASES])
def test_concurrent_reads_equal_serial(fmt, path, key):
    if not datasets.readers()[fmt]:
        pytest.skip(f"{fmt} reader not built")
    if not path.exists():
        pytest.skip(f"{path} not present")
    ds = datasets.open(path)
    order = [i % len(ds) for i in range(3 * len(ds))][::-1]
    serial = {i: ds[i][key].numpy().copy() for i in set(order)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda i: (i, ds[i][key].numpy()), order))
    for i, arr in got:
        np.testing.assert_array_equal(arr, serial[i])
