"""Voxelization and point-cloud files against float64 NumPy references (np.unique, np.add.at,
np.maximum.at and a plain loop for mmcv's hard voxelization), on seeded clouds with duplicates, points
exactly on voxel boundaries, NaN / inf / outside points, non-cubic grids, and the real clouds in
../shared/data/pointclouds. CUDA tests compare CUDA with the CPU and skip without a GPU."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

import robocache as rc

DATA = Path(__file__).parents[2] / ".." / "shared" / "data" / "pointclouds"
if "ROBOCACHE_POINTCLOUDS" in os.environ:
    DATA = Path(os.environ["ROBOCACHE_POINTCLOUDS"])
elif not DATA.is_dir():  # the GPU machine has no ../shared: the files are copied into .devdata/
    for _cand in (Path(__file__).parents[2] / ".devdata" / "pointclouds", Path(__file__).parents[2] / ".devdata"):
        if (_cand / "kitti_000008.bin").is_file():
            DATA = _cand
            break
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"sample point clouds not found at {DATA}")

try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    torch = None
    HAS_CUDA = False
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible to torch")


# ---------------------------------------------------------------- references (float64, plain NumPy)


def ref_coords(points, origin, voxel_size, grid_size):
    """Voxel coordinates of kept points, and the mask of kept points."""
    c = np.floor((points.astype(np.float64) - np.asarray(origin, np.float64)) / np.asarray(voxel_size, np.float64))
    with np.errstate(invalid="ignore"):
        keep = np.all(np.isfinite(c), axis=1) & np.all((c >= 0) & (c < np.asarray(grid_size)), axis=1)
    return c[keep].astype(np.int64), keep


def ref_dense(points, features, origin, voxel_size, grid_size, mode):
    X, Y, Z = grid_size
    c, keep = ref_coords(points, origin, voxel_size, grid_size)
    lin = (c[:, 0] * Y + c[:, 1]) * Z + c[:, 2]
    count = np.zeros(X * Y * Z, np.int64)
    np.add.at(count, lin, 1)
    dropped = int((~keep).sum())
    if mode == "occupancy":
        return (count > 0).reshape(X, Y, Z), count.reshape(X, Y, Z), dropped
    if mode == "count":
        return count.reshape(X, Y, Z), count.reshape(X, Y, Z), dropped
    f = features[keep].astype(np.float64)
    C = f.shape[1]
    if mode == "max":
        acc = np.full((X * Y * Z, C), -np.inf)
        np.maximum.at(acc, lin, f)
        acc[count == 0] = 0
    else:
        acc = np.zeros((X * Y * Z, C))
        np.add.at(acc, lin, f)
        if mode == "mean":
            acc /= np.maximum(count, 1)[:, None]
    return acc.reshape(X, Y, Z, C), count.reshape(X, Y, Z), dropped


def ref_downsample(points, voxel_size, features=None, origin=None):
    p = points.astype(np.float64)
    fin = np.all(np.isfinite(p), axis=1)
    p = p[fin]
    vs = np.broadcast_to(np.asarray(voxel_size, np.float64), (3,))
    o = p.min(axis=0) - vs * 0.5 if origin is None else np.asarray(origin, np.float64)
    c = np.floor((p - o) / vs).astype(np.int64)
    uniq, inv, cnt = np.unique(c, axis=0, return_inverse=True, return_counts=True)  # lexicographic: x, y, z
    inv = inv.reshape(-1)
    sums = np.zeros((len(uniq), 3))
    np.add.at(sums, inv, p)
    out = (sums / cnt[:, None]).astype(points.dtype)
    if features is None:
        return out
    f = features[fin].astype(np.float64)
    fs = np.zeros((len(uniq), f.shape[1]))
    np.add.at(fs, inv, f)
    return out, (fs / cnt[:, None]).astype(features.dtype)


def ref_hard(points, voxel_size, pc_range, max_points, max_voxels, xyz=False):
    """mmcv's hard_voxelize CPU loop, written out."""
    vs = np.broadcast_to(np.asarray(voxel_size, np.float64), (3,))
    lo, hi = np.asarray(pc_range[:3], np.float64), np.asarray(pc_range[3:], np.float64)
    grid = np.round((hi - lo) / vs).astype(np.int64)
    voxel_of = {}
    voxels, coords, nums = [], [], []
    for i, p in enumerate(points):
        c = np.floor((p[:3].astype(np.float64) - lo) / vs)
        if not (np.all(np.isfinite(c)) and np.all(c >= 0) and np.all(c < grid)):
            continue
        key = tuple(int(v) for v in c)
        v = voxel_of.get(key)
        if v is None:
            if len(voxels) >= max_voxels:
                continue
            v = voxel_of[key] = len(voxels)
            voxels.append(np.zeros((max_points, points.shape[1]), points.dtype))
            coords.append(key if xyz else key[::-1])
            nums.append(0)
        if nums[v] < max_points:
            voxels[v][nums[v]] = p
            nums[v] += 1
    C = points.shape[1]
    return (
        np.array(voxels).reshape(-1, max_points, C),
        np.array(coords, np.int32).reshape(-1, 3),
        np.array(nums, np.int32),
    )


