"""resample_trajectories against the float64 reference, on the CPU (CI) and CUDA (GPU machine)."""

import numpy as np
import pytest

import robocache as rc
from conftest import HAS_CUDA, requires_cuda, requires_torch, shared_data, torch
from resample_reference import resample_reference

METHODS = ["linear", "nearest", "hold"]
BOUNDARIES = ["clamp", "extrapolate", "nan"]
SIZES = [(1, 1, 19, 1), (3, 19, 111, 7), (2, 111, 19, 3), (2, 989, 111, 2), (1, 19, 989, 5)]
# Tolerance relative to the data scale (values are in [-10, 10]).
TOL = {"float64": 1e-12, "float32": 2e-6, "float16": 2e-3, "bfloat16": 1.6e-2}


def jittered_times(rng, B, S, dtype=np.float64, scale=1.0, start=0.0):
    """Non-decreasing, non-uniform: jitter, exact duplicates, and gaps."""
    r = rng.random((B, S))
    steps = np.where(r < 0.1, 0.0, np.where(r < 0.2, 2.0 * rng.random((B, S)), 0.01 + 0.05 * rng.random((B, S))))
    steps[:, 0] = rng.random(B)
    t = start + np.cumsum(steps, axis=1) * scale
    return t.astype(dtype)


def targets_around(rng, src_t, T):
    """Targets spread 20% beyond both ends, unsorted, with some exactly on source times."""
    B = src_t.shape[0]
    lo, hi = src_t[:, :1].astype(np.float64), src_t[:, -1:].astype(np.float64)
    span = np.maximum(hi - lo, 1e-3)
    t = lo - 0.2 * span + 1.4 * span * rng.random((B, T))
    exact = rng.random((B, T)) < 0.15
    pick = rng.integers(0, src_t.shape[1], (B, T))
    t = np.where(exact, np.take_along_axis(src_t.astype(np.float64), pick, 1), t)
    return t.astype(src_t.dtype)


def to_dtype(x, name):
    """NumPy for float16/32/64; bfloat16 only exists in torch."""
    if name == "bfloat16":
        return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
    return x.astype(name)


def as_f64(x):
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def assert_close(got, want, tol, what=""):
    got = as_f64(got)
    nan_w = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan_w, err_msg=f"NaN pattern differs {what}")
    # Absolute at the data scale (values in [-10, 10]), relative beyond it (extrapolated values grow).
    np.testing.assert_allclose(got[~nan_w], want[~nan_w], rtol=tol, atol=tol * 10, err_msg=what)


# ---------------------------------------------------------------- CPU against the reference


@pytest.mark.parametrize("B,S,T,D", SIZES)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_float64_matches_reference(rng, B, S, T, D, method, boundary):
    src_t = jittered_times(rng, B, S)
    tgt_t = targets_around(rng, src_t, T)
    data = rng.uniform(-10, 10, (B, S, D))
    out, mask = rc.resample_trajectories(data, src_t, tgt_t, method=method, boundary=boundary, return_mask=True)
    want, want_mask = resample_reference(data, src_t, tgt_t, method, boundary)
    assert out.dtype == np.float64 and out.shape == (B, T, D)
    assert_close(out, want, TOL["float64"])
    np.testing.assert_array_equal(mask, want_mask)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"] + (["bfloat16"] if torch is not None else []))
@pytest.mark.parametrize("time_dtype", ["float32", "float64", "int64"])
def test_every_dtype_has_its_tolerance(rng, dtype, time_dtype):
    B, S, T, D = 3, 111, 57, 19
    src_t = jittered_times(rng, B, S, scale=1e9 if time_dtype == "int64" else 1.0).astype(time_dtype)
    tgt_t = targets_around(rng, src_t, T)
    data = to_dtype(rng.uniform(-10, 10, (B, S, D)), dtype)
    for method in METHODS:
        out = rc.resample_trajectories(data, src_t if dtype != "bfloat16" else torch.from_numpy(src_t),
                                       tgt_t if dtype != "bfloat16" else torch.from_numpy(tgt_t), method=method)
        assert out.dtype == data.dtype
        want, _ = resample_reference(as_f64(data), src_t, tgt_t, method)
        # nearest and hold copy samples: exact in every dtype
        assert_close(out, want, TOL[dtype] if method == "linear" else 0.0, f"{dtype} {time_dtype} {method}")


def test_nearest_ties_go_to_the_later_sample():
    src_t = np.array([0.0, 1.0, 2.0, 4.0])
    data = np.array([[10.0], [20.0], [30.0], [40.0]])
    out = rc.resample_trajectories(data, src_t, np.array([0.5, 1.5, 3.0, 2.9, 3.1]), method="nearest")
    np.testing.assert_array_equal(out[:, 0], [20.0, 30.0, 40.0, 30.0, 40.0])


def test_duplicate_times_take_the_later_sample():
    src_t = np.array([0.0, 1.0, 1.0, 1.0, 2.0])
    data = np.array([[0.0], [5.0], [6.0], [7.0], [9.0]])
    for method in METHODS:
        out = rc.resample_trajectories(data, src_t, np.array([1.0]), method=method)
        assert out[0, 0] == 7.0, method
    out = rc.resample_trajectories(data, src_t, np.array([1.5]), method="linear")
    assert out[0, 0] == pytest.approx(8.0)


def test_matches_numpy_interp_on_distinct_times(rng):
    src_t = np.sort(rng.uniform(0, 100, 300))
    tgt_t = rng.uniform(-10, 110, 500)
    data = rng.normal(size=(300, 4))
    out = rc.resample_trajectories(data, src_t, tgt_t)
    for d in range(4):
        np.testing.assert_allclose(out[:, d], np.interp(tgt_t, src_t, data[:, d]), rtol=0, atol=1e-12)


