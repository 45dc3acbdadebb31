"""Native dataset readers: RLDS / Open X-Embodiment (TFDS TFRecord), CALVIN, RoboMimic / robosuite HDF5.

``robocache.datasets.open(path)`` recognises the format and returns a :class:`Dataset`: ``len(ds)``,
``ds[i]`` (random access) and ``for episode in ds``. An :class:`Episode` is a set of named streams, each an
array ``[S, ...]`` with its own timestamps; ``stream.numpy()`` shares the reader's buffer (no copy) and
``stream.torch()`` wraps that with ``torch.from_numpy`` (no copy either). Encoded images stay bytes until
``stream.decode()``.

:class:`RoboMimicWindows` gives the training windows of a RoboMimic HDF5 file, index for index what
robomimic's ``SequenceDataset`` gives (frame stacking, sequence length, padding, filter keys, goals).
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import _C

__all__ = ["open", "Dataset", "Episode", "Stream", "RoboMimicWindows", "decode_image", "readers"]


def readers() -> Dict[str, bool]:
    """Which readers this build has: ``{"rlds": True, "calvin": True, "robomimic": True, "image_decode": True}``."""
    return dict(_C.dataset_readers())


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """Decodes one JPEG or PNG image into uint8 ``[H, W, C]``. ``what`` names it in errors."""
    return _C.decode_image(bytes(data), what)


class Stream:
    """One named stream of an episode: ``length`` samples with their own ``timestamps``."""

    def __init__(self, episode: "_C._Episode", name: str):
        self._ep = episode
        self.name = name
        info = episode.info(name)
        self.kind: str = info["kind"]  # "tensor" or "bytes"
        self.encoding: str = info["encoding"]  # bytes streams: "jpeg", "png", "utf-8", "bytes"
        self.time_unit: str = info["time_unit"]  # "s" (float64) or "ns" (int64)
        self.time_source: str = info["time_source"]  # "recorded", "step_index_over_rate", "step_index"
        self.rate_hz: float = info["rate_hz"]
        self._length: int = info["length"]

    def __len__(self) -> int:
        return self._length

    @property
    def timestamps(self) -> np.ndarray:
        """``[S]``: float64 seconds or int64 nanoseconds (see ``time_unit`` and ``time_source``)."""
        return self._ep.timestamps(self.name)

    def numpy(self) -> np.ndarray:
        """The samples ``[S, ...]``, sharing the reader's buffer. Bytes streams have no fixed shape: use
        ``items()``, ``texts()`` or ``decode()``."""
        if self.kind != "tensor":
            raise TypeError(f"stream '{self.name}' holds {self.encoding} bytes, not a tensor; "
                            "use .items(), .texts() or .decode()")
        return self._ep.data(self.name)

    def torch(self):
        """The samples as a CPU ``torch.Tensor`` sharing the same buffer (``torch.from_numpy``)."""
        import torch

        return torch.from_numpy(self.numpy())

    def items(self) -> List[bytes]:
        """A bytes stream's items (encoded images, text), one per sample."""
        data, offsets = self._raw()
        return [data[offsets[i]:offsets[i + 1]].tobytes() for i in range(len(offsets) - 1)]

    def texts(self) -> List[str]:
        return [b.decode("utf-8") for b in self.items()]

    def decode(self, index: Optional[int] = None) -> np.ndarray:
        """Decodes the encoded images: sample ``index`` as ``[H, W, C]``, or all as ``[S, H, W, C]``."""
        data, offsets = self._raw()
        if self.encoding not in ("jpeg", "png"):
            raise TypeError(f"stream '{self.name}' holds {self.encoding!r} bytes, not encoded images")
        n = len(offsets) - 1
        if index is not None:
            if not -n <= index < n:
                raise IndexError(f"sample {index} is out of range for stream '{self.name}' of {n} samples")
            index %= n
            return _C.decode_image(data[offsets[index]:offsets[index + 1]].tobytes(), f"{self.name}[{index}]")
        return self._ep.decode(self.name)  # on the CPU thread pool

    def _raw(self):
        if self.kind != "bytes":
            raise TypeError(f"stream '{self.name}' is a tensor stream; use .numpy()")
        return self._ep.data(self.name), self._ep.offsets(self.name)

    def __repr__(self) -> str:
        what = f"{self.encoding} bytes" if self.kind == "bytes" else f"{self.numpy().dtype} {list(self.numpy().shape)}"
        return f"Stream({self.name!r}, {self._length} samples, {what})"