# ---------------------------------------------------------------- test clouds


def boundary_cloud(n, seed, dtype=np.float32, grid=(7, 3, 11), voxel=(0.25, 0.5, 0.125), origin=(-1.0, -2.0, 0.5)):
    """Random points, a quarter of them exactly on voxel boundaries, duplicates, and points outside the
    grid, on the far faces, NaN and inf."""
    rng = np.random.default_rng(seed)
    grid, voxel, origin = np.array(grid), np.array(voxel), np.array(origin)
    ext = grid * voxel
    p = origin + rng.uniform(-0.1, 1.1, (n, 3)) * ext  # some outside
    k = n // 4
    p[:k] = origin + rng.integers(0, grid + 1, (k, 3)) * voxel  # exactly on boundaries, incl. the far face
    p[k : k + n // 8] = p[rng.integers(0, n, n // 8)]  # duplicates
    p = p.astype(dtype)
    if n >= 16:
        p[-1] = [np.nan, 0, 0]
        p[-2] = [0, np.inf, 0]
        p[-3] = [0, 0, -np.inf]
        p[-4] = origin + ext  # the far corner: outside
        p[-5] = origin  # the near corner: voxel (0, 0, 0)
    return p, tuple(int(g) for g in grid), tuple(float(v) for v in voxel), tuple(float(o) for o in origin)


# ---------------------------------------------------------------- dense grids


@pytest.mark.parametrize("mode", ["occupancy", "count", "sum", "mean", "max"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 19, 989, 20011])
def test_dense_matches_numpy_reference(mode, dtype, n):
    p, grid, vs, origin = boundary_cloud(n, seed=n, dtype=dtype)
    rng = np.random.default_rng(n + 1)
    feats = rng.normal(0, 3, (n, 3)).astype(dtype) if mode in ("sum", "mean", "max") else None
    kw = dict(voxel_size=vs, origin=origin, grid_size=grid, mode=mode, return_dropped=True)
    if feats is not None:
        got, cnt, dropped = rc.voxelize_point_cloud(p, feats, return_count=True, **kw)
    else:
        (got, dropped), cnt = rc.voxelize_point_cloud(p, **kw), None
    want, want_cnt, want_dropped = ref_dense(p, feats, origin, vs, grid, mode)
    assert int(dropped) == want_dropped
    if mode == "occupancy":
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want)
    elif mode == "count":
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
    else:
        assert got.dtype == dtype and got.shape == grid + (3,)
        np.testing.assert_array_equal(cnt, want_cnt)
        # float32 sums of ~100 values of magnitude ~3 carry ~1e-4 rounding; float64 ~1e-13.
        rtol, atol = (1e-5, 1e-3) if dtype == np.float32 else (1e-12, 1e-10)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_dense_boundary_points_go_to_the_upper_voxel():
    vs, origin = 0.5, (0.0, 0.0, 0.0)
    p = np.array([[0.5, 0.0, 0.0], [0.49999997, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], np.float32)
    grid, dropped = rc.voxelize_point_cloud(p, voxel_size=vs, origin=origin, grid_size=2, mode="count", return_dropped=True)
    assert grid[1, 0, 0] == 1 and grid[0, 0, 0] == 2  # 0.5 -> voxel 1; 0.49999997 and 0 -> voxel 0
    assert int(dropped) == 1  # (1, 1, 1) is on the far face: outside, not clamped into voxel (1, 1, 1)
    assert grid.sum() == 3


def test_dense_max_is_right_for_negative_features():
    p = np.array([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [1.5, 0.1, 0.1]], np.float32)
    f = np.array([[-5.0, -1.0], [-3.0, -7.0], [2.0, -0.5]], np.float32)
    g, cnt = rc.voxelize_point_cloud(p, f, voxel_size=1.0, origin=(0, 0, 0), grid_size=(2, 1, 1), mode="max", return_count=True)
    np.testing.assert_array_equal(g[0, 0, 0], [-3.0, -1.0])
    np.testing.assert_array_equal(g[1, 0, 0], [2.0, -0.5])
    g2 = rc.voxelize_point_cloud(p, f, voxel_size=1.0, origin=(0, 0, 0), grid_size=(3, 1, 1), mode="max")
    np.testing.assert_array_equal(g2[2, 0, 0], [0.0, 0.0])  # empty voxel holds 0


def test_dense_batched_with_lengths():
    rng = np.random.default_rng(7)
    B, N = 3, 500
    p = rng.uniform(0, 4, (B, N, 3)).astype(np.float32)
    p[1, 10] = np.nan
    f = rng.normal(size=(B, N, 2)).astype(np.float32)
    lengths = np.array([500, 123, 0])
    g, cnt, dropped = rc.voxelize_point_cloud(
        p, f, voxel_size=(1.0, 0.5, 2.0), origin=(0, 0, 0), grid_size=(4, 7, 2), mode="mean", lengths=lengths,
        return_count=True, return_dropped=True,
    )
    assert g.shape == (B, 4, 7, 2, 2) and dropped.shape == (B,)
    for b in range(B):
        L = lengths[b]
        want, want_cnt, want_dropped = ref_dense(p[b, :L], f[b, :L], (0, 0, 0), (1.0, 0.5, 2.0), (4, 7, 2), "mean")
        np.testing.assert_allclose(g[b], want, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(cnt[b], want_cnt)
        assert dropped[b] == want_dropped
    with pytest.raises(ValueError, match=r"lengths\[1\] = 501"):
        rc.voxelize_point_cloud(p, voxel_size=1, origin=(0, 0, 0), grid_size=4, lengths=[1, 501, 0])


def test_dense_strided_inputs():
    rng = np.random.default_rng(3)
    cloud = rng.uniform(-2, 2, (1001, 5)).astype(np.float32)
    pts = cloud[::2, :3]  # row stride 10 elements
    feats = np.ascontiguousarray(rng.normal(size=(4, 501)).astype(np.float32)).T  # column-major
    got = rc.voxelize_point_cloud(pts, feats, voxel_size=0.5, origin=(-2, -2, -2), grid_size=8, mode="sum")
    want, _, _ = ref_dense(pts, feats, (-2, -2, -2), (0.5,) * 3, (8, 8, 8), "sum")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dense_torch_cpu_in_torch_out():
    if torch is None:
        pytest.skip("torch not installed")
    p, grid, vs, origin = boundary_cloud(2000, seed=5)
    g = rc.voxelize_point_cloud(torch.from_numpy(p), voxel_size=vs, origin=origin, grid_size=grid, mode="count")
    assert isinstance(g, torch.Tensor) and g.dtype == torch.int32
    np.testing.assert_array_equal(g.numpy(), ref_dense(p, None, origin, vs, grid, "count")[0])


def test_dense_errors_name_the_argument_and_value():
    p = np.zeros((10, 3), np.float32)
    kw = dict(voxel_size=1.0, origin=(0, 0, 0), grid_size=4)
    with pytest.raises(ValueError, match="mode must be one of .*'avg'"):
        rc.voxelize_point_cloud(p, mode="avg", **kw)
    with pytest.raises(ValueError, match="mode='mean' needs features"):
        rc.voxelize_point_cloud(p, mode="mean", **kw)
    with pytest.raises(ValueError, match="features were given but mode='count'"):
        rc.voxelize_point_cloud(p, np.zeros((10, 1), np.float32), mode="count", **kw)
    with pytest.raises(ValueError, match=r"points must have shape \[N, 3\] or \[B, N, 3\], got \[10, 4\]"):
        rc.voxelize_point_cloud(np.zeros((10, 4), np.float32), **kw)
    with pytest.raises(ValueError, match=r"voxel_size must be positive .*\[1.0, 0.0, 1.0\]"):
        rc.voxelize_point_cloud(p, voxel_size=(1, 0, 1), origin=(0, 0, 0), grid_size=4)
    with pytest.raises(ValueError, match=r"grid_size must be >= 1 .*\[4, 0, 4\]"):
        rc.voxelize_point_cloud(p, voxel_size=1, origin=(0, 0, 0), grid_size=(4, 0, 4))
    with pytest.raises(ValueError, match="origin must be finite"):
        rc.voxelize_point_cloud(p, voxel_size=1, origin=(0, float("nan"), 0), grid_size=4)
    with pytest.raises(TypeError, match="points dtype must be float32 or float64, got int32"):
        rc.voxelize_point_cloud(np.zeros((10, 3), np.int32), **kw)
    with pytest.raises(ValueError, match=r"features must have shape \[10\] \+ \[C\]"):
        rc.voxelize_point_cloud(p, np.zeros((9, 2), np.float32), mode="sum", **kw)


def test_backend_must_match_the_device():
    p = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match="backend='cuda' but points is on cpu"):
        rc.voxelize_point_cloud(p, voxel_size=1, origin=(0, 0, 0), grid_size=2, backend="cuda")
    with pytest.raises(ValueError, match="backend must be 'cpu', 'cuda' or None, got 'gpu'"):
        rc.voxel_downsample(p, 0.1, backend="gpu")
    assert rc.hard_voxelize(p, 0.5, [0, 0, 0, 1, 1, 1], 2, 4, backend="cpu")[2].tolist() == [2]


def test_dense_impossible_grid_is_a_clear_error():
    p = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"dense grid of shape \[1048576, 1048576, 1048576\]"):
        rc.voxelize_point_cloud(p, voxel_size=1e-6, origin=(0, 0, 0), grid_size=1 << 20, mode="count")