def test_hold_matches_scipy_previous(rng):
    interpolate = pytest.importorskip("scipy.interpolate")
    src_t = np.sort(rng.uniform(0, 10, 50))
    tgt_t = rng.uniform(src_t[0], src_t[-1], 200)
    data = rng.normal(size=(50, 3))
    out = rc.resample_trajectories(data, src_t, tgt_t, method="hold")
    want = interpolate.interp1d(src_t, data, kind="previous", axis=0)(tgt_t)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_padded_lengths_ignore_samples_past_the_end(rng, method, boundary):
    B, S, T, D = 5, 40, 33, 3
    src_t = jittered_times(rng, B, S)
    lengths = rng.integers(1, S + 1, B)
    lengths[0] = 1
    lengths[1] = S
    padded_t = src_t.copy()
    padded = rng.uniform(-10, 10, (B, S, D))
    for b in range(B):  # garbage past each length: decreasing times, NaN data
        padded_t[b, lengths[b]:] = -1e9
        padded[b, lengths[b]:] = np.nan
    tgt_t = targets_around(rng, src_t, T)
    out = rc.resample_trajectories(padded, padded_t, tgt_t, method=method, boundary=boundary,
                                   src_lengths=lengths)
    want, _ = resample_reference(padded, padded_t, tgt_t, method, boundary, src_lengths=lengths)
    assert_close(out, want, TOL["float64"])
    out32 = rc.resample_trajectories(padded, padded_t, tgt_t, method=method, boundary=boundary,
                                     src_lengths=lengths.astype(np.int32))
    np.testing.assert_array_equal(out32, out)


def test_strided_inputs_are_read_in_place(rng):
    B, S, T, D = 4, 60, 25, 6
    store = rng.uniform(-10, 10, (B, D, 2 * S))  # [B, D, 2S]: transposed and every other sample
    data = store.transpose(0, 2, 1)[:, ::2, :]
    src_store = jittered_times(rng, B, 2 * S)
    src_t = src_store[:, ::2]
    tgt_t = targets_around(rng, src_t, T)[:, ::-1]  # negative stride, unsorted
    out_store = np.full((B, D, T), np.nan)
    out = out_store.transpose(0, 2, 1)
    ret = rc.resample_trajectories(data, src_t, tgt_t, out=out)
    assert ret is out
    want, _ = resample_reference(np.ascontiguousarray(data), src_t, tgt_t)
    assert_close(out_store.transpose(0, 2, 1), want, TOL["float64"])


def test_broadcast_times_and_stride0_data(rng):
    S, T, D = 50, 31, 4
    src_t = jittered_times(rng, 1, S)[0]
    tgt_t = targets_around(rng, src_t[None], T)[0]
    row = rng.uniform(-10, 10, (1, S, D))
    data = np.broadcast_to(row, (7, S, D))  # stride 0 along B, read-only
    out = rc.resample_trajectories(data, src_t, tgt_t)
    want, _ = resample_reference(row[0], src_t, tgt_t)
    for b in range(7):
        assert_close(out[b], want, TOL["float64"])


@requires_torch
def test_torch_expand_is_not_copied():
    # Copying this expanded view would need 2.5 GB; reading it in place needs 25 KB.
    S, D = 100, 64
    row = torch.randn(1, S, D)
    data = row.expand(100_000, S, D)
    src_t = torch.linspace(0, 1, S, dtype=torch.float64)
    tgt_t = torch.tensor([0.25, 0.75], dtype=torch.float64)
    out = rc.resample_trajectories(data, src_t, tgt_t)
    assert isinstance(out, torch.Tensor) and out.shape == (100_000, 2, D)
    want = rc.resample_trajectories(row[0], src_t, tgt_t)
    assert torch.equal(out[0], want) and torch.equal(out[-1], want)


def test_unbatched_shapes(rng):
    src_t = jittered_times(rng, 1, 30)[0]
    data = rng.normal(size=(30, 5))
    out, mask = rc.resample_trajectories(data, src_t, src_t[::3], return_mask=True)
    assert out.shape == (10, 5) and mask.shape == (10,) and mask.all()


def test_list_inputs_follow_numpy(rng):
    out = rc.resample_trajectories(np.array([[0.0], [2.0]]), [0.0, 1.0], [0.5])
    assert out[0, 0] == 1.0


# ---------------------------------------------------------------- precision at epoch scale


def test_epoch_nanoseconds_interpolate_as_exactly_as_small_times(rng):
    S, T, D = 200, 301, 3
    rel = np.cumsum(rng.integers(900_000, 1_100_000, S))  # ~1 ms apart, jittered
    rel_t = rng.integers(rel[0], rel[-1], T)
    data = rng.uniform(-10, 10, (S, D))
    epoch = 1_700_000_000_000_000_000
    big = rc.resample_trajectories(data, rel + epoch, rel_t + epoch)
    small = rc.resample_trajectories(data, rel.astype(np.int64), rel_t.astype(np.int64))
    np.testing.assert_array_equal(big, small)
    want, _ = resample_reference(data, rel, rel_t)
    assert_close(big, want, TOL["float64"])


def test_epoch_float64_seconds_keep_millisecond_precision(rng):
    S, T, D = 200, 301, 3
    rel = np.cumsum(rng.uniform(0.0009, 0.0011, S))
    rel_t = rng.uniform(rel[0], rel[-1], T)
    data = rng.uniform(-10, 10, (S, D))
    epoch = 1.7e9
    big = rc.resample_trajectories(data, rel + epoch, rel_t + epoch)
    want, _ = resample_reference(data, rel + epoch, rel_t + epoch)
    assert_close(big, want, 1e-9)
    # And the small-time answer, up to the rounding of adding the epoch (one ulp of 1.7e9 s is 2.4e-7 s).
    small = rc.resample_trajectories(data, rel, rel_t)
    np.testing.assert_allclose(big, small, atol=2 * np.spacing(epoch) / 0.0009 * 20)


