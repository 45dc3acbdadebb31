"""Array-library plumbing: which library an input belongs to, allocation with that library on the
input's device, and the caller's current CUDA stream. RoboCache never copies data between devices.

JAX arrays (on one CPU or GPU device) are read in place through DLPack. JAX buffers are immutable, so a result
is written into memory RoboCache allocates and then handed to JAX without a copy: on the CPU a 64-byte-aligned
NumPy buffer (``jax.device_put`` aliases aligned host memory), on a GPU a ``DeviceBuffer`` handed over through
DLPack once the work is done (JAX arrays run on the legacy default stream and the hand-over waits for it). With
``jax_enable_x64`` off, JAX keeps 64-bit results (int64 counts) as 32-bit, as it does for every array it is
given; float64 timestamps need x64 on, or JAX has already made them float32 before RoboCache sees them."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

_NUMPY = "numpy"
_TORCH = "torch"
_CUPY = "cupy"
_JAX = "jax"


def library_of(x: Any) -> str:
    """'numpy', 'torch', 'cupy' or 'jax' for an array; raises TypeError for anything else."""
    t = type(x)
    if t is np.ndarray:
        return _NUMPY
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return _TORCH
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(x, cupy.ndarray):
        return _CUPY
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        return _JAX
    if t is _DeviceOut:  # a result RoboCache writes for JAX on a GPU
        return _JAX
    if isinstance(x, np.ndarray):
        return _NUMPY
    raise TypeError(
        f"expected a numpy.ndarray, torch.Tensor, cupy.ndarray or jax.Array, got {t.__module__}.{t.__qualname__}"
    )


def check_jax(x: Any, name: str) -> None:
    """A JAX input must live on one CPU or GPU device (never a silent copy); on a GPU it is made ready first, so
    the buffer DLPack hands over holds its values."""
    devices = sorted(x.devices(), key=lambda d: d.id)
    platforms = sorted({d.platform for d in devices})
    if len(devices) != 1:
        raise ValueError(f"{name} is a JAX array sharded over {len(devices)} devices ({', '.join(map(str, devices))}); "
                         "RoboCache takes JAX arrays on one device: pass each shard (x.addressable_shards) on its own")
    if platforms[0] not in ("cpu", "gpu"):
        raise ValueError(f"{name} is a JAX array on {devices[0]} ({platforms[0]}); RoboCache takes JAX arrays on a "
                         "CPU or a CUDA GPU")
    if platforms[0] == "gpu":
        if x.dtype.name not in _NP_CODES:
            raise TypeError(f"{name} has an unsupported dtype ({x.dtype})")
        x.block_until_ready()


def jax_device(x: Any) -> Any:
    """The device of a JAX array on one device (check_jax refuses sharded ones)."""
    return next(iter(x.devices()))


def _jax_gpu(x: Any) -> Any:
    """The CUDA device index of a JAX array on a GPU, else None."""
    d = jax_device(x)
    return d.local_hardware_id if d.platform == "gpu" else None


# robocache::DType codes (include/robocache/tensor.h) by dtype name, which NumPy and torch spell alike.
_NP_CODES = {"float16": 0, "bfloat16": 1, "float32": 2, "float64": 3, "int32": 4, "int64": 5, "uint8": 6, "bool": 7}


class _DeviceOut:
    """A result RoboCache writes on a GPU for JAX: a view (element offset, shape, element strides) of a
    DeviceBuffer; native() passes it as a descriptor and finish() hands it to JAX."""

    __slots__ = ("buf", "offset", "shape", "strides", "dtype")

    def __init__(self, buf: Any, offset: int, shape: tuple, strides: tuple, dtype: np.dtype):
        self.buf, self.offset, self.shape, self.strides, self.dtype = buf, offset, shape, strides, dtype

    @classmethod
    def new(cls, shape: tuple, dtype: Any, device: int, buffer_type: Any = None) -> "_DeviceOut":
        dtype = np.dtype(dtype)
        if dtype.name not in _NP_CODES:
            raise TypeError(f"a RoboCache result cannot have dtype {dtype}")
        shape = tuple(int(n) for n in shape)
        if buffer_type is None:
            from . import _C

            buffer_type = _C.DeviceBuffer
        strides, step = [], 1
        for n in reversed(shape):
            strides.append(step)
            step *= max(n, 1)
        return cls(buffer_type(device, int(np.prod(shape, dtype=np.int64)) * dtype.itemsize), 0, shape,
                   tuple(reversed(strides)), dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _cut(self, axis: int, key: Any) -> "_DeviceOut":
        n = self.shape[axis]
        shape, strides = list(self.shape), list(self.strides)
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                raise IndexError("internal: a RoboCache device result is sliced with step 1 only")
            shape[axis] = max(0, stop - start)
            return _DeviceOut(self.buf, self.offset + start * strides[axis], tuple(shape), tuple(strides), self.dtype)
        k = int(key) + (n if int(key) < 0 else 0)
        if not 0 <= k < n:
            raise IndexError(f"index {key} is out of range for a dimension of {n}")
        del shape[axis], strides[axis]
        return _DeviceOut(self.buf, self.offset + k * self.strides[axis], tuple(shape), tuple(strides), self.dtype)

    def __getitem__(self, key: Any) -> "_DeviceOut":
        if isinstance(key, tuple) and len(key) == 2 and key[0] is Ellipsis and isinstance(key[1], slice):
            return self._cut(self.ndim - 1, key[1])
        if isinstance(key, (slice, int, np.integer)):
            return self._cut(0, key)
        raise IndexError(f"internal: unsupported index {key!r} of a RoboCache device result")

    def descriptor(self) -> tuple:
        return (self.buf.ptr + self.offset * self.dtype.itemsize, _NP_CODES[self.dtype.name], self.buf.device,
                self.shape, self.strides)

    def to_jax(self) -> Any:
        from . import _C

        return _C.to_jax(self.buf, self.offset, list(self.shape), list(self.strides), _NP_CODES[self.dtype.name], 0)


def check_jax_inputs(**arrays: Any) -> None:
    """check_jax for each named argument that is a JAX array."""
    for name, x in arrays.items():
        if x is not None and library_of(x) == _JAX:
            check_jax(x, name)


def reject_jax_out(out: Any, like: Any = None, name: str = "out") -> None:
    """JAX arrays are immutable: they cannot be written in place. With JAX inputs on a GPU, `out` must be unset
    too: the call returns before its kernel finishes only where the caller's library orders its own work after
    it, which JAX (on its own streams) does not, so the result must be a JAX array (handed over once written)."""
    if out is None:
        return
    if library_of(out) == _JAX:
        raise TypeError(f"{name} is a jax.Array, which is immutable and cannot be written in place; leave {name} "
                        "unset to get a new JAX array")
    if like is not None and library_of(like) == _JAX and _jax_gpu(like) is not None:
        raise TypeError(f"{name} must be unset for JAX arrays on a GPU (got a {library_of(out)} array); the result "
                        "is a new JAX array")


def _aligned_empty(shape: tuple, dtype: Any) -> np.ndarray:
    """np.empty whose data is 64-byte aligned (what JAX's CPU client needs to alias it)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(n + 64, dtype=np.uint8)
    off = (-raw.ctypes.data) % 64
    return raw[off:off + n].view(dtype).reshape(shape)


def finish(x: Any, lib: str) -> Any:
    """The result as the caller's library: JAX gets the buffer RoboCache wrote, without a copy."""
    if lib != _JAX or x is None:
        return x
    if isinstance(x, _DeviceOut):
        return x.to_jax()
    import jax

    return jax.device_put(x, jax.devices("cpu")[0])


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
    if lib == _JAX:
        if _jax_gpu(like) is not None:
            import jax

            return jax.device_put(np.asarray(x, dtype=dtype), jax_device(like))
        return finish(np.asarray(x, dtype=dtype), lib)
    import cupy

    with cupy.cuda.Device(like.device.id):
        return cupy.asarray(np.asarray(x, dtype=dtype))


def empty_per_stream(n: int, shape: tuple, like: Any, lib: str, dtype: Any = None) -> list:
    """n arrays of `shape` (e.g. per-stream masks): views of one allocation, except for JAX on a GPU, where each
    gets its own buffer (XLA requires arrays it is handed to start 16-byte aligned)."""
    if lib == _JAX and _jax_gpu(like) is not None:
        return [empty(shape, like, lib, dtype) for _ in range(n)]
    stacked = empty((n,) + tuple(shape), like, lib, dtype)
    return [stacked[k] for k in range(n)]


def empty(shape: tuple, like: Any, lib: str, dtype: Any = None) -> Any:
    """An uninitialised array of `like`'s library and device, of `like`'s dtype or `dtype` by name ("bool",
    "int32", ...). For JAX, the buffer finish() hands over (NumPy, or a device result on a GPU)."""
    if lib == _TORCH:
        import torch

        return torch.empty(shape, dtype=like.dtype if dtype is None else getattr(torch, dtype), device=like.device)
    dt = like.dtype if dtype is None else np.dtype(dtype)
    if lib == _NUMPY:
        return np.empty(shape, dtype=dt)
    if lib == _JAX:
        gpu = _jax_gpu(like)
        return _aligned_empty(shape, dt) if gpu is None else _DeviceOut.new(shape, dt, gpu)
    import cupy

    with cupy.cuda.Device(like.device.id):
        return cupy.empty(shape, dtype=dt)


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

        _TORCH_CODES.update({getattr(torch, name): code for name, code in _NP_CODES.items()})
        _TORCH_CODES["strided"] = torch.strided
    return _TORCH_CODES


_TORCH_EXCHANGE: list = []


def torch_exchange() -> bool:
    """Whether torch.Tensor publishes the DLPack exchange API (PyTorch >= 2.10): C functions through which
    the native module reads a tensor's fields (~0.05 us) and PyTorch's current stream."""
    if not _TORCH_EXCHANGE:
        import torch

        _TORCH_EXCHANGE.append(hasattr(torch.Tensor, "__dlpack_c_exchange_api__"))
    return _TORCH_EXCHANGE[0]


def native(x: Any, lib: str) -> Any:
    """What the native module takes for an array argument. A torch tensor goes as it is where PyTorch
    publishes the DLPack exchange API, else as a descriptor (data_ptr, dtype code, device, shape,
    strides): reading those attributes costs ~0.5 us, against 2-5 us for tensor.__dlpack__(), which
    dominated small calls. A NumPy bfloat16 array (the ml_dtypes type JAX uses) goes as a descriptor too:
    neither the buffer protocol nor NumPy's DLPack export carries it. Other arrays go through DLPack."""
    if type(x) is _DeviceOut:
        return x.descriptor()
    if type(x) is np.ndarray and x.dtype.name == "bfloat16":
        if any(st % 2 for st in x.strides):
            raise ValueError(f"a bfloat16 array with strides {x.strides} (bytes) that are not whole elements")
        return (x.ctypes.data, _NP_CODES["bfloat16"], -1, x.shape, tuple(st // 2 for st in x.strides))
    if lib != _TORCH or x is None or torch_exchange():
        return x  # DLPack import, or the C++ side reads the tensor through PyTorch's DLPack exchange API
    codes = torch_codes()
    code = codes.get(x.dtype)
    if code is None or x.layout is not codes["strided"] or not (x.is_cuda or x.is_cpu):
        return x  # DLPack import reports what is unsupported
    return (x.data_ptr(), code, x.get_device(), x.shape, x.stride())
