"""RoboMimic sequence windows (robocache.datasets.RoboMimicWindows) against robomimic's own
SequenceDataset on RoboMimic-layout files built from the real robosuite demos, against a plain-loop
reference on the raw robosuite files and on seeded random data, and on bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from robocache import datasets

h5py = pytest.importorskip("h5py")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ROBOSUITE = DATA / "robosuite"
TASKS = ["lift", "door", "stack", "nut-assembly", "pick-place", "wipe"]

pytestmark = pytest.mark.skipif(not datasets.readers()["robomimic"], reason="HDF5 reader not built")
needs_robosuite = pytest.mark.skipif(not ROBOSUITE.exists(), reason=f"{ROBOSUITE} not present")

try:  # robomimic 0.3 (`pip install --no-deps robomimic==0.3.0 tqdm termcolor`, as .ci/run does)
    from robomimic.utils.dataset import SequenceDataset
    import robomimic.utils.obs_utils as ObsUtils
except ImportError as e:  # pragma: no cover - CI installs it
    SequenceDataset = None
    ROBOMIMIC_MISSING = f"robomimic is not installed ({e}); .ci/run installs it"
needs_robomimic = pytest.mark.skipif(SequenceDataset is None, reason=globals().get("ROBOMIMIC_MISSING", ""))

OBS_LOW_DIM = ["robot0_joint_pos", "object", "robot0_gripper_qpos"]
OBS_RGB = ["agentview_image"]
OBS_KEYS = OBS_LOW_DIM + OBS_RGB
DATASET_KEYS = ["actions", "rewards", "dones", "states"]
# Demo pieces cut from each robosuite demo, in file order; the short ones exercise padding past both ends
# and the demos that a window without padding does not fit.
PIECES = [(7, 1), (0, 2), (3, 3), (12, 5), (1, 17), (2, 111), (10, None)]  # (demo number, length; None = rest)


def _obs_from_states(states):
    """Observations made from the recorded MuJoCo states (these demos hold no rendered observations):
    float32 and float64 slices, and a small uint8 'image' whose pixels follow the states."""
    S, D = states.shape
    img = (np.abs(np.resize(states, (S, 6 * 5 * 3))) * 4099.0 + np.arange(90)) % 256
    return {
        "robot0_joint_pos": states[:, 1:8].astype(np.float32),
        "object": states[:, D - 7:],
        "robot0_gripper_qpos": states[:, 8:10].astype(np.float32),
        "agentview_image": img.astype(np.uint8).reshape(S, 6, 5, 3),
    }


def build_robomimic_file(src, dst):
    """The robomimic layout (data/demo_N/{obs, next_obs, actions, rewards, dones, states}, num_samples,
    data@total, data@env_args, mask/train, mask/valid, mask/long) from one robosuite demo.hdf5, cut into
    demos of the lengths in PIECES. Returns {demo name: length}."""
    with h5py.File(src, "r") as f:
        name = sorted(f["data"])[0]
        states, actions = f["data"][name]["states"][()], f["data"][name]["actions"][()]
        env_info = json.loads(f["data"].attrs["env_info"]) if "env_info" in f["data"].attrs else {}
        env = f["data"].attrs["env"]
    lengths = {}
    with h5py.File(dst, "w") as f:
        data = f.create_group("data")
        start = 0
        for num, n in PIECES:
            n = len(states) - start if n is None else n
            sl = slice(start, start + n)
            start += n
            g = data.create_group(f"demo_{num}")
            g.attrs["num_samples"] = n
            g.attrs["model_file"] = "<mujoco/>"
            s, a = states[sl], actions[sl]
            obs = _obs_from_states(s)
            for k, v in obs.items():
                g.create_dataset(f"obs/{k}", data=v, compression="gzip" if k == "object" else None)
                g[f"next_obs/{k}"] = np.concatenate([v[1:], v[-1:]])
            g["states"] = s
            g["actions"] = a
            g["rewards"] = np.tanh(s[:, 1] * 3.0 + a[:, 0])  # float64, non-uniform
            dones = np.zeros(n, dtype=np.int64)
            dones[-1] = 1
            g["dones"] = dones
            lengths[f"demo_{num}"] = n
        data.attrs["total"] = sum(lengths.values())
        data.attrs["env_args"] = json.dumps({"env_name": env, "type": 1, "env_kwargs": env_info})
        names = sorted(lengths, key=lambda k: int(k[5:]))
        f["mask/train"] = np.array([n for n in names if n != "demo_2"], dtype="S")
        f["mask/valid"] = np.array(["demo_2"], dtype="S")
        f["mask/long"] = np.array([n for n in names if lengths[n] >= 17][::-1], dtype="S")  # unsorted on purpose
    return lengths


@pytest.fixture(scope="module")
def robomimic_files(tmp_path_factory):
    if not ROBOSUITE.exists():
        pytest.skip(f"{ROBOSUITE} not present")
    d = tmp_path_factory.mktemp("robomimic")
    return {t: (d / f"{t}.hdf5", build_robomimic_file(ROBOSUITE / t / "demo.hdf5", d / f"{t}.hdf5")) for t in TASKS}


def assert_same(ours, theirs, where, float32_keys=()):
    """Same nested keys, dtypes, shapes and values (float32_keys: robomimic's caches cast them)."""
    assert isinstance(ours, dict) and isinstance(theirs, dict), where
    assert list(ours) == list(theirs), f"{where}: keys {list(ours)} != {list(theirs)}"
    for k in theirs:
        if isinstance(theirs[k], dict):
            assert_same(ours[k], theirs[k], f"{where}/{k}", float32_keys)
            continue
        a, b = ours[k], np.asarray(theirs[k])
        if k in float32_keys:
            assert b.dtype == np.float32, f"{where}/{k}"
            a = a.astype(np.float32)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}/{k}: {a.dtype} {a.shape} != {b.dtype} {b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=f"{where}/{k}")