class Episode:
    """An episode: named streams (``episode[name]``, ``episode.streams``) plus ``metadata``
    (language_instruction, task, robot_type, source_file, source_key, extra)."""

    def __init__(self, native: "_C._Episode"):
        self._ep = native
        self.index: int = native.index
        self.metadata: dict = native.metadata()
        self.streams: Dict[str, Stream] = {name: Stream(native, name) for name in native.names()}

    @property
    def language_instruction(self) -> str:
        return self.metadata["language_instruction"]

    def keys(self) -> List[str]:
        return list(self.streams)

    def __getitem__(self, name: str) -> Stream:
        try:
            return self.streams[name]
        except KeyError:
            raise KeyError(f"no stream '{name}' in episode {self.index} (streams: {', '.join(self.streams)})") from None

    def __contains__(self, name: str) -> bool:
        return name in self.streams

    def numpy(self) -> Dict[str, np.ndarray]:
        """Every tensor stream as a NumPy array (no copies)."""
        return {n: s.numpy() for n, s in self.streams.items() if s.kind == "tensor"}

    def torch(self) -> dict:
        """Every tensor stream as a CPU torch.Tensor (no copies)."""
        return {n: s.torch() for n, s in self.streams.items() if s.kind == "tensor"}

    def __repr__(self) -> str:
        return f"Episode({self.index}, {len(self.streams)} streams, source={self.metadata['source_file']!r})"


def _calvin_language(path: str, enabled: bool):
    """CALVIN's lang_annotations/auto_lang_ann.npy: a pickled dict {"info": {"indx": [(first, last), ...]},
    "language": {"ann": [...], "task": [...]}}, as (first, last, instruction, task) windows. It is a pickle,
    so it is loaded (as CALVIN's own loader does) only when ``calvin_language`` is true."""
    f = os.path.join(path, "lang_annotations", "auto_lang_ann.npy")
    if not enabled or not os.path.exists(f):
        return None
    try:
        d = np.load(f, allow_pickle=True).item()
        indx, ann, task = d["info"]["indx"], d["language"]["ann"], d["language"]["task"]
    except Exception as e:  # noqa: BLE001 - any failure here is a malformed annotation file
        raise OSError(f"{f}: not a CALVIN language annotation file ({type(e).__name__}: {e})") from e
    if not len(indx) == len(ann) == len(task):
        raise OSError(f"{f}: info/indx has {len(indx)} windows, language/ann {len(ann)}, language/task {len(task)}")
    return [(int(a), int(b), str(t), str(k)) for (a, b), t, k in zip(indx, ann, task)]


class Dataset:
    """A dataset on disk: ``len``, ``ds[i]`` (negative indices too) and iteration over episodes."""

    def __init__(self, native: "_C._Dataset", path: str, calvin_language: bool = True):
        self._ds = native
        self.path = path
        self.format: str = native.format
        self._language = _calvin_language(path, calvin_language) if self.format == "calvin" else None

    def _episode(self, index: int) -> Episode:
        ep = Episode(self._ds.read_episode(index))
        if self._language is not None:
            first, last = int(ep.metadata["extra"]["first_step"]), int(ep.metadata["extra"]["last_step"])
            windows = [w for w in self._language if w[0] <= last and w[1] >= first]
            ep.metadata["language_annotations"] = windows
            if windows:
                ep.metadata["language_instruction"], ep.metadata["task"] = windows[0][2], windows[0][3]
        return ep

    def __len__(self) -> int:
        return len(self._ds)

    def __getitem__(self, index: int) -> Episode:
        n = len(self._ds)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"episode {index} is out of range for {n} episodes in {self.path}")
        return self._episode(index % n)

    def __iter__(self) -> Iterator[Episode]:
        for i in range(len(self._ds)):
            yield self._episode(i)

    def __repr__(self) -> str:
        return f"Dataset(format={self.format!r}, episodes={len(self)}, path={self.path!r})"


