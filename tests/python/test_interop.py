"""Arrays of other libraries cross without copies: CuPy and JAX on the CPU and GPU (where installed), and
DLPack in general."""

import os
import subprocess
import sys

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
    with pytest.raises(TypeError, match="expected a numpy.ndarray, torch.Tensor, cupy.ndarray or jax.Array, got builtins.str"):
        rc.resample_trajectories("data", [0.0, 1.0], [0.5])


@pytest.fixture
def jax64():
    """JAX with float64 enabled (float64 timestamps stay float64) and arrays made on the CPU even where JAX has
    a GPU backend (the GPU machine's image has one), restored afterwards."""
    jax = pytest.importorskip("jax")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    with jax.default_device(jax.devices("cpu")[0]):
        yield jax
    jax.config.update("jax_enable_x64", before)


def jax_gpu():
    """A JAX GPU device (with float64 on), or skip."""
    jax = pytest.importorskip("jax")
    try:
        return jax, jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX has no GPU backend here")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_jax_gpu_arrays_in_and_out(jax64, dtype):
    # JAX arrays on a GPU are read in place; results come back as JAX arrays on the same GPU, equal to the
    # NumPy call (CPU) bit for bit where the CPU and CUDA backends agree (linear, float32/float64/bfloat16).
    jax, gpu = jax_gpu()
    rng = np.random.default_rng(11)
    B, S, T, D = 3, 50, 21, 6
    src_t = np.cumsum(rng.uniform(0.01, 0.05, (B, S)), 1)
    tgt_t = np.sort(rng.uniform(-0.1, src_t[:, -1:].min() + 0.1, (B, T)), 1)
    data = rng.normal(size=(B, S, D)).astype(np.float32).astype(jax.numpy.dtype(dtype))
    want, want_mask = rc.resample_trajectories(data, src_t, tgt_t, return_mask=True)
    put = lambda a: jax.device_put(a, gpu)  # noqa: E731
    out, mask = rc.resample_trajectories(put(data), put(src_t), put(tgt_t), return_mask=True)
    assert isinstance(out, jax.Array) and out.devices() == {gpu} and out.dtype == data.dtype
    np.testing.assert_array_equal(np.asarray(out), want)
    np.testing.assert_array_equal(np.asarray(mask), want_mask)
    fused = rc.fuse_multimodal({"a": (put(data), put(src_t)), "b": (put(data[:, ::2, :3]), put(src_t[:, ::2]))},
                               put(tgt_t))
    cpu = rc.fuse_multimodal({"a": (data, src_t), "b": (data[:, ::2, :3], src_t[:, ::2])}, tgt_t)
    assert fused.devices() == {gpu} and fused.shape == (B, T, D + 3)
    np.testing.assert_array_equal(np.asarray(fused), cpu)
    per, masks = rc.fuse_multimodal({"a": (put(data), put(src_t))}, put(tgt_t), concat=False, return_mask=True)
    np.testing.assert_array_equal(np.asarray(per["a"]), want)
    np.testing.assert_array_equal(np.asarray(masks["a"]), want_mask)


def test_jax_gpu_results_are_freed_with_the_jax_array(jax64):
    # A result's device memory belongs to the JAX array it was handed to: freed when JAX drops the array.
    import gc
    import time

    jax, gpu = jax_gpu()
    alive = rc._C.DeviceBuffer.alive
    rng = np.random.default_rng(5)
    t = np.cumsum(rng.uniform(0.01, 0.05, 40))
    data = jax.device_put(rng.normal(size=(2, 40, 3)).astype(np.float32), gpu)
    src_t, tgt_t = jax.device_put(np.stack([t, t]), gpu), jax.device_put(np.stack([t[::3], t[::3]]), gpu)
    base = alive()
    out, mask = rc.resample_trajectories(data, src_t, tgt_t, return_mask=True)
    assert alive() == base + 2
    kept = np.asarray(out)
    del out, mask
    deadline = time.monotonic() + 5
    while alive() > base and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert alive() == base
    np.testing.assert_array_equal(kept, rc.resample_trajectories(np.asarray(data), np.asarray(src_t), np.asarray(tgt_t)))