# ---------------------------------------------------------------- downsampling


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 111, 20011])
def test_downsample_matches_reference_exactly(dtype, n):
    p, _, _, _ = boundary_cloud(n, seed=100 + n, dtype=dtype)
    f = np.random.default_rng(n).normal(size=(n, 2)).astype(np.float32)
    got, got_f = rc.voxel_downsample(p, 0.3, f)
    want, want_f = ref_downsample(p, 0.3, f)
    # Same voxels, same order (x, y, z lexicographic), same float64 sums in input order: bit-identical.
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_f, want_f)


def test_downsample_per_axis_size_and_origin():
    p, _, _, _ = boundary_cloud(5000, seed=11)
    got = rc.voxel_downsample(p, (0.25, 0.5, 0.125), origin=(0, 0, 0))
    np.testing.assert_array_equal(got, ref_downsample(p, (0.25, 0.5, 0.125), origin=(0, 0, 0)))


def test_downsample_fine_grid_beyond_2_31_voxels():
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 10, (3000, 3))
    p[1000:1500] = p[:500]  # duplicates: same voxel
    got = rc.voxel_downsample(p, 1e-4)  # spans ~1e5^3 = 1e15 voxels
    want = ref_downsample(p, 1e-4)
    assert len(got) == 2500
    np.testing.assert_array_equal(got, want)