# (frame_stack, seq_length, pad_frame_stack, pad_seq_length, get_pad_mask, goal_mode, filter key)
SETTINGS = [
    (1, 1, True, True, False, None, None),
    (3, 1, True, True, True, None, None),
    (1, 10, True, True, True, "last", None),
    (10, 10, True, True, True, None, "train"),
    (4, 3, False, True, True, None, "long"),
    (2, 5, True, False, True, "last", "long"),
    (3, 4, False, False, True, "last", "long"),
    (2, 16, False, False, False, None, "valid"),
]


def settings_kwargs(s):
    fs, sl, pfs, psl, mask, goal, filt = s
    return dict(frame_stack=fs, seq_length=sl, pad_frame_stack=pfs, pad_seq_length=psl, get_pad_mask=mask,
                goal_mode=goal, filter_by_attribute=filt)


def robomimic_dataset(path, cache_mode=None, **kw):
    ObsUtils.initialize_obs_modality_mapping_from_dict({"low_dim": OBS_LOW_DIM, "rgb": OBS_RGB})
    return SequenceDataset(str(path), obs_keys=OBS_KEYS, dataset_keys=DATASET_KEYS, hdf5_cache_mode=cache_mode,
                           hdf5_use_swmr=False, **kw)


@needs_robomimic
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "fs{}-seq{}-{}{}-{}-{}-{}".format(
    s[0], s[1], "P" if s[2] else "n", "P" if s[3] else "n", "mask" if s[4] else "nomask", s[5], s[6]))
