"""The RoboCache episode store: any dataset that :func:`robocache.datasets.open` reads, converted into one
directory of column-wise, memory-mappable arrays.

Layout of a store ``DST/``::

    manifest.json            format/version, source, episode count, schema of every stream, file checksums
    episodes.json            per-episode metadata (language instruction, task, source file and key, extra)
    streams/NNN/data.npy     tensor streams: every episode's samples concatenated, [total_S, ...]
                             bytes streams (encoded images, text): the items concatenated, uint8 [total_bytes]
                             point-cloud streams: every cloud's points concatenated, [total_points, 3 + C]
    streams/NNN/items.npy    bytes and point-cloud streams: int64 [total_S + 1], item (cloud) i is
                             data[items[i]:items[i + 1]] (bytes, or points)
    streams/NNN/timestamps.npy   [total_S], float64 seconds or int64 nanoseconds (the manifest's time_unit)
    streams/NNN/episodes.npy     int64 [num_episodes + 1]: episode e's samples are rows episodes[e]:episodes[e+1]

Cameras that a dataset keeps as video files (LeRobot's ``Episode.videos``) are stored decoded, as uint8
``[S, H, W, 3]`` streams named by the video key with the video's frame times, when ``convert(...,
videos="raw")`` asks for it; by default (``videos="skip"``) they are left out with a warning naming them,
their paths stay in each episode's metadata (``extra["video/<key>"]``), and ``robocache.datasets`` decodes
them.

``NNN`` is the stream's position in the manifest (stream names such as ``steps/observation/image_0`` hold
slashes). Conversion writes per-episode chunks into ``DST.partial/`` (so an interrupted conversion resumes
where it stopped), concatenates them, checksums every file, writes the manifest last and renames the
directory to ``DST``: a directory called ``DST`` is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

import numpy as np

__all__ = ["convert", "open_store", "Store", "StoreStream", "StoreError", "demo_dataset", "DEMO_LIDAR_GRID", "FORMAT",
           "VERSION"]

FORMAT = "robocache-store"
VERSION = 1
_CHUNK_FMT = "episode_{:07d}.npz"


class StoreError(ValueError):
    """A store that is missing, incomplete, corrupt or of another version. The message names the file."""


# ------------------------------------------------------------------------------------------------ helpers

def _sha256(path: str, bufsize: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class _Progress:
    """A one-line progress bar on stderr (redrawn at most 10 times a second)."""

    def __init__(self, total: int, what: str, enabled: bool):
        self.total, self.what, self.enabled = total, what, enabled
        self.done, self.start, self.last = 0, time.perf_counter(), 0.0

    def update(self, n: int = 1, force: bool = False) -> None:
        self.done += n
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * 30)
        rate = self.done / max(now - self.start, 1e-9)
        sys.stderr.write(f"\r{self.what} [{bar:<30}] {self.done}/{self.total} ({rate:.1f}/s)")
        if self.done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


# ------------------------------------------------------------------------------------------------ schema

def _stream_schema(stream, images: str = "encoded", data: Optional[np.ndarray] = None) -> dict:
    """The per-stream schema a store keeps, from a :class:`robocache.datasets.Stream`. With images="raw",
    JPEG/PNG streams are stored decoded, as uint8 [S, H, W, C] tensors. `data`: the stream's array (decoded
    images, tensor, or concatenated points) where the caller has read it already, so it is not read again."""
    s = {"name": stream.name, "kind": stream.kind, "time_unit": stream.time_unit,
         "time_source": stream.time_source, "rate_hz": float(stream.rate_hz)}
    if stream.kind == "bytes" and images == "raw" and stream.encoding in ("jpeg", "png"):
        if len(stream) == 0:
            raise ValueError(f"stream '{stream.name}' has no images in this episode, so images='raw' cannot "
                             "tell their shape")
        shape = list(stream.decode(0).shape) if data is None else list(data.shape[1:])
        s.update(kind="tensor", dtype="|u1", shape=shape, encoding="", decoded_from=stream.encoding)
    elif stream.kind in ("tensor", "pointcloud"):
        a = stream.numpy() if data is None else data  # point clouds: every cloud's points concatenated, [P, 3 + C]
        s.update(dtype=a.dtype.str, shape=list(a.shape[1:]), encoding="")
    else:
        s.update(dtype="|u1", shape=[], encoding=stream.encoding)
    return s


def _video_schema(video, frames: Optional[np.ndarray] = None) -> dict:
    """The schema of a video camera stored decoded (``videos="raw"``): uint8 [S, H, W, 3] at the frame times.
    `frames`: its frames where the caller has decoded them already."""
    if len(video) == 0:
        raise ValueError(f"video '{video.name}' ({video.path}) has no frames in this episode, so videos='raw' "
                         "cannot tell their shape")
    if frames is None:
        frames = video.frames([0])  # OSError naming the video if it is missing or corrupt
    return {"name": video.name, "kind": "tensor", "time_unit": "s", "time_source": "video",
            "rate_hz": float(video.fps), "dtype": "|u1", "shape": list(frames.shape[1:]), "encoding": "",
            "decoded_from": "video"}


def _episode_arrays(episode, schema: List[dict], index: int, src: str,
                    videos: str = "skip") -> Dict[str, np.ndarray]:
    """The columns of one episode (each stream read or decoded once), checked against episode 0's schema."""
    names = [s["name"] for s in schema]
    have = list(episode.keys()) + (list(episode.videos) if videos == "raw" else [])
    if sorted(have) != sorted(names):
        raise ValueError(f"{src}: episode {index} has streams {sorted(have)} but episode 0 has {sorted(names)}; "
                         "a store needs the same streams in every episode")
    out = {}
    for k, s in enumerate(schema):
        if s.get("decoded_from") == "video":
            video = episode.videos[s["name"]]
            d = video.frames() if len(video) else None  # every frame, in presentation order
            got = _video_schema(video, d)
            out[f"t{k}"] = np.asarray(video.timestamps, dtype=np.float64)
        else:
            st = episode[s["name"]]
            if s.get("decoded_from"):
                if st.kind != "bytes" or st.encoding not in ("jpeg", "png"):
                    raise ValueError(f"{src}: stream '{s['name']}' of episode {index} is a {st.kind} stream "
                                     f"(encoding {st.encoding!r}) but episode 0 has {s['decoded_from']} images, "
                                     "stored decoded")
                d = st.decode() if len(st) else None  # every image (JPEG or PNG), on the CPU thread pool
                got = _stream_schema(st, "raw", d)
            elif st.kind == "tensor":
                d = st.numpy()
                got = _stream_schema(st, data=d)
            else:  # bytes items, or point clouds (every cloud's points concatenated, [P, 3 + C]), and offsets
                data, offsets = st._raw()
                d = np.asarray(data)
                out[f"o{k}"] = np.asarray(offsets, dtype=np.int64)
                got = _stream_schema(st, data=d)
            out[f"t{k}"] = st.timestamps
        out[f"d{k}"] = d
        for key in ("kind", "dtype", "shape", "encoding", "time_unit"):
            if got[key] != s[key]:
                raise ValueError(f"{src}: stream '{s['name']}' of episode {index} has {key} {got[key]!r} but "
                                 f"episode 0 has {s[key]!r}")
    return out


