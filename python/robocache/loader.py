"""``robocache.Loader``: training batches of fixed-length windows from an episode store, every stream
resampled onto one ``target_hz`` timeline.

Python computes the windows and each epoch's order (seeded permutation, rank split, padding) with NumPy
and hands the epoch's array of windows to the C++ pipeline (``src/loader/``, ``include/robocache/loader.h``),
which does everything per sample: its worker threads read the source samples covering each window from
the memory-mapped store, decode images (each distinct frame of a batch once), stage them (pinned memory
for CUDA), copy them to the GPU on their own CUDA streams and resample / voxelize / expand them there (or
on the CPU), into output buffers that become PyTorch tensors without a copy (DLPack).
"""

from __future__ import annotations

import math
import os
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _C
from .store import Store, open_store

__all__ = ["Loader"]

_METHODS = ("linear", "nearest", "hold", "slerp")
_VOXEL_MODES = ("occupancy", "count", "sum", "mean", "max")
_RESERVED = ("episode", "start_time", "masks")
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


class _Plan:
    """Per selected stream: how it is read and resampled."""

    def __init__(self, name, s, method, quat_channel, voxel=None):
        self.name, self.s, self.method, self.quat_channel = name, s, method, quat_channel
        self.is_float = s.kind == "tensor" and s.dtype in _FLOATS
        # for the C++ pipeline: None or (voxel_size[3], origin[3], grid_size[3], mode)
        self.voxel = voxel