# ---------------------------------------------------------------- bad input


def test_decreasing_src_t_names_batch_and_index():
    src_t = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 0.5, 3.0]])
    with pytest.raises(ValueError, match=r"src_t\[1, 2\] = 0.5 < src_t\[1, 1\] = 1 \(batch 1, index 2\)"):
        rc.resample_trajectories(np.zeros((2, 4, 1)), src_t, np.array([0.5]))


def test_nan_timestamps_are_rejected():
    with pytest.raises(ValueError, match=r"src_t must not contain NaN: src_t\[2\]"):
        rc.resample_trajectories(np.zeros((4, 1)), np.array([0.0, 1.0, np.nan, 3.0]), np.array([0.5]))
    with pytest.raises(ValueError, match=r"tgt_t must not contain NaN: tgt_t\[1\]"):
        rc.resample_trajectories(np.zeros((4, 1)), np.arange(4.0), np.array([0.5, np.nan]))


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(data=np.zeros((2, 4, 3)), src_t=np.arange(5.0)), ValueError, r"src_t must have 4 samples"),
        (dict(data=np.zeros((2, 4, 3)), src_t=np.zeros((3, 4))), ValueError, r"src_t must have shape \[B, S\] with B = 2"),
        (dict(data=np.zeros(4)), ValueError, r"data must have shape \[B, S, D\] or \[S, D\], got \[4\]"),
        (dict(data=np.zeros((2, 4, 3), np.int32)), TypeError, r"data dtype must be .* got int32"),
        (dict(src_t=np.arange(4, dtype=np.int32)), TypeError, r"src_t dtype must be .* got int32"),
        (dict(tgt_t=np.array([1], np.int64)), TypeError, r"tgt_t dtype \(int64\) must match src_t dtype \(float64\)"),
        (dict(method="cubic"), ValueError, r"method must be 'linear', 'nearest', 'hold' or 'slerp', got 'cubic'"),
        (dict(boundary="wrap"), ValueError, r"boundary must be 'clamp', 'extrapolate' or 'nan', got 'wrap'"),
        (dict(backend="tpu"), ValueError, r"backend must be 'cpu', 'cuda' or None, got 'tpu'"),
        (dict(backend="cuda"), ValueError, r"backend='cuda' but data is on cpu"),
        (dict(src_lengths=np.array([4, 5])), ValueError, r"src_lengths\[1\] = 5 is out of range: each length must be in \[1, 4\]"),
        (dict(src_lengths=np.array([0, 4])), ValueError, r"src_lengths\[0\] = 0 is out of range"),
        (dict(src_lengths=np.array([4, 4, 4])), ValueError, r"src_lengths must have shape \[2\], got \[3\]"),
        (dict(out=np.zeros((2, 3, 3))), ValueError, r"out must have shape \[2, 2, 3\], got \[2, 3, 3\]"),
        (dict(out=np.zeros((2, 2, 3), np.float32)), TypeError, r"out dtype \(float32\) must match data dtype \(float64\)"),
    ],
)
@pytest.mark.parametrize("lib", ["numpy", "torch", "torch-descriptors"])  # torch tensors take the wrapper's fast path
def test_bad_input_names_argument_and_value(kwargs, exc, pattern, lib, monkeypatch):
    args = dict(data=np.zeros((2, 4, 3)), src_t=np.arange(4.0), tgt_t=np.array([0.5, 1.5]))
    args.update(kwargs)
    if lib.startswith("torch"):
        if torch is None:
            pytest.skip("torch is not installed")
        if lib == "torch-descriptors":
            without_exchange_api(monkeypatch)
        args = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}
    with pytest.raises(exc, match=pattern):
        rc.resample_trajectories(args.pop("data"), args.pop("src_t"), args.pop("tgt_t"), **args)


def test_no_source_samples_with_targets_is_an_error():
    with pytest.raises(ValueError, match=r"S = 0 source samples but T = 2"):
        rc.resample_trajectories(np.zeros((3, 0, 2)), np.zeros(0), np.array([0.0, 1.0]))


def test_empty_batch_or_targets_give_empty_results():
    out = rc.resample_trajectories(np.zeros((0, 4, 3)), np.arange(4.0), np.array([0.5]))
    assert out.shape == (0, 1, 3)
    out = rc.resample_trajectories(np.zeros((2, 4, 3)), np.arange(4.0), np.zeros(0))
    assert out.shape == (2, 0, 3)
    out = rc.resample_trajectories(np.zeros((2, 0, 3)), np.zeros(0), np.zeros(0))
    assert out.shape == (2, 0, 3)


@requires_torch
@pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU to hold a tensor on another device")
def test_inputs_on_different_devices_are_an_error():
    data = torch.zeros(2, 4, 3, device="cuda")
    with pytest.raises(ValueError, match=r"src_t is on cpu but data is on cuda:0"):
        rc.resample_trajectories(data, torch.arange(4.0, dtype=torch.float64), torch.tensor([0.5], device="cuda", dtype=torch.float64))


# ---------------------------------------------------------------- real recordings


def _g1_states(episode):
    pq = pytest.importorskip("pyarrow.parquet")
    path = shared_data("lerobot", "g1_v21", "data", "chunk-000", f"episode_{episode:06d}.parquet")
    table = pq.read_table(path, columns=["timestamp", "observation.state"])
    t = np.asarray(table.column("timestamp").to_numpy(), dtype=np.float64)
    state = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False)).astype(np.float32)
    return t, state


