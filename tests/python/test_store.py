"""The episode store: convert() / write_store() checked against the readers (robocache.datasets.open) on
real and generated datasets; checksums, atomic completion, resume, the CLI."""

import gc
import json
import os

import numpy as np
import pytest

from robocache import cli, datasets, store
from conftest import shared_data

h5py = pytest.importorskip("h5py")


def assert_store_matches(st, ds):
    """Every stream of every episode in the store equals what the reader returns (the oracle)."""
    assert st.num_episodes == len(ds)
    for e in range(len(ds)):
        ep = ds[e]
        assert sorted(ep.keys()) == sorted(st.streams)
        for name, s in st.streams.items():
            src = ep[name]
            got_t = s.episode_timestamps(e)
            assert got_t.dtype == src.timestamps.dtype, name
            np.testing.assert_array_equal(got_t, src.timestamps)
            if src.kind == "tensor":
                got = s.episode_data(e)
                want = src.numpy()
                assert got.dtype == want.dtype and got.shape == want.shape, name
                np.testing.assert_array_equal(got, want)
            else:
                assert s.encoding == src.encoding
                assert s.episode_data(e) == src.items(), name
        assert st.metadata(e)["source_key"] == ep.metadata["source_key"]
        assert st.metadata(e)["language_instruction"] == ep.metadata["language_instruction"]


@pytest.fixture
def hdf5_dataset(tmp_path):
    """A RoboMimic-layout file with odd episode lengths (1, 19, 111), float/int/uint8 image streams, at
    control_freq 20 Hz; seeded non-uniform values."""
    rng = np.random.default_rng(11)
    path = tmp_path / "low_dim.hdf5"
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1,
                                             "env_kwargs": {"robots": ["Panda"], "control_freq": 20}})
        for n, S in enumerate([19, 1, 111]):
            g = data.create_group(f"demo_{n}")
            g.attrs["num_samples"] = S
            g["actions"] = rng.normal(size=(S, 7))
            g["obs/robot0_eef_pos"] = rng.normal(size=(S, 3)).astype(np.float32)
            g["obs/agentview_image"] = rng.integers(0, 256, (S, 8, 6, 3), dtype=np.uint8)
            g["obs/object"] = rng.integers(-300, 300, (S, 2), dtype=np.int16)
    return path


def test_convert_generated_hdf5(tmp_path, hdf5_dataset):
    st = store.convert(hdf5_dataset, tmp_path / "st", progress=False)
    assert_store_matches(st, datasets.open(hdf5_dataset))
    m = st.manifest
    assert m["num_episodes"] == 3 and m["source"]["format"] == "robomimic"
    assert {s["name"]: s["shape"] for s in m["streams"]}["obs/agentview_image"] == [8, 6, 3]
    assert m["num_samples"]["actions"] == 131
    np.testing.assert_array_equal(st.streams["actions"].episodes, [0, 19, 20, 131])
    # every file is in the manifest with its size and checksum; no leftovers
    files = {os.path.relpath(os.path.join(r, n), st.path).replace(os.sep, "/")
             for r, _, ns in os.walk(st.path) for n in ns}
    assert files - {"manifest.json"} == set(m["files"])
    assert not os.path.exists(str(tmp_path / "st") + ".partial")
    store.open_store(st.path, verify=True).verify()
    # the columns are memory-mapped, not loaded
    assert isinstance(st.streams["actions"].data, np.memmap)


def test_convert_reads_each_episode_once(tmp_path, hdf5_dataset, monkeypatch):
    reads = []

    class Counting:  # the opened dataset, counting episode reads
        def __init__(self, ds):
            self.ds, self.format = ds, ds.format

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            reads.append(i)
            return self.ds[i]

    real_open = datasets.open
    monkeypatch.setattr(datasets, "open", lambda src, **kw: Counting(real_open(src, **kw)))
    st = store.convert(hdf5_dataset, tmp_path / "st", progress=False, num_threads=2)
    assert sorted(reads) == [0, 1, 2]
    assert_store_matches(st, real_open(hdf5_dataset))


def test_convert_rate(tmp_path, hdf5_dataset):
    st = store.convert(hdf5_dataset, tmp_path / "st", progress=False, rate_hz=20.0)
    s = st.streams["actions"]
    assert s.time_source == "step_index_over_rate" and s.rate_hz == 20.0
    np.testing.assert_allclose(s.episode_timestamps(2), np.arange(111) / 20.0)


