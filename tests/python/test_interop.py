"""Arrays of other libraries cross without copies: CuPy on the GPU (where installed), and DLPack in general."""

import numpy as np
import pytest

import robocache as rc
from conftest import HAS_CUDA, torch


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible")
def test_cupy_arrays_on_the_current_cupy_stream():
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(5)
    B, S, T, D = 4, 60, 33, 8
    src_t = np.cumsum(rng.uniform(0.01, 0.05, (B, S)), 1)
    tgt_t = np.sort(rng.uniform(0, src_t[:, -1:].min(), (B, T)), 1)
    data = rng.normal(size=(B, S, D)).astype(np.float32)
    want, want_mask = rc.resample_trajectories(data, src_t, tgt_t, method="linear", return_mask=True)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        d, s, t = cupy.asarray(data), cupy.asarray(src_t), cupy.asarray(tgt_t)
        out, mask = rc.resample_trajectories(d, s, t, return_mask=True)
        assert isinstance(out, cupy.ndarray) and out.dtype == cupy.float32 and out.device.id == 0
        got = cupy.asnumpy(out, stream=stream)
        got_mask = cupy.asnumpy(mask, stream=stream)
    stream.synchronize()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_mask, want_mask)
    fused = rc.fuse_multimodal({"a": (d, s), "b": (d[:, :, :3], s)}, t)
    assert isinstance(fused, cupy.ndarray) and fused.shape == (B, T, D + 3)


def test_numpy_broadcast_views_are_read_in_place():
    # np.broadcast_to gives a read-only stride-0 view; it is read through DLPack / the buffer protocol as is.
    row = np.arange(12.0).reshape(1, 4, 3)
    data = np.broadcast_to(row, (1000, 4, 3))
    out = rc.resample_trajectories(data, np.arange(4.0), np.array([1.5]))
    np.testing.assert_array_equal(out, np.broadcast_to(row[:, 1:2] + 0.5 * 3, (1000, 1, 3)))


def test_unsupported_array_types_are_named():
    with pytest.raises(TypeError, match="expected a numpy.ndarray, torch.Tensor or cupy.ndarray, got builtins.str"):
        rc.resample_trajectories("data", [0.0, 1.0], [0.5])
