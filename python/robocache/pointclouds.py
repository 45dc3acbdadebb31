"""Point-cloud files: KITTI / nuScenes LiDAR ``.bin`` and PCL ``.pcd`` (ascii, binary, binary_compressed).
Parsed by the C++ core (``src/io``); a corrupt or truncated file raises ``OSError`` naming the file and
the byte offset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from . import _C

__all__ = ["PointCloud", "load_point_cloud"]


@dataclass
class PointCloud:
    """A loaded cloud. ``points`` is float32 ``[N, len(fields)]``; ``xyz`` its first three columns.
    Organized clouds (RGB-D) have ``height > 1`` and keep their NaN holes: ``points.reshape(height, width, -1)``
    is the image layout."""

    points: np.ndarray
    fields: List[str]
    width: int
    height: int

    @property
    def xyz(self) -> np.ndarray:
        idx = [self.fields.index(f) for f in ("x", "y", "z")]
        return self.points[:, idx] if idx != [0, 1, 2] else self.points[:, :3]

    def column(self, name: str) -> np.ndarray:
        return self.points[:, self.fields.index(name)]


def load_point_cloud(path: "os.PathLike[str] | str", *, columns: Optional[int] = None) -> PointCloud:
    """Read a ``.pcd`` or ``.bin`` file into host memory.

    ``.bin`` files are float32 records of ``columns`` values: 4 for KITTI (x, y, z, intensity), 5 for
    nuScenes (x, y, z, intensity, ring). ``None`` decides from the file: the record width that divides the
    size, and when both do, 5 if every fifth value is a small non-negative integer (the ring index).
    PCD fields of any numeric type become float32 columns (4-byte ``rgb`` / ``rgba`` fields keep their 32
    bits: ``cloud.column('rgba').view(np.uint32)`` unpacks them; fields
    named ``_`` are padding and skipped; a field with COUNT k gives columns ``name_0 .. name_{k-1}``).
    """
    if columns not in (None, 4, 5):
        raise ValueError(f"columns must be 4 (KITTI), 5 (nuScenes) or None, got {columns!r}")
    values, fields, width, height = _C.read_point_cloud(os.fspath(path), columns or 0)
    return PointCloud(points=values, fields=list(fields), width=int(width), height=int(height))