def test_every_window_equals_robomimic(robomimic_files, task, setting):
    path, lengths = robomimic_files[task]
    kw = settings_kwargs(setting)
    ref = robomimic_dataset(path, **kw)
    ours = datasets.RoboMimicWindows(path, obs_keys=OBS_KEYS, dataset_keys=DATASET_KEYS, **kw)
    assert len(ours) == len(ref) > 0
    assert ours.demos == ref.demos
    assert [ours.demo_length(d) for d in ours.demos] == [lengths[d] for d in ref.demos]
    fs, sl, pfs = setting[0], setting[1], setting[2]
    for i in range(len(ref)):
        demo = ref._index_to_demo_id[i]
        in_demo = i - ref._demo_id_to_start_indices[demo] + (0 if pfs else fs - 1)  # robomimic's get_item
        assert ours.locate(i) == (demo, in_demo), i
        assert_same(ours[i], ref[i], f"{path.name}[{i}] ({demo})")
    # the batched read is the single reads stacked; negative indices count from the end
    idx = np.array([len(ref) - 1, 0, len(ref) // 2, 1 % len(ref)])
    batch = ours.get_batch(idx)
    singles = [ours[int(i)] for i in idx]
    for key in DATASET_KEYS:
        np.testing.assert_array_equal(batch[key], np.stack([s[key] for s in singles]))
    for key in OBS_KEYS:
        np.testing.assert_array_equal(batch["obs"][key], np.stack([s["obs"][key] for s in singles]))
    assert_same(ours[-1], ref[len(ref) - 1], "last")


@needs_robomimic
@pytest.mark.parametrize("cache_mode", ["low_dim", "all"])
def test_robomimic_cache_modes_same_values(robomimic_files, cache_mode):
    """robomimic's caches give the same values (its dataset keys then come as float32); ours with and
    without cache are identical."""
    path, _ = robomimic_files["door"]
    kw = settings_kwargs((3, 4, True, True, True, "last", "train"))
    ref = robomimic_dataset(path, cache_mode=cache_mode, **kw)
    ours = datasets.RoboMimicWindows(path, obs_keys=OBS_KEYS, dataset_keys=DATASET_KEYS, **kw)
    cached = datasets.RoboMimicWindows(path, obs_keys=OBS_KEYS, dataset_keys=DATASET_KEYS, cache=True, **kw)
    assert len(ours) == len(ref) == len(cached)
    for i in range(len(ref)):
        theirs = ref[i]
        assert_same(ours[i], theirs, f"[{i}]", float32_keys=DATASET_KEYS)
        assert_same(cached[i], ours[i], f"cached [{i}]")


@needs_robomimic
def test_load_next_obs_false_and_no_obs_keys(robomimic_files):
    path, _ = robomimic_files["wipe"]
    ObsUtils.initialize_obs_modality_mapping_from_dict({"low_dim": OBS_LOW_DIM, "rgb": OBS_RGB})
    for obs_keys in ([], ["object"]):
        ref = SequenceDataset(str(path), obs_keys=obs_keys, dataset_keys=["actions"], frame_stack=2, seq_length=3,
                              load_next_obs=False, get_pad_mask=True, hdf5_use_swmr=False)
        ours = datasets.RoboMimicWindows(path, obs_keys=obs_keys, dataset_keys=["actions"], frame_stack=2,
                                         seq_length=3, load_next_obs=False, get_pad_mask=True)
        assert len(ours) == len(ref)
        for i in range(len(ref)):
            assert_same(ours[i], ref[i], f"[{i}]")


@needs_robomimic
@pytest.mark.parametrize("setting", [(4, 3, False, True, False, None, None), (2, 5, True, False, False, None, None),
                                     (3, 4, False, False, False, None, None)])
def test_too_short_demos_fail_like_robomimic(robomimic_files, setting):
    """Without padding, the 1-, 2- and 3-step demos cannot give a window: robomimic asserts (at construction
    or at the demo's first window), RoboCache raises at construction, naming the file and the demo."""
    path, _ = robomimic_files["lift"]
    kw = settings_kwargs(setting)
    with pytest.raises(AssertionError):
        ref = robomimic_dataset(path, **kw)
        for i in range(len(ref)):
            ref[i]
    with pytest.raises(ValueError, match=r"lift.hdf5: 'data/demo_\d+' has \d samples, fewer than"):
        datasets.RoboMimicWindows(path, obs_keys=OBS_KEYS, dataset_keys=DATASET_KEYS, **kw)


# ---- a plain-loop reference (independent of robomimic) on the raw robosuite files and on random data ----

def reference_windows(demos, fs, sl, pfs, psl):
    """demos: [(name, {key: array [L, ...]})] sorted by number -> [(name, index_in_demo, {key: window})]."""
    out = []
    for name, arrays in demos:
        L = len(next(iter(arrays.values())))
        starts = range(0 if pfs else fs - 1, L - (0 if psl else sl - 1))
        if psl and len(starts) == 0:
            starts = range(fs - 1, fs)
        for a in starts:
            rows = [min(max(r, 0), L - 1) for r in range(a - fs + 1, a + sl)]
            out.append((name, a, {k: v[rows] for k, v in arrays.items()},
                        np.array([[0 <= r < L] for r in range(a - fs + 1, a + sl)])))
    return out


@needs_robosuite
@pytest.mark.parametrize("task", TASKS + ["SawyerLift"])
@pytest.mark.parametrize("fs,sl,pfs,psl", [(1, 1, True, True), (5, 3, True, True), (3, 8, False, False),
                                           (7, 2, False, True)])
def test_raw_robosuite_layout(task, fs, sl, pfs, psl):
    path = ROBOSUITE / task / "demo.hdf5"
    with h5py.File(path, "r") as f:
        names = sorted(f["data"], key=lambda n: int(n[5:]))
        keys = [k for k in f["data"][names[0]] if isinstance(f["data"][names[0]][k], h5py.Dataset)]
        demos = [(n, {k: f["data"][n][k][()] for k in keys}) for n in names]
    w = datasets.RoboMimicWindows(path, obs_keys=(), dataset_keys=keys, frame_stack=fs, seq_length=sl,
                                  pad_frame_stack=pfs, pad_seq_length=psl, get_pad_mask=True, load_next_obs=False,
                                  cache=(fs == 5))
    want = reference_windows(demos, fs, sl, pfs, psl)
    assert len(w) == len(want)
    for i, (name, a, arrays, mask) in enumerate(want):
        assert w.locate(i) == (name, a)
        got = w[i]
        assert list(got) == keys + ["pad_mask", "obs"] and got["obs"] == {"pad_mask": got["obs"]["pad_mask"]}
        for k in keys:
            assert got[k].dtype == arrays[k].dtype and got[k].shape == arrays[k].shape, k
            np.testing.assert_array_equal(got[k], arrays[k])
        np.testing.assert_array_equal(got["pad_mask"], mask)
        np.testing.assert_array_equal(got["obs"]["pad_mask"], mask)


def test_random_dtypes_and_shapes(tmp_path):
    """Seeded non-uniform data of every dtype the windows keep (and int16, which widens to int32), odd
    lengths, chunked + compressed and contiguous datasets, bool dones, scalar-per-step and image rows."""
    rng = np.random.default_rng(11)
    path = tmp_path / "random.hdf5"
    lengths = {"demo_0": 1, "demo_5": 19, "demo_12": 111, "demo_40": 2}
    arrays = {}
    with h5py.File(path, "w") as f:
        for name, L in lengths.items():
            g = f.create_group(f"data/{name}")
            g.attrs["num_samples"] = np.int64(L)
            a = {
                "actions": rng.normal(size=(L, 7)) * np.exp(rng.normal(size=7)),
                "rewards": rng.random(L).astype(np.float32),
                "dones": rng.random(L) > 0.7,
                "counts": rng.integers(-2**40, 2**40, L),
                "codes": rng.integers(-300, 300, (L, 3), dtype=np.int16),
                "obs/cam": rng.integers(0, 256, (L, 4, 3, 2), dtype=np.uint8),
                "obs/pos": rng.normal(size=(L, 3)).astype(np.float32),
                "next_obs/cam": rng.integers(0, 256, (L, 4, 3, 2), dtype=np.uint8),
                "next_obs/pos": rng.normal(size=(L, 3)).astype(np.float32),
            }
            for k, v in a.items():
                g.create_dataset(k, data=v, chunks=True if L > 5 else None, compression="lzf" if L > 5 else None)
            arrays[name] = a
    data_keys = ["actions", "rewards", "dones", "counts", "codes"]
    for fs, sl, goal in [(1, 1, None), (4, 6, "last"), (2, 130, "last")]:
        w = datasets.RoboMimicWindows(path, obs_keys=["pos", "cam"], dataset_keys=data_keys, frame_stack=fs,
                                      seq_length=sl, get_pad_mask=True, goal_mode=goal)
        order = sorted(lengths, key=lambda n: int(n[5:]))
        assert w.demos == order
        demos = [(n, {k: arrays[n][k] for k in data_keys + ["obs/pos", "obs/cam", "next_obs/pos", "next_obs/cam"]})
                 for n in order]
        want = reference_windows(demos, fs, sl, True, True)
        assert len(w) == len(want) == sum(lengths.values())
        for i, (name, a, ref, mask) in enumerate(want):
            got = w[i]
            assert w.locate(i) == (name, a)
            for k in data_keys:
                exp = ref[k].astype(np.int32) if k == "codes" else ref[k]
                assert got[k].dtype == exp.dtype, k
                np.testing.assert_array_equal(got[k], exp)
            for g in ("obs", "next_obs"):
                assert list(got[g]) == ["pos", "cam", "pad_mask"]
                for k in ("pos", "cam"):
                    np.testing.assert_array_equal(got[g][k], ref[f"{g}/{k}"])
                np.testing.assert_array_equal(got[g]["pad_mask"], mask)
            if goal:
                L = lengths[name]
                assert list(got["goal_obs"]) == ["pos", "cam", "pad_mask"]
                np.testing.assert_array_equal(got["goal_obs"]["cam"], arrays[name]["next_obs/cam"][L - 1])
                np.testing.assert_array_equal(got["goal_obs"]["pad_mask"], [True])
            else:
                assert "goal_obs" not in got
    # h5py's LZF filter is h5py's own; RoboCache decodes it too (the episode reader as well)
    ep = datasets.open(path)[2]
    assert ep.metadata["source_key"] == "data/demo_12"
    np.testing.assert_array_equal(ep["obs/cam"].numpy(), arrays["demo_12"]["obs/cam"])
    with h5py.File(path, "r") as f:
        assert f["data/demo_12/obs/cam"].compression == "lzf"


# ---- bad input ----

@pytest.fixture
def small_file(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "small.hdf5"
    with h5py.File(path, "w") as f:
        for n, L in [(1, 9), (2, 4)]:
            g = f.create_group(f"data/demo_{n}")
            g.attrs["num_samples"] = L
            g["actions"] = rng.normal(size=(L, 2))
            g["obs/pos"] = rng.normal(size=(L, 3))
            g["next_obs/pos"] = rng.normal(size=(L, 3))
        f["mask/train"] = np.array([b"demo_2", b"demo_1"])
    return path


def test_bad_arguments(small_file):
    W = datasets.RoboMimicWindows
    with pytest.raises(ValueError, match="frame_stack must be in"):
        W(small_file, ["pos"], ["actions"], frame_stack=0)
    with pytest.raises(ValueError, match="seq_length must be in .* got -2"):
        W(small_file, ["pos"], ["actions"], seq_length=-2)
    with pytest.raises(TypeError, match="frame_stack must be an int"):
        W(small_file, ["pos"], ["actions"], frame_stack=1.5)
    with pytest.raises(ValueError, match='goal_mode must be None or "last", got \'first\''):
        W(small_file, ["pos"], ["actions"], goal_mode="first")
    with pytest.raises(ValueError, match="load_next_obs must be true"):
        W(small_file, ["pos"], ["actions"], goal_mode="last", load_next_obs=False)
    with pytest.raises(TypeError, match="not a single string"):
        W(small_file, "pos", ["actions"])
    with pytest.raises(ValueError, match="obs_keys names 'pos' twice"):
        W(small_file, ["pos", "pos"], ["actions"])
    with pytest.raises(ValueError, match="obs_keys: 'obs/pos' is not an observation name"):
        W(small_file, ["obs/pos"], ["actions"])
    with pytest.raises(ValueError, match="dataset_keys: 'obs' would clash"):
        W(small_file, ["pos"], ["obs"])
    with pytest.raises(ValueError, match=r"filter_by_attribute 'valid' is not a filter key in .*small.hdf5 \(mask/: train\)"):
        W(small_file, ["pos"], ["actions"], filter_by_attribute="valid")
    w = W(small_file, ["pos"], ["actions"], filter_by_attribute="train")
    assert w.demos == ["demo_1", "demo_2"] and len(w) == 13
    with pytest.raises(IndexError, match="window 13 is out of range for 13 windows"):
        w[13]
    with pytest.raises(IndexError, match=r"indices\[1\] = -14 is out of range"):
        w.get_batch([0, -14])
    with pytest.raises(TypeError, match="window index must be an int"):
        w["0"]
    assert w.get_batch([])["actions"].shape == (0, 1, 2)


def test_wrong_layouts(tmp_path, small_file):
    W = datasets.RoboMimicWindows
    with pytest.raises(OSError, match=r"small.hdf5: no dataset 'data/demo_1/obs/eef' \(obs_keys names 'eef'; "
                                      r"data/demo_1/obs holds: pos\)"):
        W(small_file, ["eef"], ["actions"])
    with pytest.raises(OSError, match=r"small.hdf5: no dataset 'data/demo_1/rewards' \(dataset_keys names 'rewards'"):
        W(small_file, ["pos"], ["actions", "rewards"])

    def variant(name, edit):
        p = tmp_path / name
        p.write_bytes(small_file.read_bytes())
        with h5py.File(p, "a") as f:
            edit(f)
        return p

    p = variant("rows.hdf5", lambda f: f["data/demo_2"].attrs.__setitem__("num_samples", 5))
    with pytest.raises(OSError, match=r"rows.hdf5: dataset 'data/demo_2/actions' has 4 rows, but "
                                      r"data/demo_2@num_samples says 5"):
        W(p, ["pos"], ["actions"])

    def no_next(f):
        del f["data/demo_2/next_obs"]
    p = variant("nonext.hdf5", no_next)
    with pytest.raises(OSError, match=r"nonext.hdf5: no dataset 'data/demo_2/next_obs/pos' .*there is no group data/demo_2/next_obs"):
        W(p, ["pos"], ["actions"])
    assert len(W(p, ["pos"], ["actions"], load_next_obs=False)) == 13

    p = variant("attr.hdf5", lambda f: f["data/demo_1"].attrs.__setitem__("num_samples", "nine"))
    with pytest.raises(OSError, match=r"attr.hdf5: attribute 'data/demo_1@num_samples' must be one integer"):
        W(p, ["pos"], ["actions"])

    def odd_group(f):
        f["data/episode_3/actions"] = np.zeros((2, 2))
    p = variant("odd.hdf5", odd_group)
    with pytest.raises(OSError, match=r"odd.hdf5: 'data/episode_3' is not a demo_N group"):
        W(p, ["pos"], ["actions"])

    def bad_mask(f):
        f["mask/valid"] = np.array([b"demo_9"])
        f["mask/twice"] = np.array([b"demo_1", b"demo_1"])
    p = variant("mask.hdf5", bad_mask)
    with pytest.raises(OSError, match=r"mask.hdf5: 'mask/valid' names 'demo_9', which is not a group under data/"):
        W(p, ["pos"], ["actions"], filter_by_attribute="valid")
    with pytest.raises(OSError, match=r"mask.hdf5: 'mask/twice' names 'demo_1' twice"):
        W(p, ["pos"], ["actions"], filter_by_attribute="twice")

    def scalar(f):
        del f["data/demo_1/actions"]
        f["data/demo_1/actions"] = 1.0
    p = variant("scalar.hdf5", scalar)
    with pytest.raises(OSError, match=r"scalar.hdf5: dataset 'data/demo_1/actions' is a scalar"):
        W(p, ["pos"], ["actions"])

    def strings(f):
        f["data/demo_1/labels"] = np.array([b"a"] * 9)
    p = variant("strings.hdf5", strings)
    with pytest.raises(OSError, match=r"strings.hdf5: dataset 'data/demo_1/labels' has an HDF5 type"):
        W(p, ["pos"], ["labels"])

    def wider(f):
        del f["data/demo_2/obs/pos"]
        f["data/demo_2/obs/pos"] = np.zeros((4, 5))
    p = variant("wider.hdf5", wider)
    w = W(p, ["pos"], ["actions"])
    assert w[12]["obs"]["pos"].shape == (1, 5)
    with pytest.raises(ValueError, match=r"cannot batch windows 0 and 12 of .*wider.hdf5: 'data/demo_1/obs/pos' is "
                                         r"float64 \[3\] per row, 'data/demo_2/obs/pos' is float64 \[5\]"):
        w.get_batch([0, 12])

    p = tmp_path / "nodata.hdf5"
    with h5py.File(p, "w") as f:
        f["demo_1/actions"] = np.zeros((3, 2))
    with pytest.raises(OSError, match=r"nodata.hdf5: no 'data' group"):
        W(p, [], ["actions"])
    p = tmp_path / "x.hdf5"
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(OSError, match=r"x.hdf5: cannot open as HDF5"):
        W(p, [], ["actions"])
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(small_file.read_bytes()[:2500])
    with pytest.raises(OSError, match=r"cut.hdf5: "):
        w = W(cut, ["pos"], ["actions"])
        for i in range(len(w)):
            w[i]


def test_threads_share_one_file(small_file):
    """Reads from several threads at once (the HDF5 lock) give what one thread gets."""
    from concurrent.futures import ThreadPoolExecutor

    w = datasets.RoboMimicWindows(small_file, ["pos"], ["actions"], frame_stack=3, seq_length=2)
    want = [w[i] for i in range(len(w))]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda i: w[i % len(w)], range(200)))
    for i, g in enumerate(got):
        np.testing.assert_array_equal(g["obs"]["pos"], want[i % len(w)]["obs"]["pos"])
        np.testing.assert_array_equal(g["actions"], want[i % len(w)]["actions"])
