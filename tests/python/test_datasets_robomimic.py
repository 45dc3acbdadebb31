"""RoboMimic / robosuite HDF5 reader, checked against h5py on the real robosuite demos and on a
RoboMimic-layout file built from them."""

import json
from pathlib import Path

import numpy as np
import pytest

from robocache import datasets

h5py = pytest.importorskip("h5py")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ROBOSUITE = DATA / "robosuite"
TASKS = ["SawyerLift", "door", "lift", "nut-assembly", "pick-place", "stack", "wipe"]

pytestmark = pytest.mark.skipif(not datasets.readers()["robomimic"], reason="HDF5 reader not built")
needs_robosuite = pytest.mark.skipif(not ROBOSUITE.exists(), reason=f"{ROBOSUITE} not present")


def h5_datasets(group, prefix=""):
    out = {}
    for name, obj in group.items():
        if isinstance(obj, h5py.Group):
            out.update(h5_datasets(obj, prefix + name + "/"))
        else:
            out[prefix + name] = obj[()]
    return out


@needs_robosuite
@pytest.mark.parametrize("task", TASKS)
def test_robosuite_matches_h5py(task):
    path = ROBOSUITE / task / "demo.hdf5"
    ds = datasets.open(path)
    assert ds.format == "robomimic"
    with h5py.File(path, "r") as f:
        demos = sorted(f["data"], key=lambda n: int(n.split("_")[1]))
        assert len(ds) == len(demos)
        env = f["data"].attrs["env"]
        env_info = f["data"].attrs.get("env_info")
        for i, name in enumerate(demos):
            ep = ds[i]
            want = h5_datasets(f["data"][name])
            assert sorted(ep.keys()) == sorted(want)
            for key, arr in want.items():
                got = ep[key].numpy()
                assert got.dtype == arr.dtype and got.shape == arr.shape, key
                np.testing.assert_array_equal(got, arr)
                np.testing.assert_array_equal(ep[key].timestamps, np.arange(len(arr), dtype=np.float64))
            assert ep.metadata["source_key"] == f"data/{name}"
            assert ep.metadata["task"] == env
            assert ep.metadata["extra"]["data@env"] == env
            assert ep.metadata["extra"][f"data/{name}@model_file"] == f["data"][name].attrs["model_file"]
            if env_info is not None:
                assert ep.metadata["robot_type"] == json.loads(env_info)["robots"]


@needs_robosuite
def test_zero_width_streams():
    ep = datasets.open(ROBOSUITE / "SawyerLift" / "demo.hdf5")[0]
    assert ep["left_dpos"].numpy().shape == (1058, 0)
    assert len(ep["left_dpos"]) == 1058
    t = ep["right_dquat"].torch()
    assert tuple(t.shape) == (1058, 4)


@pytest.fixture
def robomimic_file(tmp_path):
    """A RoboMimic-layout file (obs/next_obs groups, rewards, dones, mask filter keys, env_args) written with
    h5py; robot states from the robosuite Lift demo when present, else seeded random values."""
    rng = np.random.default_rng(5)
    src = ROBOSUITE / "lift" / "demo.hdf5"
    if src.exists():
        with h5py.File(src, "r") as f:
            states, actions = f["data/demo_1/states"][()], f["data/demo_1/actions"][()]
    else:
        states, actions = rng.normal(size=(412, 32)), rng.normal(size=(412, 7))
    path = tmp_path / "low_dim.hdf5"
    lengths = [37, 19, 111]
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["total"] = sum(lengths)
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1,
                                             "env_kwargs": {"robots": ["Panda"], "control_freq": 20}})
        start = 0
        for n, S in zip([10, 2, 1], lengths):  # written out of numeric order: demo_10 sorts last
            g = data.create_group(f"demo_{n}")
            g.attrs["num_samples"] = S
            sl = slice(start, start + S)
            start += S
            g["states"] = states[sl]
            g["actions"] = actions[sl]
            g["rewards"] = (rng.random(S) > 0.9).astype(np.float64)
            g["dones"] = np.arange(S) == S - 1  # bool, stored by h5py as an int8 enum
            g["obs/robot0_eef_pos"] = states[sl, :3].astype(np.float32)
            g["obs/agentview_image"] = rng.integers(0, 256, (S, 8, 8, 3), dtype=np.uint8)
            g["obs/object"] = rng.integers(-300, 300, (S, 2), dtype=np.int16)
            g["next_obs/robot0_eef_pos"] = states[sl, 3:6].astype(np.float32)
        f["mask/train"] = np.array([b"demo_1", b"demo_10"], dtype="S8")
        f["mask/valid"] = np.array(["demo_2"], dtype=h5py.string_dtype())
    return path