def test_lerobot_g1_states_30hz_to_50hz_and_back():
    t, state = _g1_states(3)
    assert state.shape[1] == 26 and np.all(np.diff(t) > 0)
    t50 = np.arange(t[0], t[-1], 1 / 50)
    up = rc.resample_trajectories(state, t, t50)
    want_up, _ = resample_reference(state, t, t50)
    assert_close(up, want_up, TOL["float32"] * 10)
    back = rc.resample_trajectories(up, t50, t)
    want_back, _ = resample_reference(want_up, t50, t)
    assert_close(back, want_back, TOL["float32"] * 10)
    # 30 -> 50 -> 30 Hz is not the identity, but stays close to the original on this smooth signal.
    assert np.abs(back - state).max() < 0.25 * (np.abs(state).max() + 1)


def test_lerobot_g1_batch_of_padded_episodes():
    episodes = [_g1_states(e) for e in range(4)]
    S = max(len(t) for t, _ in episodes)
    B, D = len(episodes), episodes[0][1].shape[1]
    data = np.zeros((B, S, D), np.float32)
    src_t = np.zeros((B, S))
    lengths = np.array([len(t) for t, _ in episodes])
    for b, (t, s) in enumerate(episodes):
        data[b, : len(t)], src_t[b, : len(t)] = s, t
    tgt_t = np.tile(np.arange(0, S / 30, 1 / 50), (B, 1))
    out, mask = rc.resample_trajectories(data, src_t, tgt_t, src_lengths=lengths, boundary="nan", return_mask=True)
    want, want_mask = resample_reference(data, src_t, tgt_t, "linear", "nan", src_lengths=lengths)
    assert_close(out, want, TOL["float32"] * 10)
    np.testing.assert_array_equal(mask, want_mask)


@pytest.mark.parametrize("task", ["lift", "door", "wipe", "SawyerLift"])
def test_robosuite_demo_states_onto_a_jittered_clock(rng, task):
    h5py = pytest.importorskip("h5py")
    with h5py.File(shared_data("robosuite", task, "demo.hdf5"), "r") as f:
        demo = f["data"][sorted(f["data"].keys())[0]]
        # SawyerLift is the older layout, with zero-width arrays such as left_dpos (N, 0).
        names = ["states", "actions"] if "actions" in demo else ["states", "joint_velocities", "left_dpos"]
        arrays = {n: demo[n][()] for n in names}
    states = arrays["states"]
    # The demos carry no timestamps: step index over the 20 Hz control rate, then a jittered 15 Hz clock.
    t = np.arange(len(states)) / 20.0
    tgt = np.sort(rng.uniform(t[0] - 0.1, t[-1] + 0.1, len(states) * 3 // 4))
    for name, arr in arrays.items():
        method = "linear" if name == "states" else "hold"
        out = rc.resample_trajectories(arr, t, tgt, method=method, boundary="nan")
        assert out.shape == (len(tgt), arr.shape[1])
        want, _ = resample_reference(arr, t, tgt, method, "nan")
        assert_close(out, want, TOL["float64"] * 1e3)


# ---------------------------------------------------------------- CUDA == CPU


@requires_cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("time_dtype", ["float32", "float64", "int64"])
def test_cuda_matches_cpu(rng, dtype, time_dtype):
    tdt = getattr(torch, dtype)
    # Wide rows too (whole warps of 16-byte vectors per row: D = 128 / 256), upsampled and downsampled; 3 and 24
    # vectors per row (not dividing the block's 256 threads); 257 float32 vectors (more than the block's threads).
    for B, S, T, D in SIZES + [(4, 300, 257, 64), (2, 50, 40, 8), (3, 40, 97, 128), (2, 300, 61, 256), (3, 50, 33, 12),
                               (2, 30, 40, 96), (2, 30, 40, 1028)]:
        src_t = jittered_times(rng, B, S, scale=1e9 if time_dtype == "int64" else 1.0).astype(time_dtype)
        tgt_t = targets_around(rng, src_t, T)
        lengths = rng.integers(1, S + 1, B)
        data = torch.from_numpy(rng.uniform(-10, 10, (B, S, D))).to(tdt)
        for method in METHODS:
            for boundary in BOUNDARIES:
                kw = dict(method=method, boundary=boundary, return_mask=True)
                cpu, cmask = rc.resample_trajectories(data, torch.from_numpy(src_t), torch.from_numpy(tgt_t),
                                                      src_lengths=torch.from_numpy(lengths), **kw)
                gpu, gmask = rc.resample_trajectories(data.cuda(), torch.from_numpy(src_t).cuda(),
                                                      torch.from_numpy(tgt_t).cuda(),
                                                      src_lengths=torch.from_numpy(lengths).cuda(), **kw)
                assert gpu.device.type == "cuda" and gpu.dtype == tdt
                what = f"{dtype} {time_dtype} {B},{S},{T},{D} {method} {boundary}"
                # Same algorithm, same rounding steps (no FMA contraction on either side): the same bits.
                assert_close(gpu, as_f64(cpu), 0.0, what)
                assert torch.equal(gmask.cpu(), cmask), what


def run_python(code, *args, timeout=None, **env):
    """Runs `code` with `args` (sys.argv[1:]) in a fresh Python process, where the tuning variables in `env` are
    read (each is read once per process); the CompletedProcess, with its output as text."""
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **env))


