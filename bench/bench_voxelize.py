"""Voxelization benchmark (not a test): RoboCache against the baseline a user would write, in the same run.

GPU (when torch sees one): dense count + mean (one RoboCache call with return_count) against the PyTorch
scatter idiom (index_add_), for N = 100k / 1M / 4M points (uniform, and a real KITTI frame tiled with
jitter), grids 64^3 / 128^3 / 256^3, C = 4 features; the floor is the bytes that must move (points and
features read, count and mean grids written) over the measured device copy bandwidth. Also voxel
downsampling and PointPillars hard voxelization against PyTorch idioms.
CPU (always; the only section without a GPU): RoboCache CPU against NumPy (np.add.at / np.bincount,
np.unique), and Open3D's voxel_down_sample where it imports.
Throughput counts only the points that land inside the grid.

    python bench/bench_voxelize.py --data .devdata/pointclouds [--quick] [--cpu-only]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import robocache as rc

REPO = Path(__file__).resolve().parents[1]
KITTI_ORIGIN = np.array([0.0, -40.0, -3.0])
KITTI_EXTENT = np.array([70.4, 80.0, 4.0])
PP_VOXEL = (0.16, 0.16, 4.0)
PP_RANGE = [0, -39.68, -3, 69.12, 39.68, 1]


def default_data() -> Path:
    for p in (REPO / ".devdata" / "pointclouds", REPO / ".devdata", REPO / ".." / "shared" / "data" / "pointclouds"):
        if (p / "kitti_000008.bin").is_file():
            return p
    return REPO / ".devdata" / "pointclouds"


def kitti_tiled(data: Path, n: int, seed: int = 0) -> np.ndarray:
    """The KITTI frame repeated with 2 cm jitter up to n points: real LiDAR structure and density."""
    cloud = rc.load_point_cloud(data / "kitti_000008.bin").points
    reps = math.ceil(n / len(cloud))
    rng = np.random.default_rng(seed)
    tiled = np.tile(cloud, (reps, 1))[:n].copy()
    tiled[len(cloud):, :3] += rng.normal(0, 0.02, (n - len(cloud), 3)).astype(np.float32) if n > len(cloud) else 0
    return tiled


def uniform(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = KITTI_ORIGIN + rng.uniform(0, 1, (n, 3)) * KITTI_EXTENT
    return np.concatenate([p, rng.uniform(0, 1, (n, 1))], axis=1).astype(np.float32)


def table(title: str, header: list, rows: list) -> None:
    print(f"\n## {title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)] if rows else [len(h) for h in header]
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")


def inside_count(p: np.ndarray, origin, vs, grid) -> int:
    c = np.floor((p[:, :3].astype(np.float64) - origin) / vs)
    return int(np.all((c >= 0) & (c < np.asarray(grid)), axis=1).sum())


# ------------------------------------------------------------------------------------------- GPU


def gpu_time(fn, iters: int, warmup: int = 3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(3):  # best of 3 batches of `iters`
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / iters)
    return best


def copy_bandwidth() -> float:
    import torch

    a = torch.empty(1 << 28, dtype=torch.float32, device="cuda")  # 1 GiB
    b = torch.empty_like(a)
    t = gpu_time(lambda: b.copy_(a), 10)
    return 2 * a.numel() * 4 / t  # read + write bytes per second


def torch_count_mean(p, f, origin, vs, grid):
    """The PyTorch scatter idiom: integer voxel index, mask, index_add_ for count and sum, divide."""
    import torch

    c = torch.floor((p - origin) / vs).long()
    keep = ((c >= 0) & (c < grid)).all(dim=1)
    c, ff = c[keep], f[keep]
    lin = (c[:, 0] * grid[1] + c[:, 1]) * grid[2] + c[:, 2]
    V = int(grid[0] * grid[1] * grid[2])
    count = torch.zeros(V, dtype=torch.int32, device=p.device).index_add_(0, lin, torch.ones_like(lin, dtype=torch.int32))
    sums = torch.zeros(V, f.shape[1], dtype=f.dtype, device=p.device).index_add_(0, lin, ff)
    return sums / count.clamp(min=1).unsqueeze(1), count


def torch_downsample(p, vs):
    import torch

    o = p.min(dim=0).values - vs / 2
    c = torch.floor((p - o) / vs).long()
    uniq, inv, cnt = torch.unique(c, dim=0, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(uniq), 3, dtype=torch.float64, device=p.device).index_add_(0, inv, p.double())
    return (sums / cnt.unsqueeze(1)).float()


def torch_hard_voxelize(p, vs, rng, max_points, max_voxels):
    """Hard voxelization (mmcv semantics) written with PyTorch ops: sort by key, order voxels by first
    point, rank points within a voxel."""
    import torch

    lo = torch.tensor(rng[:3], device=p.device)
    grid = torch.round((torch.tensor(rng[3:]) - torch.tensor(rng[:3])) / torch.tensor(vs)).long().to(p.device)
    c = torch.floor((p[:, :3] - lo) / torch.tensor(vs, device=p.device)).long()
    keep = ((c >= 0) & (c < grid)).all(dim=1)
    idx = torch.nonzero(keep).squeeze(1)
    c = c[idx]
    key = (c[:, 0] * grid[1] + c[:, 1]) * grid[2] + c[:, 2]
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((len(uniq),), p.shape[0], dtype=torch.long, device=p.device).scatter_reduce_(0, inv, idx, "amin")
    order = torch.argsort(first)[:max_voxels]
    rank_of_voxel = torch.full((len(uniq),), -1, dtype=torch.long, device=p.device).scatter_(0, order, torch.arange(len(order), device=p.device))
    perm = torch.sort(inv, stable=True).indices
    inv_sorted = inv[perm]
    starts = torch.searchsorted(inv_sorted, inv_sorted)
    slot = torch.arange(len(perm), device=p.device) - starts
    vox = rank_of_voxel[inv_sorted]
    ok = (vox >= 0) & (slot < max_points)
    voxels = torch.zeros(len(order), max_points, p.shape[1], device=p.device, dtype=p.dtype)
    voxels[vox[ok], slot[ok]] = p[idx[perm[ok]]]
    return voxels


def gpu_section(data: Path, quick: bool) -> None:
    import torch

    dev = torch.device("cuda")
    bw = copy_bandwidth()
    print(f"# GPU: {torch.cuda.get_device_name(0)}; device copy bandwidth {bw / 1e9:.0f} GB/s (read + write); "
          f"torch {torch.__version__}; robocache {rc.build_info()['version']}")
    sizes = [100_000, 1_000_000] if quick else [100_000, 1_000_000, 4_000_000]
    grids = [128] if quick else [64, 128, 256]
    C = 4
    rows = []
    for source in ("uniform", "kitti-tiled"):
        for n in sizes:
            cloud = uniform(n) if source == "uniform" else kitti_tiled(data, n)
            feats = np.ascontiguousarray(np.concatenate([cloud[:, 3:4]] * C, axis=1))
            p = torch.from_numpy(np.ascontiguousarray(cloud[:, :3])).to(dev)
            f = torch.from_numpy(feats).to(dev)
            for g in grids:
                grid = (g, g, g)
                vs = tuple(float(v) for v in KITTI_EXTENT / g)
                inside = inside_count(cloud, KITTI_ORIGIN, np.array(vs), grid)
                kw = dict(voxel_size=vs, origin=tuple(KITTI_ORIGIN), grid_size=grid, mode="mean", return_count=True)
                t_rc = gpu_time(lambda: rc.voxelize_point_cloud(p, f, **kw), 20)
                o_t = torch.tensor(KITTI_ORIGIN, dtype=torch.float32, device=dev)
                v_t = torch.tensor(vs, dtype=torch.float32, device=dev)
                g_t = torch.tensor(grid, device=dev)
                t_pt = gpu_time(lambda: torch_count_mean(p, f, o_t, v_t, g_t), 10)
                V = g ** 3
                floor_bytes = n * (12 + 4 * C) + V * (4 + 4 * C)
                t_floor = floor_bytes / bw
                rows.append([source, f"{n:,}", f"{g}^3", f"{inside / t_rc / 1e9:.2f}", f"{t_rc * 1e6:.0f}",
                             f"{inside / t_pt / 1e9:.2f}", f"{t_pt * 1e6:.0f}", f"{t_floor * 1e6:.0f}",
                             f"{floor_bytes / t_rc / 1e9:.0f}"])
            del p, f
    table("dense count + mean, C=4 (one RoboCache call; throughput = inside points / s)",
          ["cloud", "N", "grid", "RoboCache Gpts/s", "RC us", "PyTorch Gpts/s", "PT us", "floor us", "RC GB/s"], rows)

    rows = []
    for n in ([17_238, 1_000_000] if quick else [17_238, 100_000, 1_000_000, 4_000_000]):
        cloud = kitti_tiled(data, n)
        p = torch.from_numpy(cloud).to(dev)
        inside = inside_count(cloud, np.array(PP_RANGE[:3]), np.array(PP_VOXEL), (432, 496, 1))
        t_rc = gpu_time(lambda: rc.hard_voxelize(p, PP_VOXEL, PP_RANGE, 32, 16000), 10)
        t_pt = gpu_time(lambda: torch_hard_voxelize(p, PP_VOXEL, PP_RANGE, 32, 16000), 5)
        rows.append(["PointPillars hard_voxelize (0.16 m, P=32, V=16000)", f"{n:,}", f"{inside / t_rc / 1e6:.0f}",
                     f"{t_rc * 1e6:.0f}", f"{inside / t_pt / 1e6:.0f}", f"{t_pt * 1e6:.0f}"])
        pxyz = p[:, :3].contiguous()
        t_rc = gpu_time(lambda: rc.voxel_downsample(pxyz, 0.2), 10)
        t_pt = gpu_time(lambda: torch_downsample(pxyz, 0.2), 5)
        rows.append(["voxel_downsample 0.2 m", f"{n:,}", f"{n / t_rc / 1e6:.0f}", f"{t_rc * 1e6:.0f}",
                     f"{n / t_pt / 1e6:.0f}", f"{t_pt * 1e6:.0f}"])
    table("sparse outputs on KITTI tiled (both wait for the GPU: M is needed on the host)",
          ["op", "N", "RoboCache Mpts/s", "RC us", "PyTorch Mpts/s", "PT us"], rows)


# ------------------------------------------------------------------------------------------- CPU


def cpu_time(fn, min_time: float = 0.3) -> float:
    fn()
    best, total, reps = float("inf"), 0.0, 0
    while total < min_time or reps < 3:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best


def numpy_count(p, origin, vs, grid):
    c = np.floor((p - origin) / vs).astype(np.int64)
    keep = np.all((c >= 0) & (c < grid), axis=1)
    c = c[keep]
    return np.bincount((c[:, 0] * grid[1] + c[:, 1]) * grid[2] + c[:, 2], minlength=int(np.prod(grid)))


def numpy_mean(p, f, origin, vs, grid):
    c = np.floor((p - origin) / vs).astype(np.int64)
    keep = np.all((c >= 0) & (c < grid), axis=1)
    c, ff = c[keep], f[keep]
    lin = (c[:, 0] * grid[1] + c[:, 1]) * grid[2] + c[:, 2]
    V = int(np.prod(grid))
    cnt = np.bincount(lin, minlength=V)
    sums = np.zeros((V, f.shape[1]), f.dtype)
    np.add.at(sums, lin, ff)
    return sums / np.maximum(cnt, 1)[:, None]


def numpy_downsample(p, vs):
    o = p.min(axis=0) - vs / 2
    c = np.floor((p - o) / vs).astype(np.int64)
    uniq, inv, cnt = np.unique(c, axis=0, return_inverse=True, return_counts=True)
    sums = np.zeros((len(uniq), 3))
    np.add.at(sums, inv.reshape(-1), p)
    return sums / cnt[:, None]


def cpu_section(data: Path, quick: bool) -> None:
    print(f"\n# CPU: {rc.get_num_threads()} RoboCache threads; numpy {np.__version__}")
    n = 1_030_000 if not quick else 300_000
    cloud = kitti_tiled(data, n)
    p = np.ascontiguousarray(cloud[:, :3])
    f = np.ascontiguousarray(np.repeat(cloud[:, 3:4], 4, axis=1))
    rows = []
    for g in (64, 128, 256):
        grid = (g, g, g)
        vs = KITTI_EXTENT / g
        inside = inside_count(cloud, KITTI_ORIGIN, vs, grid)
        kw = dict(voxel_size=tuple(vs), origin=tuple(KITTI_ORIGIN), grid_size=grid)
        t_rc = cpu_time(lambda: rc.voxelize_point_cloud(p, mode="count", **kw))
        t_np = cpu_time(lambda: numpy_count(p, KITTI_ORIGIN, vs, np.array(grid)))
        rows.append(["count", f"{n:,}", f"{g}^3", f"{inside / t_rc / 1e6:.0f}", f"{inside / t_np / 1e6:.1f}"])
        t_rc = cpu_time(lambda: rc.voxelize_point_cloud(p, f, mode="mean", return_count=True, **kw))
        t_np = cpu_time(lambda: numpy_mean(p, f, KITTI_ORIGIN, vs, np.array(grid)))
        rows.append(["count + mean C=4", f"{n:,}", f"{g}^3", f"{inside / t_rc / 1e6:.0f}", f"{inside / t_np / 1e6:.1f}"])
    table("CPU dense grids, KITTI tiled (Mpts/s of inside points)", ["op", "N", "grid", "RoboCache", "NumPy"], rows)

    rows = []
    t_rc = cpu_time(lambda: rc.voxel_downsample(p, 0.2))
    t_np = cpu_time(lambda: numpy_downsample(p.astype(np.float64), 0.2), min_time=0.1)
    o3d_col = "—"
    try:
        import open3d as o3d

        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p.astype(np.float64)))
        t_o3d = cpu_time(lambda: pc.voxel_down_sample(0.2))
        o3d_col = f"{n / t_o3d / 1e6:.1f}"
    except ImportError:
        pass
    rows.append(["voxel_downsample 0.2 m", f"{n:,}", f"{n / t_rc / 1e6:.0f}", f"{n / t_np / 1e6:.1f}", o3d_col])
    t_rc = cpu_time(lambda: rc.hard_voxelize(cloud, PP_VOXEL, PP_RANGE, 32, 16000))
    rows.append(["PointPillars hard_voxelize", f"{n:,}", f"{n / t_rc / 1e6:.0f}", "—", "—"])
    table("CPU sparse outputs, KITTI tiled (Mpts/s of input points)", ["op", "N", "RoboCache", "NumPy", "Open3D"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data(), help="folder with kitti_000008.bin (the sample pointclouds)")
    ap.add_argument("--quick", action="store_true", help="fewer sizes")
    ap.add_argument("--cpu-only", action="store_true", help="skip the GPU section")
    args = ap.parse_args()
    if not (args.data / "kitti_000008.bin").is_file():
        raise SystemExit(f"--data {args.data}: kitti_000008.bin not found (copy ../shared/data/pointclouds there)")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu and not args.cpu_only:
        gpu_section(args.data, args.quick)
    else:
        print("# no GPU visible (or --cpu-only): CPU section only")
    cpu_section(args.data, args.quick)


if __name__ == "__main__":
    main()