def test_robomimic_layout(robomimic_file):
    ds = datasets.open(robomimic_file)
    assert len(ds) == 3
    with h5py.File(robomimic_file, "r") as f:
        for ep, name in zip(ds, ["demo_1", "demo_2", "demo_10"]):
            want = h5_datasets(f["data"][name])
            assert sorted(ep.keys()) == sorted(want)
            for key, arr in want.items():
                got = ep[key].numpy()
                if key == "obs/object":
                    assert got.dtype == np.int32  # int16 widens
                else:
                    assert got.dtype == arr.dtype, key
                np.testing.assert_array_equal(got, arr)
            S = f["data"][name].attrs["num_samples"]
            np.testing.assert_allclose(ep["actions"].timestamps, np.arange(S) / 20.0)  # env_kwargs.control_freq
            assert ep["actions"].time_source == "step_index_over_rate"
            assert ep.metadata["task"] == "Lift" and ep.metadata["robot_type"] == "Panda"
            assert ep.metadata["extra"][f"data/{name}@num_samples"] == str(S)
    train = datasets.open(robomimic_file, split="train")
    assert [e.metadata["source_key"] for e in train] == ["data/demo_1", "data/demo_10"]
    valid = datasets.open(robomimic_file, split="valid", rate_hz=10.0)
    assert len(valid) == 1 and valid[0].metadata["source_key"] == "data/demo_2"
    np.testing.assert_allclose(valid[0]["dones"].timestamps, np.arange(19) / 10.0)
    with pytest.raises(ValueError, match=r"split 'test' is not a filter key in .*low_dim.hdf5 \(mask/: train, valid\)"):
        datasets.open(robomimic_file, split="test")


# ---- bad input ----

def test_wrong_layouts(tmp_path):
    p = tmp_path / "nodata.hdf5"
    with h5py.File(p, "w") as f:
        f["demo_1/actions"] = np.zeros((3, 2))
    with pytest.raises(OSError, match=r"nodata.hdf5: no 'data' group"):
        datasets.open(p)
    p = tmp_path / "odd.hdf5"
    with h5py.File(p, "w") as f:
        f["data/demo_1/actions"] = np.zeros((3, 2))
        f["data/episode_2/actions"] = np.zeros((3, 2))
    with pytest.raises(OSError, match=r"odd.hdf5: 'data/episode_2' is not a demo_N group"):
        datasets.open(p)
    p = tmp_path / "types.hdf5"
    with h5py.File(p, "w") as f:
        f["data/demo_0/actions"] = np.zeros((3, 2))
        f["data/demo_0/obs/label"] = np.array([b"a", b"b", b"c"])
        f["data/demo_1/actions"] = np.float64(1.0)
        f["mask/train"] = np.array([b"demo_7"])
    ds = datasets.open(p)
    with pytest.raises(OSError, match=r"types.hdf5: dataset 'data/demo_0/obs/label' has an HDF5 type"):
        ds[0]
    with pytest.raises(OSError, match=r"types.hdf5: dataset 'data/demo_1/actions' is a scalar"):
        ds[1]
    with pytest.raises(OSError, match=r"types.hdf5: 'mask/train' names 'demo_7', which is not a group under data/"):
        datasets.open(p, split="train")


def test_truncated_hdf5(tmp_path, robomimic_file):
    p = tmp_path / "cut.hdf5"
    p.write_bytes(robomimic_file.read_bytes()[:3000])
    with pytest.raises(OSError, match=r"cut.hdf5: "):
        ds = datasets.open(p)
        for ep in ds:
            pass


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.hdf5"
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="not a recognised dataset file"):
        datasets.open(p)
