"""LeRobot v2.1 and v3.0 readers, checked against pyarrow on the real G1 dataset (v3.0: the G1 dataset
rewritten in the v3.0 layout by lerobot_v3_writer, several episodes per file, several files and chunks)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from robocache import datasets

pq = pytest.importorskip("pyarrow.parquet")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
G1 = DATA / "lerobot" / "g1_v21"

pytestmark = pytest.mark.skipif(not datasets.readers()["lerobot"], reason="LeRobot reader not built")
needs_g1 = pytest.mark.skipif(not G1.exists(), reason=f"{G1} not present")


def assert_streams_match_table(ep, table, what):
    """Every column of a G1 parquet table is a stream of `ep` with the same values, on the table's
    recorded timestamps."""
    assert sorted(ep.keys()) == sorted(table.column_names)
    for name in table.column_names:
        col = table.column(name)
        want = np.stack(col.to_pylist()).astype(np.float32) if name in ("observation.state", "action") \
            else col.to_numpy()
        got = ep[name].numpy()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=f"{what} stream {name}")
    t = table.column("timestamp").to_numpy().astype(np.float64)
    for s in ep.streams.values():
        np.testing.assert_array_equal(s.timestamps, t)
        assert s.time_source == "recorded"


@needs_g1
def test_g1_matches_pyarrow():
    ds = datasets.open(G1)
    assert ds.format == "lerobot" and len(ds) == 100
    episodes = [json.loads(line) for line in (G1 / "meta" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    total = 0
    for ep, meta in zip(ds, episodes):
        i = meta["episode_index"]
        f = G1 / "data" / "chunk-000" / f"episode_{i:06d}.parquet"
        assert_streams_match_table(ep, pq.read_table(f), f"episode {i}")
        assert len(ep["action"]) == meta["length"]
        assert ep.language_instruction == meta["tasks"][0] == ep.metadata["task"]
        assert ep.metadata["robot_type"] == "Unitree_G1_Inspire"
        assert ep.metadata["source_file"] == str(f)
        video = ep.metadata["extra"]["video/observation.images.cam_high"]
        assert video.endswith(f"episode_{i:06d}.mp4" + ("" if i in (1, 2) else " (missing)"))
        total += len(ep["action"])
    assert total == 35965
    t = ds[5]["action"].torch()
    assert tuple(t.shape) == (episodes[5]["length"], 26)


@pytest.fixture
def g1_copy(tmp_path):
    if not G1.exists():
        pytest.skip(f"{G1} not present")
    dst = tmp_path / "g1"
    shutil.copytree(G1 / "meta", dst / "meta")
    (dst / "data" / "chunk-000").mkdir(parents=True)
    for i in range(3):
        shutil.copy(G1 / "data" / "chunk-000" / f"episode_{i:06d}.parquet", dst / "data" / "chunk-000")
    lines = (dst / "meta" / "episodes.jsonl").read_text().splitlines()[:3]
    (dst / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_split_and_rate(g1_copy):
    info = json.loads((g1_copy / "meta" / "info.json").read_text())
    info["splits"] = {"train": "0:2", "val": "2:3"}
    (g1_copy / "meta" / "info.json").write_text(json.dumps(info))
    assert len(datasets.open(g1_copy, split="train")) == 2
    val = datasets.open(g1_copy, split="val")
    assert len(val) == 1 and val[0].metadata["source_key"] == "episode_index 2"
    with pytest.raises(ValueError, match="split 'test' is not in"):
        datasets.open(g1_copy, split="test")


def test_missing_and_corrupt_parquet(g1_copy):
    f = g1_copy / "data" / "chunk-000" / "episode_000001.parquet"
    raw = f.read_bytes()
    f.write_bytes(raw[: len(raw) // 2])
    ds = datasets.open(g1_copy)
    ds[0]
    with pytest.raises(OSError, match=r"episode_000001.parquet: (not a readable parquet file|cannot read|corrupt parquet)"):
        ds[1]
    f.unlink()
    with pytest.raises(OSError, match=r"episode_000001.parquet: missing parquet file of episode 1 \(listed in .*episodes.jsonl\)"):
        datasets.open(g1_copy)


def test_length_mismatch_and_version(g1_copy):
    path = g1_copy / "meta" / "episodes.jsonl"
    lines = path.read_text().splitlines()
    e = json.loads(lines[2])
    e["length"] += 1
    lines[2] = json.dumps(e)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OSError, match=rf"episode_000002.parquet: holds {e['length'] - 1} frames, meta/episodes.jsonl says {e['length']}"):
        datasets.open(g1_copy)[2]
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(OSError, match=r"episodes.jsonl: line 4: invalid JSON"):
        datasets.open(g1_copy)
    info = json.loads((g1_copy / "meta" / "info.json").read_text())
    info["codebase_version"] = "v4.0"
    (g1_copy / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(OSError, match=r"info.json: codebase_version 'v4.0' is not supported; this reader reads "
                                      r"LeRobot v2.0, v2.1 and v3.0"):
        datasets.open(g1_copy)


def test_import_then_hashlib_does_not_crash():
    """pyarrow's libparquet exports a bundled OpenSSL; linked into the module it hijacked libcrypto's symbols
    and `import robocache; import hashlib` crashed. The LeRobot reader is now a dlopen'ed plugin."""
    import subprocess
    import sys

    code = ("import robocache, hashlib, ssl; from robocache import datasets; "
            f"ds = datasets.open({str(G1)!r}) if {G1.exists()} else None; "
            "import hashlib as h; print(h.sha256(b'x').hexdigest()[:8])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "2d711642"


# ------------------------------------------------------------------------------------------------ v3.0

CAM = "observation.images.cam_high"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command-line tool is not installed")


def v21_table(i):
    return pq.read_table(G1 / "data" / "chunk-000" / f"episode_{i:06d}.parquet")


def assert_episode_matches_v21(ep, i, meta):
    assert_streams_match_table(ep, v21_table(i), f"episode {i}")
    assert ep.language_instruction == meta["tasks"][0] == ep.metadata["task"]
    assert ep.metadata["source_key"] == f"episode_index {i}"


@pytest.fixture(scope="module")
def g1_v3(tmp_path_factory):
    if not G1.exists():
        pytest.skip(f"{G1} not present")
    from lerobot_v3_writer import write_v3

    dst = tmp_path_factory.mktemp("g1_v3")
    # 100 episodes: 12 data files of 9 (the last 1) over 3 chunk directories, 3 episode-metadata files,
    # row groups of 100 rows (episodes straddle them); episodes 1 and 2 share one video file.
    rows = write_v3(G1, dst, episodes_per_file=9, files_per_chunk=4, episodes_per_meta_file=40, row_group_size=100,
                    with_videos=shutil.which("ffmpeg") is not None)
    return dst, rows


@needs_g1
def test_v3_every_stream_matches_pyarrow_on_v21(g1_v3):
    dst, rows = g1_v3
    assert len(list((dst / "data").glob("chunk-*/file-*.parquet"))) == 12
    assert len(list((dst / "data").glob("chunk-*"))) == 3
    assert len(list((dst / "meta" / "episodes").glob("chunk-*/file-*.parquet"))) == 3
    ds = datasets.open(dst)
    assert ds.format == "lerobot" and len(ds) == 100
    episodes = [json.loads(line) for line in (G1 / "meta" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    total = 0
    for ep, meta in zip(ds, episodes):
        i = meta["episode_index"]
        assert_episode_matches_v21(ep, i, meta)
        r = rows[i]
        assert ep.metadata["source_file"] == str(dst / f"data/chunk-{r['data/chunk_index']:03d}/file-{r['data/file_index']:03d}.parquet")
        total += len(ep["action"])
    assert total == 35965
    # random access, out of order, and from several threads (the data-file cache is shared)
    from concurrent.futures import ThreadPoolExecutor

    order = [57, 3, 99, 0, 58, 12, 57, 98]
    with ThreadPoolExecutor(4) as pool:
        eps = list(pool.map(lambda i: ds[i], order))
    for i, ep in zip(order, eps):
        assert_episode_matches_v21(ep, i, episodes[i])
    val = datasets.open(dst, split="train")
    assert len(val) == 100


@needs_g1
@needs_ffmpeg
def test_v3_video_offsets_in_a_shared_file(g1_v3, rng):
    """Episodes 1 and 2 share one AV1 file; episode 2 starts at from_timestamp = 13.1 s. Its frames at the
    parquet's timestamps must be PyAV's frames of the original v2.1 file of episode 2."""
    av = pytest.importorskip("av")
    if not datasets.readers()["video_decode"]:
        pytest.skip("built without video decoding")
    dst, rows = g1_v3
    ds = datasets.open(dst)
    shared = dst / "videos" / CAM / "chunk-000" / "file-000.mp4"
    for i in (1, 2):
        ep = ds[i]
        video = ep.videos[CAM]
        assert video.path == str(shared) and video.exists
        assert video.from_timestamp == rows[i][f"videos/{CAM}/from_timestamp"]
        assert video.to_timestamp == rows[i][f"videos/{CAM}/to_timestamp"]
        ts = v21_table(i).column("timestamp").to_numpy().astype(np.float64)
        np.testing.assert_allclose(video.timestamps, ts, rtol=0, atol=1e-5)  # only this episode's frames
        with av.open(str(G1 / "videos" / "chunk-000" / CAM / f"episode_{i:06d}.mp4")) as c:
            want = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
        idx = np.concatenate([rng.permutation(len(ts))[:40], [0, len(ts) - 1]])
        np.testing.assert_array_equal(video.frames_at(ts[idx]), want[idx])
        assert ep["action"].numpy().shape == (len(ts), 26)
    assert rows[2][f"videos/{CAM}/from_timestamp"] == pytest.approx(13.1)
    # the first frame of episode 2 is not episode 1's last one, and episode 1 ends before episode 2 starts
    with pytest.raises(OSError, match=r"no frame within tolerance_s=0.0001 of t=13.1 s"):
        ds[1].videos[CAM].frames_at([13.1])
    # every other episode names a file that is not there: an error for that video only
    ep = ds[5]
    missing = str(dst / "videos" / CAM / "chunk-001" / "file-002.mp4")
    assert ep.videos[CAM].path == missing and not ep.videos[CAM].exists
    with pytest.raises(OSError, match=rf"video '{CAM}' of episode 5: {missing}: video file missing"):
        ep.videos[CAM].frames_at([0.0])
    assert_episode_matches_v21(ep, 5, {"tasks": [ep.language_instruction]})


@pytest.fixture
def small_v3(tmp_path):
    if not G1.exists():
        pytest.skip(f"{G1} not present")
    from lerobot_v3_writer import write_v3

    dst = tmp_path / "v3"
    write_v3(G1, dst, episodes=list(range(6)), episodes_per_file=4, files_per_chunk=2, episodes_per_meta_file=4,
             with_videos=False)
    return dst


def test_v3_bad_metadata(small_v3):
    ds = datasets.open(small_v3)
    assert len(ds) == 6 and "observation.images.cam_high" not in ds[0].videos
    meta = small_v3 / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    t = pq.read_table(meta)
    # a length that disagrees with dataset_to_index - dataset_from_index
    lengths = t.column("length").to_pylist()
    lengths[2] += 1
    pq.write_table(t.set_column(t.schema.get_field_index("length"), "length", pa.array(lengths, pa.int64())), meta)
    with pytest.raises(OSError, match=r"file-000.parquet: episode 2: dataset_to_index - dataset_from_index = \d+ but length = \d+"):
        datasets.open(small_v3)
    # ... and one that agrees with the index range but not with the data file's rows
    to = t.column("dataset_to_index").to_pylist()
    to[2] += 1
    t2 = t.set_column(t.schema.get_field_index("length"), "length", pa.array(lengths, pa.int64()))
    pq.write_table(t2.set_column(t2.schema.get_field_index("dataset_to_index"), "dataset_to_index", pa.array(to, pa.int64())), meta)
    ds = datasets.open(small_v3)
    data0 = small_v3 / "data" / "chunk-000" / "file-000.parquet"
    with pytest.raises(OSError, match=rf"{data0}: holds {lengths[2] - 1} frames of episode 2, meta/episodes says {lengths[2]}"):
        ds[2]
    ds[1]  # the others still read
    pq.write_table(t, meta)
    # a missing data file is reported when the dataset is opened
    data1 = small_v3 / "data" / "chunk-000" / "file-001.parquet"
    data1.rename(data1.with_suffix(".bak"))
    with pytest.raises(OSError, match=rf"{data1}: missing data file of episode 4 \(named in .*file-001.parquet\)"):
        datasets.open(small_v3)
    data1.with_suffix(".bak").rename(data1)
    # a metadata column missing
    pq.write_table(t.drop_columns(["dataset_from_index"]), meta)
    with pytest.raises(OSError, match=r"file-000.parquet: has no column 'dataset_from_index'"):
        datasets.open(small_v3)
    pq.write_table(t, meta)
    # rows of one episode split in two places of a data file
    d = pq.read_table(data0)
    ep = d.column("episode_index").to_numpy()
    order = np.concatenate([np.nonzero(ep == 0)[0][:10], np.nonzero(ep == 1)[0], np.nonzero(ep == 0)[0][10:],
                            np.nonzero(ep > 1)[0]])
    pq.write_table(d.take(pa.array(order)), data0)
    with pytest.raises(OSError, match=r"file-000.parquet: the rows of episode 0 are not contiguous"):
        datasets.open(small_v3)[0]
    # episodes rows whose `index` disagrees with dataset_from_index
    idx = d.column("index").to_numpy() + 1000
    pq.write_table(d.set_column(d.schema.get_field_index("index"), "index", pa.array(idx)), data0)
    with pytest.raises(OSError, match=r"file-000.parquet: episode 0 starts at index 1000, meta/episodes says dataset_from_index 0"):
        datasets.open(small_v3)[0]
    pq.write_table(d, data0)
    # no episode metadata at all
    shutil.rmtree(small_v3 / "meta" / "episodes")
    with pytest.raises(OSError, match=r"meta/episodes: no episode metadata"):
        datasets.open(small_v3)


@needs_ffmpeg
def test_v3_synthetic_video_keyframes_inside_episodes(tmp_path):
    """Three episodes back to back in one H.264 file (B-frames, a keyframe every 25 frames, so episodes
    start mid-GOP): each episode's frames, found through from_timestamp, carry the right global number."""
    if not datasets.readers()["video_decode"]:
        pytest.skip("built without video decoding")
    from test_datasets_video import frame_number, write_video

    from lerobot_v3_writer import synthetic_video_dataset

    n, fps, key = 40, 30, "observation.images.front"
    dst = synthetic_video_dataset(tmp_path / "syn", n, fps, key)
    rng = np.random.default_rng(3)
    ds = datasets.open(dst)
    for e in (2, 0, 1):
        ep = ds[e]
        assert ep.language_instruction == "abc"[e]
        v = ep.videos[key]
        ts = ep["timestamp"].numpy().astype(np.float64)
        np.testing.assert_allclose(v.timestamps, np.arange(n) / fps, atol=1e-9)
        order = rng.permutation(n)
        frames = v.frames_at(ts[order])
        assert [frame_number(f) for f in frames] == list(e * n + order)
    # the last frame of episode 0 and the first of episode 1 are neighbours in the file, not in an episode
    with pytest.raises(OSError, match=r"of episode 0: .*no frame within tolerance_s=0.0001 of t=1.3333"):
        ds[0].videos[key].frames_at([n / fps])


def test_v3_stale_data_file_index_from_lerobot_converter(small_v3):
    """lerobot 0.4.x's v2.1 -> v3.0 converter names the previous data file for the first episode of each new
    file (huggingface/lerobot#2401); the reader finds the rows in the next file."""
    meta = small_v3 / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    t = pq.read_table(meta)
    files = t.column("data/file_index").to_pylist()
    assert files == [0, 0, 0, 0]
    meta2 = small_v3 / "meta" / "episodes" / "chunk-000" / "file-001.parquet"
    t2 = pq.read_table(meta2)
    assert t2.column("episode_index").to_pylist() == [4, 5] and t2.column("data/file_index").to_pylist() == [1, 1]
    stale = t2.set_column(t2.schema.get_field_index("data/file_index"), "data/file_index", pa.array([0, 1], pa.int64()))
    pq.write_table(stale, meta2)
    ds = datasets.open(small_v3)
    ep = ds[4]
    assert ep.metadata["source_file"] == str(small_v3 / "data" / "chunk-000" / "file-001.parquet")
    assert_episode_matches_v21(ep, 4, {"tasks": [ep.language_instruction]})
    # an episode in neither file is still an error naming the file
    bad = t2.set_column(t2.schema.get_field_index("episode_index"), "episode_index", pa.array([4, 77], pa.int64()))
    bad = bad.set_column(bad.schema.get_field_index("dataset_from_index"), "dataset_from_index",
                         pa.array([t2.column("dataset_from_index")[0].as_py(), 10**6], pa.int64()))
    bad = bad.set_column(bad.schema.get_field_index("dataset_to_index"), "dataset_to_index",
                         pa.array([t2.column("dataset_to_index")[0].as_py(), 10**6 + t2.column("length")[1].as_py()], pa.int64()))
    pq.write_table(bad, meta2)
    with pytest.raises(OSError, match=r"file-001.parquet: holds no rows of episode 77"):
        datasets.open(small_v3)[5]
