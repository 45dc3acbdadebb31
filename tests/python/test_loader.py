"""robocache.Loader: every batch checked window by window against a plain NumPy/SciPy reference computed
from the source episodes (the in-memory data the store was written from, or robocache.datasets.open on
the real datasets); determinism, resume, bad input."""

import numpy as np
import pytest

import robocache
from robocache import datasets, store
from conftest import HAS_CUDA, requires_cuda, shared_data

torch = pytest.importorskip("torch")


def Loader(*args, **kw):
    """robocache.Loader on the CPU unless a test names the device (the default is CUDA)."""
    kw.setdefault("device", "cpu")
    return robocache.Loader(*args, **kw)


# ------------------------------------------------------------------------------------------------ reference

def ref_resample(data, ts, tgt, method):
    """float64 reference: data [S, ...], ts [S] float64 seconds, tgt [T] -> [T, ...] (clamp at the ends)."""
    data = np.asarray(data)
    flat = data.reshape(len(data), -1).astype(np.float64)
    if method == "linear":
        out = np.stack([np.interp(tgt, ts, flat[:, c]) for c in range(flat.shape[1])], 1)
    elif method == "hold":
        idx = np.clip(np.searchsorted(ts, tgt, "right") - 1, 0, len(ts) - 1)
        out = flat[idx]
    elif method == "slerp":
        from scipy.spatial.transform import Rotation, Slerp

        tc = np.clip(tgt, ts[0], ts[-1])
        if len(ts) == 1:
            out = np.repeat(flat, len(tgt), 0)
        else:
            out = Slerp(ts, Rotation.from_quat(flat))(tc).as_quat()
    else:
        raise AssertionError(method)
    return out.reshape((len(tgt),) + data.shape[1:])


def ref_windows(episodes, streams, window, hz, stride=None, pad=False):
    """All (episode, start) windows, independently of the loader: starts every stride from the episode's
    first sample (over the selected streams) while the last target stays within its last sample."""
    T = int(round(window * hz))
    stride = stride or 1.0 / hz
    out = []
    for e, ep in enumerate(episodes):
        base = min(np.asarray(ep[n][1])[0] for n in streams)
        first = min(to_s(ep[n][1], base)[0] for n in streams)
        last = max(to_s(ep[n][1], base)[-1] for n in streams)
        k = 0
        while k * stride + (0 if pad else (T - 1) / hz) <= last - first + 1e-9:
            out.append((e, k * stride))
            k += 1
    return out, T


def to_s(t, base):
    """Seconds after base; int64 timestamps are nanoseconds."""
    t = np.asarray(t)
    return (t - base).astype(np.float64) * 1e-9 if t.dtype == np.int64 else t.astype(np.float64) - base


def check_batch(batch, episodes, streams, methods, hz, T, decode=None, ns=False, atol=1e-5, tol=1e-4):
    """Compares one batch, row by row, with the reference on the source episodes. `tol`: the loader's
    tolerance_s (hold takes a sample up to tol after a target as at it; its pad mask starts tol earlier)."""
    for j, (e, start) in enumerate(zip(batch["episode"].tolist(), batch["start_time"].tolist())):
        ep = episodes[e]
        if ns:
            origin = min(int(np.asarray(ep[n][1])[0]) for n in streams)
            rel = {n: (np.asarray(ep[n][1]) - origin).astype(np.float64) * 1e-9 for n in streams}
        else:
            origin = min(float(np.asarray(ep[n][1])[0]) for n in streams)
            rel = {n: np.asarray(ep[n][1], dtype=np.float64) - origin for n in streams}
        tgt = start + np.arange(T) / hz
        for n in streams:
            data, ts = ep[n][0], rel[n]
            got = batch[n][j].cpu().numpy()
            mask = batch["masks"][n][j].cpu().numpy()
            m = methods.get(n, "linear")
            hold = isinstance(data, list) or m == "hold"
            early = tol if hold else 0.0
            np.testing.assert_array_equal(mask, (tgt >= ts[0] - early - 1e-9) & (tgt <= ts[-1] + 1e-9), err_msg=n)
            if hold:
                # zero-order hold with the tolerance; a target within 1e-9 s of that edge (a tie that rounding
                # decides) may take either neighbour
                lo, hi = (np.clip(np.searchsorted(ts, tgt + tol + d, "right") - 1, 0, len(ts) - 1) for d in (-1e-9, 1e-9))
                pick = (lambda i: decode(data[i])) if isinstance(data, list) else (lambda i: np.asarray(data)[i])
                for k in range(len(tgt)):
                    if not (np.array_equal(got[k], pick(lo[k])) or np.array_equal(got[k], pick(hi[k]))):
                        raise AssertionError(f"stream {n}, row {j} (episode {e}, start {start}), target {k} "
                                             f"(t={tgt[k]}): not sample {lo[k]} or {hi[k]}")
            elif m == "slerp":
                want = ref_resample(data, ts, tgt, m)
                dots = np.abs(np.sum(got.astype(np.float64) * want, -1))
                np.testing.assert_allclose(dots, 1, atol=1e-5, err_msg=n)
            else:
                want = ref_resample(data, ts, tgt, m)
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=atol, err_msg=n)


# ------------------------------------------------------------------------------------------------ data

def multirate_episodes(rng, n=5):
    """Episodes of odd lengths whose streams start and end at different times (so masks matter), with
    jittered recorded timestamps, float32/float64/int8 data, unit quaternions and PNG frames."""
    eps = []
    for e in range(n):
        dur = rng.uniform(0.6, 2.5)
        ep = {}
        S = max(int(dur * 97), 2)
        t = np.sort(rng.uniform(0, dur, S))
        t[0] = 0.0  # the episode's origin
        ep["joint"] = (rng.normal(size=(S, 7)).astype(np.float32), t)
        S = max(int(dur * 31), 1)
        t = 0.13 + np.arange(S) / 31.0  # starts late: the first windows are padded for it
        ep["force"] = (rng.normal(size=(S, 2, 3)), t)
        S = max(int(dur * 10), 1)
        t = np.arange(S) / 10.0 + rng.uniform(0, 0.02)
        ep["gripper"] = (rng.integers(-5, 6, (S, 1)).astype(np.int8), t)
        S = max(int(dur * 23), 2)
        q = rng.normal(size=(S, 4))
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        ep["quat"] = (q.astype(np.float32), np.arange(S) / 23.0)
        S = max(int(dur * 15), 1)
        frames = [store._png(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)) for _ in range(S)]
        ep["cam"] = (frames, np.arange(S) / 15.0 + 0.01)
        eps.append(ep)
    return eps


