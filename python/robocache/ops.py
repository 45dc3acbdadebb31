"""RoboCache ops: the Python API over the native core. Outputs are allocated with the input's own
array library on the input's device; the native code writes them on the caller's current stream."""

from __future__ import annotations

import sys
from typing import Any, Optional

from . import _C
from ._arrays import (_TORCH, _TORCH_CODES, as_array, check_jax_inputs, current_stream, empty, empty_per_stream,
                      finish, library_of, native, reject_jax_out, torch_codes, torch_exchange)

__all__ = ["resample_trajectories", "resample_rotations", "fuse_multimodal"]


def resample_trajectories(
    data: Any,
    src_t: Any,
    tgt_t: Any,
    *,
    method: str = "linear",
    boundary: str = "clamp",
    src_lengths: Optional[Any] = None,
    out: Optional[Any] = None,
    return_mask: bool = False,
    validate: bool = True,
    backend: Optional[str] = None,
    quat_channel: Optional[int] = None,
):
    """Resample trajectories recorded at ``src_t`` onto the target times ``tgt_t``.

    Args:
        data: ``[B, S, D]`` (or unbatched ``[S, D]``) samples; float16, bfloat16, float32 or float64.
            NumPy arrays (bfloat16 through ml_dtypes too), PyTorch tensors (CPU or CUDA), CuPy arrays and
            JAX arrays (CPU or GPU), with any strides (slices, transposes, ``expand`` broadcasts) are read in
            place, without a copy. A JAX input gives a JAX result (``out`` cannot be a JAX array).
        src_t: ``[B, S]`` or ``[S]`` (shared by every row) source times, non-decreasing along S. float32,
            float64 (seconds, any epoch) or int64 (nanoseconds, as ROS and MCAP record them). Repeated
            times are allowed; a target at such a time takes the later sample.
        tgt_t: ``[B, T]`` or ``[T]`` target times, same dtype as ``src_t``, in any order.
        method: ``"linear"``, ``"nearest"`` (ties go to the later sample), ``"hold"`` (zero-order hold:
            the last sample at or before the target; for gripper flags and camera frames) or ``"slerp"``
            (unit quaternions along the shortest arc, normalized; see ``quat_channel``).
        boundary: for targets outside ``[src_t[0], src_t[len - 1]]``: ``"clamp"`` (the end sample),
            ``"extrapolate"`` (linear continuation of the end interval; for nearest and hold the same
            as clamp) or ``"nan"``.
        src_lengths: optional ``[B]`` int32/int64 valid-sample counts (1..S) for padded batches;
            samples past a row's length are never read.
        out: optional output, same shape, dtype and device as the result; written in place.
        return_mask: also return a boolean ``[B, T]`` mask, True where the target lies within the
            row's source time span.
        validate: check for NaN times, decreasing ``src_t`` and out-of-range ``src_lengths`` first and
            raise ``ValueError`` naming the batch and index. On CUDA this waits for a small check kernel
            (the resampling itself stays asynchronous); pass False inside CUDA graph capture.
        backend: None (the input's device), ``"cpu"`` or ``"cuda"``; a backend that does not match the
            input's device is an error, never a copy.
        quat_channel: with ``method="slerp"``, the first of four consecutive quaternion channels (e.g. 3
            for ``[x, y, z, qx, qy, qz, qw]``); the other channels are interpolated linearly. None: D must
            be 4. Either component order works (``xyzw`` as SciPy and ROS use, or ``wxyz``): slerp treats
            the four components alike.

    Returns:
        ``[B, T, D]`` (or ``[T, D]``) array of ``data``'s library, dtype and device; with
        ``return_mask``, a tuple ``(out, mask)``.
    """
    if _torch_fast is None and "torch" in sys.modules:
        _init_torch_fast()
    if _torch_fast and type(data) is _torch_fast.Tensor and type(src_t) is _torch_fast.Tensor \
            and type(tgt_t) is _torch_fast.Tensor and src_lengths is None and not return_mask \
            and (out is None or type(out) is _torch_fast.Tensor):
        # The common torch call, with as little Python as possible: a small CUDA call costs about as much
        # Python as kernel time. With the DLPack exchange API the native module reads the tensors and
        # PyTorch's current stream itself (stream None) and allocates the result, reporting anything it cannot
        # take. Else the tensors travel as descriptors, and anything unusual (a dtype without a code, sparse
        # layouts) takes the general path below, which reports it.
        if data.ndim in (2, 3) and tgt_t.ndim in (1, 2):
            if _torch_exchange:  # out=None: the native module allocates the result through the same API
                return _C.resample_trajectories(data, src_t, tgt_t, None, out, None, method, boundary, backend or "",
                                                validate, -1 if quat_channel is None else int(quat_channel), None)
            try:
                dd, sd, td = _torch_desc(data), _torch_desc(src_t), _torch_desc(tgt_t)
            except (KeyError, RuntimeError):
                pass
            else:
                if out is None:
                    out = _torch_fast.empty(_result_shape(data, tgt_t), dtype=data.dtype, device=data.device)
                _C.resample_trajectories(dd, sd, td, None, _torch_desc(out), None, method, boundary, backend or "",
                                         validate, -1 if quat_channel is None else int(quat_channel),
                                         _raw_stream(dd[2]) if dd[2] >= 0 else 0)
                return out
    lib = library_of(data)
    reject_jax_out(out, data)
    src_t = as_array(src_t, data, lib, "src_t")
    tgt_t = as_array(tgt_t, data, lib, "tgt_t", dtype=getattr(src_t, "dtype", None) if lib in ("numpy", "jax") else None)
    src_lengths = as_array(src_lengths, data, lib, "src_lengths", dtype="int64")
    check_jax_inputs(data=data, src_t=src_t, tgt_t=tgt_t, src_lengths=src_lengths)
    if data.ndim not in (2, 3):
        raise ValueError(f"data must have shape [B, S, D] or [S, D], got {list(data.shape)}")
    if tgt_t.ndim not in (1, 2):
        raise ValueError(f"tgt_t must have shape [B, T] or [T], got {list(tgt_t.shape)}")
    shape = _result_shape(data, tgt_t)
    allocated = out is None
    if allocated:
        out = empty(shape, data, lib)
    mask = empty(shape[:-1], data, lib, dtype="bool") if return_mask else None
    _C.resample_trajectories(
        native(data, lib),
        native(src_t, library_of(src_t)),
        native(tgt_t, library_of(tgt_t)),
        native(src_lengths, lib if src_lengths is None else library_of(src_lengths)),
        native(out, library_of(out)),
        native(mask, lib),
        method,
        boundary,
        backend or "",
        validate,
        -1 if quat_channel is None else int(quat_channel),
        current_stream(data, lib),
    )
    if allocated:
        out = finish(out, lib)
    return (out, finish(mask, lib)) if return_mask else out