def traced_launches(stderr):
    """(kernel, blocks per SM) of each launch a process reported with ROBOCACHE_RESAMPLE_TRACE=1, in order:
    ("lean", 6), ("general", 5), ..."""
    import re

    found = (re.match(r"robocache: resample launch: (\w+) kernel, (\d+) blocks/SM", line) for line in stderr.splitlines())
    return [(m.group(1), int(m.group(2))) for m in found if m]


# Run in a fresh process per kernel choice (ROBOCACHE_RESAMPLE_LEAN is read once per process): resampling and
# alignments that the lean CUDA kernel takes (float32 / float16 / bfloat16 data, no slerp), saved as raw bits.
KERNEL_CASES = r"""
import sys
import numpy as np
import torch
import robocache as rc

rng = np.random.default_rng(7)
out = {}
def bits(name, x):
    x = x.detach().cpu()
    out[name] = x.view(torch.int16 if x.element_size() == 2 else torch.int32).numpy() if x.is_floating_point() else x.numpy()

def clocks(B, S, T, time_dtype, every=1):
    src = np.cumsum(rng.uniform(0.0, 0.05, (B, S * every)), 1)[:, ::every]  # `every` > 1: a strided view
    src[:, min(5, S - 1)] = src[:, min(4, S - 1)]  # a duplicate time
    tgt = rng.uniform(src[:, :1] - 0.1, src[:, -1:] + 0.1, (B, T))
    if time_dtype == "int64":
        src, tgt = (src * 1e9).astype(np.int64), (tgt * 1e9).astype(np.int64)
    else:
        src, tgt = src.astype(time_dtype), tgt.astype(time_dtype)
    big = torch.from_numpy(np.repeat(src, every, axis=1)).cuda()
    return big[:, ::every], torch.from_numpy(tgt).cuda()

for dtype in (torch.float32, torch.float16, torch.bfloat16):
    wide = 1028 if dtype == torch.float32 else 2056  # 257 vectors per row: more than the block's threads
    sizes = [(3, 19, 111, 7), (2, 300, 61, 64), (4, 40, 97, 8), (2, 989, 111, 1), (3, 50, 33, 12), (2, 30, 40, 96),
             (2, 30, 40, wide), (2, 30, 40, wide // 257 * 256), (300, 20, 3, 16)]  # 257 and 256 vectors per row
    for B, S, T, D in sizes:
        data = torch.from_numpy(rng.uniform(-10, 10, (B, S, D))).to(dtype).cuda()
        data[0, 3] = float("inf")
        lengths = torch.from_numpy(rng.integers(1, S + 1, B)).cuda()
        for time_dtype, every in (("float64", 1), ("float32", 1), ("int64", 1), ("float64", 20), ("float32", 3)):
            args = clocks(B, S, T, time_dtype, every)
            for method in ("linear", "nearest", "hold"):
                for boundary in ("clamp", "extrapolate", "nan"):
                    key = f"{dtype} {B},{S},{T},{D} {time_dtype}/{every} {method} {boundary}"
                    r, m = rc.resample_trajectories(data, *args, src_lengths=lengths, method=method,
                                                    boundary=boundary, return_mask=True)
                    bits(key, r)
                    bits(key + " mask", m)
        strided = data.transpose(1, 2).contiguous().transpose(1, 2)  # non-unit D stride: element loads
        bits(f"{dtype} {B},{S},{T},{D} strided", rc.resample_trajectories(strided, *clocks(B, S, T, "float64")))
        for pad, first in ((3, 1), (1, 0), (9, 5)):  # output rows at every element alignment, from an odd start
            dest = torch.full((B, T, D + pad), 7.0, dtype=dtype, device="cuda")
            rc.resample_trajectories(data, *clocks(B, S, T, "float64"), src_lengths=lengths, boundary="nan",
                                     out=dest[..., first:first + D])
            bits(f"{dtype} {B},{S},{T},{D} out pad {pad} at {first}", dest)  # the padding stays 7
    spec = [(100, 64), (500, 16), (2000, 12), (200, 32), (50, 24), (1000, 7), (300, 7), (30, 1)]
    streams = {}
    for k, (S, D) in enumerate(spec):
        t = torch.from_numpy(np.cumsum(rng.uniform(0.5, 1.5, (6, S)), 1) * (2.0 / S)).cuda()
        if k % 2:
            t = t.float()  # float32 clocks onto float64 targets
        streams[f"s{k}"] = (torch.from_numpy(rng.normal(size=(6, S, D))).to(dtype).cuda(), t)
    tgt = torch.linspace(-0.1, 2.1, 77, dtype=torch.float64).cuda()
    for concat in (True, False):
        r = rc.fuse_multimodal(streams, tgt, concat=concat, boundary="nan")
        for name, x in (r.items() if isinstance(r, dict) else [("all", r)]):
            bits(f"fuse {dtype} {concat} {name}", x)
    # 16 x 300 targets: interleaved tiles of up to 256 targets, rounded to powers of two
    many = {k: (x.repeat(3, 1, 1)[:16], t.repeat(3, 1)[:16]) for k, (x, t) in streams.items()}
    wide_tgt = torch.linspace(-0.1, 2.1, 300, dtype=torch.float64).cuda()
    bits(f"fuse {dtype} many targets", rc.fuse_multimodal(many, wide_tgt, boundary="nan"))
np.savez(sys.argv[1], **out)
"""