def test_downsample_impossible_request_is_an_error():
    p = np.array([[0, 0, 0], [1e6, 1e6, 1e6]], np.float64)
    with pytest.raises(ValueError, match="voxel_size .* too small"):
        rc.voxel_downsample(p, 1e-9)


def test_downsample_all_nan_and_empty():
    assert rc.voxel_downsample(np.full((4, 3), np.nan, np.float32), 0.1).shape == (0, 3)
    assert rc.voxel_downsample(np.zeros((0, 3), np.float32), 0.1).shape == (0, 3)


def test_downsample_same_as_open3d_up_to_order():
    o3d = pytest.importorskip("open3d")
    p, _, _, _ = boundary_cloud(20000, seed=21, dtype=np.float64)
    p = p[np.all(np.isfinite(p), axis=1)]
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    want = np.asarray(pc.voxel_down_sample(0.2).points)
    got = rc.voxel_downsample(p, 0.2)
    assert got.shape == want.shape
    order = lambda a: a[np.lexsort(a.T[::-1])]
    np.testing.assert_allclose(order(got), order(want), rtol=0, atol=1e-9)


@needs_data
def test_downsample_real_cloud_same_as_open3d():
    o3d = pytest.importorskip("open3d")
    p = rc.load_point_cloud(DATA / "car6.pcd").xyz.astype(np.float64)
    want = np.asarray(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p)).voxel_down_sample(0.1).points)
    got = rc.voxel_downsample(p, 0.1)
    order = lambda a: a[np.lexsort(a.T[::-1])]
    assert got.shape == want.shape
    np.testing.assert_allclose(order(got), order(want), rtol=0, atol=1e-9)


# ---------------------------------------------------------------- hard voxelization