def _episode_meta(ep) -> dict:
    m = dict(ep.metadata)
    m["extra"] = dict(m.get("extra", {}))
    return json.loads(json.dumps(m, default=str))


# ------------------------------------------------------------------------------------------------ convert

def _fingerprint(src: str) -> str:
    """SHA-256 over the source's file names, sizes and modification times: a resumed conversion reuses its
    chunks only if the source is unchanged."""
    h = hashlib.sha256()
    if os.path.isfile(src):
        entries = [(os.path.basename(src), os.stat(src))]
    else:
        entries = []
        for root, dirs, names in os.walk(src):
            dirs.sort()
            for name in sorted(names):
                p = os.path.join(root, name)
                entries.append((os.path.relpath(p, src), os.stat(p)))
    for rel, st in entries:
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def convert(src, dst, *, num_threads: Optional[int] = None, progress: bool = True, resume: bool = True,
            overwrite: bool = False, images: str = "encoded", videos: str = "skip", **open_kwargs) -> "Store":
    """Converts the dataset at ``src`` (anything :func:`robocache.datasets.open` reads; ``open_kwargs`` are
    passed to it, e.g. ``rate_hz``) into a store at ``dst`` and returns it opened.

    Episodes are read on ``num_threads`` threads (default: all cores) into per-episode chunks in
    ``dst + ".partial"``; with ``resume`` a conversion interrupted earlier continues from the chunks it
    finished. ``dst`` appears only when complete. An existing ``dst`` is an error unless ``overwrite``.
    ``images``: "encoded" keeps JPEG/PNG streams as their bytes (small; the loader decodes the frames it
    needs); "raw" stores them decoded as uint8 ``[S, H, W, C]`` (bigger; no decoding when loading).
    ``videos``: cameras kept as video files (LeRobot): "skip" leaves them out of the store (a warning names
    them; their paths stay in the episode metadata); "raw" decodes every frame into a uint8
    ``[S, H, W, 3]`` stream named by the video key, at the video's frame times (large: 0.9 MB a frame at
    640 x 480). A missing or corrupt video is then an error naming it.
    """
    if images not in ("encoded", "raw"):
        raise ValueError(f"images must be 'encoded' or 'raw', got {images!r}")
    if videos not in ("skip", "raw"):
        raise ValueError(f"videos must be 'skip' or 'raw', got {videos!r}")
    from . import datasets

    src, dst = os.fspath(src), os.path.abspath(os.fspath(dst))
    if not os.path.exists(src):
        raise FileNotFoundError(f"src: no dataset at {src}")
    if os.path.exists(dst):
        if not overwrite:
            raise FileExistsError(f"dst: {dst} already exists (pass overwrite=True / --overwrite to replace it)")
    ds = datasets.open(src, **open_kwargs)
    n = len(ds)
    if n == 0:
        raise ValueError(f"src: {src} holds no episodes")
    first = ds[0]
    schema = [_stream_schema(first[name], images) for name in first.keys()]
    if videos == "raw":
        schema += [_video_schema(first.videos[name]) for name in first.videos]
    elif first.videos:
        warnings.warn(f"{src}: the videos {sorted(first.videos)} are not copied into the store (videos='skip'); "
                      "their paths stay in the episode metadata. Pass videos='raw' (--videos raw) to store "
                      "their frames decoded.", stacklevel=2)
    source = {"path": os.path.abspath(src), "format": ds.format, "episodes": n, "images": images,
              "videos": videos,
              "open_kwargs": {k: v for k, v in open_kwargs.items()}, "fingerprint": _fingerprint(src)}

    part = dst + ".partial"
    chunks = os.path.join(part, "chunks")
    state_file = os.path.join(part, "source.json")
    if os.path.isdir(part):
        same = False
        if resume and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as f:
                same = json.load(f) == {"source": source, "schema": schema}
        if not same:
            shutil.rmtree(part)
    os.makedirs(chunks, exist_ok=True)
    _write_json(state_file, {"source": source, "schema": schema})

    todo = [i for i in range(n) if not os.path.exists(os.path.join(chunks, _CHUNK_FMT.format(i)))]
    bar = _Progress(n, f"convert {os.path.basename(src.rstrip('/')) or src}", progress)
    bar.done = n - len(todo)

    def one(i: int) -> None:
        ep = first if i == 0 else ds[i]  # episode 0 was read for the schema
        arrays = _episode_arrays(ep, schema, i, src, videos)
        final = os.path.join(chunks, _CHUNK_FMT.format(i))
        tmp = final + ".tmp.npz"
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(_episode_meta(ep)).encode(), dtype=np.uint8), **arrays)
        os.replace(tmp, final)  # a chunk exists only once it is whole

    workers = num_threads or os.cpu_count() or 1
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for fut in [pool.submit(one, i) for i in todo]:
            fut.result()
            bar.update()
    finally:  # on an error, stop at once: the episodes not started yet are cancelled
        pool.shutdown(wait=True, cancel_futures=True)
    if not todo:
        bar.update(0, force=True)

    _assemble(part, chunks, n, schema, source, progress)
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.replace(part, dst)
    return open_store(dst, verify=False)