class Loader:
    """Iterates batches of windows of ``window`` seconds from a store (a path or a :class:`robocache.store.Store`).

    Each batch is a dict: for every name in ``streams`` a ``torch.Tensor [B, T, *shape]`` on ``device``
    (``T = round(window * target_hz)`` target times ``start + i / target_hz``), ``masks[name]`` (bool ``[B, T]``,
    False where a target lies outside that stream's samples in the episode: the pad mask at episode edges),
    ``episode`` (int64 ``[B]``) and ``start_time`` (float64 ``[B]``, seconds after the episode's first sample),
    these two always on the CPU.

    Windows start every ``stride`` seconds (default one target step) from each episode's first sample and,
    with ``edges="inside"`` (default), end at or before its last one; with ``edges="pad"`` they start at
    every step up to the last sample and run past the episode's end, where the values hold the last sample
    and the masks are False (action chunks at the end of an episode, as LeRobot pads them). Episodes of any
    length and streams of any rate mix in one batch. Floating-point streams are resampled with
    ``methods[name]`` (default ``"linear"``; ``"slerp"`` for quaternions, see ``quat_channels``);
    integer/bool streams, encoded images and point clouds with ``"hold"`` (or ``"nearest"``); images are
    decoded to uint8 ``[B, T, H, W, C]`` (every image of a stream must have the shape of its first).
    Boundary: clamp. ``"hold"`` takes the last sample at or before each target, where a sample up to
    ``tolerance_s`` (default 1e-4 s, LeRobot's default tolerance) after the target counts as at it: recorded
    timestamps carry rounding (float32 seconds, video PTS rounded to nanoseconds), and a camera sampled on the
    target grid must not be read one frame late; that stream's pad mask starts ``tolerance_s`` earlier too.
    ``tolerance_s=0`` is the exact rule.

    Point-cloud streams (variable-size ``[N_i, 3 + C]`` clouds, see :func:`robocache.store.write_store`) must be
    voxelized: ``voxelize={name: dict(voxel_size=s or (sx, sy, sz), grid_size=(X, Y, Z), origin=(0, 0, 0),
    mode="occupancy")}`` gives ``[B, T, X, Y, Z]`` (bool for ``occupancy``, int32 for ``count``) or
    ``[B, T, X, Y, Z, C]`` for ``sum`` / ``mean`` / ``max`` of the C feature columns, with the semantics of
    :func:`robocache.voxelize_point_cloud` (points outside the grid are dropped).

    ``shuffle`` orders windows by a permutation that depends only on ``seed`` and the epoch, so the same
    seed gives the same batches, whatever ``num_threads`` and ``prefetch``; ``state_dict()`` /
    ``load_state_dict()`` resume mid-epoch. ``len()`` is the number of batches per epoch (of this rank).

    The pipeline is C++ (no Python per sample): ``num_threads`` worker threads (default: all cores, at most
    8) build whole batches, at most ``prefetch`` per thread ahead of the consumer (the bound on the loader's
    memory besides the batches you hold). On CUDA each worker copies its staged (pinned) inputs to the GPU
    on its own stream and resamples there; the caller's current stream waits on each batch's event, the
    host does not. A batch's tensors share one buffer that the pipeline reuses once every tensor of the
    batch is freed *and* the work queued on the stream that was current at ``next()`` before that is done;
    a tensor used on another stream must be ordered with that stream by the user (``record_stream``-style
    hazards, as with any buffer). An error in a worker (a corrupt image, say) is raised by the iterating
    thread, with its message, for the batch it occurred in. Starting a new iteration of the same loader
    cancels an unfinished one (its iterator then raises RuntimeError). ``stats()`` reports batches built and
    the bytes held (pinned, device, host); ``evict_page_cache()`` drops the store from the page cache, for
    cold-read measurements.

    ``device="cuda"`` (the default) without an index means ``cuda:{torch.cuda.current_device()}`` at
    construction; with no GPU visible it is a ValueError (never a silent CPU fallback): pass
    ``device="cpu"`` for the CPU pipeline, which yields CPU tensors. Under ``torchrun``, call
    ``torch.cuda.set_device(local_rank)`` before making the loader and each rank's pipeline (its pinned
    copies, its streams and the resampling) runs on its own GPU. An explicit ``"cuda:N"`` is used as given.

    Distributed training: ``rank`` and ``world_size`` (both or neither; when neither is given they come from
    ``torch.distributed`` if it is initialized, else rank 0 of 1) split every epoch between the ranks. Every
    rank computes the same global order of the ``num_windows`` windows for ``(seed, epoch)`` (the permutation
    above, or the stored order with ``shuffle=False``) and takes the positions ``rank, rank + world_size,
    rank + 2 * world_size, ...`` of it (a strided split, as ``torch.utils.data.DistributedSampler``), so
    the ranks' shares are disjoint and together the whole epoch. Every rank gets the same number of windows,
    ``windows_per_rank``, hence the same ``len()`` (DDP needs equal batch counts):

    * ``drop_last=False``: ``ceil(num_windows / world_size)``. The global order is padded to
      ``world_size * windows_per_rank`` by repeating its first windows, so up to ``world_size - 1`` windows
      (the first ones of the epoch's order) are seen twice per epoch across ranks; every other window
      exactly once. A rank's last batch may be short, as in one process.
    * ``drop_last=True``: ``num_windows // world_size``; the last ``num_windows % world_size`` windows of
      the epoch's order are dropped (a different few every epoch when shuffling), and then each rank drops
      its own incomplete last batch. Every window is seen at most once.

    With ``world_size=1`` this is exactly the single-process loader. ``state_dict()`` records ``rank`` and
    ``world_size``; loading it into a loader of another rank or world size is an error.
    """

    def __init__(self, store: Union[str, os.PathLike, Store], *, batch_size: int, window: float, target_hz: float,
                 streams: Union[str, Sequence[str]], device: str = "cuda", shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, prefetch: int = 2, num_threads: Optional[int] = None,
                 methods: Optional[Dict[str, str]] = None, quat_channels: Optional[Dict[str, int]] = None,
                 stride: Optional[float] = None, edges: str = "inside", verify: bool = True,
                 rank: Optional[int] = None, world_size: Optional[int] = None,
                 voxelize: Optional[Dict[str, dict]] = None, tolerance_s: float = 1e-4):
        self.store = store if isinstance(store, Store) else open_store(store, verify=verify)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not _positive(target_hz):
            raise ValueError(f"target_hz must be a finite number > 0, got {target_hz!r}")
        if not _positive(window):
            raise ValueError(f"window must be a finite number of seconds > 0, got {window!r}")
        if stride is not None and not _positive(stride):
            raise ValueError(f"stride must be a finite number of seconds > 0, got {stride!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
            raise ValueError(f"prefetch must be an integer >= 1, got {prefetch!r}")
        if isinstance(tolerance_s, bool) or not isinstance(tolerance_s, (int, float, np.integer, np.floating)) \
                or not math.isfinite(tolerance_s) or tolerance_s < 0:
            raise ValueError(f"tolerance_s must be a finite number of seconds >= 0, got {tolerance_s!r}")
        self.tolerance_s = float(tolerance_s)
        if num_threads is not None and (not isinstance(num_threads, (int, np.integer)) or num_threads < 1):
            raise ValueError(f"num_threads must be None or an integer >= 1, got {num_threads!r}")
        self.batch_size, self.target_hz, self.window = int(batch_size), float(target_hz), float(window)
        self.T = int(round(self.window * self.target_hz))
        if self.T < 1:
            raise ValueError(f"window={window} s at target_hz={target_hz} holds no target step "
                             f"(needs window >= {0.5 / self.target_hz:g} s)")
        self.stride = float(stride) if stride is not None else 1.0 / self.target_hz
        if edges not in ("inside", "pad"):
            raise ValueError(f"edges must be 'inside' or 'pad', got {edges!r}")
        self.edges = edges
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.prefetch = int(prefetch)
        self.num_threads = int(num_threads) if num_threads else min(os.cpu_count() or 1, 8)
        self.rank, self.world_size = _rank_and_world_size(rank, world_size)
        self.device = self._check_device(device)
        self._plans = self._make_plans(streams, methods or {}, quat_channels or {}, voxelize or {})
        self._make_windows()
        n, w = self.num_windows, self.world_size
        self.windows_per_rank = n // w if self.drop_last else -(-n // w)
        if self.windows_per_rank == 0:
            raise ValueError(f"drop_last=True with world_size={w} leaves no window for any rank: the store gives "
                             f"only {n} windows")
        self._epoch, self._batch = 0, 0
        specs = [(p.name, p.method, -1 if p.quat_channel is None else int(p.quat_channel), p.voxel)
                 for p in self._plans]
        # opens the store's columns in C++ (memory maps, headers checked against the manifest) and checks the
        # plan; the worker threads start with the first iteration
        self._pipe = _C.LoaderPipeline(self.store.path, specs, self.batch_size, self.T, self.target_hz, self.device,
                                       self.num_threads, self.prefetch, self._origin, self.tolerance_s)

    # ------------------------------------------------------------------------------------------ checks
    @staticmethod
    def _check_device(device) -> str:
        device = str(device)
        if device == "cpu":
            return device
        if device == "cuda" or device.startswith("cuda:"):
            try:
                import torch
            except ImportError:
                raise ValueError(f"device={device!r} needs PyTorch, which is not installed") from None
            if not torch.cuda.is_available():
                raise ValueError(f"device={device!r}: no CUDA GPU is visible to PyTorch")
            if not _C.build_info().get("cuda", False):
                raise ValueError(f"device={device!r}: this RoboCache build has no CUDA backend "
                                 "(see robocache.build_info())")
            if device == "cuda":  # the caller's current GPU (torchrun: torch.cuda.set_device(local_rank))
                return f"cuda:{torch.cuda.current_device()}"
            index = device[len("cuda:"):]
            if not index.isdigit():
                raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
            if int(index) >= torch.cuda.device_count():
                raise ValueError(f"device={device!r}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
            return f"cuda:{int(index)}"
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")

    def _make_plans(self, streams, methods, quat_channels, voxelize) -> List[_Plan]:
        if isinstance(streams, str):
            streams = [streams]
        streams = list(streams)
        if not streams:
            raise ValueError("streams is empty: name at least one stream of the store")
        have = self.store.streams
        unknown = [n for n in streams if n not in have]
        if unknown:
            raise ValueError(f"streams: no stream {unknown} in store {self.store.path}; it has {sorted(have)}")
        if len(set(streams)) != len(streams):
            raise ValueError(f"streams names a stream twice: {streams}")
        for n in streams:
            if n in _RESERVED:
                raise ValueError(f"streams: '{n}' clashes with the batch key of the same name ({_RESERVED})")
        for what, d in (("methods", methods), ("quat_channels", quat_channels), ("voxelize", voxelize)):
            extra = set(d) - set(streams)
            if extra:
                raise ValueError(f"{what} names {sorted(extra)}, which are not among streams {streams}")
        units = {have[n].time_unit for n in streams}
        if len(units) > 1:
            raise ValueError(f"streams mix time units {sorted(units)}; load them with separate Loaders")
        plans = []
        for n in streams:
            s = have[n]
            if s.kind == "bytes" and s.encoding not in ("jpeg", "png"):
                raise ValueError(f"stream '{n}' holds {s.encoding} bytes; the loader yields tensors, so only "
                                 "tensor streams, JPEG/PNG image streams and point clouds can be loaded")
            if s.kind == "pointcloud" and n not in voxelize:
                raise ValueError(f"stream '{n}' holds point clouds of varying size; voxelize it (voxelize={{'{n}': "
                                 "dict(voxel_size=..., grid_size=..., origin=..., mode=...)}) to get a tensor")
            if n in voxelize and s.kind != "pointcloud":
                raise ValueError(f"voxelize['{n}'] is given but stream '{n}' holds {s.kind} samples, not point clouds")
            is_float = s.kind == "tensor" and s.dtype in _FLOATS
            method = methods.get(n, "linear" if is_float else "hold")
            if method not in _METHODS:
                raise ValueError(f"methods['{n}'] must be one of {_METHODS}, got {method!r}")
            if not is_float and method not in ("hold", "nearest"):
                what = {"bytes": f"{s.encoding} images", "pointcloud": "point clouds"}.get(s.kind, f"{s.dtype} samples")
                raise ValueError(f"methods['{n}'] = {method!r} cannot interpolate {what}; use 'hold' or 'nearest'")
            q = quat_channels.get(n)
            width = int(np.prod(s.shape))
            if method == "slerp":
                if q is None and width != 4:
                    raise ValueError(f"stream '{n}' has {width} channels; slerp needs 4 or quat_channels['{n}']")
                if q is not None and not 0 <= int(q) <= width - 4:
                    raise ValueError(f"quat_channels['{n}'] = {q} does not leave 4 channels in {width}")
            elif q is not None:
                raise ValueError(f"quat_channels['{n}'] is given but methods['{n}'] is {method!r}, not 'slerp'")
            _check_timestamps(s, self.store.path)
            voxel = _voxel_spec(n, s, voxelize[n]) if n in voxelize else None
            plans.append(_Plan(n, s, method, q, voxel))
        return plans

    def _make_windows(self) -> None:
        """Episode origins (first sample of any selected stream) and the list of windows (episode, k)."""
        ns = self._plans[0].s.time_unit == "ns"
        n_ep = self.store.num_episodes
        origin = np.zeros(n_ep, dtype=np.int64 if ns else np.float64)
        span = np.full(n_ep, -1.0)
        for e in range(n_ep):
            firsts, lasts = [], []
            for p in self._plans:
                a, b = p.s.episode_range(e)
                if b == a:  # a stream with no samples here: nothing to resample from
                    firsts = None
                    break
                firsts.append(p.s.timestamps[a])
                lasts.append(p.s.timestamps[b - 1])
            if firsts is None:
                continue
            origin[e] = min(firsts)
            span[e] = (max(lasts) - origin[e]) * (1e-9 if ns else 1.0)
        need = (self.T - 1) / self.target_hz if self.edges == "inside" else 0.0
        counts = np.where(span >= need - 1e-9, np.floor((span - need) / self.stride + 1e-9) + 1, 0).astype(np.int64)
        if counts.sum() == 0:
            longest = float(span.max()) if n_ep else 0.0
            raise ValueError(f"window={self.window} s ({self.T} steps at {self.target_hz:g} Hz, spanning {need:g} s) "
                             f"is longer than every episode of store {self.store.path}: the longest spans "
                             f"{max(longest, 0.0):g} s over streams {[p.name for p in self._plans]}")
        self._origin, self._ns = origin, ns
        self.episode_spans = span
        # episodes shorter than the window (or missing a selected stream) give no windows
        self.episodes_skipped = int(np.sum(counts == 0))
        self._win_ep = np.repeat(np.arange(n_ep, dtype=np.int64), counts)
        starts = np.zeros(n_ep + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        self._win_k = np.arange(len(self._win_ep), dtype=np.int64) - starts[self._win_ep]
        self.num_windows = len(self._win_ep)

    # ------------------------------------------------------------------------------------------ epochs
    def __len__(self) -> int:
        n, b = self.windows_per_rank, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def _global_order(self, epoch: int) -> np.ndarray:
        """The epoch's order of all windows, the same on every rank."""
        if not self.shuffle:
            return np.arange(self.num_windows)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_windows)

    def _order(self, epoch: int) -> np.ndarray:
        """This rank's windows of the epoch, in order (see the class docstring for padding and drop_last)."""
        order = self._global_order(epoch)
        if self.world_size == 1:
            return order
        total = self.windows_per_rank * self.world_size
        # drop_last: the first `total` of the order; else the order, then its first windows again (np.resize
        # repeats cyclically, for the odd store with fewer windows than ranks)
        order = order[:total] if self.drop_last else np.resize(order, total)
        return order[self.rank::self.world_size]

    def windows(self, epoch: int = 0) -> List[np.ndarray]:
        """This rank's windows of each batch of ``epoch``: arrays of ``(episode, start_time)`` rows."""
        order = self._order(epoch)
        out = []
        for i in range(len(self)):
            w = order[i * self.batch_size:(i + 1) * self.batch_size]
            out.append(np.stack([self._win_ep[w], self._win_k[w] * self.stride], 1))
        return out

    def state_dict(self) -> dict:
        """Where iteration stands: the epoch and the batches of it already yielded."""
        return {"seed": self.seed, "epoch": self._epoch, "batch": self._batch, "num_windows": self.num_windows,
                "batch_size": self.batch_size, "rank": self.rank, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        # a state saved before sharding existed is a single process's: rank 0 of 1
        have = (int(state.get("rank", 0)), int(state.get("world_size", 1)))
        if have != (self.rank, self.world_size):
            raise ValueError(f"state_dict is for rank {have[0]} of world_size {have[1]} but this Loader is rank "
                             f"{self.rank} of world_size {self.world_size}: load each rank's own state, with the "
                             "same number of ranks")
        for key in ("seed", "num_windows", "batch_size"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"state_dict has {key}={state.get(key)!r} but this Loader has "
                                 f"{getattr(self, key)!r}: it comes from a different loader")
        if not 0 <= int(state["batch"]) <= len(self):
            raise ValueError(f"state_dict batch={state['batch']} is out of range for {len(self)} batches")
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])

    def __iter__(self) -> Iterator[dict]:
        nb, B = len(self), self.batch_size
        order = self._order(self._epoch)[self._batch * B:nb * B]
        episodes = np.ascontiguousarray(self._win_ep[order], dtype=np.int64)
        starts = np.ascontiguousarray(self._win_k[order] * self.stride, dtype=np.float64)
        run = self._pipe.start(episodes, starts) if len(order) else None
        stream = self._consumer_stream()
        try:
            i = 0
            while self._batch < nb:
                values, masks = self._pipe.next(run, stream())  # waits without the GIL
                batch = dict(values)
                batch["masks"] = masks
                batch["episode"] = torch_from_numpy(episodes[i * B:(i + 1) * B])
                batch["start_time"] = torch_from_numpy(starts[i * B:(i + 1) * B])
                i += 1
                self._batch += 1
                yield batch
                # hold no reference past the yield: a batch the caller dropped can be reused at once
                del batch, values, masks
            self._epoch += 1
            self._batch = 0
        finally:
            if run is not None:
                self._pipe.cancel(run)

    def _consumer_stream(self):
        """A function giving the raw handle of the caller's current CUDA stream on the loader's GPU (0 on the
        CPU): the pipeline makes it wait for each batch, and a batch's buffer is reused only after the work
        queued on it before the batch was dropped."""
        if self.device == "cpu":
            return lambda: 0
        import torch

        index = torch.device(self.device).index
        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        if raw is not None:
            return lambda: raw(index)
        return lambda: torch.cuda.current_stream(index).cuda_stream

    def evict_page_cache(self) -> None:
        """Drops the store's files from this process's memory maps and from the OS page cache
        (``posix_fadvise(POSIX_FADV_DONTNEED)`` after a write-back), so the next epoch reads from the disk:
        for measuring cold-read throughput. Pages mapped by other processes stay cached."""
        import mmap as _mmap

        for s in self.store.streams.values():
            for a in (s.data, s.timestamps, s.items):
                m = getattr(a, "_mmap", None)
                if m is not None and hasattr(m, "madvise"):
                    m.madvise(_mmap.MADV_DONTNEED)
        self._pipe.evict_page_cache()
        drop_page_cache(self.store.path)

    def stats(self) -> dict:
        """The pipeline's counters (batches built since it was made, output buffers it owns) and the bytes
        all loader pipelines of the process hold (pinned staging, device and host buffers)."""
        return dict(self._pipe.stats(), **_C.loader_memory())

    def _plan(self, name: str) -> _Plan:
        for p in self._plans:
            if p.name == name:
                return p
        raise KeyError(name)

    def _method(self, name: str) -> str:
        return self._plan(name).method

    def __repr__(self) -> str:
        return (f"Loader({self.store.path!r}, streams={[p.name for p in self._plans]}, batch_size={self.batch_size}, "
                f"window={self.window} s, target_hz={self.target_hz:g}, {len(self)} batches of {self.num_windows} "
                f"windows, {self.episodes_skipped} episodes too short, device={self.device!r}"
                + (f", rank {self.rank} of {self.world_size}" if self.world_size > 1 else "") + ")")


def drop_page_cache(path) -> None:
    """Evicts every file below ``path`` from the OS page cache (fsync first: only clean pages are dropped).
    Pages that a process still maps stay cached; :meth:`Loader.evict_page_cache` unmaps the loader's first."""
    for root, _, names in os.walk(path):
        for name in names:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _rank_and_world_size(rank, world_size):
    """(rank, world_size): as given (both or neither), else from an initialized torch.distributed, else (0, 1)."""
    if rank is None and world_size is None:
        try:
            import torch.distributed as dist
        except ImportError:
            return 0, 1
        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank()), int(dist.get_world_size())
        return 0, 1
    if rank is None or world_size is None:
        raise ValueError(f"give both rank and world_size or neither, got rank={rank!r}, world_size={world_size!r}")
    for name, v in (("rank", rank), ("world_size", world_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {v!r}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got world_size={world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    return int(rank), int(world_size)


def _voxel_spec(name: str, s, spec) -> tuple:
    """voxelize[name] as (voxel_size[3], origin[3], grid_size[3], mode), checked."""
    if not isinstance(spec, dict):
        raise ValueError(f"voxelize['{name}'] must be a dict(voxel_size=..., grid_size=..., origin=..., mode=...), "
                         f"got {spec!r}")
    extra = set(spec) - {"voxel_size", "grid_size", "origin", "mode"}
    if extra:
        raise ValueError(f"voxelize['{name}'] has unknown keys {sorted(extra)}; it takes voxel_size, grid_size, "
                         "origin and mode")
    for key in ("voxel_size", "grid_size"):
        if key not in spec:
            raise ValueError(f"voxelize['{name}'] needs {key}")

    def three(key, value, cast):
        v = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)) if np.ndim(value) == 0 else np.asarray(value, dtype=np.float64)
        if v.shape != (3,) or not np.all(np.isfinite(v)):
            raise ValueError(f"voxelize['{name}']['{key}'] must be a finite number or 3 of them, got {value!r}")
        return [cast(x) for x in v]

    size = three("voxel_size", spec["voxel_size"], float)
    if min(size) <= 0:
        raise ValueError(f"voxelize['{name}']['voxel_size'] must be > 0, got {spec['voxel_size']!r}")
    origin = three("origin", spec.get("origin", 0.0), float)
    grid = three("grid_size", spec["grid_size"], float)
    if any(g < 1 or g != int(g) for g in grid):
        raise ValueError(f"voxelize['{name}']['grid_size'] must be integers >= 1, got {spec['grid_size']!r}")
    mode = spec.get("mode", "occupancy")
    if mode not in _VOXEL_MODES:
        raise ValueError(f"voxelize['{name}']['mode'] must be one of {_VOXEL_MODES}, got {mode!r}")
    if mode in ("sum", "mean", "max") and int(np.prod(s.shape)) <= 3:
        raise ValueError(f"voxelize['{name}']['mode'] = {mode!r} reduces feature columns, but the points of stream "
                         f"'{name}' have only x, y, z ({list(s.shape)})")
    return (size, origin, [int(g) for g in grid], mode)


def torch_from_numpy(a: np.ndarray):
    import torch

    return torch.from_numpy(a)


def _check_timestamps(s, path: str) -> None:
    """Every episode's timestamps of stream s are free of NaN and non-decreasing; else a ValueError naming
    the stream, the episode and the sample (before any batch, rather than in a worker)."""
    ts = np.asarray(s.timestamps)
    if ts.dtype.kind == "f":
        nan = np.flatnonzero(np.isnan(ts))
        if len(nan):
            e = int(np.searchsorted(s.episodes, nan[0], "right")) - 1
            raise ValueError(f"store {path}: stream '{s.name}' has a NaN timestamp in episode {e} "
                             f"(sample {int(nan[0] - s.episodes[e])})")
    back = np.flatnonzero(ts[1:] < ts[:-1]) + 1  # sample i is earlier than sample i - 1
    if len(back):
        starts = np.zeros(len(ts) + 1, dtype=bool)
        starts[s.episodes[:-1]] = True  # an episode's first sample may be earlier than the last one's
        back = back[~starts[back]]
    if len(back):
        i = int(back[0])
        e = int(np.searchsorted(s.episodes, i, "right")) - 1
        raise ValueError(f"store {path}: stream '{s.name}' has decreasing timestamps in episode {e}: sample "
                         f"{i - int(s.episodes[e])} is at {ts[i]}, before the previous one at {ts[i - 1]}")


def _positive(x) -> bool:
    try:
        return not isinstance(x, bool) and math.isfinite(float(x)) and float(x) > 0
    except (TypeError, ValueError):
        return False