def test_convert_lerobot_real(tmp_path):
    src = shared_data("lerobot", "g1_v21")
    with pytest.warns(UserWarning, match=r"the videos \['observation.images.cam_high'\] are not copied"):
        st = store.convert(src, tmp_path / "g1", progress=False)
    assert_store_matches(st, datasets.open(src))
    assert sum(np.diff(st.streams["action"].episodes)) == 35965


def test_convert_rlds_real_keeps_images_encoded(tmp_path):
    src = shared_data("rlds", "bridge_dataset", "1.0.0")
    st = store.convert(src, tmp_path / "bridge", progress=False)
    ds = datasets.open(src)
    assert_store_matches(st, ds)
    img = st.streams["steps/observation/image_0"]
    assert img.kind == "bytes" and img.encoding == "jpeg"
    first = img.episode_data(7)[3]
    assert first[:2] == b"\xff\xd8"  # still a JPEG
    np.testing.assert_array_equal(datasets.decode_image(first), ds[7]["steps/observation/image_0"].decode(3))


@pytest.mark.parametrize("task", ["lift", "SawyerLift"])
def test_convert_robosuite_real(tmp_path, task):
    src = shared_data("robosuite", task, "demo.hdf5")
    st = store.convert(src, tmp_path / task, progress=False)
    assert_store_matches(st, datasets.open(src))


def test_progress_bar_on_stderr(tmp_path, hdf5_dataset, capsys):
    store.convert(hdf5_dataset, tmp_path / "st", progress=True)
    cap = capsys.readouterr()
    assert "3/3" in cap.err and cap.out == ""