def _assemble(part: str, chunks: str, n: int, schema: List[dict], source: dict, progress: bool) -> None:
    """Concatenates the per-episode chunks into one array per stream column, then writes the manifest."""
    files = [np.load(os.path.join(chunks, _CHUNK_FMT.format(i)), mmap_mode=None) for i in range(n)]
    try:
        lengths = np.zeros((len(schema), n), dtype=np.int64)
        nbytes = np.zeros((len(schema), n), dtype=np.int64)
        for i, z in enumerate(files):
            for k, s in enumerate(schema):
                t = z[f"t{k}"]
                lengths[k, i] = len(t)
                if s["kind"] in ("bytes", "pointcloud"):
                    nbytes[k, i] = len(z[f"d{k}"])  # bytes, or points
        bar = _Progress(len(schema), "write streams", progress)
        for k, s in enumerate(schema):
            d = os.path.join(part, "streams", f"{k:03d}")
            os.makedirs(d, exist_ok=True)
            ep_off = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(lengths[k], out=ep_off[1:])
            total = int(ep_off[-1])
            tdt = np.dtype(np.int64 if s["time_unit"] == "ns" else np.float64)
            ts = np.lib.format.open_memmap(os.path.join(d, "timestamps.npy"), "w+", tdt, (total,))
            if s["kind"] == "tensor":
                data = np.lib.format.open_memmap(os.path.join(d, "data.npy"), "w+", np.dtype(s["dtype"]),
                                                 (total, *s["shape"]))
            else:
                byte_off = np.zeros(n + 1, dtype=np.int64)
                np.cumsum(nbytes[k], out=byte_off[1:])
                if s["kind"] == "pointcloud":  # items index points: cloud i is data[items[i]:items[i + 1]]
                    data = np.lib.format.open_memmap(os.path.join(d, "data.npy"), "w+", np.dtype(s["dtype"]),
                                                     (int(byte_off[-1]), *s["shape"]))
                else:
                    data = np.lib.format.open_memmap(os.path.join(d, "data.npy"), "w+", np.uint8, (int(byte_off[-1]),))
                items = np.lib.format.open_memmap(os.path.join(d, "items.npy"), "w+", np.int64, (total + 1,))
                items[total] = byte_off[-1]
            for i, z in enumerate(files):
                a, b = ep_off[i], ep_off[i + 1]
                ts[a:b] = z[f"t{k}"]
                if s["kind"] == "tensor":
                    data[a:b] = z[f"d{k}"]
                else:
                    data[byte_off[i]:byte_off[i + 1]] = z[f"d{k}"]
                    items[a:b] = z[f"o{k}"][:-1] + byte_off[i]
            del ts, data
            if s["kind"] != "tensor":
                del items
            np.save(os.path.join(d, "episodes.npy"), ep_off)
            bar.update()
        meta = [json.loads(bytes(z["meta"]).decode()) for z in files]
    finally:
        for z in files:
            z.close()
    _write_json(os.path.join(part, "episodes.json"), meta)
    shutil.rmtree(chunks)
    os.remove(os.path.join(part, "source.json"))
    checksums = {}
    for root, _, names in os.walk(part):
        for name in sorted(names):
            p = os.path.join(root, name)
            rel = os.path.relpath(p, part).replace(os.sep, "/")
            checksums[rel] = {"bytes": os.path.getsize(p), "sha256": _sha256(p)}
    manifest = {"format": FORMAT, "version": VERSION, "source": source, "num_episodes": n,
                "num_samples": {s["name"]: int(lengths[k].sum()) for k, s in enumerate(schema)},
                "streams": [dict(s, dir=f"streams/{k:03d}") for k, s in enumerate(schema)],
                "files": dict(sorted(checksums.items()))}
    _write_json(os.path.join(part, "manifest.json"), manifest)  # last: its presence marks a whole store