@requires_cuda
def test_cuda_lean_and_general_kernels_give_the_same_bits(tmp_path):
    got = {}
    # the general kernel, and the lean kernel at both of its register budgets (each device takes one of them);
    # the trace names the kernel each launch ran
    for name, lean, blocks in (("general", "0", "0"), ("lean6", "1", "6"), ("lean8", "1", "8")):
        path = tmp_path / f"{name}.npz"
        r = run_python(KERNEL_CASES, str(path), ROBOCACHE_RESAMPLE_LEAN=lean, ROBOCACHE_RESAMPLE_LEAN_BLOCKS=blocks,
                       ROBOCACHE_RESAMPLE_TRACE="1")
        assert r.returncode == 0, r.stderr[-3000:]
        launches = traced_launches(r.stderr)
        assert len(launches) > 500, r.stderr[-3000:]
        if name == "general":
            assert all(kernel == "general" for kernel, _ in launches)
        else:  # every case is one the lean kernel takes
            assert all(launch == ("lean", int(blocks)) for launch in launches)
        got[name] = dict(np.load(path))
    assert len(got["general"]) > 100
    for name in ("lean6", "lean8"):
        assert got[name].keys() == got["general"].keys()
        for key, general in got["general"].items():
            np.testing.assert_array_equal(got[name][key], general, err_msg=f"{name} {key}")
    # The variable is read by the CUDA launch (so the two runs above did use different kernels).
    probe = ("import torch, robocache as rc; t = torch.arange(4.0, dtype=torch.float64, device='cuda'); "
             "rc.resample_trajectories(torch.ones(4, 4, device='cuda'), t, t)")
    r = run_python(probe, ROBOCACHE_RESAMPLE_LEAN="2")
    assert r.returncode == 0 and "ignoring ROBOCACHE_RESAMPLE_LEAN=2" in r.stderr, r.stderr
    for blocks in (6, 8):
        r = run_python(probe, ROBOCACHE_RESAMPLE_LEAN_BLOCKS=str(blocks), ROBOCACHE_RESAMPLE_TRACE="1")
        assert r.returncode == 0 and ("lean", blocks) in traced_launches(r.stderr), r.stderr
    r = run_python(probe, ROBOCACHE_RESAMPLE_LEAN_BLOCKS="7")
    assert r.returncode == 0 and "ignoring ROBOCACHE_RESAMPLE_LEAN_BLOCKS=7 (not 6 or 8)" in r.stderr, r.stderr


