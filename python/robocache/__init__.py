"""RoboCache: the data engine for robot learning.

Multi-rate trajectory resampling on the CPU and on CUDA GPUs, on NumPy arrays, PyTorch tensors and CuPy
arrays without copies. See ``robocache.build_info()`` for how this copy was built.
"""

import os as _os
import sys as _sys


def _load_native():
    """Imports the native module. A protobuf already in the process's global symbol scope (`import
    tensorflow` first: it loads libtensorflow_framework with RTLD_GLOBAL and exports its own protobuf)
    would take the place of the libprotobuf-lite that the RLDS reader links, and crash it; the module is
    then loaded with RTLD_DEEPBIND, so that it and its libraries bind to their own. Otherwise the
    default flags are used."""
    deep = getattr(_os, "RTLD_DEEPBIND", 0)
    if deep and _sys.platform.startswith("linux"):
        import ctypes

        try:
            clash = hasattr(ctypes.CDLL(None), "_ZN6google8protobuf11MessageLite14_InternalParseEPKcPNS0_8internal12ParseContextE")
        except OSError:
            clash = False
        if clash:
            flags = _sys.getdlopenflags()
            _sys.setdlopenflags(flags | deep)
            try:
                from . import _C
            finally:
                _sys.setdlopenflags(flags)
            return _C
    from . import _C
    return _C


_C = _load_native()
from .ops import fuse_multimodal, resample_rotations, resample_trajectories
from .pointclouds import PointCloud, load_point_cloud
from .voxel import hard_voxelize, voxel_downsample, voxelize_point_cloud
from . import datasets
from . import store
from .loader import Loader

__version__ = _C.build_info()["version"]

__all__ = [
    "resample_trajectories",
    "resample_rotations",
    "fuse_multimodal",
    "voxelize_point_cloud",
    "voxel_downsample",
    "hard_voxelize",
    "load_point_cloud",
    "PointCloud",
    "Loader",
    "datasets",
    "store",
    "build_info", "set_num_threads", "get_num_threads", "__version__"]


def build_info() -> dict:
    """How this copy of RoboCache was built, for bug reports: version, CUDA on/off, CUDA architectures,
    compilers, CPU threads, and how many GPUs are visible now."""
    info = dict(_C.build_info())
    info["gpu_visible"] = info["cuda_device_count"] > 0
    return info


def set_num_threads(n: int) -> None:
    """Size of the CPU thread pool (like ``torch.set_num_threads``); n <= 0 means all cores.
    The ``ROBOCACHE_NUM_THREADS`` environment variable sets the initial size."""
    _C.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the CPU backend runs on."""
    return _C.get_num_threads()
