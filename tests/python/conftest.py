import os
import zlib
from pathlib import Path

import numpy as np
import pytest

# The repo's sibling shared/ (CI has it at the same relative path); ROBOCACHE_DATA overrides, e.g. on
# the GPU machine where a copy travels inside the repo.
DATA = Path(os.environ.get("ROBOCACHE_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def torch_or_none():
    try:
        import torch

        return torch
    except ImportError:
        return None


torch = torch_or_none()
HAS_CUDA = torch is not None and torch.cuda.is_available()
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible")


def shared_data(*parts):
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    return path


@pytest.fixture
def rng(request):
    # A fresh, reproducible stream per test, seeded by the test's name (crc32: str hash() is salted per
    # process) and ROBOCACHE_TEST_SEED, which a soak run can vary.
    seed = zlib.crc32(request.node.name.encode()) + int(os.environ.get("ROBOCACHE_TEST_SEED", "0"))
    return np.random.default_rng(seed)