def open(path, *, split: Optional[str] = None, rate_hz: Optional[float] = None,
         verify_checksums: bool = True, calvin_language: bool = True) -> Dataset:
    """Opens a dataset, recognising its format:

    - a TFDS/RLDS directory (``dataset_info.json`` + ``features.json`` + TFRecord shards, or its parent
      holding one version directory); ``split`` picks one split ("train", "val"), default all;
    - a CALVIN split directory (``ep_start_end_ids.npy`` + ``episode_XXXXXXX.npz``);
    - a RoboMimic or robosuite ``.hdf5`` file.

    ``rate_hz`` gives the sampling rate for formats that record no timestamps (timestamps = step / rate);
    without it such streams get the step indices as timestamps (``time_source == "step_index"``).
    For CALVIN, ``lang_annotations/auto_lang_ann.npy`` (a pickle: set ``calvin_language=False`` for files
    you do not trust) gives each episode ``metadata["language_annotations"]``, the (first, last, instruction,
    task) windows that overlap it, and the first window's instruction and task.
    Corrupt or missing files raise ``OSError`` naming the file and the byte offset or key.
    """
    path = os.fspath(path)
    if rate_hz is not None and not rate_hz > 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    native = _C.open_dataset(path, split or "", float(rate_hz or 0.0), bool(verify_checksums))
    return Dataset(native, path, calvin_language)


def _nest(items, groups) -> dict:
    """[("actions", a), ("obs/eef", b)] -> {"actions": a, "obs": {"eef": b}}, dataset keys first, then
    ``groups`` in order, each there even when empty (robomimic gives ``"obs": {}`` without obs keys)."""
    out: dict = {}
    nested: dict = {g: {} for g in groups}
    for name, value in items:
        group, _, key = name.partition("/")
        if group in nested and key:
            nested[group][key] = value
        else:
            out[name] = value
    out.update(nested)
    return out


