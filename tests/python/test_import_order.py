"""A regression test: importing robocache before torch once crashed ("free(): invalid pointer") where the
toolchain linked libstdc++ statically and _C exported its std::locale symbols to torch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("order", ["robocache, torch", "torch, robocache"])
def test_robocache_and_torch_import_in_either_order(order):
    pytest.importorskip("torch")
    code = f"import {order}; import torch, robocache; print(robocache.resample_trajectories(torch.zeros(2, 1), [0.0, 1.0], [0.5]).shape)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
