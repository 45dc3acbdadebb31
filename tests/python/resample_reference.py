"""Float64 reference for resample_trajectories: a plain loop over targets, written from the contract in
DESIGN.md, sharing no code with the library."""

import bisect

import numpy as np


def _diff(a, b):
    # int64 nanoseconds: subtract in integers first so epoch-sized stamps keep full precision.
    if isinstance(a, (np.integer, int)) and isinstance(b, (np.integer, int)):
        return float(int(a) - int(b))
    return float(a) - float(b)


def resample_row(st, sv, t, method, boundary):
    """st [L] times (any numeric), sv [L, D] float64 values, t a scalar -> ([D] values, inside)."""
    L = len(st)
    first, last = st[0], st[L - 1]
    if t < first or t > last:
        if boundary == "nan":
            return np.full(sv.shape[1], np.nan), False
        below = t < first
        if boundary == "extrapolate" and method == "linear":
            if below:
                lo = max(i for i in range(L) if st[i] == first)
                hi = lo + 1 if lo + 1 < L else None
            else:
                hi = L - 1
                before = [i for i in range(L) if st[i] < last]
                lo = before[-1] if before else None
            if lo is not None and hi is not None:
                w = _diff(t, st[lo]) / _diff(st[hi], st[lo])
                return sv[lo] + w * (sv[hi] - sv[lo]), False
        return (sv[0] if below else sv[L - 1]).copy(), False
    k = bisect.bisect_right(st, t) - 1  # the last sample at or before t
    if k == L - 1 or method == "hold":
        return sv[k].copy(), True
    if method == "nearest":
        return (sv[k + 1] if _diff(st[k + 1], t) <= _diff(t, st[k]) else sv[k]).copy(), True
    w = _diff(t, st[k]) / _diff(st[k + 1], st[k])
    return sv[k] + w * (sv[k + 1] - sv[k]), True


def resample_reference(data, src_t, tgt_t, method="linear", boundary="clamp", src_lengths=None):
    """NumPy inputs ([B,S,D] or [S,D]) -> (float64 [.., T, D], bool mask)."""
    data = np.asarray(data, dtype=np.float64)
    unbatched = data.ndim == 2
    if unbatched:
        data = data[None]
    B, S, D = data.shape
    src_t = np.broadcast_to(src_t, (B, S)) if np.ndim(src_t) == 1 else np.asarray(src_t)
    tgt_t = np.broadcast_to(tgt_t, (B, np.shape(tgt_t)[-1])) if np.ndim(tgt_t) == 1 else np.asarray(tgt_t)
    T = tgt_t.shape[1]
    out = np.empty((B, T, D))
    mask = np.empty((B, T), dtype=bool)
    for b in range(B):
        L = S if src_lengths is None else int(src_lengths[b])
        st = [src_t[b, i].item() for i in range(L)]
        for j in range(T):
            out[b, j], mask[b, j] = resample_row(st, data[b, :L], tgt_t[b, j].item(), method, boundary)
    return (out[0], mask[0]) if unbatched else (out, mask)