@pytest.mark.parametrize("xyz", [False, True])
@pytest.mark.parametrize("max_points,max_voxels", [(5, 10000), (1, 20), (32, 7)])
def test_hard_voxelize_matches_mmcv_loop(xyz, max_points, max_voxels):
    p, grid, vs, origin = boundary_cloud(3001, seed=31)
    cloud = np.concatenate([p, np.random.default_rng(4).normal(size=(len(p), 1)).astype(np.float32)], axis=1)
    rng_ = list(origin) + [o + g * v for o, g, v in zip(origin, grid, vs)]
    got = rc.hard_voxelize(cloud, vs, rng_, max_points, max_voxels, coord_order="xyz" if xyz else "zyx")
    want = ref_hard(cloud, vs, rng_, max_points, max_voxels, xyz)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_hard_voxelize_fine_grid_beyond_2_31_voxels():
    rng = np.random.default_rng(8)
    p = rng.uniform(0, 10, (3000, 4)).astype(np.float32)
    p[2000:] = p[:1000] + np.float32(1e-5)  # most of these share a 1 mm voxel with an earlier point
    args = (1e-3, [0, 0, 0, 10, 10, 10], 4, 5000)  # 10^4 voxels per axis: 10^12 in all
    for g, w in zip(rc.hard_voxelize(p, *args), ref_hard(p, *args)):
        np.testing.assert_array_equal(g, w)
    if HAS_CUDA:
        for g, w in zip(rc.hard_voxelize(_cuda(p), *args), ref_hard(p, *args)):
            np.testing.assert_array_equal(g.cpu().numpy(), w)


def test_hard_voxelize_errors():
    p = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="coord_order"):
        rc.hard_voxelize(p, 0.1, [0, 0, 0, 1, 1, 1], 5, 10, coord_order="yxz")
    with pytest.raises(ValueError, match="max_points must be a positive integer, got 0"):
        rc.hard_voxelize(p, 0.1, [0, 0, 0, 1, 1, 1], 0, 10)
    with pytest.raises(ValueError, match="min < max"):
        rc.hard_voxelize(p, 0.1, [0, 0, 0, 1, -1, 1], 5, 10)
    with pytest.raises(ValueError, match=r"C >= 3"):
        rc.hard_voxelize(np.zeros((4, 2), np.float32), 0.1, [0, 0, 0, 1, 1, 1], 5, 10)


# ---------------------------------------------------------------- real clouds


@needs_data
def test_real_kitti_dense_and_pointpillars():
    cloud = rc.load_point_cloud(DATA / "kitti_000008.bin")
    assert cloud.points.shape == (17238, 4) and cloud.fields == ["x", "y", "z", "intensity"]
    p = cloud.points
    got, dropped = rc.voxelize_point_cloud(
        p[:, :3], voxel_size=0.4, origin=(0, -40, -3), grid_size=(176, 200, 10), mode="count", return_dropped=True
    )
    want, _, want_dropped = ref_dense(p[:, :3], None, (0, -40, -3), (0.4,) * 3, (176, 200, 10), "count")
    np.testing.assert_array_equal(got, want)
    assert int(dropped) == want_dropped
    pp_range = [0, -39.68, -3, 69.12, 39.68, 1]
    got = rc.hard_voxelize(p, (0.16, 0.16, 4), pp_range, 32, 16000)
    want = ref_hard(p, (0.16, 0.16, 4), pp_range, 32, 16000)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@needs_data
def test_real_nuscenes_mean_intensity():
    cloud = rc.load_point_cloud(DATA / "nuscenes_lidar_top.bin")
    assert cloud.points.shape == (34688, 5) and cloud.fields[-1] == "ring"
    assert np.all(cloud.column("ring") == np.floor(cloud.column("ring")))
    p, f = cloud.points[:, :3], cloud.points[:, 3:4]
    got = rc.voxelize_point_cloud(p, f, voxel_size=(0.5, 0.5, 0.25), origin=(-50, -50, -5), grid_size=(200, 200, 40), mode="mean")
    want, _, _ = ref_dense(p, f, (-50, -50, -5), (0.5, 0.5, 0.25), (200, 200, 40), "mean")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_data
@pytest.mark.parametrize("name", ["table_scene_mug_stereo_textured.pcd", "five_people.pcd"])
def test_real_organized_rgbd_downsample(name):
    cloud = rc.load_point_cloud(DATA / name)
    assert (cloud.width, cloud.height) == (640, 480) and cloud.fields == ["x", "y", "z", "rgba"]
    assert np.isnan(cloud.xyz).any()  # organized cloud with holes
    got = rc.voxel_downsample(cloud.xyz, 0.01)
    np.testing.assert_array_equal(got, ref_downsample(cloud.xyz, 0.01))