def _result_shape(data, tgt_t) -> tuple:
    """[B, T, D] (or [T, D]) for data [B, S, D] (or [S, D]) resampled onto tgt_t [B, T] or [T]."""
    T = tgt_t.shape[-1]
    return (data.shape[0], T, data.shape[-1]) if data.ndim == 3 else (T, data.shape[-1])


def _torch_desc(x):
    """The descriptor of :func:`robocache._arrays.native` without its checks (KeyError: no dtype code)."""
    return (x.data_ptr(), _TORCH_CODES[x.dtype], x.get_device(), x.shape, x.stride())


def _raw_stream(device: int) -> int:
    return _torch_fast._C._cuda_getCurrentRawStream(device)


def _init_torch_fast():
    """Binds the torch fast path once torch is imported (robocache never imports torch itself)."""
    global _torch_fast, _torch_exchange
    torch = sys.modules["torch"]
    _torch_exchange = torch_exchange()
    if not _torch_exchange and getattr(torch._C, "_cuda_getCurrentRawStream", None) is None:
        _torch_fast = False
        return
    torch_codes()  # _torch_desc reads _TORCH_CODES directly
    _torch_fast = torch


_torch_fast = None  # None: torch not seen yet; False: unusable; else the torch module
_torch_exchange = False  # torch.Tensor publishes the DLPack exchange API