# ------------------------------------------------------------------------------------------------ reading

class StoreStream:
    """One stream of a store: memory-mapped columns ``data``, ``timestamps``, ``episodes`` (episode offsets)
    and, for bytes streams, ``items`` (item offsets into ``data``)."""

    def __init__(self, root: str, schema: dict):
        self.name: str = schema["name"]
        self.kind: str = schema["kind"]
        self.dtype = np.dtype(schema["dtype"])
        self.shape = tuple(schema["shape"])
        self.encoding: str = schema["encoding"]
        self.time_unit: str = schema["time_unit"]
        self.time_source: str = schema["time_source"]
        self.rate_hz: float = schema["rate_hz"]
        d = os.path.join(root, schema["dir"])
        self.data = np.load(os.path.join(d, "data.npy"), mmap_mode="r")
        self.timestamps = np.load(os.path.join(d, "timestamps.npy"), mmap_mode="r")
        self.episodes = np.load(os.path.join(d, "episodes.npy"))
        self.items = np.load(os.path.join(d, "items.npy"), mmap_mode="r") if self.kind != "tensor" else None

    def episode_range(self, episode: int):
        return int(self.episodes[episode]), int(self.episodes[episode + 1])

    def episode_timestamps(self, episode: int) -> np.ndarray:
        a, b = self.episode_range(episode)
        return self.timestamps[a:b]

    def episode_data(self, episode: int):
        """Tensor streams: the ``[S, ...]`` memory-mapped rows; bytes streams: the list of items; point clouds:
        the list of ``[N_i, 3 + C]`` memory-mapped clouds."""
        a, b = self.episode_range(episode)
        if self.kind == "tensor":
            return self.data[a:b]
        if self.kind == "pointcloud":
            return [self.data[self.items[i]:self.items[i + 1]] for i in range(a, b)]
        return [self.data[self.items[i]:self.items[i + 1]].tobytes() for i in range(a, b)]

    def __repr__(self) -> str:
        what = f"{self.encoding} bytes" if self.kind == "bytes" else f"{self.dtype} {list(self.shape)}"
        if self.kind == "pointcloud":
            what = f"point clouds of {self.dtype} {list(self.shape)} points"
        return f"StoreStream({self.name!r}, {len(self.timestamps)} samples, {what})"