# ---------------------------------------------------------------- files


def py_lzf_decompress(data: bytes, out_len: int) -> bytes:
    """Independent LZF decoder (the oracle for the C++ one)."""
    out, i = bytearray(), 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
        else:
            ln = ctrl >> 5
            if ln == 7:
                ln += data[i]
                i += 1
            ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
            i += 1
            for _ in range(ln + 2):
                out.append(out[ref])
                ref += 1
    assert len(out) == out_len
    return bytes(out)


@needs_data
@pytest.mark.parametrize("name", ["table_scene_mug_stereo_textured.pcd", "car6.pcd"])
def test_pcd_binary_compressed_against_python_decoder(name):
    raw = (DATA / name).read_bytes()
    at = raw.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    csize, usize = struct.unpack_from("<II", raw, at)
    soa = py_lzf_decompress(raw[at + 8 : at + 8 + csize], usize)
    cloud = rc.load_point_cloud(DATA / name)
    n, cols = cloud.points.shape
    want = np.frombuffer(soa, np.float32).reshape(cols, n).T  # every field here is 4 bytes
    np.testing.assert_array_equal(cloud.points.view(np.uint32), want.view(np.uint32))


@needs_data
def test_pcd_ascii_real_files():
    bunny = rc.load_point_cloud(DATA / "bunny.pcd")
    assert bunny.points.shape == (397, 3)
    np.testing.assert_allclose(bunny.points[0], [0.0054216, 0.11349, 0.040749])
    assert rc.load_point_cloud(DATA / "lamppost.pcd").points.shape == (1771, 3)


def write_pcd(path, header_fields, data_kind, body: bytes, width, height=1):
    names, sizes, types, counts = zip(*header_fields)
    head = (
        "# .PCD v0.7\nVERSION 0.7\n"
        f"FIELDS {' '.join(names)}\nSIZE {' '.join(map(str, sizes))}\nTYPE {' '.join(types)}\n"
        f"COUNT {' '.join(map(str, counts))}\nWIDTH {width}\nHEIGHT {height}\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {width * height}\nDATA {data_kind}\n"
    )
    Path(path).write_bytes(head.encode() + body)


def test_pcd_binary_mixed_types_padding_and_counts(tmp_path):
    rec = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f8"), ("_", "u1", (3,)), ("label", "<u2"), ("n", "<i1", (2,))])
    a = np.zeros(5, rec)
    a["x"], a["y"], a["z"] = np.arange(5), -np.arange(5), np.nan
    a["label"], a["n"] = 60000, [[-3, 7]] * 5
    fields = [("x", 4, "F", 1), ("y", 4, "F", 1), ("z", 8, "F", 1), ("_", 1, "U", 3), ("label", 2, "U", 1), ("n", 1, "I", 2)]
    write_pcd(tmp_path / "m.pcd", fields, "binary", a.tobytes(), 5)
    c = rc.load_point_cloud(tmp_path / "m.pcd")
    assert c.fields == ["x", "y", "z", "label", "n_0", "n_1"]
    np.testing.assert_array_equal(c.points[:, 0], np.arange(5))
    assert np.isnan(c.points[:, 2]).all()
    np.testing.assert_array_equal(c.points[:, 3:], [[60000, -3, 7]] * 5)


def test_pcd_ascii_with_nan_and_packed_rgba(tmp_path):
    body = b"1 2 3 4278190335\nnan nan nan 0\n\n-1.5 0 2e-3 16777215\n"
    write_pcd(tmp_path / "a.pcd", [("x", 4, "F", 1), ("y", 4, "F", 1), ("z", 4, "F", 1), ("rgba", 4, "U", 1)], "ascii", body, 3)
    c = rc.load_point_cloud(tmp_path / "a.pcd")
    assert c.points.shape == (3, 4)
    np.testing.assert_array_equal(c.column("rgba").view(np.uint32), [4278190335, 0, 16777215])
    assert np.isnan(c.points[1, :3]).all()
    np.testing.assert_allclose(c.points[2, :3], [-1.5, 0, 2e-3])


