"""RoboCache ops: the Python API over the native core. Outputs are allocated with the input's own
array library on the input's device; the native code writes them on the caller's current stream."""

from __future__ import annotations

from typing import Any, Optional

from . import _C
from ._arrays import as_array, current_stream, empty, library_of, native

__all__ = ["resample_trajectories"]


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
):
    """Resample trajectories recorded at ``src_t`` onto the target times ``tgt_t``.

    Args:
        data: ``[B, S, D]`` (or unbatched ``[S, D]``) samples; float16, bfloat16, float32 or float64.
            NumPy arrays, PyTorch tensors (CPU or CUDA) and CuPy arrays, with any strides (slices,
            transposes, ``expand`` broadcasts) are read in place, without a copy.
        src_t: ``[B, S]`` or ``[S]`` (shared by every row) source times, non-decreasing along S. float32,
            float64 (seconds, any epoch) or int64 (nanoseconds, as ROS and MCAP record them). Repeated
            times are allowed; a target at such a time takes the later sample.
        tgt_t: ``[B, T]`` or ``[T]`` target times, same dtype as ``src_t``, in any order.
        method: ``"linear"``, ``"nearest"`` (ties go to the later sample) or ``"hold"`` (zero-order hold:
            the last sample at or before the target; for gripper flags and camera frames).
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

    Returns:
        ``[B, T, D]`` (or ``[T, D]``) array of ``data``'s library, dtype and device; with
        ``return_mask``, a tuple ``(out, mask)``.
    """
    lib = library_of(data)
    src_t = as_array(src_t, data, lib, "src_t")
    tgt_t = as_array(tgt_t, data, lib, "tgt_t", dtype=getattr(src_t, "dtype", None) if lib == "numpy" else None)
    src_lengths = as_array(src_lengths, data, lib, "src_lengths", dtype="int64")
    if data.ndim not in (2, 3):
        raise ValueError(f"data must have shape [B, S, D] or [S, D], got {list(data.shape)}")
    if tgt_t.ndim not in (1, 2):
        raise ValueError(f"tgt_t must have shape [B, T] or [T], got {list(tgt_t.shape)}")
    T = tgt_t.shape[-1]
    shape = (data.shape[0], T, data.shape[-1]) if data.ndim == 3 else (T, data.shape[-1])
    if out is None:
        out = empty(shape, data, lib)
    mask = empty(shape[:-1], data, lib, boolean=True) if return_mask else None
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
        current_stream(data, lib),
    )
    return (out, mask) if return_mask else out
