"""CALVIN reader, on a small dataset this test writes with NumPy using CALVIN's key names and shapes."""

import zipfile
from pathlib import Path

import numpy as np
import pytest

from robocache import datasets

pytestmark = pytest.mark.skipif(not datasets.readers()["calvin"], reason="CALVIN reader not built")

# CALVIN's per-step keys, shapes and dtypes (calvin_env's dataset, D split)
KEYS = {
    "actions": ((7,), np.float64),
    "rel_actions": ((7,), np.float64),
    "robot_obs": ((15,), np.float64),
    "scene_obs": ((24,), np.float64),
    "rgb_static": ((200, 200, 3), np.uint8),
    "rgb_gripper": ((84, 84, 3), np.uint8),
    "rgb_tactile": ((160, 120, 6), np.uint8),
    "depth_static": ((200, 200), np.float32),
    "depth_gripper": ((84, 84), np.float32),
    "depth_tactile": ((160, 120, 2), np.float32),
}
EPISODES = [(358482, 358488), (358489, 358489), (358490, 358500)]  # first, last step (inclusive)


def make_step(rng, step):
    out = {}
    for key, (shape, dtype) in KEYS.items():
        if dtype == np.uint8:
            out[key] = rng.integers(0, 256, shape, dtype=np.uint8)
        else:
            out[key] = (rng.normal(size=shape) * 3 + step * 1e-3).astype(dtype)
    return out


def write_calvin(root: Path, episodes=EPISODES, seed=0, lang=True):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    steps = {}
    for first, last in episodes:
        for step in range(first, last + 1):
            steps[step] = make_step(rng, step)
            save = np.savez_compressed if step % 2 else np.savez  # CALVIN files exist both ways
            save(root / f"episode_{step:07d}.npz", **steps[step])
    np.save(root / "ep_start_end_ids.npy", np.array(episodes, dtype=np.int64))
    if lang:
        (root / "lang_annotations").mkdir()
        ann = {
            "info": {"episodes": [], "indx": [(358483, 358487), (358492, 358499)]},
            "language": {"ann": ["push the blue block to the left", "open the drawer"],
                         "task": ["push_blue_block_left", "open_drawer"],
                         "emb": rng.normal(size=(2, 1, 384)).astype(np.float32)},
        }
        np.save(root / "lang_annotations" / "auto_lang_ann.npy", ann, allow_pickle=True)
    return steps


def test_calvin_matches_numpy(tmp_path):
    root = tmp_path / "training"
    steps = write_calvin(root)
    ds = datasets.open(root, rate_hz=30.0)
    assert ds.format == "calvin" and len(ds) == 3
    for i, (first, last) in enumerate(EPISODES):
        ep = ds[i]
        S = last - first + 1
        assert sorted(ep.keys()) == sorted(KEYS)
        for key, (shape, dtype) in KEYS.items():
            got = ep[key].numpy()
            want = np.stack([steps[s][key] for s in range(first, last + 1)])
            assert got.dtype == dtype and got.shape == (S,) + shape, key
            np.testing.assert_array_equal(got, want)
            np.testing.assert_allclose(ep[key].timestamps, np.arange(S) / 30.0)
        assert ep.metadata["source_file"].endswith(f"episode_{first:07d}.npz")
        assert ep.metadata["source_key"] == f"steps {first}-{last}"
    assert ds[0].language_instruction == "push the blue block to the left"
    assert ds[0].metadata["task"] == "push_blue_block_left"
    assert ds[1].metadata["language_annotations"] == []
    assert ds[2].metadata["language_annotations"] == [(358492, 358499, "open the drawer", "open_drawer")]
    assert [e.index for e in ds] == [0, 1, 2]
    assert ds[-1].index == 2
    no_lang = datasets.open(root, calvin_language=False)
    assert no_lang[0].language_instruction == "" and "language_annotations" not in no_lang[0].metadata
    t = ds[0]["rgb_static"].torch()
    assert tuple(t.shape) == (7, 200, 200, 3)