@pytest.fixture
def multirate(tmp_path, rng):
    eps = multirate_episodes(rng)
    st = store.write_store(tmp_path / "st", eps, encodings={"cam": "png"})
    return st, eps


STREAMS = ["joint", "force", "gripper", "quat", "cam"]
METHODS = {"quat": "slerp", "gripper": "hold", "cam": "hold"}


# ------------------------------------------------------------------------------------------------ tests

def test_every_batch_matches_reference(multirate):
    st, eps = multirate
    L = Loader(st, batch_size=7, window=0.5, target_hz=19, streams=STREAMS, methods={"quat": "slerp"},
                         seed=3)
    want, T = ref_windows(eps, STREAMS, 0.5, 19)
    assert L.T == T == 10 and L.num_windows == len(want) and len(L) == -(-len(want) // 7)
    seen = []
    for batch in L:
        assert batch["joint"].shape[1:] == (T, 7) and batch["joint"].dtype == torch.float32
        assert batch["force"].shape[1:] == (T, 2, 3) and batch["force"].dtype == torch.float64
        assert batch["gripper"].dtype == torch.int8 and batch["cam"].shape[1:] == (T, 5, 4, 3)
        check_batch(batch, eps, STREAMS, METHODS, 19, T, decode=datasets.decode_image)
        seen += list(zip(batch["episode"].tolist(), batch["start_time"].tolist()))
    assert len(seen) == len(want)
    np.testing.assert_allclose(sorted(seen), sorted(want), atol=1e-9)
    # some windows are padded for the late "force" stream, some not
    assert 0 < sum(not b["masks"]["force"].all() for b in Loader(st, batch_size=1, window=0.5, target_hz=19,
                                                                              streams=["force", "joint"], shuffle=False))


def test_nanosecond_epoch_timestamps(tmp_path, rng):
    eps = []
    for S in [3, 40, 111]:
        t = 1_700_000_000_123_456_789 + np.cumsum(rng.integers(5_000_000, 15_000_000, S)).astype(np.int64)
        t2 = t[0] + np.arange(S // 2 + 1, dtype=np.int64) * 20_000_000
        eps.append({"a": (rng.normal(size=(S, 3)).astype(np.float32), t),
                    "b": (rng.normal(size=(len(t2), 1)), t2)})
    st = store.write_store(tmp_path / "st", eps)
    L = Loader(st, batch_size=4, window=0.2, target_hz=40, streams=["a", "b"], seed=1)
    _, T = ref_windows(eps, ["a", "b"], 0.2, 40)
    n = 0
    for batch in L:
        check_batch(batch, eps, ["a", "b"], {}, 40, T, ns=True)
        n += len(batch["episode"])
    assert n == L.num_windows


def test_stride_and_no_shuffle(multirate):
    st, eps = multirate
    L = Loader(st, batch_size=5, window=0.4, target_hz=10, streams=["joint", "cam"], stride=0.25,
                         shuffle=False)
    want, T = ref_windows(eps, ["joint", "cam"], 0.4, 10, stride=0.25)
    got = [w for b in L for w in zip(b["episode"].tolist(), b["start_time"].tolist())]
    np.testing.assert_allclose(got, want, atol=1e-9)  # in order, unshuffled
    for b in L:
        check_batch(b, eps, ["joint", "cam"], METHODS, 10, T, decode=datasets.decode_image)


def test_drop_last(multirate):
    st, _ = multirate
    kw = dict(batch_size=6, window=0.5, target_hz=19, streams=["joint"])
    a, b = Loader(st, **kw), Loader(st, drop_last=True, **kw)
    assert len(a) == -(-a.num_windows // 6) and len(b) == a.num_windows // 6
    assert all(len(x["episode"]) == 6 for x in b)
    assert sum(len(x["episode"]) for x in a) == a.num_windows


def test_same_seed_same_batches_and_resume(multirate):
    st, _ = multirate
    kw = dict(batch_size=4, window=0.5, target_hz=19, streams=["joint", "gripper", "cam"], num_threads=2)

    def run(loader, n=None):
        out = []
        for i, b in enumerate(loader):
            out.append(b)
            if n is not None and i + 1 == n:
                break
        return out

    a = run(Loader(st, seed=7, **kw))
    b = run(Loader(st, seed=7, **kw))
    c = run(Loader(st, seed=8, **kw))
    assert [x["episode"].tolist() for x in a] == [x["episode"].tolist() for x in b]
    for x, y in zip(a, b):
        for n in kw["streams"]:
            assert torch.equal(x[n], y[n])
    assert [x["start_time"].tolist() for x in a] != [x["start_time"].tolist() for x in c]

    # stop after 3 batches, resume in a new loader: the rest of the epoch, then the next epoch
    first = Loader(st, seed=7, **kw)
    run(first, 3)
    state = first.state_dict()
    assert state["epoch"] == 0 and state["batch"] == 3
    second = Loader(st, seed=7, **kw)
    second.load_state_dict(state)
    rest = run(second)
    assert len(rest) == len(a) - 3
    for x, y in zip(a[3:], rest):
        assert torch.equal(x["start_time"], y["start_time"]) and torch.equal(x["joint"], y["joint"])
    assert second.state_dict()["epoch"] == 1 and second.state_dict()["batch"] == 0
    epoch1 = run(second)
    assert len(epoch1) == len(a)
    assert [x["start_time"].tolist() for x in epoch1] != [x["start_time"].tolist() for x in a]
    # early break in the same loader resumes in place, too
    third = Loader(st, seed=7, **kw)
    run(third, 2)
    assert torch.equal(next(iter(third))["start_time"], a[2]["start_time"])
    with pytest.raises(ValueError, match="seed=7 but this Loader has 8"):
        Loader(st, seed=8, **kw).load_state_dict(state)


def test_lerobot_real_matches_reader(tmp_path):
    src = shared_data("lerobot", "g1_v21")
    st = store.convert(src, tmp_path / "g1", progress=False)
    ds = datasets.open(src)
    names = ["observation.state", "action", "frame_index"]
    L = Loader(st, batch_size=16, window=0.5, target_hz=50, streams=names, seed=0)
    eps = {}
    for i, batch in enumerate(L):
        for e in batch["episode"].tolist():
            if e not in eps:
                ep = ds[e]
                eps[e] = {n: (ep[n].numpy(), ep[n].timestamps) for n in names}
        check_batch(batch, eps, names, {"frame_index": "hold"}, 50, L.T)
        if i == 4:
            break


def test_rlds_real_images_and_rate(tmp_path):
    src = shared_data("rlds", "bridge_dataset", "1.0.0")
    st = store.convert(src, tmp_path / "bridge", progress=False, rate_hz=5.0)
    ds = datasets.open(src, rate_hz=5.0)
    names = ["steps/observation/state", "steps/observation/image_0", "steps/is_first"]
    L = Loader(st, batch_size=8, window=1.0, target_hz=12, streams=names, seed=2)
    assert L.num_windows == 50 * (int(np.floor((9 / 5 - 11 / 12) * 12 + 1e-9)) + 1)
    eps = {e: {n: ((ds[e][n].items() if ds[e][n].kind == "bytes" else ds[e][n].numpy()), ds[e][n].timestamps)
               for n in names} for e in range(len(ds))}
    for i, batch in enumerate(L):
        assert batch["steps/observation/image_0"].shape == (8, 12, 64, 64, 3)
        check_batch(batch, eps, names, {"steps/observation/image_0": "hold", "steps/is_first": "hold"}, 12, L.T,
                    decode=datasets.decode_image)
        if i == 2:
            break


# ------------------------------------------------------------------------------------------------ bad input

def test_bad_input_before_the_first_batch(multirate, tmp_path):
    st, _ = multirate
    kw = dict(batch_size=4, window=0.5, target_hz=19, streams=["joint"])

    def bad(match, **over):
        with pytest.raises(ValueError, match=match):
            Loader(st, **dict(kw, **over))

    bad("window=30.0 s .* is longer than every episode .* the longest spans", window=30.0)
    bad(r"streams: no stream \['jiont'\] in store", streams=["joint", "jiont"])
    bad("streams is empty", streams=[])
    bad("target_hz must be a finite number > 0, got 0", target_hz=0)
    bad("target_hz must be a finite number > 0, got -5", target_hz=-5)
    bad("target_hz must be a finite number > 0, got nan", target_hz=float("nan"))
    bad("window must be a finite number of seconds > 0, got 0", window=0)
    bad("holds no target step", window=0.01)
    bad("batch_size must be an integer >= 1, got 0", batch_size=0)
    bad("prefetch must be an integer >= 1", prefetch=0)
    bad("stride must be", stride=-1.0)
    bad(r"methods\['joint'\] must be one of", methods={"joint": "cubic"})
    bad(r"methods names \['x'\]", methods={"x": "hold"})
    bad("slerp needs 4", methods={"joint": "slerp"})
    bad("cannot interpolate int8", streams=["gripper"], methods={"gripper": "linear"})
    bad("cannot interpolate png images", streams=["cam"], methods={"cam": "linear"})
    bad("device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'", device="tpu")
    if not HAS_CUDA:
        bad("no CUDA GPU is visible", device="cuda")
        with pytest.raises(ValueError, match="device='cuda': no CUDA GPU is visible"):  # the default: no fallback
            robocache.Loader(st, **kw)


def test_corrupt_store_is_refused(multirate):
    st, _ = multirate
    f = st.path + "/" + st.manifest["streams"][0]["dir"] + "/timestamps.npy"
    with open(f, "r+b") as fh:
        fh.seek(-3, 2)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="timestamps.npy fails its SHA-256"):
        Loader(st.path, batch_size=2, window=0.5, target_hz=19, streams=["joint"])


def test_text_stream_is_refused(tmp_path, rng):
    st = store.write_store(tmp_path / "st", [{"text": ([b"pick", b"place"], np.array([0.0, 1.0]))}],
                           encodings={"text": "utf-8"})
    with pytest.raises(ValueError, match="stream 'text' holds utf-8 bytes"):
        Loader(st, batch_size=1, window=0.5, target_hz=2, streams="text")


def test_error_in_a_worker_is_raised_not_hung(multirate):
    st, _ = multirate
    cam = st.streams["cam"]
    data = np.load(st.path + "/" + st.manifest["streams"][4]["dir"] + "/data.npy", mmap_mode="r+")
    data[int(cam.items[1]):] = 7  # no image but the first decodes any more (the loader checks the first one)
    data.flush()
    L = Loader(st.path, batch_size=3, window=0.5, target_hz=19, streams=["cam"], verify=False, num_threads=2)
    it = iter(L)
    with pytest.raises(OSError, match=r"cam\[\d+\] in store .*: not a JPEG or PNG image"):
        next(it)
    assert cam.kind == "bytes"
    # the loader is usable again: a new iteration fails the same way, and destroying it mid-epoch returns
    with pytest.raises(OSError, match=r"cam\[\d+\] in store"):
        next(iter(L))
    del it, L
    data[:] = 7  # the first image too: refused when the loader is made
    data.flush()
    with pytest.raises(OSError, match=r"cam\[0\] in store .*: not a JPEG or PNG image"):
        Loader(st.path, batch_size=3, window=0.5, target_hz=19, streams=["cam"], verify=False)


def late_grid_episodes(n=3, hz=30.0, late=1e-6):
    """Streams sampled on a 30 Hz grid whose recorded times are `late` s after the grid (as float32 seconds or
    PTS rounded up to ns record them), plus a clock exactly on the grid that sets each episode's origin. The
    values are the frame numbers, so a batch says which sample each target took."""
    eps = []
    for e in range(n):
        S = 20 + 7 * e
        t = np.arange(S) / hz
        frames = [store._png(np.full((2, 3, 3), i, dtype=np.uint8)) for i in range(S)]
        eps.append({"clock": (np.zeros((S, 1), np.float32), t),
                    "value": (np.arange(S, dtype=np.float32)[:, None], t + late),
                    "index": (np.arange(S, dtype=np.int32)[:, None], t + late),
                    "cam": (frames, t + late)})
    return eps


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_hold_takes_a_sample_recorded_just_after_its_target(tmp_path, device):
    """A camera (and an integer and a float stream) on the target grid, recorded 1 us late: with the default
    tolerance_s every target takes the sample of its own grid step, as LeRobot's tolerance does; with
    tolerance_s=0 (the exact rule) it takes the one before."""
    st = store.write_store(tmp_path / "late", late_grid_episodes(), encodings={"cam": "png"})
    names = ["clock", "value", "index", "cam"]
    kw = dict(batch_size=4, window=0.4, target_hz=30, streams=names, methods={"value": "hold", "index": "hold",
              "cam": "hold"}, shuffle=False, device=device)
    for tol, behind in ((1e-4, 0), (0.0, 1)):
        for batch in Loader(st, tolerance_s=tol, **kw):
            for j, start in enumerate(batch["start_time"].tolist()):
                step = np.rint(start * 30 + np.arange(12)).astype(int)  # the grid step of each target
                want = np.maximum(step - behind, 0)
                assert batch["value"][j, :, 0].cpu().numpy().tolist() == want.tolist()
                assert batch["index"][j, :, 0].cpu().numpy().tolist() == want.tolist()
                assert batch["cam"][j, :, 0, 0, 0].cpu().numpy().tolist() == want.tolist()
                # the pad mask: with the tolerance the first sample covers the target just before it
                assert bool(batch["masks"]["cam"][j, 0]) == (tol > 0 or start > 0)
    with pytest.raises(ValueError, match=r"tolerance_s must be a finite number of seconds >= 0, got -1"):
        Loader(st, tolerance_s=-1, **kw)


@pytest.mark.parametrize("unit", ["s", "ns"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_hold_reads_every_sample_its_tolerance_or_a_repeated_time_can_pick(tmp_path, unit, device):
    """Windows reach past the last target far enough for hold: a 200 Hz stream (samples closer than a 12 ms
    tolerance), one window of a single target (T = 1), and times recorded twice (the later copy is taken),
    in float64-second and int64-nanosecond stores; every target against a searchsorted reference."""
    hz_src, S = 200.0, 400
    t = np.arange(S) / hz_src
    twice = np.repeat(np.arange(S // 2) / 100.0, 2)  # 100 Hz, every time recorded twice
    clock = np.arange(40) / 10.0
    if unit == "ns":
        t, twice, clock = (np.rint(x * 1e9).astype(np.int64) for x in (t, twice, clock))
    eps = [{"clock": (np.zeros((40, 1), np.float32), clock),
            "idx": (np.arange(S, dtype=np.int32)[:, None], t),
            "val": (np.arange(S, dtype=np.float32)[:, None], t),
            "twice": (np.arange(S, dtype=np.int32)[:, None], twice)} for _ in range(2)]
    st = store.write_store(tmp_path / unit, eps)
    secs = {n: (np.asarray(eps[0][n][1]) * (1e-9 if unit == "ns" else 1.0)) for n in ("idx", "twice")}
    for tol, window in ((1e-4, 0.5), (0.012, 0.5), (0.012, 0.1), (0.0, 0.5), (0.0, 0.1)):
        L = Loader(st, batch_size=4, window=window, target_hz=10, streams=["clock", "idx", "val", "twice"],
                   methods={n: "hold" for n in ("idx", "val", "twice")}, shuffle=False, tolerance_s=tol,
                   device=device)
        for batch in L:
            for j, start in enumerate(batch["start_time"].tolist()):
                tgt = start + np.arange(L.T) / 10
                for n, src in (("idx", "idx"), ("val", "idx"), ("twice", "twice")):
                    ts = secs[src]
                    # a target within 1e-9 s of the edge (exact rule, samples on the target grid) is a tie
                    # that float64 rounding decides: either side
                    lo, hi = (np.clip(np.searchsorted(ts, tgt + tol + d, "right") - 1, 0, S - 1) for d in (-1e-9, 1e-9))
                    got = batch[n][j, :, 0].cpu().numpy().astype(int)
                    assert ((got == lo) | (got == hi)).all(), (n, tol, window, start, got, hi)
                    assert tol == 0 or (got == hi).all(), (n, tol, window, start, got, hi)  # no ties there


@requires_cuda
def test_cuda_matches_cpu(multirate, tmp_path, rng):
    st, eps = multirate
    kw = dict(batch_size=5, window=0.5, target_hz=19, streams=STREAMS, methods={"quat": "slerp"}, seed=4)
    cpu = list(Loader(st, **kw))
    gpu = list(Loader(st, **dict(kw, device="cuda")))
    assert len(cpu) == len(gpu)
    for a, b in zip(cpu, gpu):
        for n in STREAMS:
            assert b[n].device.type == "cuda" and b["masks"][n].device.type == "cuda"
            torch.testing.assert_close(b[n].cpu(), a[n], rtol=1e-5, atol=1e-5)
            assert torch.equal(b["masks"][n].cpu(), a["masks"][n])
        check_batch({k: v for k, v in b.items()}, eps, STREAMS, METHODS, 19, 10, decode=datasets.decode_image)
    # point clouds voxelized on the GPU give the CPU's grids
    pc = store.write_store(tmp_path / "pc", cloud_episodes(rng))
    for mode in ("occupancy", "count", "mean", "max"):
        kw = dict(batch_size=4, window=0.4, target_hz=20, streams=["joint", "lidar"], seed=1,
                  voxelize={"lidar": dict(voxel_size=0.3, origin=-1.0, grid_size=(7, 8, 6), mode=mode)})
        for a, b in zip(Loader(pc, **kw), Loader(pc, **dict(kw, device="cuda"))):
            torch.testing.assert_close(b["lidar"].cpu(), a["lidar"], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(b["joint"].cpu(), a["joint"], rtol=1e-5, atol=1e-5)


@requires_cuda
def test_cuda_loader_after_a_failed_validation_and_a_validating_thread(multirate):
    """The sequence that hung under compute-sanitizer (tests/python/test_fuse.py's CUDA tests, the last
    of which fails validation, then the CUDA loader) in one test, plus a thread that makes its first
    validated call (its check state is set up then) while the loader's workers run: batches must keep
    matching the CPU loader's, and the validation error must stay a ValueError."""
    import threading

    st, _ = multirate
    ts = torch.cumsum(torch.rand(3, 40, dtype=torch.float64, device="cuda") * 0.01 + 1e-3, 1)
    bad = ts.clone()
    bad[1, 7] = bad[1, 6] - 1
    x = torch.randn(3, 40, 5, device="cuda")
    tgt = torch.linspace(0.05, 0.3, 11, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match=r"src_t must be non-decreasing: src_t\[1, 7\]"):
        robocache.fuse_multimodal({"a": (x, bad), "b": (x[..., :2], ts.float())}, tgt)
    kw = dict(batch_size=5, window=0.5, target_hz=19, streams=STREAMS, methods={"quat": "slerp"}, seed=4)
    cpu = list(Loader(st, **kw))
    errors = []

    def side():  # a new thread: its first validated call sets up its check state while the loader runs
        try:
            for _ in range(5):
                robocache.fuse_multimodal({"a": (x, ts)}, tgt)
            with pytest.raises(ValueError, match="non-decreasing"):
                robocache.fuse_multimodal({"a": (x, bad)}, tgt)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=side)
    L = Loader(st, **dict(kw, device="cuda", num_threads=3, prefetch=1))
    got = []
    for i, b in enumerate(L):
        if i == 1:
            t.start()
        got.append({n: b[n].cpu() for n in STREAMS})
    t.join(timeout=120)
    assert not t.is_alive() and not errors, errors
    assert len(got) == len(cpu)
    for a, b in zip(cpu, got):
        for n in STREAMS:
            torch.testing.assert_close(b[n], a[n], rtol=1e-5, atol=1e-5)


@requires_cuda
def test_cuda_buffer_reuse_waits_for_the_consumer_stream(multirate):
    """The hazard: a batch's buffer is dropped while the consumer stream still reads it. The pipeline (one
    worker, one batch ahead, so it reuses buffers at once) must not overwrite it before that work is done."""
    st, _ = multirate
    kw = dict(batch_size=4, window=0.5, target_hz=19, streams=["joint", "force"], seed=3, prefetch=1, num_threads=1)
    want = [(b["joint"].double().sum().item(), b["force"].sum().item()) for b in Loader(st, **kw)]
    side = torch.cuda.Stream()
    sums = []
    with torch.cuda.stream(side):  # the consumer's current stream, not the default one
        for b in Loader(st, **dict(kw, device="cuda")):
            torch.cuda._sleep(20_000_000)  # ~10 ms of GPU time before the reads below run
            sums.append((b["joint"].double().sum(), b["force"].sum()))
            del b  # dropped at once: the buffer goes back while the sums are still queued
    torch.cuda.synchronize()
    got = [(a.item(), c.item()) for a, c in sums]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def staging_bytes(stats, kind):
    """The loader memory of one kind besides its output buffers: the staging, sized once."""
    return stats[kind] - (stats["output_buffers"] * stats["output_buffer_bytes"] if kind != "pinned_bytes" else 0)


@requires_cuda
def test_cuda_no_pinned_or_device_leak_across_epochs(multirate):
    import gc

    from robocache import _C

    st, _ = multirate
    gc.collect()
    torch.cuda.synchronize()
    before = _C.loader_memory()
    L = Loader(st, batch_size=4, window=0.5, target_hz=19, streams=STREAMS, methods={"quat": "slerp"},
               device="cuda", num_threads=2, prefetch=2)
    seen = []
    for epoch in range(4):
        for b in L:
            pass
        seen.append(L.stats())
    assert seen[1]["pinned_bytes"] == seen[3]["pinned_bytes"] > before["pinned_bytes"]
    assert staging_bytes(seen[1], "device_bytes") == staging_bytes(seen[3], "device_bytes")
    assert max(s["output_buffers"] for s in seen) <= 2 * 2 + 2  # in flight, plus the batches the loop holds
    del L, b
    gc.collect()
    torch.cuda.synchronize()
    after = _C.loader_memory()
    assert (after["pinned_bytes"], after["device_bytes"]) == (before["pinned_bytes"], before["device_bytes"])


def test_raw_image_store(tmp_path):
    src = shared_data("rlds", "bridge_dataset", "1.0.0")
    st = store.convert(src, tmp_path / "raw", progress=False, images="raw", rate_hz=5.0)
    ds = datasets.open(src, rate_hz=5.0)
    names = ["steps/observation/image_2", "steps/action"]
    L = Loader(st, batch_size=6, window=0.6, target_hz=7, streams=names, seed=5)
    for i, batch in enumerate(L):
        eps = {e: {n: (ds[e][n].decode() if ds[e][n].kind == "bytes" else ds[e][n].numpy(), ds[e][n].timestamps)
                   for n in names} for e in batch["episode"].tolist()}
        assert batch[names[0]].dtype == torch.uint8 and batch[names[0]].shape == (6, 4, 64, 64, 3)
        check_batch(batch, eps, names, {names[0]: "hold"}, 7, L.T)
        if i == 2:
            break


def test_short_episodes_are_skipped_and_counted(tmp_path, rng):
    eps = [{"a": (rng.normal(size=(S, 2)), np.arange(S) / 10.0)} for S in (3, 30, 8, 12)]
    st = store.write_store(tmp_path / "st", eps)
    L = Loader(st, batch_size=4, window=1.0, target_hz=10, streams="a", shuffle=False)
    assert L.episodes_skipped == 2  # 3 and 8 samples span 0.2 s and 0.7 s < 0.9 s
    assert sorted(set(L.windows(0)[0][:, 0].tolist())) == [1]
    assert L.num_windows == (30 - 10 + 1) + (12 - 10 + 1)


def test_prefetch_bounds_the_batches_built_ahead(multirate):
    import time

    st, _ = multirate
    L = Loader(st, batch_size=2, window=0.5, target_hz=19, streams=["joint"], prefetch=1, num_threads=2)
    assert len(L) > 8
    it = iter(L)
    first = next(it)
    time.sleep(0.3)  # give the workers every chance to run ahead
    built = L.stats()["batches_built"]
    assert 1 < built <= 1 + 2  # the consumed batch, plus prefetch * num_threads
    # the consumer holds batches: the pipeline allocates new buffers rather than block, and every batch
    # is different memory
    held = [first] + [next(it) for _ in range(5)]
    assert len({b["joint"].data_ptr() for b in held}) == len(held)
    assert L.stats()["output_buffers"] >= len(held)
    it.close()


def test_windows_padded_past_the_episode_end(multirate):
    st, eps = multirate
    L = Loader(st, batch_size=8, window=0.7, target_hz=13, streams=["joint", "gripper", "cam"],
                         edges="pad", seed=9)
    want, T = ref_windows(eps, ["joint", "gripper", "cam"], 0.7, 13, pad=True)
    assert L.num_windows == len(want)
    got, padded = [], 0
    for batch in L:
        check_batch(batch, eps, ["joint", "gripper", "cam"], METHODS, 13, T, decode=datasets.decode_image)
        got += list(zip(batch["episode"].tolist(), batch["start_time"].tolist()))
        padded += int((~batch["masks"]["joint"][:, -1]).sum())
    np.testing.assert_allclose(sorted(got), sorted(want), atol=1e-9)
    assert padded > 0
    # a window longer than every episode is fine when padding, an error otherwise
    assert Loader(st, batch_size=2, window=30.0, target_hz=2, streams=["joint"], edges="pad").num_windows > 0
    with pytest.raises(ValueError, match="edges must be 'inside' or 'pad', got 'wrap'"):
        Loader(st, batch_size=2, window=1.0, target_hz=2, streams=["joint"], edges="wrap")


def test_bad_timestamps_in_the_store(tmp_path, rng):
    t = np.arange(20) / 10.0
    eps = [{"a": (rng.normal(size=(20, 2)), t)}, {"a": (rng.normal(size=(20, 2)), t.copy())}]
    eps[1]["a"][1][7] = 0.1  # earlier than sample 6
    st = store.write_store(tmp_path / "st", eps)
    with pytest.raises(ValueError, match="stream 'a' has decreasing timestamps in episode 1: sample 7 is at 0.1"):
        Loader(st, batch_size=2, window=0.5, target_hz=10, streams="a")
    eps[1]["a"][1][7] = np.nan
    st = store.write_store(tmp_path / "st", eps)
    with pytest.raises(ValueError, match="stream 'a' has a NaN timestamp in episode 1 \\(sample 7\\)"):
        Loader(st, batch_size=2, window=0.5, target_hz=10, streams="a")
    eps[1]["a"][1][7] = 0.7  # fixed; episode 1 starting before episode 0 ends is fine
    Loader(store.write_store(tmp_path / "st", eps), batch_size=2, window=0.5, target_hz=10, streams="a")


def test_batches_do_not_depend_on_threads_or_prefetch(multirate):
    st, _ = multirate
    kw = dict(batch_size=3, window=0.5, target_hz=19, streams=["joint", "cam"], seed=11)
    a = list(Loader(st, num_threads=1, prefetch=1, **kw))
    b = list(Loader(st, num_threads=3, prefetch=4, **kw))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x["start_time"], y["start_time"]) and torch.equal(x["joint"], y["joint"])
        assert torch.equal(x["cam"], y["cam"])


# ------------------------------------------------------------------------------------------------ point clouds

def ref_voxelize(cloud, size, origin, grid, mode):
    """float64 NumPy reference of one dense grid: occupancy (bool), count (int32), or mean / sum / max of the
    feature columns ([X, Y, Z, C]); points outside the grid dropped."""
    cloud = np.asarray(cloud, dtype=np.float64).reshape(-1, cloud.shape[-1] if np.ndim(cloud) == 2 else 4)
    c = np.floor((cloud[:, :3] - np.asarray(origin)) / np.asarray(size)).astype(np.int64)
    keep = np.all((c >= 0) & (c < np.asarray(grid)), 1) & np.all(np.isfinite(cloud[:, :3]), 1)
    c, f = c[keep], cloud[keep, 3:]
    X, Y, Z = grid
    flat = (c[:, 0] * Y + c[:, 1]) * Z + c[:, 2]
    count = np.bincount(flat, minlength=X * Y * Z).reshape(X, Y, Z)
    if mode == "occupancy":
        return count > 0
    if mode == "count":
        return count.astype(np.int32)
    C = f.shape[1]
    out = np.zeros((X * Y * Z, C))
    if mode == "max":
        out[:] = -np.inf
        np.maximum.at(out, flat, f)
        out[count.reshape(-1) == 0] = 0
    else:
        np.add.at(out, flat, f)
        if mode == "mean":
            out = np.where(count.reshape(-1, 1) > 0, out / np.maximum(count.reshape(-1, 1), 1), 0)
    return out.reshape(X, Y, Z, C)


def cloud_episodes(rng, n=4):
    eps = []
    for e in range(n):
        dur = rng.uniform(0.8, 2.0)
        S = max(int(dur * 9), 2)
        clouds = []
        for i in range(S):
            m = int(rng.integers(0, 60)) if i != 1 else 0  # an empty cloud in every episode
            clouds.append(np.column_stack([rng.uniform(-1.2, 1.2, (m, 3)), rng.normal(size=(m, 2))]).astype(np.float32))
        eps.append({"lidar": (clouds, np.sort(rng.uniform(0, dur, S))),
                    "joint": (rng.normal(size=(int(dur * 50), 3)).astype(np.float32), np.arange(int(dur * 50)) / 50.0)})
    return eps


@pytest.mark.parametrize("mode", ["occupancy", "count", "mean", "max"])
def test_point_cloud_stream_voxelized(tmp_path, rng, mode):
    eps = cloud_episodes(rng)
    st = store.write_store(tmp_path / "st", eps)
    s = st.streams["lidar"]
    assert s.kind == "pointcloud" and s.shape == (5,) and s.dtype == np.float32
    for e, ep in enumerate(eps):  # the store keeps every cloud as written
        got = s.episode_data(e)
        assert len(got) == len(ep["lidar"][0]) and all(np.array_equal(a, b) for a, b in zip(got, ep["lidar"][0]))
    grid = dict(voxel_size=(0.3, 0.25, 0.4), origin=(-1.0, -1.1, -0.9), grid_size=(7, 9, 5), mode=mode)
    method = "nearest" if mode == "max" else "hold"
    L = Loader(st, batch_size=5, window=0.4, target_hz=20, streams=["joint", "lidar"], voxelize={"lidar": grid},
               methods={"lidar": method}, seed=2)
    want_shape = (7, 9, 5) if mode in ("occupancy", "count") else (7, 9, 5, 2)
    want_dtype = {"occupancy": torch.bool, "count": torch.int32}.get(mode, torch.float32)
    n = 0
    for batch in L:
        v = batch["lidar"]
        assert v.shape[1:] == (L.T,) + want_shape and v.dtype == want_dtype
        for j, (e, start) in enumerate(zip(batch["episode"].tolist(), batch["start_time"].tolist())):
            clouds, ts = eps[e]["lidar"]
            origin = min(ts[0], eps[e]["joint"][1][0])
            tgt = start + np.arange(L.T) / 20 + origin
            for k in range(L.T):
                if method == "hold":
                    cands = {int(np.clip(np.searchsorted(ts, tgt[k] + 1e-4 + d, "right") - 1, 0, len(ts) - 1))
                             for d in (-1e-9, 1e-9)}  # the loader's default tolerance_s
                else:
                    i = int(np.clip(np.searchsorted(ts, tgt[k]), 1, len(ts) - 1))
                    cands = {i - 1, i} if abs(ts[i] - tgt[k]) - abs(tgt[k] - ts[i - 1]) < 1e-9 and \
                        abs(ts[i - 1] - tgt[k]) - abs(tgt[k] - ts[i]) < 1e-9 else \
                        {i if abs(ts[i] - tgt[k]) <= abs(tgt[k] - ts[i - 1]) else i - 1}
                    cands = {min(max(c, 0), len(ts) - 1) for c in cands}
                got = v[j, k].numpy()
                ok = False
                for c in cands:
                    ref = ref_voxelize(clouds[c], grid["voxel_size"], grid["origin"], grid["grid_size"], mode)
                    if mode in ("occupancy", "count"):
                        ok |= np.array_equal(got, ref)
                    else:
                        ok |= np.allclose(got, ref, rtol=1e-5, atol=1e-5)
                assert ok, f"episode {e}, start {start}, target {k}: not the grid of cloud(s) {sorted(cands)}"
            early = 1e-4 if method == "hold" else 0.0  # the loader's default tolerance_s
            np.testing.assert_array_equal(batch["masks"]["lidar"][j].numpy(),
                                          (tgt >= ts[0] - early - 1e-9) & (tgt <= ts[-1] + 1e-9))
        n += len(batch["episode"])
    assert n == L.num_windows


def test_point_cloud_bad_input(tmp_path, rng):
    st = store.write_store(tmp_path / "st", cloud_episodes(rng, 2))
    grid = dict(voxel_size=0.5, grid_size=(4, 4, 4))
    kw = dict(batch_size=2, window=0.3, target_hz=10)

    def bad(match, **over):
        with pytest.raises(ValueError, match=match):
            Loader(st, **dict(kw, **over))

    bad("stream 'lidar' holds point clouds of varying size; voxelize it", streams=["lidar"])
    bad("voxelize\\['joint'\\] is given but stream 'joint' holds tensor samples", streams=["joint"],
        voxelize={"joint": grid})
    bad("voxelize names \\['x'\\]", streams=["lidar"], voxelize={"lidar": grid, "x": grid})
    bad("voxelize\\['lidar'\\]\\['mode'\\] must be one of", streams=["lidar"], voxelize={"lidar": dict(grid, mode="avg")})
    bad("voxelize\\['lidar'\\]\\['voxel_size'\\] must be > 0", streams=["lidar"],
        voxelize={"lidar": dict(grid, voxel_size=0)})
    bad("voxelize\\['lidar'\\]\\['grid_size'\\] must be integers >= 1", streams=["lidar"],
        voxelize={"lidar": dict(grid, grid_size=(4, 0, 4))})
    bad("voxelize\\['lidar'\\] has unknown keys \\['size'\\]", streams=["lidar"], voxelize={"lidar": dict(grid, size=1)})
    bad("voxelize\\['lidar'\\] needs grid_size", streams=["lidar"], voxelize={"lidar": dict(voxel_size=1.0)})
    bad("methods\\['lidar'\\] = 'linear' cannot interpolate point clouds", streams=["lidar"], voxelize={"lidar": grid},
        methods={"lidar": "linear"})
    xyz_only = store.write_store(tmp_path / "xyz", [{"p": ([np.zeros((3, 3), np.float32)] * 4, np.arange(4) / 10)}])
    with pytest.raises(ValueError, match="reduces feature columns, but the points of stream 'p' have only x, y, z"):
        Loader(xyz_only, streams=["p"], voxelize={"p": dict(grid, mode="mean")}, **kw)


def test_point_cloud_real_kitti(tmp_path):
    """Real KITTI and nuScenes sweeps as a 2 Hz point-cloud stream, voxelized by the loader, against the NumPy
    reference of each held cloud."""
    from robocache.pointclouds import load_point_cloud

    clouds = [load_point_cloud(shared_data("pointclouds", "kitti_000008.bin")).points,
              load_point_cloud(shared_data("pointclouds", "nuscenes_lidar_top.bin"), columns=5).points[:, :4]]
    clouds = [np.ascontiguousarray(c[:, :4], dtype=np.float32) for c in clouds]
    seq = [clouds[i % 2][i * 1000 % 7000:][:20000] for i in range(6)]
    st = store.write_store(tmp_path / "st", [{"lidar": (seq, np.arange(6) / 2.0)}])
    grid = dict(voxel_size=(0.8, 0.8, 0.5), origin=(-40.0, -40.0, -3.0), grid_size=(100, 100, 12), mode="mean")
    L = Loader(st, batch_size=3, window=1.0, target_hz=4, streams=["lidar"], voxelize={"lidar": grid}, shuffle=False)
    for batch in L:
        for j, start in enumerate(batch["start_time"].tolist()):
            for k in range(L.T):
                c = min(int(np.floor((start + k / 4) * 2 + 1e-9)), 5)
                ref = ref_voxelize(seq[c], grid["voxel_size"], grid["origin"], grid["grid_size"], "mean")
                np.testing.assert_allclose(batch["lidar"][j, k].numpy(), ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------ lifetime

def test_no_host_memory_leak_across_epochs_and_batches_outlive_the_loader(multirate):
    import gc

    from robocache import _C

    st, _ = multirate
    gc.collect()
    before = _C.loader_memory()["host_bytes"]
    L = Loader(st, batch_size=4, window=0.5, target_hz=19, streams=STREAMS, methods={"quat": "slerp"}, num_threads=2)
    seen = []
    for epoch in range(4):
        for b in L:
            pass
        seen.append(L.stats())
    assert staging_bytes(seen[1], "host_bytes") == staging_bytes(seen[3], "host_bytes") > 0
    assert max(s["output_buffers"] for s in seen) <= 2 * 2 + 2
    keep = next(iter(L))
    copy = {n: keep[n].clone() for n in STREAMS}
    del L, b
    gc.collect()
    for n in STREAMS:  # the batch's buffer outlives the loader
        assert torch.equal(keep[n], copy[n])
    assert _C.loader_memory()["host_bytes"] > before
    del keep
    assert _C.loader_memory()["host_bytes"] == before


def test_waiting_for_a_batch_releases_the_gil(tmp_path, rng):
    import threading
    import time

    # 160x160 noise PNGs at 30 Hz: one worker decoding ~30 distinct frames per window builds a batch slowly
    eps = [{"cam": ([store._png(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)) for _ in range(90)],
                    np.arange(90) / 30.0)} for _ in range(2)]
    st = store.write_store(tmp_path / "st", eps, encodings={"cam": "png"})
    L = Loader(st, batch_size=48, window=1.0, target_hz=30, streams=["cam"], num_threads=1, prefetch=1)
    count, stop = [0], threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        a = count[0]
        time.sleep(0.1)  # the spinner alone: its rate
        rate = (count[0] - a) / 0.1
        it = iter(L)
        next(it)
        # the worker now builds batch 1 (one ahead at most); wait for it from the main thread
        before, t0 = count[0], time.perf_counter()
        next(it)
        waited = time.perf_counter() - t0
        advanced = count[0] - before
    finally:
        stop.set()
        t.join()
    it.close()
    assert waited > 0.02, f"the batch was ready too soon ({waited:.3f} s) for the test to tell"
    # the GIL held through the wait would stop the spinner for all of it
    assert advanced > 0.3 * rate * waited, (advanced, rate, waited)


def test_evict_page_cache_keeps_the_batches(multirate):
    st, _ = multirate
    L = Loader(st, batch_size=5, window=0.5, target_hz=19, streams=STREAMS, methods={"quat": "slerp"}, seed=8)
    a = list(L)
    L.evict_page_cache()  # between epochs, as bench_loader.py --cold does
    L.load_state_dict(dict(L.state_dict(), epoch=0))
    it = iter(L)
    first = next(it)
    L.evict_page_cache()  # and while the workers read: pages fault back in
    b = [first] + list(it)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for n in STREAMS:
            assert torch.equal(x[n], y[n])


def test_destroying_the_loader_mid_epoch_does_not_hang(tmp_path):
    """In a subprocess, so that a hang fails the test instead of stalling the run."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import gc, time, numpy as np, robocache
        from robocache import store
        rng = np.random.default_rng(0)
        eps = [{{"a": (rng.normal(size=(400, 8)).astype(np.float32), np.arange(400) / 100.0)}} for _ in range(6)]
        st = store.write_store({str(tmp_path / "st")!r}, eps)
        for threads, prefetch in ((1, 1), (3, 4)):
            L = robocache.Loader(st, batch_size=8, window=0.5, target_hz=50, streams="a", device="cpu",
                                 num_threads=threads, prefetch=prefetch)
            it = iter(L)
            next(it)
            t0 = time.perf_counter()
            del it, L
            gc.collect()
            assert time.perf_counter() - t0 < 5
        L = robocache.Loader(st, batch_size=8, window=0.5, target_hz=50, streams="a", device="cpu", num_threads=2)
        a, b = iter(L), iter(L)
        next(a)
        next(b)  # a second iteration cancels the first
        try:
            next(a)
            raise SystemExit("the replaced iterator went on")
        except RuntimeError as e:
            assert "cancelled or replaced" in str(e), e
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