def test_jax_gpu_masks_and_errors(jax64):
    # Per-stream masks are JAX arrays XLA can compute on (each its own 16-byte-aligned buffer: with B * T not a
    # multiple of 16, views of one stacked buffer would start misaligned); backend names the device; a dtype
    # RoboCache does not take, and out= of another library, are refused by name.
    jax, gpu = jax_gpu()
    import jax.numpy as jnp

    rng = np.random.default_rng(9)
    B, S, T = 3, 30, 7
    t = np.cumsum(rng.uniform(0.01, 0.05, (B, S)), 1)
    tgt = np.sort(rng.uniform(-0.1, t[:, -1:].min() + 0.1, (B, T)), 1)
    a, b = rng.normal(size=(B, S, 2)).astype(np.float32), rng.normal(size=(B, S // 2, 5)).astype(np.float32)
    streams = {"a": (a, t), "b": (b, t[:, ::2])}
    put = lambda x: jax.device_put(x, gpu)  # noqa: E731
    want, want_masks = rc.fuse_multimodal(streams, tgt, boundary="nan", return_mask=True)
    got, masks = rc.fuse_multimodal({k: (put(d), put(ts)) for k, (d, ts) in streams.items()}, put(tgt),
                                    boundary="nan", return_mask=True)
    total = jax.jit(lambda m: jnp.sum(m, dtype=jnp.int32))
    for k in streams:
        assert masks[k].devices() == {gpu}
        np.testing.assert_array_equal(np.asarray(masks[k]), want_masks[k])
        assert int(total(masks[k])) == int(want_masks[k].sum())
        assert int(total(~masks[k])) == int((~want_masks[k]).sum()) > 0
    np.testing.assert_array_equal(np.asarray(jax.jit(lambda x: jnp.nan_to_num(x, nan=-7.0))(got)),
                                  np.nan_to_num(want, nan=-7.0))

    pts = put(rng.uniform(0, 1, (100, 3)).astype(np.float32))
    rc.voxel_downsample(pts, 0.1, backend="cuda")
    with pytest.raises(ValueError, match="backend='cpu' but points is on cuda:0"):
        rc.voxel_downsample(pts, 0.1, backend="cpu")
    with pytest.raises(TypeError, match=r"data has an unsupported dtype \(int16\)"):
        rc.resample_trajectories(put(np.zeros((B, S, 2), np.int16)), put(t), put(tgt))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="out must be unset for JAX arrays on a GPU"):
        rc.resample_trajectories(put(a), put(t), put(tgt), out=torch.empty(B, T, 2, device="cuda"))


def test_jax_gpu_point_clouds(jax64):
    jax, gpu = jax_gpu()
    rng = np.random.default_rng(3)
    pts = rng.uniform(0, 2, (5000, 3)).astype(np.float32)
    cloud = np.concatenate([pts, pts[:, :1]], 1)
    kw = dict(voxel_size=0.1, origin=(0.0, 0.0, 0.0), grid_size=20, mode="count")
    grid = rc.voxelize_point_cloud(jax.device_put(pts, gpu), **kw)
    assert grid.devices() == {gpu}
    np.testing.assert_array_equal(np.asarray(grid), rc.voxelize_point_cloud(pts, **kw))
    down = rc.voxel_downsample(jax.device_put(pts, gpu), 0.1)
    np.testing.assert_array_equal(np.asarray(down), rc.voxel_downsample(pts, 0.1))
    hard = rc.hard_voxelize(jax.device_put(cloud, gpu), 0.1, [0, 0, 0, 2, 2, 2], 8, 5000)
    for g, c in zip(hard, rc.hard_voxelize(cloud, 0.1, [0, 0, 0, 2, 2, 2], 8, 5000)):
        np.testing.assert_array_equal(np.asarray(g), c)


def test_device_result_views():
    # The views a GPU result for JAX takes (column slices for concatenated output, rows, leading slices),
    # checked on a stand-in buffer: pointer arithmetic only.
    from robocache._arrays import _DeviceOut, library_of, native

    class Buffer:
        def __init__(self, device, nbytes):
            self.device, self.nbytes, self.ptr = device, nbytes, 1 << 20

    out = _DeviceOut.new((4, 5, 9), "float32", 1, buffer_type=Buffer)
    assert out.buf.nbytes == 4 * 5 * 9 * 4 and out.descriptor() == (1 << 20, 2, 1, (4, 5, 9), (45, 9, 1))
    assert library_of(out) == "jax" and native(out, "jax") == out.descriptor()
    cols = out[..., 3:7]
    assert cols.descriptor() == ((1 << 20) + 12, 2, 1, (4, 5, 4), (45, 9, 1))
    assert out[2].descriptor() == ((1 << 20) + 2 * 45 * 4, 2, 1, (5, 9), (9, 1))
    assert out[-1].descriptor()[0] == (1 << 20) + 3 * 45 * 4
    assert out[:3].descriptor() == (1 << 20, 2, 1, (3, 5, 9), (45, 9, 1))
    with pytest.raises(TypeError, match="cannot have dtype int16"):
        _DeviceOut.new((2,), "int16", 0, buffer_type=Buffer)
    mask = _DeviceOut.new((2, 4, 5), "bool", 0, buffer_type=Buffer)
    assert mask[1].descriptor() == ((1 << 20) + 20, 7, 0, (4, 5), (5, 1))
    with pytest.raises(IndexError):
        out[4]
    with pytest.raises(IndexError):
        out[::2]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_jax_cpu_arrays_in_and_out(jax64, dtype):
    """JAX CPU arrays are read through DLPack and the result is a jax.Array on the same CPU device, equal to
    the float64 reference and to the NumPy call (bfloat16 through ml_dtypes, as JAX keeps it)."""
    import jax.numpy as jnp
    from resample_reference import resample_reference

    rng = np.random.default_rng(11)
    B, S, T, D = 3, 41, 19, 5
    src_t = np.cumsum(rng.uniform(0.01, 0.05, (B, S)), 1)
    src_t[1, 10] = src_t[1, 9]  # a repeated time
    tgt_t = np.sort(rng.uniform(src_t[:, :1].max() - 0.05, src_t[:, -1:].min() + 0.05, (B, T)), 1)
    data = rng.normal(size=(B, S, D)).astype(jnp.dtype(dtype))
    want, want_mask = resample_reference(data.astype(np.float64), src_t, tgt_t, "linear", "clamp")
    d, s, t = jnp.asarray(data), jnp.asarray(src_t), jnp.asarray(tgt_t)
    assert s.dtype == jnp.float64
    out, mask = rc.resample_trajectories(d, s, t, return_mask=True)
    assert isinstance(out, jax64.Array) and out.dtype == d.dtype and out.shape == (B, T, D)
    assert out.devices() == d.devices() and isinstance(mask, jax64.Array) and mask.dtype == jnp.bool_
    tol = {"float32": 1e-5, "bfloat16": 1e-2, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(np.asarray(out).astype(np.float64), want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(np.asarray(out), rc.resample_trajectories(data, src_t, tgt_t))
    np.testing.assert_array_equal(np.asarray(mask), want_mask)
    # a column slice: read in place with its strides
    np.testing.assert_array_equal(np.asarray(rc.resample_trajectories(d[:, :, 1:4], s, t)),
                                  rc.resample_trajectories(data[:, :, 1:4], src_t, tgt_t))
    fused = rc.fuse_multimodal({"a": (d, s), "b": (d[..., :2], s[0]), "c": (d[..., :1], s, jnp.asarray([S, 7, 30]))}, t,
                               methods={"b": "hold"})
    assert isinstance(fused, jax64.Array) and fused.shape == (B, T, D + 3)
    np.testing.assert_array_equal(np.asarray(fused), rc.fuse_multimodal(
        {"a": (data, src_t), "b": (data[..., :2], src_t[0]), "c": (data[..., :1], src_t, np.array([S, 7, 30]))},
        tgt_t, methods={"b": "hold"}))
    per, masks = rc.fuse_multimodal({"a": (d, s), "b": (d[..., :2], s)}, t, concat=False, return_mask=True)
    assert all(isinstance(v, jax64.Array) for v in list(per.values()) + list(masks.values()))
    np.testing.assert_array_equal(np.asarray(masks["a"]), want_mask)
    np.testing.assert_array_equal(np.asarray(per["b"]), np.asarray(out)[..., :2])


def test_jax_bad_input_is_named(jax64):
    import jax.numpy as jnp

    d, s = jnp.zeros((2, 4, 3), jnp.float32), jnp.asarray(np.arange(4.0))
    with pytest.raises(TypeError, match="out is a jax.Array, which is immutable"):
        rc.resample_trajectories(d, s, jnp.asarray([0.5]), out=jnp.zeros((2, 1, 3), jnp.float32))
    bad = np.arange(4.0)
    bad[2] = 0.5
    with pytest.raises(ValueError, match=r"src_t must be non-decreasing: src_t\[2\]"):
        rc.resample_trajectories(d, jnp.asarray(bad), jnp.asarray([0.5]))


def test_jax_sharded_arrays_are_refused_by_name():
    # An array sharded over two (virtual CPU) devices is refused, never gathered; in a subprocess, since the
    # device count is fixed when JAX starts.
    pytest.importorskip("jax")
    code = """
import jax, numpy as np, robocache as rc
from jax.sharding import NamedSharding, PartitionSpec as P
mesh = jax.make_mesh((2,), ("b",), devices=jax.devices("cpu")[:2])
d = jax.device_put(np.zeros((2, 4, 3), np.float32), NamedSharding(mesh, P("b")))
t = np.arange(4.0, dtype=np.float32)
try:
    rc.resample_trajectories(d, t, t[:2])
except ValueError as e:
    print(e)
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "data is a JAX array sharded over 2 devices" in run.stdout and "addressable_shards" in run.stdout, run.stdout


def test_jax_point_clouds(jax64):
    import jax.numpy as jnp

    rng = np.random.default_rng(2)
    pts = rng.uniform(-1, 1, (500, 3)).astype(np.float32)
    feats = rng.normal(size=(500, 2)).astype(np.float32)
    grid = dict(voxel_size=0.25, origin=(-1, -1, -1), grid_size=(8, 8, 8))
    got, count = rc.voxelize_point_cloud(jnp.asarray(pts), jnp.asarray(feats), mode="mean", return_count=True, **grid)
    want, want_count = rc.voxelize_point_cloud(pts, feats, mode="mean", return_count=True, **grid)
    assert isinstance(got, jax64.Array) and isinstance(count, jax64.Array)
    np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(np.asarray(count), want_count)
    # counts against a plain loop
    idx = np.floor((pts + 1) / 0.25).astype(int)
    ref = np.zeros((8, 8, 8), np.int64)
    for i, j, k in idx:
        ref[i, j, k] += 1
    np.testing.assert_array_equal(np.asarray(count), ref)
    down = rc.voxel_downsample(jnp.asarray(pts), 0.5)
    assert isinstance(down, jax64.Array)
    np.testing.assert_array_equal(np.asarray(down), rc.voxel_downsample(pts, 0.5))
    voxels, coords, n = rc.hard_voxelize(jnp.asarray(pts), 0.5, [-1, -1, -1, 1, 1, 1], 8, 100)
    wv, wc, wn = rc.hard_voxelize(pts, 0.5, [-1, -1, -1, 1, 1, 1], 8, 100)
    for a, b in ((voxels, wv), (coords, wc), (n, wn)):
        assert isinstance(a, jax64.Array)
        np.testing.assert_array_equal(np.asarray(a), b)
