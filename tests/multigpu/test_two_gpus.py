"""Two-GPU checks of issue 7, run by torchrun on one host with two GPUs (not collected by pytest: CI has no
second GPU; tests/multigpu/conftest.py keeps pytest out of this file):

    NCCL_NVLS_ENABLE=0 torchrun --standalone --nproc_per_node=2 tests/multigpu/test_two_gpus.py

1. Sharding: each rank iterates its Loader (rank and world_size from torch.distributed, device "cuda" =
   its own GPU) over one epoch; the window ids of all ranks, gathered with all_gather, equal the
   single-process epoch of the same seed (plus the documented padding: the first windows of the epoch's
   order repeated up to world_size * windows_per_rank), and rank 0's batches equal a CPU loader's.
2. Ops on any GPU: robocache.resample_trajectories / fuse_multimodal and the three voxelizations on cuda:1
   inputs (while cuda:0 is current) equal the same call on cuda:0 inputs, the results stay on the inputs'
   device, and inputs on two GPUs are an error.
3. Throughput: loader samples/s per rank (sharded, both GPUs at once) against one rank alone on one GPU
   (world_size=1), the same number of batches each; printed as one JSON line for BENCHMARKS.md. The run
   fails if the two GPUs together reach less than ROBOCACHE_MIN_SCALING (default 1.3) times one GPU;
   ROBOCACHE_MIN_SCALING=0 only reports.

Environment: ROBOCACHE_MULTIGPU_BATCHES (timed batches per rank, default 100), ROBOCACHE_MULTIGPU_EPISODES
(demo episodes, default 64), ROBOCACHE_MULTIGPU_CAMERA=1 to load the PNG camera stream too.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter

os.environ.setdefault("NCCL_NVLS_ENABLE", "0")  # NVLink multicast off (see the device notes)

import numpy as np
import torch
import torch.distributed as dist

import robocache
from robocache import store

STREAMS = ["joint_state", "ee_quat", "action", "gripper"]
METHODS = {"ee_quat": "slerp"}
KW = dict(batch_size=32, window=1.0, target_hz=30, seed=1234, num_threads=4, prefetch=2)


def log(*a):
    print(f"[rank {dist.get_rank()}]", *a, flush=True)


def window_ids(L, episodes, starts):
    """One int64 id per window: episode * 10**6 + its index k in the episode (start = k * stride)."""
    k = np.rint(np.asarray(starts, dtype=np.float64) / L.stride).astype(np.int64)
    return np.asarray(episodes, dtype=np.int64) * 1_000_000 + k


def gather_ids(ids, device):
    """all_gather of every rank's int64 ids (which must be equally many: the loader balances the ranks)."""
    t = torch.as_tensor(ids, dtype=torch.int64, device=device)
    n = torch.tensor([t.numel()], device=device)
    ns = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(ns, n)
    assert len({int(x) for x in ns}) == 1, f"ranks yield different numbers of windows: {[int(x) for x in ns]}"
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [o.cpu().numpy() for o in out]


