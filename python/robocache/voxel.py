"""Point-cloud voxelization: dense grids, voxel downsampling and hard (PointPillars-style) voxelization.

Outputs are allocated with the input's own array library on the input's device; the native code writes
them on the caller's current CUDA stream. The voxel of a point is ``floor((p - origin) / voxel_size)`` per
axis, computed in float64 on every backend; voxel ``i`` covers ``[origin + i*size, origin + (i+1)*size)``,
so a point exactly on a boundary goes to the upper voxel. Points with NaN or inf coordinates and points
outside the grid are dropped, never clamped into a border voxel.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import _C
from ._arrays import (_jax_gpu, as_array, check_jax, check_jax_inputs, current_stream, empty, finish, jax_device,
                      library_of, native)

__all__ = ["voxelize_point_cloud", "voxel_downsample", "hard_voxelize"]

_MODES = ("occupancy", "count", "sum", "mean", "max")
# Refuse dense grids beyond this many bytes before asking any allocator (256 TiB): no machine has it.
_MAX_DENSE_BYTES = 1 << 48


def _triple(value: Any, name: str, kind: type) -> tuple:
    """A scalar or a 3-sequence (list, tuple, array) as a tuple of three `kind`s, or a clear error."""
    if isinstance(value, numbers.Number) or (hasattr(value, "ndim") and value.ndim == 0):
        items = [value] * 3
    else:
        try:
            items = list(value.tolist() if hasattr(value, "tolist") else value)
        except TypeError:
            raise TypeError(f"{name} must be a number or a sequence of 3 numbers (x, y, z), got {value!r}") from None
        if len(items) != 3:
            raise ValueError(f"{name} must have 3 values (x, y, z), got {len(items)}: {value!r}")
    out = []
    for v in items:
        if kind is int:
            if isinstance(v, bool) or not float(v).is_integer():
                raise TypeError(f"{name} must hold integers, got {value!r}")
            out.append(int(v))
        else:
            out.append(float(v))
    return tuple(out)


def _positive_sizes(voxel_size: Any) -> tuple:
    vs = _triple(voxel_size, "voxel_size", float)
    if not all(v > 0 and math.isfinite(v) for v in vs):
        raise ValueError(f"voxel_size must be positive and finite on every axis, got {list(vs)}")
    return vs


def _check_backend(x: Any, lib: str, backend: Optional[str]) -> None:
    """`backend` must name the device the input is on: RoboCache never copies between devices."""
    if lib == "jax":
        check_jax(x, "points")
    if backend is None or backend == "auto":
        return
    if backend not in ("cpu", "cuda"):
        raise ValueError(f"backend must be 'cpu', 'cuda' or None, got {backend!r}")
    on_cuda = lib == "cupy" or (lib == "torch" and x.device.type == "cuda") or (lib == "jax" and _jax_gpu(x) is not None)
    if on_cuda != (backend == "cuda"):
        where = "cpu" if lib == "numpy" else str(jax_device(x)) if lib == "jax" else str(x.device)
        raise ValueError(f"backend={backend!r} but points is on {where}; move it explicitly (RoboCache never copies between devices)")


def _itemsize(x: Any) -> int:
    return x.element_size() if hasattr(x, "element_size") else x.dtype.itemsize


def voxelize_point_cloud(
    points: Any,
    features: Optional[Any] = None,
    *,
    voxel_size: Union[float, Sequence[float]],
    origin: Sequence[float],
    grid_size: Union[int, Sequence[int]],
    mode: str = "occupancy",
    lengths: Optional[Any] = None,
    return_dropped: bool = False,
    return_count: bool = False,
    backend: Optional[str] = None,
):
    """Scatter points into a dense voxel grid indexed ``grid[x, y, z]``.

    Args:
        points: ``[N, 3]`` or batched ``[B, N, 3]`` float32/float64 x, y, z (NumPy, PyTorch CPU/CUDA, CuPy or
            JAX, any strides; slice ``cloud[:, :3]`` for wider records).
        features: ``[N, C]`` / ``[B, N, C]`` float32/float64 values, required for ``sum``, ``mean`` and
            ``max`` (and refused for ``occupancy`` / ``count``).
        voxel_size: one size or ``(sx, sy, sz)``, positive.
        origin: ``(x0, y0, z0)``, the corner of voxel ``(0, 0, 0)``.
        grid_size: ``X`` or ``(X, Y, Z)`` voxels per axis.
        mode: ``"occupancy"`` (bool; empty voxel False), ``"count"`` (int32; empty 0), ``"sum"``,
            ``"mean"`` or ``"max"`` (features' dtype, ``[..., C]``; an empty voxel holds 0 in all three, so
            use ``return_count`` to tell an empty voxel from a maximum of 0). ``max`` is the true maximum,
            also when every feature in a voxel is negative.
        lengths: ``[B]`` valid points per cloud for padded batches; points past a length are ignored (not
            counted as dropped). Out-of-range lengths are an error on the CPU; on CUDA they are clamped to
            ``[0, N]`` (checking would wait for the GPU).
        return_dropped: also return int64 ``[B]`` (or a 0-d array) of points dropped because they had a NaN
            or inf coordinate or fell outside the grid.
        return_count: also return the int32 ``[B?, X, Y, Z]`` points per voxel (computed in the same pass;
            for ``sum`` / ``mean`` / ``max``).
        backend: None (the input's device), ``"cpu"`` or ``"cuda"``; a backend that does not match the
            input's device is an error, never a copy.

    Returns:
        The grid ``[B?, X, Y, Z]`` (``[B?, X, Y, Z, C]`` with features), then the count and the dropped
        counts if asked for, as a tuple. Occupancy and count are exact and identical on CPU and CUDA; sum
        and mean agree within float rounding (CUDA adds in a different order).
    """
    lib = library_of(points)
    _check_backend(points, lib, backend)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in _MODES)}, got {mode!r}")
    vs = _positive_sizes(voxel_size)
    org = _triple(origin, "origin", float)
    if not all(math.isfinite(v) for v in org):
        raise ValueError(f"origin must be finite, got {list(org)}")
    gs = _triple(grid_size, "grid_size", int)
    if min(gs) < 1:
        raise ValueError(f"grid_size must be >= 1 on every axis, got {list(gs)}")
    if points.ndim not in (2, 3) or points.shape[-1] != 3:
        raise ValueError(f"points must have shape [N, 3] or [B, N, 3], got {list(points.shape)}")
    features = as_array(features, points, lib, "features")
    lengths = as_array(lengths, points, lib, "lengths", dtype="int64")
    check_jax_inputs(features=features, lengths=lengths)
    batched = points.ndim == 3
    lead = (points.shape[0],) if batched else ()
    grid_shape = lead + gs
    if mode in ("sum", "mean", "max"):
        if features is None:
            raise ValueError(f"mode={mode!r} needs features ([N, C] values to reduce per voxel)")
        out_shape, out_like, out_dtype = grid_shape + (features.shape[-1],), features, None
    else:
        out_shape, out_like, out_dtype = grid_shape, points, ("bool" if mode == "occupancy" else "int32")
    elems = math.prod(out_shape) + (math.prod(grid_shape) if return_count else 0)
    itemsize = 1 if out_dtype == "bool" else 4 if out_dtype == "int32" else _itemsize(out_like)
    nbytes = elems * max(itemsize, 4 if return_count else itemsize)
    hint = "use voxel_downsample or hard_voxelize for sparse output, or a coarser voxel_size"
    if nbytes > _MAX_DENSE_BYTES:
        raise ValueError(
            f"a dense grid of shape {list(out_shape)} needs about {nbytes / 2**40:.3g} TiB; {hint}"
        )
    try:
        out = empty(out_shape, out_like, lib, dtype=out_dtype)
        count = empty(grid_shape, points, lib, dtype="int32") if return_count else None
    except (MemoryError, RuntimeError) as e:
        raise ValueError(
            f"could not allocate a dense grid of shape {list(out_shape)} ({nbytes / 2**30:.3g} GiB): {e}; {hint}"
        ) from e
    dropped = empty(lead, points, lib, dtype="int64") if return_dropped else None
    _C.voxelize_dense(
        native(points, lib), native(features, lib), native(lengths, lib), vs, org, gs, mode, native(out, lib),
        native(count, lib), native(dropped, lib), current_stream(points, lib),
    )
    result = (finish(out, lib),)
    if return_count:
        result += (finish(count, lib),)
    if return_dropped:
        result += (finish(dropped, lib),)
    return result if len(result) > 1 else result[0]


def voxel_downsample(
    points: Any,
    voxel_size: Union[float, Sequence[float]],
    features: Optional[Any] = None,
    *,
    origin: Optional[Sequence[float]] = None,
    backend: Optional[str] = None,
):
    """One point per occupied voxel, at the centroid of its points (float64 mean), like Open3D's
    ``voxel_down_sample`` and PCL's ``VoxelGrid``.

    The grid is anchored as Open3D anchors it, at the smallest finite coordinate minus half a voxel per
    axis, so the result equals Open3D's up to order; pass ``origin`` to fix the grid instead (e.g. to
    ``(0, 0, 0)`` for voxels that line up across frames). Points with NaN or inf coordinates are dropped.

    Order: occupied voxels sorted by voxel coordinate, x first, then y, then z (their 64-bit key). CPU and
    CUDA give bit-identical results (each voxel sums its points in input order, in float64). Fine voxels are
    fine: only the occupied ones are stored, so the spanned grid may exceed 2^31 voxels (up to 2^63).

    Args:
        points: ``[N, 3]`` float32/float64 (NumPy, PyTorch CPU/CUDA, CuPy or JAX, any strides).
        voxel_size: one size or ``(sx, sy, sz)``.
        features: optional ``[N, C]`` float32/float64 per-point values (colours, intensity); averaged too.

    Returns:
        ``[M, 3]`` centroids in ``points``' dtype (and ``[M, C]`` feature means with ``features``), views of
        buffers sized for N rows. On CUDA the call waits for the stream (M is needed on the host).
    """
    lib = library_of(points)
    _check_backend(points, lib, backend)
    vs = _positive_sizes(voxel_size)
    org = None if origin is None else _triple(origin, "origin", float)
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {list(points.shape)}")
    features = as_array(features, points, lib, "features")
    check_jax_inputs(features=features)
    n = points.shape[0]
    out_points = empty((n, 3), points, lib)
    out_features = empty((n, features.shape[-1]), features, lib) if features is not None and features.ndim == 2 else None
    if features is not None and out_features is None:
        raise ValueError(f"features must have shape [N, C], got {list(features.shape)}")
    m = _C.voxel_downsample(native(points, lib), vs, org, native(features, lib), native(out_points, lib),
                            native(out_features, lib), current_stream(points, lib))
    if features is None:
        return finish(out_points[:m], lib)
    return finish(out_points[:m], lib), finish(out_features[:m], lib)


def hard_voxelize(
    points: Any,
    voxel_size: Union[float, Sequence[float]],
    point_cloud_range: Sequence[float],
    max_points: int,
    max_voxels: int,
    *,
    coord_order: str = "zyx",
    backend: Optional[str] = None,
):
    """Hard voxelization for detectors (PointPillars, SECOND), with mmcv ``Voxelization`` semantics.

    The grid spans ``point_cloud_range = [x_min, y_min, z_min, x_max, y_max, z_max]`` with
    ``round((max - min) / voxel_size)`` voxels per axis (as mmcv computes it). Voxels are numbered in the
    order in which their first point appears in the input; each keeps its first ``max_points`` points in
    input order; voxels after the first ``max_voxels`` are dropped whole. Points outside the range or with
    NaN / inf coordinates are dropped. Identical results on CPU and CUDA.

    Args:
        points: ``[N, C]`` float32/float64 with x, y, z first (e.g. KITTI's x, y, z, intensity).
        coord_order: ``"zyx"`` (mmcv's and spconv's order, the default) or ``"xyz"``.

    Returns:
        ``voxels [M, max_points, C]`` (unused slots 0), ``coords [M, 3]`` int32 voxel coordinates in
        ``coord_order``, ``num_points [M]`` int32. On CUDA the call waits for the stream (M is needed on
        the host).
    """
    lib = library_of(points)
    _check_backend(points, lib, backend)
    if coord_order not in ("zyx", "xyz"):
        raise ValueError(f"coord_order must be 'zyx' (mmcv) or 'xyz', got {coord_order!r}")
    vs = _positive_sizes(voxel_size)
    try:
        rng = tuple(float(v) for v in (point_cloud_range.tolist() if hasattr(point_cloud_range, "tolist") else point_cloud_range))
    except TypeError:
        raise TypeError(f"point_cloud_range must be 6 numbers, got {point_cloud_range!r}") from None
    if len(rng) != 6:
        raise ValueError(f"point_cloud_range must be [x_min, y_min, z_min, x_max, y_max, z_max], got {list(rng)}")
    for name, v in (("max_points", max_points), ("max_voxels", max_voxels)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if points.ndim != 2 or points.shape[-1] < 3:
        raise ValueError(f"points must have shape [N, C] with C >= 3 (x, y, z first), got {list(points.shape)}")
    C = points.shape[-1]
    voxels = empty((int(max_voxels), int(max_points), C), points, lib)
    coords = empty((int(max_voxels), 3), points, lib, dtype="int32")
    num_points = empty((int(max_voxels),), points, lib, dtype="int32")
    m = _C.hard_voxelize(
        native(points, lib), vs, rng, int(max_points), int(max_voxels), coord_order == "xyz", native(voxels, lib),
        native(coords, lib), native(num_points, lib), current_stream(points, lib),
    )
    return finish(voxels[:m], lib), finish(coords[:m], lib), finish(num_points[:m], lib)