def test_corrupt_files_name_the_file(tmp_path):
    write_pcd(tmp_path / "short.pcd", [("x", 4, "F", 1), ("y", 4, "F", 1), ("z", 4, "F", 1)], "binary", b"\0" * 20, 2)
    with pytest.raises(OSError, match=r"short\.pcd: binary data starts at byte \d+ and needs 24 bytes"):
        rc.load_point_cloud(tmp_path / "short.pcd")
    write_pcd(tmp_path / "bad.pcd", [("x", 4, "F", 1)], "ascii", b"1\nfoo\n", 2)
    with pytest.raises(OSError, match=r"bad\.pcd: ascii point 1 \(byte \d+\): 'foo' is not a number"):
        rc.load_point_cloud(tmp_path / "bad.pcd")
    # LZF back reference before the start of the output.
    body = struct.pack("<II", 2, 12) + bytes([0x20, 0x05])
    write_pcd(tmp_path / "lzf.pcd", [("x", 4, "F", 1), ("y", 4, "F", 1), ("z", 4, "F", 1)], "binary_compressed", body, 1)
    with pytest.raises(OSError, match=r"lzf\.pcd: corrupt LZF data .*points before the start"):
        rc.load_point_cloud(tmp_path / "lzf.pcd")
    (tmp_path / "t.bin").write_bytes(b"\0" * 33)
    with pytest.raises(OSError, match=r"t\.bin: file size 33 bytes"):
        rc.load_point_cloud(tmp_path / "t.bin")
    with pytest.raises(OSError, match=r"nope\.pcd: cannot open"):
        rc.load_point_cloud(tmp_path / "nope.pcd")
    (tmp_path / "h.pcd").write_bytes(b"VERSION 0.7\nFIELDS x\nSIZE 3\nTYPE F\nWIDTH 1\nDATA ascii\n1\n")
    with pytest.raises(OSError, match=r"h\.pcd: PCD field 'x' has an unsupported SIZE 3"):
        rc.load_point_cloud(tmp_path / "h.pcd")


@needs_data
def test_truncated_real_compressed_pcd(tmp_path):
    raw = (DATA / "car6.pcd").read_bytes()
    at = raw.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    (csize,) = struct.unpack_from("<I", raw, at)
    (tmp_path / "car6_cut.pcd").write_bytes(raw[: at + 8 + csize - 100])  # PCL pads files; cut into the data
    with pytest.raises(OSError, match=r"car6_cut\.pcd: binary_compressed data at byte \d+ declares"):
        rc.load_point_cloud(tmp_path / "car6_cut.pcd")
    flipped = bytearray(raw)
    at = raw.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n") + 8
    flipped[at + 40 : at + 48] = b"\xff" * 8  # garbage back references
    (tmp_path / "car6_flip.pcd").write_bytes(bytes(flipped))
    with pytest.raises(OSError, match=r"car6_flip\.pcd: corrupt LZF data"):
        rc.load_point_cloud(tmp_path / "car6_flip.pcd")


# ---------------------------------------------------------------- CUDA == CPU


def _cuda(a):
    return torch.from_numpy(np.ascontiguousarray(a)).cuda()


@needs_cuda
@pytest.mark.parametrize("mode", ["occupancy", "count", "sum", "mean", "max"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [1, 4])
def test_cuda_dense_equals_cpu(mode, dtype, C):
    p, grid, vs, origin = boundary_cloud(50001, seed=41, dtype=dtype)
    B = 2
    pb = np.stack([p, p[::-1].copy()])
    f = np.random.default_rng(5).normal(size=(B, len(p), C)).astype(dtype) if mode in ("sum", "mean", "max") else None
    lengths = np.array([len(p), 30000])
    kw = dict(voxel_size=vs, origin=origin, grid_size=grid, mode=mode, lengths=lengths, return_dropped=True)
    cpu = rc.voxelize_point_cloud(pb, f, **kw)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):  # the caller's stream is honoured
        gpu = rc.voxelize_point_cloud(_cuda(pb), None if f is None else _cuda(f), **{**kw, "lengths": _cuda(lengths)})
    stream.synchronize()
    assert gpu[0].device.type == "cuda"
    np.testing.assert_array_equal(gpu[1].cpu().numpy(), cpu[1])
    if mode in ("occupancy", "count", "max"):
        np.testing.assert_array_equal(gpu[0].cpu().numpy(), cpu[0])
    else:
        # Both sum in the features' dtype, in different orders (~200 values of magnitude ~1 per voxel).
        rtol, atol = (1e-5, 1e-3) if dtype == np.float32 else (1e-12, 1e-10)
        np.testing.assert_allclose(gpu[0].cpu().numpy(), cpu[0], rtol=rtol, atol=atol)