def test_npy_dtypes_and_fortran_order(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "calvin"
    root.mkdir()
    arrays = {
        "f16": rng.normal(size=(3, 5)).astype(np.float16),
        "i8": rng.integers(-128, 127, (4,), dtype=np.int8),
        "i16": rng.integers(-30000, 30000, (2, 3), dtype=np.int16),
        "u16": rng.integers(0, 65535, (5,), dtype=np.uint16),
        "u32": rng.integers(0, 2**32 - 1, (3,), dtype=np.uint32),
        "i32": rng.integers(-2**31, 2**31 - 1, (3,), dtype=np.int32),
        "flag": rng.integers(0, 2, (6,)).astype(bool),
        "fortran": np.asfortranarray(rng.normal(size=(4, 3, 2))),
        "fortran_i16": np.asfortranarray(rng.integers(-9, 9, (3, 5), dtype=np.int16)),
        "scalar": np.float64(2.5),
        "empty": np.zeros((0, 3), np.float32),
    }
    np.savez(root / "episode_0000000.npz", **arrays)
    np.save(root / "ep_start_end_ids.npy", np.array([[0, 0]], dtype=np.int32))
    ep = datasets.open(root)[0]
    widened = {"i8": np.int32, "i16": np.int32, "u16": np.int32, "u32": np.int64, "fortran_i16": np.int32}
    for key, want in arrays.items():
        got = ep[key].numpy()
        assert got.shape == (1,) + np.shape(want), key
        assert got.dtype == widened.get(key, np.asarray(want).dtype), key
        np.testing.assert_array_equal(got[0], want)
        assert got.flags.c_contiguous


# ---- bad and corrupt input ----

def test_missing_step_file(tmp_path):
    root = tmp_path / "c"
    write_calvin(root, lang=False)
    (root / "episode_0358495.npz").unlink()
    ds = datasets.open(root)
    ds[0]
    with pytest.raises(OSError, match=r"episode_0358495.npz: missing step file of episode 2 \(steps 358490-358500"):
        ds[2]


def test_truncated_npz(tmp_path):
    root = tmp_path / "c"
    write_calvin(root, lang=False)
    f = root / "episode_0358484.npz"
    f.write_bytes(f.read_bytes()[:5000])
    with pytest.raises(OSError, match=r"episode_0358484.npz: cannot open as npz \(zip\)"):
        datasets.open(root)[0]


def test_corrupt_npy_member(tmp_path):
    root = tmp_path / "c"
    write_calvin(root, episodes=[(0, 2)], lang=False)
    # rewrite step 1 with robot_obs's data cut short but its header intact
    f = root / "episode_0000001.npz"
    with zipfile.ZipFile(f) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["robot_obs.npy"] = members["robot_obs.npy"][:-8]
    with zipfile.ZipFile(f, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(OSError, match=r"episode_0000001.npz: member 'robot_obs.npy': .npy data is 112 bytes from byte "
                                      r"offset 128, its header \(<f8, shape \[15\]\) needs 120"):
        datasets.open(root)[0]
    members["robot_obs.npy"] = b"\x93NUMPX" + members["robot_obs.npy"][6:]
    with zipfile.ZipFile(f, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(OSError, match=r"member 'robot_obs.npy': not a .npy array \(bad magic"):
        datasets.open(root)[0]


def test_shape_change_within_episode(tmp_path):
    root = tmp_path / "c"
    steps = write_calvin(root, episodes=[(10, 12)], lang=False)
    bad = dict(steps[11])
    bad["rgb_gripper"] = bad["rgb_gripper"][:80]
    np.savez(root / "episode_0000011.npz", **bad)
    with pytest.raises(OSError, match=r"episode_0000011.npz: key 'rgb_gripper' is uint8 \[80, 84, 3\], but uint8 "
                                      r"\[84, 84, 3\] in the episode's first step .*episode_0000010.npz"):
        datasets.open(root)[0]


def test_object_arrays_and_bad_ids(tmp_path):
    root = tmp_path / "c"
    write_calvin(root, episodes=[(0, 0)], lang=False)
    np.savez(root / "episode_0000000.npz", actions=np.array([{"a": 1}], dtype=object))
    with pytest.raises(OSError, match=r"member 'actions.npy': .npy holds Python objects"):
        datasets.open(root)[0]
    np.save(root / "ep_start_end_ids.npy", np.array([[5, 3]]))
    with pytest.raises(OSError, match=r"ep_start_end_ids.npy: row 0 is \(5, 3\)"):
        datasets.open(root)
    np.save(root / "ep_start_end_ids.npy", np.array([1.0, 2.0]))
    with pytest.raises(OSError, match=r"ep_start_end_ids.npy: must be an integer array \[E, 2\]"):
        datasets.open(root)


def test_bad_language_file(tmp_path):
    root = tmp_path / "c"
    write_calvin(root, episodes=[(0, 1)], lang=False)
    (root / "lang_annotations").mkdir()
    np.save(root / "lang_annotations" / "auto_lang_ann.npy", {"info": {}}, allow_pickle=True)
    with pytest.raises(OSError, match=r"auto_lang_ann.npy: not a CALVIN language annotation file"):
        datasets.open(root)