class Store:
    """An opened store: ``manifest``, ``num_episodes`` / ``len()``, ``streams`` (name -> :class:`StoreStream`),
    ``metadata(e)``, ``episode(e)`` (a dict of one episode's streams) and :meth:`verify`."""

    def __init__(self, path: str, manifest: dict):
        self.path = path
        self.manifest = manifest
        self.num_episodes: int = manifest["num_episodes"]
        self.streams: Dict[str, StoreStream] = {s["name"]: StoreStream(path, s) for s in manifest["streams"]}
        self._meta = None

    def __len__(self) -> int:
        return self.num_episodes

    def metadata(self, episode: int) -> dict:
        if self._meta is None:
            with open(os.path.join(self.path, "episodes.json"), encoding="utf-8") as f:
                self._meta = json.load(f)
        return self._meta[episode]

    def episode(self, episode: int) -> dict:
        if not 0 <= episode < self.num_episodes:
            raise IndexError(f"episode {episode} is out of range for {self.num_episodes} episodes in {self.path}")
        return {n: (s.episode_data(episode), s.episode_timestamps(episode)) for n, s in self.streams.items()}

    def verify(self) -> None:
        """Checks every file's size and SHA-256 against the manifest; raises :class:`StoreError` naming the
        first file that differs or is missing."""
        _verify(self.path, self.manifest, hashes=True)

    def __repr__(self) -> str:
        return f"Store({self.path!r}, {self.num_episodes} episodes, {len(self.streams)} streams)"


def _verify(path: str, manifest: dict, hashes: bool) -> None:
    for rel, want in manifest["files"].items():
        p = os.path.join(path, rel)
        if not os.path.isfile(p):
            raise StoreError(f"store {path}: file {rel} named in manifest.json is missing")
        size = os.path.getsize(p)
        if size != want["bytes"]:
            raise StoreError(f"store {path}: file {rel} has {size} bytes, manifest.json says {want['bytes']}")
        if hashes and _sha256(p) != want["sha256"]:
            raise StoreError(f"store {path}: file {rel} fails its SHA-256 checksum (corrupt or modified)")