def test_corrupt_store_names_the_file(tmp_path, hdf5_dataset):
    st = store.convert(hdf5_dataset, tmp_path / "st", progress=False)
    f = os.path.join(st.path, st.manifest["streams"][0]["dir"], "data.npy")
    rel = os.path.relpath(f, st.path)
    with open(f, "r+b") as fh:  # flip one byte of the samples, keep the size
        fh.seek(-5, 2)
        b = fh.read(1)
        fh.seek(-5, 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    store.open_store(st.path, verify=False)  # sizes still match
    with pytest.raises(store.StoreError, match=f"{rel}.*SHA-256"):
        store.open_store(st.path)
    with pytest.raises(ValueError, match=rel):
        store.open_store(st.path, verify=False).verify()
    with open(f, "r+b") as fh:  # truncation is caught even without hashing
        fh.truncate(100)
    with pytest.raises(store.StoreError, match=f"{rel} has 100 bytes"):
        store.open_store(st.path, verify=False)
    os.remove(f)
    with pytest.raises(store.StoreError, match=f"{rel} named in manifest.json is missing"):
        store.open_store(st.path, verify=False)


def test_not_a_store(tmp_path):
    with pytest.raises(store.StoreError, match="does not exist"):
        store.open_store(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(store.StoreError, match="no manifest.json"):
        store.open_store(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text("{not json")
    with pytest.raises(store.StoreError, match="manifest.json is unreadable"):
        store.open_store(tmp_path / "empty")
    (tmp_path / "empty" / "manifest.json").write_text(json.dumps({"format": "x", "version": 9}))
    with pytest.raises(store.StoreError, match="format 'x' version 9"):
        store.open_store(tmp_path / "empty")


def test_bad_arguments(tmp_path, hdf5_dataset):
    with pytest.raises(FileNotFoundError, match="src: no dataset at"):
        store.convert(tmp_path / "missing", tmp_path / "st")
    store.convert(hdf5_dataset, tmp_path / "st", progress=False)
    with pytest.raises(FileExistsError, match="dst: .* already exists"):
        store.convert(hdf5_dataset, tmp_path / "st", progress=False)
    store.convert(hdf5_dataset, tmp_path / "st", progress=False, overwrite=True)
    with pytest.raises(ValueError, match="rate_hz must be > 0"):
        store.convert(hdf5_dataset, tmp_path / "st2", progress=False, rate_hz=0.0)


_REAL_EPISODE_ARRAYS = store._episode_arrays


def _interrupt_at_episode(monkeypatch, index):
    """Makes conversion raise KeyboardInterrupt when it reaches episode `index` (None: never); returns the
    list of episodes it was asked for, in order."""
    calls = []

    def failing(ep, schema, *args):
        calls.append(ep.index)
        if ep.index == index:
            raise KeyboardInterrupt("simulated interruption")
        return _REAL_EPISODE_ARRAYS(ep, schema, *args)

    monkeypatch.setattr(store, "_episode_arrays", failing)
    return calls


def test_interrupted_conversion_resumes_and_never_looks_complete(tmp_path, hdf5_dataset, monkeypatch):
    dst = tmp_path / "st"
    calls = _interrupt_at_episode(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        store.convert(hdf5_dataset, dst, progress=False, num_threads=1)
    assert not dst.exists()
    with pytest.raises(store.StoreError, match="unfinished conversion"):
        store.open_store(dst)
    calls = _interrupt_at_episode(monkeypatch, None)
    st = store.convert(hdf5_dataset, dst, progress=False, num_threads=1)
    assert calls == [2]  # episodes 0 and 1 came from the chunks written before the interruption
    assert_store_matches(st, datasets.open(hdf5_dataset))
    calls.clear()
    store.convert(hdf5_dataset, dst, progress=False, num_threads=1, overwrite=True)
    assert calls == [0, 1, 2]


def test_write_store_multi_rate(tmp_path, rng):
    eps = []
    for S in [1, 19, 111]:
        t_ns = np.cumsum(rng.integers(1_000_000, 30_000_000, S)).astype(np.int64) + 1_700_000_000_000_000_000
        eps.append({"joint": (rng.normal(size=(S, 7)).astype(np.float32), t_ns),
                    "flag": (rng.integers(0, 2, (S, 1)).astype(np.int8), np.sort(rng.random(S * 2))[:S]),
                    "cam": ([rng.bytes(int(k)) for k in rng.integers(0, 40, S)], np.arange(S) / 15.0)})
    st = store.write_store(tmp_path / "st", eps, encodings={"cam": "png"})
    assert st.streams["joint"].time_unit == "ns" and st.streams["joint"].timestamps.dtype == np.int64
    for e, ep in enumerate(eps):
        for name, (data, t) in ep.items():
            np.testing.assert_array_equal(st.streams[name].episode_timestamps(e), t)
            got = st.streams[name].episode_data(e)
            if isinstance(data, list):
                assert got == data
            else:
                np.testing.assert_array_equal(got, data)
    st.verify()


def test_demo_dataset(tmp_path):
    st = store.demo_dataset(tmp_path / "demo", episodes=3)
    assert set(st.streams) == {"joint_state", "ee_quat", "action", "gripper", "camera", "lidar"}
    for name, hz in [("joint_state", 100), ("ee_quat", 50), ("action", 10), ("camera", 15), ("lidar", 10)]:
        t = st.streams[name].episode_timestamps(1)
        assert abs(1.0 / np.median(np.diff(t)) - hz) < 1, name
    img = datasets.decode_image(st.streams["camera"].episode_data(2)[5])
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    q = st.streams["ee_quat"].data
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, rtol=1e-5)
    lidar = st.streams["lidar"]
    clouds = lidar.episode_data(1)
    assert lidar.kind == "pointcloud" and len(clouds) == len(lidar.episode_timestamps(1))
    assert all(c.dtype == np.float32 and c.shape[1] == 4 and 150 <= len(c) < 400 for c in clouds)
    g = store.DEMO_LIDAR_GRID  # the grid the demo voxelizes onto covers (almost) every point
    lo = np.asarray(g["origin"])
    hi = lo + np.asarray(g["grid_size"]) * g["voxel_size"]
    pts = np.concatenate(clouds)[:, :3]
    assert np.mean(np.all((pts >= lo) & (pts < hi), 1)) > 0.99
    assert "clouds float32[N, 4]" in store.describe(st)
    st.verify()


def test_point_cloud_store_round_trip(tmp_path, rng):
    eps = [{"pc": ([rng.normal(size=(int(n), 5)) for n in rng.integers(0, 30, S)], np.arange(S) / 10.0)}
           for S in (1, 7, 4)]
    st = store.write_store(tmp_path / "st", eps)
    s = st.streams["pc"]
    assert s.kind == "pointcloud" and s.dtype == np.float64 and s.shape == (5,)
    assert s.items[-1] == len(s.data) == sum(len(c) for ep in eps for c in ep["pc"][0])
    for e, ep in enumerate(eps):
        got = s.episode_data(e)
        assert len(got) == len(ep["pc"][0]) and all(np.array_equal(a, b) for a, b in zip(got, ep["pc"][0]))
    st.verify()
    reopened = store.open_store(st.path)
    assert reopened.streams["pc"].kind == "pointcloud"
    with pytest.raises(ValueError, match="point clouds must all be float arrays"):
        store.write_store(tmp_path / "bad", [{"pc": ([np.zeros((3, 4)), np.zeros((2, 5))], np.arange(2.0))}])


def test_cli_convert_and_inspect(tmp_path, hdf5_dataset, capsys):
    dst = tmp_path / "st"
    assert cli.main(["convert", str(hdf5_dataset), str(dst), "--rate-hz", "20", "-q"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert cli.main(["inspect", "--verify", str(dst)]) == 0
    out = capsys.readouterr().out
    for name in ["actions", "obs/agentview_image", "uint8[8, 6, 3]", "episodes   3", "20.00 Hz", "checksums  ok"]:
        assert name in out
    assert cli.main(["convert", str(hdf5_dataset), str(dst), "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["inspect", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_convert_rlds_raw_images(tmp_path):
    src = shared_data("rlds", "bridge_dataset", "1.0.0")
    st = store.convert(src, tmp_path / "raw", progress=False, images="raw")
    ds = datasets.open(src)
    img = st.streams["steps/observation/image_1"]
    assert img.kind == "tensor" and img.dtype == np.uint8 and img.shape == (64, 64, 3)
    assert st.manifest["streams"][8]["decoded_from"] == "jpeg"
    for e in (0, 31, 49):
        np.testing.assert_array_equal(img.episode_data(e), ds[e]["steps/observation/image_1"].decode())
    assert st.streams["steps/language_instruction"].kind == "bytes"  # text stays bytes
    with pytest.raises(ValueError, match="images must be 'encoded' or 'raw', got 'png'"):
        store.convert(src, tmp_path / "x", images="png")


class _FakeImages:
    """Duck-types a robocache.datasets image Stream: `n` 4x4 RGB frames of value `v`, or a uint8 tensor."""

    def __init__(self, kind="bytes", encoding="jpeg", n=2, v=0):
        self.name, self.kind, self.encoding, self.n, self.v = "cam", kind, encoding, n, v
        self.time_unit, self.time_source, self.rate_hz = "s", "recorded", 10.0
        self.timestamps = np.arange(n, dtype=np.float64)

    def __len__(self):
        return self.n

    def decode(self, index=None):
        assert self.kind == "bytes"
        frames = np.full((self.n, 4, 4, 3), self.v, np.uint8)
        return frames if index is None else frames[index]

    def numpy(self):
        return np.full((self.n, 4, 4, 3), self.v, np.uint8)


def test_convert_raw_images_check_every_episode(tmp_path, monkeypatch):
    # images="raw": each episode is decoded once; JPEG and PNG episodes may mix (both decode to the same
    # layout), a stream that is not images in a later episode is an error naming it, never a missing column.
    class Episode:
        def __init__(self, cam):
            self.cam, self.videos, self.metadata = cam, {}, {}

        def keys(self):
            return ["cam"]

        def __getitem__(self, key):
            return self.cam

    class Dataset(list):
        format = "fake"

    def convert_with(*cams):
        monkeypatch.setattr(datasets, "open", lambda src, **kw: Dataset(Episode(c) for c in cams))
        (tmp_path / "src").mkdir(exist_ok=True)
        dst = tmp_path / f"dst{len(list(tmp_path.iterdir()))}"
        return store.convert(tmp_path / "src", dst, progress=False, images="raw", num_threads=1)

    st = convert_with(_FakeImages("bytes", "jpeg", 2, 1), _FakeImages("bytes", "png", 3, 2))
    assert st.manifest["streams"][0]["decoded_from"] == "jpeg"
    np.testing.assert_array_equal(st.streams["cam"].episode_data(1), np.full((3, 4, 4, 3), 2, np.uint8))
    with pytest.raises(ValueError, match="stream 'cam' of episode 1 is a tensor stream \\(encoding ''\\) but "
                                         "episode 0 has jpeg images, stored decoded"):
        convert_with(_FakeImages("bytes", "jpeg"), _FakeImages("tensor", ""))
    with pytest.raises(ValueError, match="stream 'cam' has no images in this episode"):
        convert_with(_FakeImages("bytes", "jpeg"), _FakeImages("bytes", "png", 0))


def test_episodes_must_share_a_schema(tmp_path, rng):
    eps = [{"a": (rng.normal(size=(4, 3)), np.arange(4.0))}, {"a": (rng.normal(size=(5, 2)), np.arange(5.0))}]
    with pytest.raises(ValueError, match="stream 'a' of episode 1 has shape \\[2\\] but episode 0 has \\[3\\]"):
        store.write_store(tmp_path / "st", eps)
    eps[1] = {"b": (rng.normal(size=(5, 3)), np.arange(5.0))}
    with pytest.raises(ValueError, match="episode 1 has streams \\['b'\\] but episode 0 has \\['a'\\]"):
        store.write_store(tmp_path / "st", eps)
    assert not (tmp_path / "st").exists()


def test_convert_calvin_generated(tmp_path):
    from test_datasets_calvin import write_calvin

    if not datasets.readers()["calvin"]:
        pytest.skip("CALVIN reader not built")
    write_calvin(tmp_path / "calvin")
    st = store.convert(tmp_path / "calvin", tmp_path / "st", progress=False, rate_hz=30.0)
    ds = datasets.open(tmp_path / "calvin", rate_hz=30.0)
    assert_store_matches(st, ds)
    assert st.streams["rgb_static"].shape == (200, 200, 3)
    assert st.metadata(2)["language_annotations"] == [list(w) for w in ds[2].metadata["language_annotations"]]


def test_resume_starts_over_when_the_source_changed(tmp_path, hdf5_dataset, monkeypatch):
    dst = tmp_path / "st"
    calls = _interrupt_at_episode(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt) as info:
        store.convert(hdf5_dataset, dst, progress=False, num_threads=1)
    del info  # the traceback holds the reader, which holds the HDF5 file (and its lock) open
    gc.collect()
    with h5py.File(hdf5_dataset, "r+") as f:  # the source changes before the conversion is resumed
        f["data/demo_0/actions"][0, 0] = 123.0
    os.utime(hdf5_dataset, ns=(1, 1))
    calls = _interrupt_at_episode(monkeypatch, None)
    st = store.convert(hdf5_dataset, dst, progress=False, num_threads=1)
    assert calls == [0, 1, 2]
    assert st.streams["actions"].episode_data(0)[0, 0] == 123.0
    assert_store_matches(st, datasets.open(hdf5_dataset))


def test_corrupt_source_is_reported_and_leaves_no_store(tmp_path):
    import shutil

    src = shared_data("rlds", "bridge_dataset", "1.0.0")
    copy = tmp_path / "bridge"
    shutil.copytree(src, copy)
    shard = sorted(copy.glob("*train.tfrecord*"))[0]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(OSError, match=shard.name):
        store.convert(copy, tmp_path / "st", progress=False)
    assert not (tmp_path / "st").exists()
    with pytest.raises(store.StoreError):
        store.open_store(tmp_path / "st")


def test_convert_lerobot_videos_skip_warns_and_raw_stores_every_frame(tmp_path):
    """A LeRobot v3.0 dataset whose camera is an H.264 video (three episodes in one file): the default leaves
    the video out with a warning; videos='raw' stores every frame decoded, equal to the reader's frames and
    carrying the right frame numbers, and the loader serves them held onto its timeline."""
    import shutil

    if shutil.which("ffmpeg") is None or not datasets.readers()["video_decode"]:
        pytest.skip("needs the ffmpeg tool and a build with video decoding")
    pytest.importorskip("pyarrow")
    from lerobot_v3_writer import synthetic_video_dataset
    from test_datasets_video import frame_number

    n, fps, key = 40, 30, "observation.images.front"
    src = synthetic_video_dataset(tmp_path / "syn", n, fps, key)
    with pytest.warns(UserWarning, match=r"the videos \['observation.images.front'\] are not copied"):
        skipped = store.convert(src, tmp_path / "skip", progress=False)
    assert key not in skipped.streams
    with pytest.raises(ValueError, match="videos must be 'skip' or 'raw', got 'mp4'"):
        store.convert(src, tmp_path / "bad", progress=False, videos="mp4")

    st = store.convert(src, tmp_path / "raw", progress=False, videos="raw")
    s = st.streams[key]
    assert s.kind == "tensor" and s.dtype == np.uint8 and tuple(s.shape) == (64, 96, 3)
    ds = datasets.open(src)
    for e in range(3):
        frames = s.episode_data(e)
        np.testing.assert_array_equal(frames, ds[e].videos[key].frames())
        assert [frame_number(f) for f in frames] == list(range(e * n, (e + 1) * n))
        np.testing.assert_allclose(s.episode_timestamps(e), np.arange(n) / fps, atol=1e-9)

    from robocache import Loader

    # the frame of each target's grid step, by "nearest" and by "hold" (targets on the frame grid may sit an
    # ulp before a frame's time: hold's default tolerance_s takes that frame, not the one before)
    for method in ("nearest", "hold"):
        batch = next(iter(Loader(st, batch_size=3, window=0.5, target_hz=fps, streams=["observation.state", key],
                                 methods={key: method}, device="cpu", shuffle=False)))
        got = batch[key].numpy()  # [B, T, H, W, 3]
        assert got.shape == (3, 15, 64, 96, 3)
        for b in range(3):
            e, t0 = int(batch["episode"][b]), float(batch["start_time"][b])
            want = [e * n + int(np.rint((t0 + i / fps) * fps)) for i in range(15)]
            assert [frame_number(f) for f in got[b]] == want, method