def resample_rotations(quats: Any, src_t: Any, tgt_t: Any, **kwargs):
    """Slerp unit quaternions ``[B, S, 4]`` (or ``[S, 4]``) from ``src_t`` onto ``tgt_t`` along the
    shortest arc (q and -q are one rotation), with normalized output. Either component order works.
    Takes the keyword arguments of :func:`resample_trajectories` (boundary, src_lengths, out, ...);
    ``boundary="extrapolate"`` continues the end rotation at its angular velocity."""
    if "method" in kwargs:
        raise TypeError("resample_rotations always uses method='slerp'; use resample_trajectories for others")
    return resample_trajectories(quats, src_t, tgt_t, method="slerp", **kwargs)


def _per_stream(value, names, what, default):
    """A per-stream option given once for all, as a dict by stream name, or as a sequence in order."""
    if value is None or isinstance(value, (str, int)):
        return [default if value is None else value] * len(names)
    if isinstance(value, dict):
        unknown = set(value) - set(names)
        if unknown:
            raise ValueError(f"{what} names unknown streams {sorted(map(str, unknown))}; streams are {names}")
        return [value.get(n, default) for n in names]
    value = list(value)
    if len(value) != len(names):
        raise ValueError(f"{what} has {len(value)} entries for {len(names)} streams")
    return value