@requires_cuda
def test_cuda_offsets_at_and_past_int32(rng):
    # The lean kernel keeps 32-bit element offsets: a launch whose offsets reach 2**31 - 1 runs the general
    # kernel. Just below the limit (16-byte vectors, then element loads) and past it; each equals the CPU.
    free, _ = torch.cuda.mem_get_info()
    if free < 6 * 2**30:
        pytest.skip("needs 6 GiB of free GPU memory")
    S, D, T = 50, 8, 40
    buf = torch.zeros(2**31 + 4096, dtype=torch.float16, device="cuda")
    src_t = torch.from_numpy(jittered_times(rng, 2, S)).cuda()
    tgt_t = torch.from_numpy(targets_around(rng, src_t.cpu().numpy(), T)).cuda()
    last = (S - 1) * D + D - 1  # offset of the last element of a batch row
    below = 2**31 - 2 - last  # the last element at offset 2**31 - 2
    for sb in (below // 8 * 8, below, 2**31):
        data = buf.as_strided((2, S, D), (sb, D, 1))
        data.copy_(torch.from_numpy(rng.uniform(-10, 10, (2, S, D))).half())
        gpu = rc.resample_trajectories(data, src_t, tgt_t)
        cpu = rc.resample_trajectories(data.cpu(), src_t.cpu(), tgt_t.cpu())
        assert_close(gpu, as_f64(cpu), 0.0, f"batch stride {sb}")
    del buf
    torch.cuda.empty_cache()


# Time rows whose last element sits at offset 2**31 - 2 of its own tensor (the lean kernel, which searches with
# 32-bit indices) and at 2**31 - 1 (the general kernel); each equals the CPU. Run in its own process so that
# ROBOCACHE_RESAMPLE_TRACE shows which kernel each launch took.
TIME_OFFSET_CASES = r"""
import sys
import numpy as np
import torch
import robocache as rc

rng = np.random.default_rng(11)
B, S, T, D = 2, 60, 45, 8
buf = torch.zeros(2**31 + 4096, dtype=torch.float32, device="cuda")
data = torch.from_numpy(rng.uniform(-10, 10, (B, S, D))).float().cuda()
lengths = torch.tensor([S, S - 7], device="cuda")
times = np.cumsum(rng.uniform(0.0, 0.05, (B, S)), 1).astype(np.float32)
times[:, 5] = times[:, 4]  # a duplicate time
targets = rng.uniform(times[:, :1] - 0.1, times[:, -1:] + 0.1, (B, T)).astype(np.float32)
for end in (2**31 - 2, 2**31 - 1):
    src_t = buf.as_strided((B, S), (end - (S - 1), 1))
    tgt_t = buf.as_strided((B, T), (end - (T - 1), 1), S)  # row 0 after source row 0; row 1 after source row 1
    src_t.copy_(torch.from_numpy(times))
    tgt_t.copy_(torch.from_numpy(targets))
    for method in ("linear", "nearest"):
        gpu, mask = rc.resample_trajectories(data, src_t, tgt_t, src_lengths=lengths, method=method,
                                             boundary="extrapolate", return_mask=True)
        cpu, cmask = rc.resample_trajectories(data.cpu(), src_t.cpu(), tgt_t.cpu(), src_lengths=lengths.cpu(),
                                              method=method, boundary="extrapolate", return_mask=True)
        np.testing.assert_array_equal(gpu.cpu().numpy(), cpu.numpy(), err_msg=f"end {end} {method}")
        assert torch.equal(mask.cpu(), cmask), f"end {end} {method}"
"""


@requires_cuda
def test_cuda_time_offsets_at_and_past_int32():
    free, _ = torch.cuda.mem_get_info()
    if free < 10 * 2**30:
        pytest.skip("needs 10 GiB of free GPU memory")
    r = run_python(TIME_OFFSET_CASES, ROBOCACHE_RESAMPLE_TRACE="1")
    assert r.returncode == 0, r.stderr
    assert [kernel for kernel, _ in traced_launches(r.stderr)] == ["lean", "lean", "general", "general"], r.stderr


# Threads that call with validate=True and end (each has its own check buffers on the GPU, freed at its end),
# then the main thread, then the process's exit.
THREAD_CASES = r"""
import threading
import torch
import robocache as rc

t = torch.arange(8.0, dtype=torch.float64, device="cuda")
x = torch.ones(8, 3, device="cuda")
errors = []  # an exception in a thread does not fail the script by itself


def work():
    try:
        for _ in range(3):
            assert torch.equal(rc.resample_trajectories(x, t, t * 0.5), torch.ones(8, 3, device="cuda"))
        with_nan = t.clone()
        with_nan[3] = float("nan")
        try:
            rc.resample_trajectories(x, with_nan, t)
            errors.append("a NaN source time was not reported")
        except ValueError:
            pass
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


for _ in range(8):
    threads = [threading.Thread(target=work) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
work()
assert not errors, errors
torch.cuda.synchronize()
torch.cuda.empty_cache()
print("done")
"""


@requires_cuda
def test_cuda_checks_from_threads_that_end():
    r = run_python(THREAD_CASES, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr


@requires_cuda
def test_cuda_launch_refused_after_its_check_leaves_checks_working():
    # The check kernel is queued before the resampling launch is planned; a launch refused then (D too large for
    # this backend) must still wait for the check, so that the thread's next checks start from a clean state.
    free, _ = torch.cuda.mem_get_info()
    if free < 2**30:
        pytest.skip("needs 1 GiB of free GPU memory")
    t = torch.tensor([0.0, 1.0], dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match="channels per sample is more than this backend supports"):
        rc.resample_trajectories(torch.zeros(1, 2, 2**23, device="cuda"), t, t)
    x = torch.ones(1, 4, 3, device="cuda")
    ts = torch.arange(4.0, dtype=torch.float64, device="cuda")
    bad = ts.clone()
    bad[2] = float("nan")
    for _ in range(3):
        with pytest.raises(ValueError, match="src_t must not contain NaN"):
            rc.resample_trajectories(x, bad, ts)
        assert torch.equal(rc.resample_trajectories(x, ts, ts), x)


@requires_cuda
def test_cuda_strided_broadcast_and_unaligned_inputs(rng):
    B, S, T, D = 6, 80, 70, 16
    store = torch.from_numpy(rng.uniform(-10, 10, (B, D + 1, 2 * S))).float().cuda()
    data = store.transpose(1, 2)[:, ::2, 1:]  # transposed, strided, offset by one element (unaligned)
    src_t = torch.from_numpy(jittered_times(rng, 1, S)[0]).cuda()
    tgt_t = torch.from_numpy(targets_around(rng, src_t.cpu().numpy()[None], T)[0]).cuda()
    gpu = rc.resample_trajectories(data, src_t, tgt_t)
    cpu = rc.resample_trajectories(data.cpu(), src_t.cpu(), tgt_t.cpu())
    assert_close(gpu, as_f64(cpu), 0.0)
    expanded = data[:1].expand(B, S, D)
    gpu = rc.resample_trajectories(expanded, src_t, tgt_t)
    assert torch.equal(gpu[0], gpu[-1])


def without_exchange_api(monkeypatch):
    """Makes the wrapper pass torch tensors as descriptors, as it does where PyTorch lacks the DLPack exchange
    API (before 2.10); with it, the native module reads tensors and the current stream through that API."""
    import robocache._arrays
    import robocache.ops

    # One torch call first binds the fast path (it is bound on the first call after torch is imported).
    rc.resample_trajectories(torch.zeros(2, 1, dtype=torch.float64), torch.arange(2.0, dtype=torch.float64),
                             torch.zeros(1, dtype=torch.float64))
    monkeypatch.setattr(robocache.ops, "_torch_exchange", False)
    monkeypatch.setattr(robocache._arrays, "_TORCH_EXCHANGE", [False])


@requires_torch
@pytest.mark.parametrize("route", ["exchange", "descriptors"])
def test_torch_tensors_either_route_give_the_reference(route, monkeypatch, rng):
    # Transposed, sliced and expanded tensors through the fast path (default arguments) and the general one.
    if route == "descriptors":
        without_exchange_api(monkeypatch)
    elif not hasattr(torch.Tensor, "__dlpack_c_exchange_api__"):
        pytest.skip("this PyTorch has no DLPack exchange API")
    B, S, T, D = 5, 40, 17, 6
    src_t = np.cumsum(rng.uniform(0.01, 0.1, (B, S)), 1)
    tgt_t = np.sort(rng.uniform(-0.1, src_t[:, -1:].max() + 0.1, (B, T)), 1)
    data = rng.normal(size=(B, D, S)).transpose(0, 2, 1)[:, :, ::2]  # strides (D*S, 1, 2*S)
    want, want_mask = resample_reference(data, src_t, tgt_t, "linear", "clamp")
    td = torch.from_numpy(data)
    got = rc.resample_trajectories(td, torch.from_numpy(src_t), torch.from_numpy(tgt_t))
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    got, mask = rc.resample_trajectories(td, torch.from_numpy(src_t), torch.from_numpy(tgt_t), return_mask=True)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(mask.numpy(), want_mask)
    channels = data.shape[-1]
    row = torch.from_numpy(data[:1]).expand(B, S, channels)  # stride 0 along B
    got = rc.resample_trajectories(row, torch.from_numpy(src_t[0]), torch.from_numpy(tgt_t[0]))
    want_row, _ = resample_reference(data[:1], src_t[:1], tgt_t[:1], "linear", "clamp")
    np.testing.assert_allclose(got.numpy(), np.broadcast_to(want_row, (B, T, channels)), rtol=0, atol=1e-12)


@requires_cuda
@pytest.mark.parametrize("route", ["exchange", "descriptors"])
def test_cuda_runs_on_the_current_torch_stream(rng, route, monkeypatch):
    if route == "descriptors":
        without_exchange_api(monkeypatch)
    B, S, T, D = 64, 500, 250, 32
    data = torch.randn(B, S, D, device="cuda")
    src_t = torch.cumsum(torch.rand(B, S, device="cuda", dtype=torch.float64) + 0.01, 1)
    tgt_t = torch.sort(torch.rand(B, T, device="cuda", dtype=torch.float64) * src_t[:, -1:], 1).values
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        torch.cuda._sleep(50_000_000)  # keep the side stream busy: a default-stream launch would race ahead
        data.mul_(2.0)
        out = rc.resample_trajectories(data, src_t, tgt_t)
    torch.cuda.current_stream().wait_stream(side)
    want = rc.resample_trajectories(data.cpu(), src_t.cpu(), tgt_t.cpu())
    assert_close(out, as_f64(want), 1e-5)


@requires_cuda
def test_cuda_reports_bad_timestamps():
    src_t = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 0.5, 3.0]], device="cuda", dtype=torch.float64)
    with pytest.raises(ValueError, match=r"src_t\[1, 2\] = 0.5 < src_t\[1, 1\] = 1 \(batch 1, index 2\)"):
        rc.resample_trajectories(torch.zeros(2, 4, 1, device="cuda"), src_t, src_t[:, :1].contiguous())
    with pytest.raises(ValueError, match=r"src_lengths\[1\] = 9 is out of range"):
        rc.resample_trajectories(torch.zeros(2, 4, 1, device="cuda"), src_t.sort(1).values, src_t[:, :1].contiguous(),
                                 src_lengths=torch.tensor([4, 9], device="cuda"))
    with pytest.raises(ValueError, match=r"tgt_t must not contain NaN: tgt_t\[0\]"):
        rc.resample_trajectories(torch.zeros(2, 4, 1, device="cuda"), src_t.sort(1).values,
                                 torch.tensor([float("nan")], device="cuda", dtype=torch.float64))
    # The stream stays usable after a reported fault.
    assert torch.cuda.synchronize() is None