def open_store(path, *, verify: bool = True) -> Store:
    """Opens a store. Sizes are always checked against the manifest; ``verify`` also checks every file's
    SHA-256 (reads the whole store once). Problems raise :class:`StoreError` (a ValueError) naming the file."""
    path = os.path.abspath(os.fspath(path))
    mf = os.path.join(path, "manifest.json")
    if not os.path.isdir(path):
        if os.path.isdir(path + ".partial"):
            raise StoreError(f"store {path} does not exist; {path}.partial is an unfinished conversion "
                             "(run convert again to resume it)")
        raise StoreError(f"store {path} does not exist")
    if not os.path.isfile(mf):
        raise StoreError(f"store {path}: no manifest.json (not a RoboCache store, or an unfinished one)")
    try:
        with open(mf, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise StoreError(f"store {path}: manifest.json is unreadable ({e})") from e
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise StoreError(f"store {path}: manifest.json has format {manifest.get('format')!r} version "
                         f"{manifest.get('version')!r}, expected {FORMAT!r} version {VERSION}")
    _verify(path, manifest, hashes=verify)
    return Store(path, manifest)


def describe(store: Store) -> str:
    """What ``robocache inspect`` prints."""
    m = store.manifest
    src = m["source"]
    total_bytes = sum(f["bytes"] for f in m["files"].values())
    lines = [f"store      {store.path}",
             f"source     {src['path']} ({src['format']})",
             f"episodes   {m['num_episodes']}",
             f"size       {total_bytes / 1e6:.2f} MB in {len(m['files'])} files", "streams"]
    width = max((len(s) for s in store.streams), default=0)
    for name, s in store.streams.items():
        n = len(s.timestamps)
        what = f"{s.encoding} bytes ({s.data.nbytes / max(n, 1):.0f} B/sample)" if s.kind == "bytes" \
            else f"clouds {s.dtype.name}[N, {s.shape[0]}] ({len(s.data) / max(n, 1):.0f} pts/cloud)" if s.kind == "pointcloud" \
            else f"{s.dtype.name}{list(s.shape)}"
        ts = np.asarray(s.timestamps)
        if s.time_source == "step_index":
            rate = "step indices, no rate"
        elif n > 1:
            lens = np.diff(s.episodes)
            spans = [(ts[b - 1] - ts[a]) for a, b in zip(s.episodes[:-1], s.episodes[1:]) if b - a > 1]
            span = (float(np.sum(spans)) * (1e-9 if s.time_unit == "ns" else 1.0))
            steps = int(np.sum(np.maximum(lens - 1, 0)))
            rate = f"{steps / span:.2f} Hz measured" if span > 0 else "rate unknown"
        else:
            rate = "rate unknown"
        stated = f", stated {s.rate_hz:g} Hz" if s.rate_hz else ""
        lines.append(f"  {name:<{width}}  {what:<28} {n:>9} samples  t[{s.time_unit}, {s.time_source}] "
                     f"{rate}{stated}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ demo data

def demo_dataset(path, *, episodes: int = 8, seed: int = 0, progress: bool = False) -> Store:
    """Writes a small multi-rate sample dataset as a store at ``path`` and returns it opened: per episode
    (4-8 s each) ``joint_state`` float32[7] at 100 Hz with jittered recorded timestamps, ``ee_quat``
    float32[4] (unit quaternions, for slerp) at 50 Hz, ``action`` float32[7] at 10 Hz, ``gripper`` int8[1]
    at 10 Hz, ``camera`` 32x32 RGB PNG frames at 15 Hz, and ``lidar`` point clouds at 10 Hz (float32
    ``[N_i, 4]``: x, y, z in metres and an intensity; 150-400 points each, a ground plane and a box that
    moves with the first joint; see :data:`DEMO_LIDAR_GRID` for a voxel grid that covers them). No downloads."""
    path = os.path.abspath(os.fspath(path))
    rng = np.random.default_rng(seed)
    eps = []
    for e in range(episodes):
        dur = float(rng.uniform(4.0, 8.0))
        ep = {}
        n = int(dur * 100)
        t = np.arange(n) / 100.0 + rng.uniform(-2e-3, 2e-3, n)
        t.sort()
        phase = rng.uniform(0, 2 * np.pi, 7)
        ep["joint_state"] = (np.sin(t[:, None] * rng.uniform(0.5, 2.0, 7) + phase).astype(np.float32), t)
        n = int(dur * 50)
        t = np.arange(n) / 50.0
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        ang = 0.8 * np.sin(t * rng.uniform(0.3, 1.0))
        q = np.concatenate([axis[None] * np.sin(ang / 2)[:, None], np.cos(ang / 2)[:, None]], 1).astype(np.float32)
        ep["ee_quat"] = (q, t)
        n = int(dur * 10)
        t = np.arange(n) / 10.0
        ep["action"] = (np.cumsum(rng.normal(0, 0.05, (n, 7)), 0).astype(np.float32), t)
        ep["gripper"] = ((np.sin(t * rng.uniform(0.5, 1.5)) > 0).astype(np.int8)[:, None], t)
        n = int(dur * 15)
        t = np.arange(n) / 15.0
        frames = []
        for i in range(n):
            img = np.zeros((32, 32, 3), np.uint8)
            x = int(16 + 12 * np.sin(t[i]))
            img[:, max(x - 3, 0):x + 3] = (255, 64 + e * 8 % 128, 32)
            img += rng.integers(0, 16, img.shape, dtype=np.uint8)
            frames.append(_png(img))
        ep["camera"] = (frames, t)
        n = int(dur * 10)
        t = np.arange(n) / 10.0 + 0.005
        clouds = []
        lr = np.random.default_rng([seed, e, 1])  # its own stream: the other streams stay as they were
        for i in range(n):
            m = int(lr.integers(150, 400))
            ground = np.column_stack([lr.uniform(-2, 2, m // 2), lr.uniform(-2, 2, m // 2), lr.normal(0, 0.02, m // 2)])
            cx = 1.5 * np.sin(t[i] * 0.7 + e)
            box = np.column_stack([lr.uniform(cx - 0.3, cx + 0.3, m - m // 2), lr.uniform(-0.3, 0.3, m - m // 2),
                                   lr.uniform(0.0, 0.8, m - m // 2)])
            xyz = np.concatenate([ground, box])
            clouds.append(np.column_stack([xyz, lr.uniform(0, 1, len(xyz))]).astype(np.float32))
        ep["lidar"] = (clouds, t)
        eps.append(ep)
    return write_store(path, eps, source={"path": "robocache.store.demo_dataset", "format": "demo",
                                          "episodes": episodes, "open_kwargs": {"seed": seed}},
                       encodings={"camera": "png"}, rates={"joint_state": 0.0, "ee_quat": 50.0, "action": 10.0,
                                                            "gripper": 10.0, "camera": 15.0, "lidar": 10.0})


# A voxel grid covering demo_dataset's lidar clouds: 16 x 16 x 8 voxels of 0.25 m from (-2, -2, -0.5).
DEMO_LIDAR_GRID = dict(voxel_size=0.25, origin=(-2.0, -2.0, -0.5), grid_size=(16, 16, 8))


def _png(img: np.ndarray) -> bytes:
    """A minimal PNG encoder (8-bit RGB, no filter) so the demo data needs no imaging library."""
    import struct
    import zlib

    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


class _MemStream:
    """Duck-types :class:`robocache.datasets.Stream` for :func:`write_store`."""

    def __init__(self, name, data, t, encoding, rate):
        self.name, self._t = name, np.asarray(t)
        clouds = isinstance(data, list) and len(data) > 0 and all(isinstance(x, np.ndarray) for x in data)
        self.kind = "pointcloud" if clouds else "bytes" if isinstance(data, list) else "tensor"
        self.encoding = encoding if self.kind == "bytes" else ""
        self.time_unit = "ns" if self._t.dtype == np.int64 else "s"
        self.time_source = "recorded"
        self.rate_hz = rate
        if self.kind == "pointcloud":
            widths = {(x.ndim, x.shape[-1] if x.ndim else 0, x.dtype) for x in data}
            if len(widths) != 1 or next(iter(widths))[0] != 2 or next(iter(widths))[1] < 3 \
                    or next(iter(widths))[2].kind != "f":
                raise ValueError(f"stream '{name}': point clouds must all be float arrays [N_i, 3 + C] of one "
                                 f"dtype and width, got (ndim, width, dtype) {sorted(map(str, widths))}")
            self._data = np.ascontiguousarray(np.concatenate(data, 0))
            self._off = np.zeros(len(data) + 1, np.int64)
            np.cumsum([len(x) for x in data], out=self._off[1:])
        elif self.kind == "bytes":
            self._data = np.frombuffer(b"".join(data), dtype=np.uint8)
            self._off = np.zeros(len(data) + 1, np.int64)
            np.cumsum([len(b) for b in data], out=self._off[1:])
        else:
            self._data = np.ascontiguousarray(data)
        if len(self._t) != (len(data) if self.kind != "tensor" else self._data.shape[0]):
            raise ValueError(f"stream '{name}': {len(self._t)} timestamps for {len(data)} samples")

    @property
    def timestamps(self):
        return self._t

    def numpy(self):
        return self._data

    def _raw(self):
        return self._data, self._off


class _MemEpisode:
    def __init__(self, index, streams, encodings, rates):
        self.index = index
        self.streams = {n: _MemStream(n, d, t, encodings.get(n, "bytes"), rates.get(n, 0.0))
                        for n, (d, t) in streams.items()}
        self.metadata = {"language_instruction": "", "task": "", "robot_type": "", "source_file": "",
                         "source_key": f"episode {index}", "extra": {}}

    def keys(self):
        return list(self.streams)

    def __getitem__(self, name):
        return self.streams[name]


def write_store(path, episodes: List[Dict[str, tuple]], *, source: Optional[dict] = None,
                encodings: Optional[dict] = None, rates: Optional[dict] = None, progress: bool = False,
                overwrite: bool = True) -> Store:
    """Writes in-memory episodes as a store: ``episodes`` is a list of ``{name: (data, timestamps)}``,
    ``data`` an array ``[S, ...]``, a list of ``bytes`` items (encoded images: name the encoding in
    ``encodings``) or a list of point clouds (float arrays ``[N_i, 3 + C]``, x y z then C feature columns;
    kind ``"pointcloud"``: ``data.npy`` holds every cloud's points ``[P, 3 + C]`` and ``items.npy`` the
    point offsets, cloud i being ``data[items[i]:items[i + 1]]``); timestamps float64 seconds or int64
    nanoseconds. Same layout and guarantees as
    :func:`convert`."""
    path = os.path.abspath(os.fspath(path))
    if not episodes:
        raise ValueError("episodes is empty: a store needs at least one episode")
    eps = [_MemEpisode(i, e, encodings or {}, rates or {}) for i, e in enumerate(episodes)]
    schema = [_stream_schema(eps[0][n]) for n in eps[0].keys()]
    src = source or {"path": "<memory>", "format": "memory", "episodes": len(eps), "open_kwargs": {}}
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"path: {path} already exists")
    part = path + ".partial"
    if os.path.exists(part):
        shutil.rmtree(part)
    chunks = os.path.join(part, "chunks")
    os.makedirs(chunks)
    for i, ep in enumerate(eps):
        arrays = _episode_arrays(ep, schema, i, src["path"])
        with open(os.path.join(chunks, _CHUNK_FMT.format(i)), "wb") as f:
            np.savez(f, meta=np.frombuffer(json.dumps(ep.metadata).encode(), dtype=np.uint8), **arrays)
    with open(os.path.join(part, "source.json"), "w") as f:
        f.write("{}")
    _assemble(part, chunks, len(eps), schema, src, progress)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(part, path)
    return open_store(path, verify=False)
