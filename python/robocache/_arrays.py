"""Array-library plumbing: which library an input belongs to, allocation with that library on the
input's device, and the caller's current CUDA stream. RoboCache never copies data between devices."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

_NUMPY = "numpy"
_TORCH = "torch"
_CUPY = "cupy"


def library_of(x: Any) -> str:
    """'numpy', 'torch' or 'cupy' for an array; raises TypeError for anything else."""
    t = type(x)
    if t is np.ndarray:
        return _NUMPY
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return _TORCH
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, cupy.ndarray):
        return _CUPY
    if isinstance(x, np.ndarray):
        return _NUMPY
    raise TypeError(
        f"expected a numpy.ndarray, torch.Tensor or cupy.ndarray, got {t.__module__}.{t.__qualname__}"
    )


def as_array(x: Any, like: Any, lib: str, name: str, dtype: Any = None) -> Any:
    """Returns x if it is already an array; converts a Python sequence or scalar into `lib`'s array on
    `like`'s device (a list has no device of its own). Arrays are never moved or cast."""
    if x is None:
        return None
    try:
        library_of(x)
        return x
    except TypeError:
        pass
    if not isinstance(x, (list, tuple, int, float)):
        raise TypeError(
            f"{name}: expected an array or a Python sequence, got {type(x).__module__}.{type(x).__qualname__}"
        )
    if lib == _NUMPY:
        return np.asarray(x, dtype=dtype)
    if lib == _TORCH:
        import torch

        return torch.as_tensor(np.asarray(x, dtype=dtype), device=like.device)
    import cupy

    with cupy.cuda.Device(like.device.id):
        return cupy.asarray(np.asarray(x, dtype=dtype))


def empty(shape: tuple, like: Any, lib: str, boolean: bool = False) -> Any:
    """An uninitialised array of `like`'s library, device and (unless boolean) dtype."""
    if lib == _NUMPY:
        return np.empty(shape, dtype=bool if boolean else like.dtype)
    if lib == _TORCH:
        import torch

        return torch.empty(shape, dtype=torch.bool if boolean else like.dtype, device=like.device)
    import cupy

    with cupy.cuda.Device(like.device.id):
        return cupy.empty(shape, dtype=bool if boolean else like.dtype)


def current_stream(x: Any, lib: str) -> int:
    """The caller's current CUDA stream on x's device (0 for CPU arrays)."""
    if lib == _TORCH:
        if x.device.type != "cuda":
            return 0
        import torch

        # The raw-stream getter skips building a torch.cuda.Stream object (a few microseconds a call).
        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        if raw is not None:
            return raw(x.device.index)
        return torch.cuda.current_stream(x.device).cuda_stream
    if lib == _CUPY:
        import cupy

        with cupy.cuda.Device(x.device.id):
            return cupy.cuda.get_current_stream().ptr
    return 0


# robocache::DType values (include/robocache/tensor.h), for the torch descriptor fast path.
_TORCH_CODES: dict = {}


def torch_codes() -> dict:
    """torch dtype -> robocache::DType code (and "strided": torch.strided); filled on first use, since
    robocache never imports torch itself."""
    if not _TORCH_CODES:
        import torch

        _TORCH_CODES.update({torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3,
                             torch.int32: 4, torch.int64: 5, torch.uint8: 6, torch.bool: 7})
        _TORCH_CODES["strided"] = torch.strided
    return _TORCH_CODES


def native(x: Any, lib: str) -> Any:
    """What the native module takes for an array argument. A torch tensor travels as a descriptor
    (data_ptr, dtype code, device, shape, strides): reading those attributes costs ~0.5 us, against
    2-5 us for tensor.__dlpack__(), which dominated small calls. Other arrays go through DLPack."""
    if lib != _TORCH or x is None:
        return x
    codes = torch_codes()
    code = codes.get(x.dtype)
    if code is None or x.layout is not codes["strided"] or not (x.is_cuda or x.is_cpu):
        return x  # DLPack import reports what is unsupported
    return (x.data_ptr(), code, x.get_device(), x.shape, x.stride())