@requires_cuda
def test_cuda_graph_capture_with_validate_false(rng):
    B, S, T, D = 32, 100, 50, 16
    data = torch.randn(B, S, D, device="cuda")
    src_t = torch.cumsum(torch.rand(B, S, device="cuda") + 0.01, 1)
    tgt_t = torch.sort(torch.rand(B, T, device="cuda") * src_t[:, -1:], 1).values
    out = torch.empty(B, T, D, device="cuda")
    rc.resample_trajectories(data, src_t, tgt_t, out=out, validate=False)  # warm up
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        rc.resample_trajectories(data, src_t, tgt_t, out=out, validate=False)
    with pytest.raises(ValueError, match="pass validate=False inside capture"):
        with torch.cuda.graph(torch.cuda.CUDAGraph()):
            rc.resample_trajectories(data, src_t, tgt_t, out=out)
    data.mul_(3.0)
    graph.replay()
    torch.cuda.synchronize()
    want = rc.resample_trajectories(data.cpu(), src_t.cpu(), tgt_t.cpu())
    assert_close(out, as_f64(want), 1e-5)


@requires_torch
@pytest.mark.parametrize("route", ["exchange", "descriptors"])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_torch_results_are_new_tensors_of_the_input_device_and_dtype(route, device, monkeypatch):
    # With the DLPack exchange API the native module allocates the result through PyTorch.
    if device == "cuda" and not HAS_CUDA:
        pytest.skip("no CUDA GPU visible")
    if route == "descriptors":
        without_exchange_api(monkeypatch)
    src_t = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64, device=device)
    tgt_t = torch.tensor([0.5, 2.0], dtype=torch.float64, device=device)
    for dtype in (torch.float32, torch.bfloat16, torch.float64):
        data = torch.tensor([[0.0, 10.0], [2.0, 20.0], [6.0, 40.0]], dtype=dtype, device=device)
        a = rc.resample_trajectories(data, src_t, tgt_t)
        b = rc.resample_trajectories(data[None].expand(2, 3, 2), src_t, tgt_t)
        assert a.dtype == dtype and a.device == data.device and a.shape == (2, 2) and a.is_contiguous()
        assert b.shape == (2, 2, 2) and a.data_ptr() != b.data_ptr()
        want = torch.tensor([[1.0, 15.0], [4.0, 30.0]], dtype=torch.float64)
        assert torch.equal(a.cpu().double(), want) and torch.equal(b.cpu().double(), want.expand(2, 2, 2))


@requires_torch
def test_sparse_torch_tensors_are_refused_by_name():
    sparse = torch.zeros(2, 4, 3).to_sparse()
    # Named whichever way PyTorch passes them (the DLPack exchange API or __dlpack__).
    with pytest.raises(TypeError, match=r"^data "):
        rc.resample_trajectories(sparse, torch.arange(4.0), torch.tensor([0.5]))
    with pytest.raises(TypeError, match=r"^out "):
        rc.resample_trajectories(torch.zeros(2, 4, 3), torch.arange(4.0), torch.tensor([0.5]),
                                 out=torch.zeros(2, 1, 3).to_sparse())