def check_sharding(path, device):
    rank, world = dist.get_rank(), dist.get_world_size()
    L = robocache.Loader(path, device="cuda", streams=STREAMS, methods=METHODS, **KW)
    assert (L.rank, L.world_size) == (rank, world), (L.rank, L.world_size)
    assert L.device == f"cuda:{device.index}", f"device='cuda' gave {L.device}, expected cuda:{device.index}"
    cpu = robocache.Loader(path, device="cpu", rank=rank, world_size=world, streams=STREAMS, methods=METHODS, **KW)
    single = robocache.Loader(path, device="cpu", rank=0, world_size=1, streams=STREAMS, methods=METHODS, **KW)
    lens = [None] * world
    dist.all_gather_object(lens, len(L))
    assert len(set(lens)) == 1, f"unequal batch counts per rank: {lens}"

    for epoch in (0, 1):
        eps, starts = [], []
        cpu.load_state_dict(dict(cpu.state_dict(), epoch=epoch, batch=0))
        cpu_it = iter(cpu)
        expect = L.windows(epoch)
        for i, b in enumerate(L):
            for n in STREAMS:
                assert b[n].device == device and b["masks"][n].device == device, (n, b[n].device)
            np.testing.assert_array_equal(b["episode"].numpy(), expect[i][:, 0])
            np.testing.assert_allclose(b["start_time"].numpy(), expect[i][:, 1], rtol=0, atol=1e-12)
            if i < 5:  # the GPU pipeline of this rank equals the CPU one on the same share
                c = next(cpu_it)
                assert torch.equal(b["episode"], c["episode"]) and torch.equal(b["start_time"], c["start_time"])
                for n in STREAMS:
                    torch.testing.assert_close(b[n].cpu(), c[n], rtol=1e-5, atol=1e-5)
                    assert torch.equal(b["masks"][n].cpu(), c["masks"][n])
            eps.append(b["episode"].numpy())
            starts.append(b["start_time"].numpy())
        cpu_it.close()
        assert i + 1 == len(L)
        assert L.state_dict()["epoch"] == epoch + 1
        mine = window_ids(L, np.concatenate(eps), np.concatenate(starts))
        shares = gather_ids(mine, device)
        want = np.concatenate([window_ids(single, w[:, 0], w[:, 1]) for w in single.windows(epoch)])
        pad = L.windows_per_rank * world - len(want)
        assert 0 <= pad < world
        union = Counter(np.concatenate(shares).tolist())
        assert union == Counter(want.tolist()) + Counter(want[:pad].tolist()), "union of ranks != single epoch"
        for a in range(world):
            for b_ in range(a + 1, world):
                both = set(shares[a].tolist()) & set(shares[b_].tolist())
                assert both <= set(want[:pad].tolist()), f"ranks {a} and {b_} share windows {sorted(both)[:5]}"
        log(f"sharding epoch {epoch}: {len(mine)} windows on this rank, {len(want)} in the epoch, "
            f"{pad} padded; union == single-process epoch")