class RoboMimicWindows:
    """Training windows over a RoboMimic HDF5 file (``data/demo_N/{obs/*, next_obs/*, actions, rewards, dones,
    states}`` with ``num_samples`` attributes, ``mask/<filter key>``), read natively through libhdf5.

    ``windows[i]`` is the dict that ``robomimic.utils.dataset.SequenceDataset(path, obs_keys, dataset_keys,
    frame_stack, seq_length, pad_frame_stack, pad_seq_length, get_pad_mask, goal_mode,
    filter_by_attribute=..., load_next_obs=...)[i]`` returns (robomimic 0.3): the same ``len``, the same
    index -> (demo, index_in_demo) mapping, and for every key (dataset keys and observations alike) the
    ``frame_stack - 1 + seq_length`` rows around the window, with the first / last row of the demo repeated
    where the window runs past its start / end::

        {"actions": [T, 7], "rewards": [T], "dones": [T], "pad_mask": [T, 1] (get_pad_mask),
         "obs": {key: [T, ...], "pad_mask": ...}, "next_obs": {...} (load_next_obs),
         "goal_obs": {key: [...]} (goal_mode="last": next_obs at the demo's last window)}

    Values keep the file's dtypes, as robomimic gives them without ``hdf5_cache_mode`` (its caches turn the
    dataset keys into float32); int8/int16/uint16 widen to int32 and uint32 to int64. robomimic's image
    processing (``ObsUtils.process_obs``: HWC uint8 -> CHW float) happens in its training loop, not in the
    dataset, and is not done here either.

    The raw robosuite demo layout (``data/demo_N/{states, actions}``, no ``num_samples``) works with
    ``obs_keys=()`` and ``load_next_obs=False``: a demo's length is then the row count its requested
    datasets share. ``cache=True`` reads the requested datasets of the selected demos into memory at open
    (robomimic's ``hdf5_cache_mode``, without the float32 cast). Every file problem (a missing key, a
    dataset whose row count differs from ``num_samples``, a demo too short for the window settings) is an
    ``OSError`` / ``ValueError`` at construction naming the file and the HDF5 key.

    ``get_batch(indices)`` reads several windows at once, stacked on a new first axis.
    """

    def __init__(self, path, obs_keys: Sequence[str] = (), dataset_keys: Sequence[str] = ("actions", "rewards", "dones"),
                 frame_stack: int = 1, seq_length: int = 1, pad_frame_stack: bool = True, pad_seq_length: bool = True,
                 get_pad_mask: bool = False, goal_mode: Optional[str] = None, filter_by_attribute: Optional[str] = None,
                 load_next_obs: bool = True, cache: bool = False):
        if isinstance(obs_keys, str) or isinstance(dataset_keys, str):
            raise TypeError("obs_keys and dataset_keys must be sequences of names, not a single string "
                            f"(got obs_keys={obs_keys!r}, dataset_keys={dataset_keys!r})")
        for name, v in (("frame_stack", frame_stack), ("seq_length", seq_length)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {v!r}")
        if goal_mode is not None and goal_mode != "last":
            raise ValueError(f'goal_mode must be None or "last", got {goal_mode!r}')
        if filter_by_attribute is not None and (not isinstance(filter_by_attribute, str) or not filter_by_attribute):
            raise ValueError(f"filter_by_attribute must be None or a filter key name, got {filter_by_attribute!r}")
        self.path = os.fspath(path)
        self.obs_keys: Tuple[str, ...] = tuple(obs_keys)
        self.dataset_keys: Tuple[str, ...] = tuple(dataset_keys)
        self.frame_stack, self.seq_length = int(frame_stack), int(seq_length)
        self.pad_frame_stack, self.pad_seq_length = bool(pad_frame_stack), bool(pad_seq_length)
        self.get_pad_mask, self.goal_mode = bool(get_pad_mask), goal_mode
        self.filter_by_attribute, self.load_next_obs = filter_by_attribute, bool(load_next_obs)
        self._groups = ("obs",) + (("next_obs",) if self.load_next_obs else ()) + (("goal_obs",) if goal_mode else ())
        self._w = _C.open_robomimic_windows(
            self.path, list(self.obs_keys), list(self.dataset_keys), self.frame_stack, self.seq_length,
            self.pad_frame_stack, self.pad_seq_length, self.get_pad_mask, self.load_next_obs, goal_mode or "",
            filter_by_attribute or "", bool(cache))

    def __len__(self) -> int:
        return len(self._w)

    @property
    def demos(self) -> List[str]:
        """The selected demos ("demo_3", ...) in index order (sorted by their number)."""
        return list(self._w.demos)

    def demo_length(self, demo: str) -> int:
        """A selected demo's length (``num_samples``)."""
        try:
            return self._w.demo_length(self._w.demos.index(demo))
        except ValueError:
            raise KeyError(f"'{demo}' is not a selected demo of {self.path}") from None

    @property
    def window_length(self) -> int:
        """T = frame_stack - 1 + seq_length: the rows of every window."""
        return self._w.window_length

    def _index(self, index) -> int:
        n = len(self._w)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"window index must be an int, got {index!r}")
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"window {index} is out of range for {n} windows of {self.path}")
        return index % n

    def locate(self, index: int) -> Tuple[str, int]:
        """Window ``index`` -> (demo name, index_in_demo): the row the window is anchored at, as robomimic's
        ``get_item`` computes it; the window covers rows [index_in_demo - frame_stack + 1,
        index_in_demo + seq_length)."""
        demo, row = self._w.locate(self._index(index))
        return self._w.demos[demo], row

    def __getitem__(self, index: int) -> dict:
        return _nest(self._w.read(self._index(index)), self._groups)

    def get_batch(self, indices) -> dict:
        """Windows ``indices`` stacked: every array gets a leading batch axis [B, ...]."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise TypeError(f"indices must be a 1-d sequence of ints, got {idx.dtype} {list(idx.shape)}")
        n = len(self._w)
        idx = idx.astype(np.int64)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise IndexError(f"indices[{int(np.argmax(bad))}] = {int(idx[np.argmax(bad)])} is out of range for {n} "
                             f"windows of {self.path}")
        return _nest(self._w.read_batch(np.ascontiguousarray(idx % n if n else idx)), self._groups)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"RoboMimicWindows({self.path!r}, {len(self)} windows over {len(self._w.demos)} demos, "
                f"frame_stack={self.frame_stack}, seq_length={self.seq_length})")