@needs_cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_downsample_identical_to_cpu(dtype):
    p, _, _, _ = boundary_cloud(200003, seed=51, dtype=dtype)
    f = np.random.default_rng(6).normal(size=(len(p), 3)).astype(np.float32)
    cpu = rc.voxel_downsample(p, 0.05, f)
    gpu = rc.voxel_downsample(_cuda(p), 0.05, _cuda(f))
    np.testing.assert_array_equal(gpu[0].cpu().numpy(), cpu[0])
    np.testing.assert_array_equal(gpu[1].cpu().numpy(), cpu[1])
    fine = rc.voxel_downsample(_cuda(p), 1e-5)
    np.testing.assert_array_equal(fine.cpu().numpy(), rc.voxel_downsample(p, 1e-5))


@needs_cuda
@pytest.mark.parametrize("max_points,max_voxels", [(32, 16000), (3, 100)])
def test_cuda_hard_voxelize_identical_to_cpu(max_points, max_voxels):
    p, grid, vs, origin = boundary_cloud(100003, seed=61)
    cloud = np.concatenate([p, p[:, :1] * 2], axis=1)
    rng_ = list(origin) + [o + g * v for o, g, v in zip(origin, grid, vs)]
    cpu = rc.hard_voxelize(cloud, vs, rng_, max_points, max_voxels)
    gpu = rc.hard_voxelize(_cuda(cloud), vs, rng_, max_points, max_voxels)
    for g, c in zip(gpu, cpu):
        np.testing.assert_array_equal(g.cpu().numpy(), c)


@needs_cuda
@needs_data
def test_cuda_real_clouds_equal_cpu():
    kitti = rc.load_point_cloud(DATA / "kitti_000008.bin").points
    pp = ((0.16, 0.16, 4), [0, -39.68, -3, 69.12, 39.68, 1], 32, 16000)
    for g, c in zip(rc.hard_voxelize(_cuda(kitti), *pp), rc.hard_voxelize(kitti, *pp)):
        np.testing.assert_array_equal(g.cpu().numpy(), c)
    mug = rc.load_point_cloud(DATA / "table_scene_mug_stereo_textured.pcd").xyz
    np.testing.assert_array_equal(rc.voxel_downsample(_cuda(mug), 0.01).cpu().numpy(), rc.voxel_downsample(mug, 0.01))


@needs_cuda
def test_cuda_empty_inputs():
    e = torch.zeros((0, 3), device="cuda")
    g = rc.voxelize_point_cloud(e, voxel_size=1, origin=(0, 0, 0), grid_size=4, mode="count")
    assert int(g.sum()) == 0
    assert rc.voxel_downsample(e, 0.1).shape == (0, 3)
    assert rc.hard_voxelize(torch.zeros((0, 4), device="cuda"), 0.1, [0, 0, 0, 1, 1, 1], 5, 10)[0].shape == (0, 5, 4)


@needs_cuda
def test_cuda_strided_inputs_equal_cpu():
    p, grid, vs, origin = boundary_cloud(30001, seed=71)
    cloud = np.concatenate([p, np.random.default_rng(9).normal(size=(len(p), 5)).astype(np.float32)], axis=1)
    g = _cuda(cloud)
    pts_gpu, feats_gpu = g[:, :3], g[:, 4:]  # row stride 8, features start at column 4
    pts_cpu, feats_cpu = cloud[:, :3], cloud[:, 4:]
    kw = dict(voxel_size=vs, origin=origin, grid_size=grid, mode="mean")
    np.testing.assert_allclose(
        rc.voxelize_point_cloud(pts_gpu, feats_gpu, **kw).cpu().numpy(),
        rc.voxelize_point_cloud(pts_cpu, feats_cpu, **kw), rtol=1e-5, atol=1e-4,
    )
    for a, b in zip(rc.voxel_downsample(pts_gpu, 0.1, feats_gpu), rc.voxel_downsample(pts_cpu, 0.1, feats_cpu)):
        np.testing.assert_array_equal(a.cpu().numpy(), b)
    for a, b in zip(rc.hard_voxelize(g[:, ::2], vs, list(origin) + [3, 3, 3], 4, 500), rc.hard_voxelize(cloud[:, ::2], vs, list(origin) + [3, 3, 3], 4, 500)):
        np.testing.assert_array_equal(a.cpu().numpy(), b)