def check_ops_on_any_gpu():
    """Rank 0: the same resampling on cuda:0 and on cuda:1 (with cuda:0 current), bit for bit."""
    g = torch.Generator().manual_seed(7)
    B, S, T, D = 64, 400, 250, 12
    data = torch.randn(B, S, D, generator=g)
    src = torch.sort(torch.rand(B, S, generator=g, dtype=torch.float64) * 10, 1).values
    tgt = torch.linspace(-0.5, 10.5, T, dtype=torch.float64)
    q = torch.nn.functional.normalize(torch.randn(B, S, 4, generator=g), dim=-1)
    outs = {}
    for d in ("cuda:0", "cuda:1"):
        dev = torch.device(d)
        with torch.cuda.device(0):  # the current device is GPU 0 even for the cuda:1 call
            out, mask = robocache.resample_trajectories(data.to(dev), src.to(dev), tgt.to(dev), return_mask=True)
            sl = robocache.resample_trajectories(q.to(dev), src.to(dev), tgt.to(dev), method="slerp")
            fused = robocache.fuse_multimodal({"a": (data.to(dev), src.to(dev)), "q": (q.to(dev), src.to(dev))},
                                              tgt.to(dev), methods={"q": "slerp"}, concat=False)
        torch.cuda.synchronize(dev)
        for v in (out, mask, sl, fused["a"], fused["q"]):
            assert v.device == dev, f"an op on {d} inputs returned a tensor on {v.device}"
        outs[d] = [v.cpu() for v in (out, mask, sl, fused["a"], fused["q"])]
    # Voxelization on either GPU (first run on two GPUs in session 6).
    pts = torch.rand(20000, 3, generator=g) * 4.0
    cloud = torch.cat([pts, pts[:, :1]], 1)
    vox = {}
    for d in ("cuda:0", "cuda:1"):
        dev = torch.device(d)
        with torch.cuda.device(0):
            grid = robocache.voxelize_point_cloud(pts.to(dev), voxel_size=0.1, origin=(0.0, 0.0, 0.0),
                                                  grid_size=40, mode="count")
            down = robocache.voxel_downsample(pts.to(dev), 0.1)
            hard = robocache.hard_voxelize(cloud.to(dev), 0.1, [0.0, 0.0, 0.0, 4.0, 4.0, 4.0], 8, 20000)
        torch.cuda.synchronize(dev)
        flat = [grid, down, *hard]
        for v in flat:
            assert v.device == dev, f"a voxelization of {d} inputs returned a tensor on {v.device}"
        vox[d] = [v.cpu() for v in flat]
    for a, b in zip(vox["cuda:0"], vox["cuda:1"]):
        assert torch.equal(a, b), "cuda:1 voxelization differs from cuda:0"
    ref = robocache.resample_trajectories(data, src, tgt)
    torch.testing.assert_close(outs["cuda:0"][0], ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(outs["cuda:0"], outs["cuda:1"]):
        assert torch.equal(a, b), "cuda:1 result differs from cuda:0"
    try:
        robocache.resample_trajectories(data.to("cuda:0"), src.to("cuda:1"), tgt.to("cuda:0"))
    except (ValueError, TypeError, RuntimeError) as e:
        log(f"inputs on two GPUs refused: {type(e).__name__}: {str(e)[:120]}")
    else:
        raise AssertionError("resample_trajectories accepted data on cuda:0 with src_t on cuda:1")
    log("ops on cuda:1 == ops on cuda:0")


def time_loader(L, batches):
    """samples/s over `batches` batches after 3 warm-up batches (tensors ready on the device)."""
    it = iter(L)
    for _ in range(3):
        next(it)
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        b = next(it)
        n += len(b["episode"])
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    it.close()
    return n / dt


def check_throughput(path, device):
    rank, world = dist.get_rank(), dist.get_world_size()
    batches = int(os.environ.get("ROBOCACHE_MULTIGPU_BATCHES", "100"))
    L = robocache.Loader(path, device="cuda", streams=STREAMS, methods=METHODS, **KW)
    assert len(L) >= batches + 3, f"{len(L)} batches per rank; lower ROBOCACHE_MULTIGPU_BATCHES or add episodes"
    dist.barrier()
    rate = time_loader(L, batches)
    rates = [None] * world
    dist.all_gather_object(rates, rate)
    dist.barrier()
    single = None
    if rank == 0:  # one GPU alone, the same work per process, while the other ranks wait
        one = robocache.Loader(path, device="cuda", rank=0, world_size=1, streams=STREAMS, methods=METHODS, **KW)
        single = time_loader(one, batches)
    box = [single]
    dist.broadcast_object_list(box, src=0)
    single = box[0]
    scaling = sum(rates) / single
    if rank == 0:
        print(json.dumps({"bench": "loader_two_gpus", "gpu": torch.cuda.get_device_name(0), "world_size": world,
                          "streams": STREAMS, "batch_size": KW["batch_size"], "window_s": KW["window"],
                          "target_hz": KW["target_hz"], "num_threads_per_rank": KW["num_threads"],
                          "cpu_cores": os.cpu_count(), "batches_timed": batches,
                          "samples_per_s_per_rank": [round(r) for r in rates],
                          "samples_per_s_one_gpu": round(single), "scaling": round(scaling, 2)}), flush=True)
    floor = float(os.environ.get("ROBOCACHE_MIN_SCALING", "1.3"))
    assert floor <= 0 or scaling >= floor, f"{world} GPUs give {scaling:.2f}x one GPU's samples/s (< {floor})"


def main():
    if "LOCAL_RANK" not in os.environ:
        sys.exit("run with torchrun --nproc_per_node=2 tests/multigpu/test_two_gpus.py")
    local = int(os.environ["LOCAL_RANK"])
    if torch.cuda.device_count() < 2:
        sys.exit(f"needs 2 GPUs, PyTorch sees {torch.cuda.device_count()}")
    torch.cuda.set_device(local)
    device = torch.device("cuda", local)
    dist.init_process_group("nccl")
    try:
        assert robocache.build_info().get("cuda"), "this RoboCache build has no CUDA backend"
        if os.environ.get("ROBOCACHE_MULTIGPU_CAMERA") == "1":
            STREAMS.append("camera")
        # rank 0 writes the demo store, every rank reads it
        box = [None]
        if dist.get_rank() == 0:
            tmp = tempfile.mkdtemp(prefix="robocache-2gpu-")
            episodes = int(os.environ.get("ROBOCACHE_MULTIGPU_EPISODES", "64"))
            store.demo_dataset(os.path.join(tmp, "demo"), episodes=episodes, seed=0)
            box = [tmp]
        dist.broadcast_object_list(box, src=0)
        tmp = box[0]
        path = os.path.join(tmp, "demo")
        dist.barrier()

        check_sharding(path, device)
        dist.barrier()
        if dist.get_rank() == 0:
            check_ops_on_any_gpu()
        dist.barrier()
        check_throughput(path, device)
        dist.barrier()
        if dist.get_rank() == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            log("all two-GPU checks passed")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