def fuse_multimodal(
    streams: Any,
    tgt_t: Any,
    *,
    methods: Any = None,
    boundary: str = "clamp",
    concat: bool = True,
    return_mask: bool = False,
    quat_channels: Any = None,
    validate: bool = True,
    backend: Optional[str] = None,
):
    """Align several streams recorded at their own rates onto one timeline ``tgt_t``.

    Args:
        streams: a dict ``{name: (data, t)}`` or a sequence of ``(data, t)``; a third element gives that
            stream's ``[B]`` lengths for padded batches. ``data`` is ``[B, S_i, D_i]`` (or ``[S_i, D_i]``)
            and ``t`` is ``[B, S_i]`` or ``[S_i]``; streams differ in S, D, dtype and time dtype (float32 /
            float64 seconds, or int64 nanoseconds; floating stream times are compared with floating
            ``tgt_t`` in float64, int64 ones need an int64 ``tgt_t``).
        tgt_t: ``[B, T]`` or ``[T]`` target times.
        methods: one method for all streams, or per stream (dict by name or a sequence): ``"linear"``,
            ``"nearest"``, ``"hold"`` or ``"slerp"``. Default linear.
        boundary: as in :func:`resample_trajectories`, for all streams.
        concat: concatenate the aligned streams on the last axis into ``[B, T, sum D_i]`` (all streams
            must then share a dtype); False returns them per stream (a dict for dict input, else a list).
        return_mask: also return per-stream ``[B, T]`` masks (True inside the stream's time span), as a
            dict or list like the streams.
        quat_channels: for slerp streams, the first quaternion channel, per stream (dict or sequence);
            None means the stream is exactly 4 quaternion channels.
        validate, backend: as in :func:`resample_trajectories`; errors name the stream.

    On CUDA every stream is aligned in one kernel launch (one per group of streams with different data or
    time dtypes); on the CPU in one parallel pass.
    """
    named = isinstance(streams, dict)
    items = list(streams.items()) if named else list(enumerate(streams))
    if not items:
        raise ValueError("streams is empty: nothing to align")
    names = [str(k) for k, _ in items]
    entries = []
    for name, entry in items:
        if not isinstance(entry, (tuple, list)) or len(entry) not in (2, 3):
            raise TypeError(f"stream '{name}' must be a (data, t) or (data, t, lengths) tuple, got {type(entry).__name__}")
        entries.append(tuple(entry) + (None,) * (3 - len(entry)))
    first = entries[0][0]
    if _torch_fast is None and "torch" in sys.modules:
        _init_torch_fast()
    # The torch fast path: the native module reads the tensors, allocates the results through PyTorch's DLPack
    # exchange API and takes PyTorch's current stream (per stream about 5 us of Python less: 8 streams cost
    # ~55 us of Python on the general path).
    fast = bool(_torch_exchange) and not return_mask and type(tgt_t) is _torch_fast.Tensor and all(
        type(d) is _torch_fast.Tensor and type(t) is _torch_fast.Tensor and (n is None or type(n) is _torch_fast.Tensor)
        for d, t, n in entries)
    lib = _TORCH if fast else library_of(first)
    for name, (data, _, _) in zip(names, entries):
        if not fast and library_of(data) != lib:
            raise TypeError(f"stream '{name}' is a {library_of(data)} array but stream '{names[0]}' is {lib}")
        if data.ndim not in (2, 3):
            raise ValueError(f"stream '{name}': data must have shape [B, S, D] or [S, D], got {list(data.shape)}")
        if data.ndim != first.ndim or tuple(data.shape[:-2]) != tuple(first.shape[:-2]):
            raise ValueError(f"stream '{name}' has data of shape {list(data.shape)} but stream '{names[0]}' has "
                             f"{list(first.shape)}; all streams need the same batch size B")
    if not fast:
        tgt_t = as_array(tgt_t, first, lib, "tgt_t")
        check_jax_inputs(tgt_t=tgt_t)
    if tgt_t.ndim not in (1, 2):
        raise ValueError(f"tgt_t must have shape [B, T] or [T], got {list(tgt_t.shape)}")
    method_list = _per_stream(methods, names, "methods", "linear")
    quat_list = _per_stream(quat_channels, names, "quat_channels", None)
    if concat:
        dtypes = {str(d.dtype) for d, _, _ in entries}
        if len(dtypes) > 1:
            raise TypeError(f"concat=True needs one dtype for all streams, got {sorted(dtypes)}; "
                            "cast the streams or pass concat=False")

    def per_stream(values):
        return dict(zip([k for k, _ in items], values)) if named else list(values)

    if fast:
        desc = [(name, d, t, n, None, None, m, -1 if q is None else int(q))
                for name, (d, t, n), m, q in zip(names, entries, method_list, quat_list)]
        result = _C.fuse_multimodal(desc, tgt_t, boundary, validate, backend or "", None, concat)
        return result if concat else per_stream(result)
    T = tgt_t.shape[-1]
    lead = tuple(first.shape[:-2])
    if concat:
        out = empty(lead + (T, sum(d.shape[-1] for d, _, _ in entries)), first, lib)
        outs, off = [], 0
        for d, _, _ in entries:
            outs.append(out[..., off:off + d.shape[-1]])
            off += d.shape[-1]
    else:
        outs = [empty(lead + (T, d.shape[-1]), d, lib) for d, _, _ in entries]
    masks = empty_per_stream(len(entries), lead + (T,), first, lib, dtype="bool") if return_mask else None
    desc = []
    for k, (name, (data, t, lengths)) in enumerate(zip(names, entries)):
        t = as_array(t, data, lib, f"stream '{name}' t")
        lengths = as_array(lengths, data, lib, f"stream '{name}' lengths", dtype="int64")
        check_jax_inputs(**{f"stream '{name}' data": data, f"stream '{name}' t": t, f"stream '{name}' lengths": lengths})
        q = quat_list[k]
        desc.append((name, native(data, lib), native(t, lib), native(lengths, lib), native(outs[k], lib),
                     None if masks is None else native(masks[k], lib), method_list[k], -1 if q is None else int(q)))
    _C.fuse_multimodal(desc, native(tgt_t, lib), boundary, validate, backend or "", current_stream(first, lib), concat)
    result = finish(out, lib) if concat else per_stream([finish(o, lib) for o in outs])
    if return_mask:
        return result, per_stream([finish(masks[k], lib) for k in range(len(entries))])
    return result
