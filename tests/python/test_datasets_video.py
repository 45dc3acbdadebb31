"""Video decoding (FFmpeg): frames at requested timestamps, checked against PyAV (an independent FFmpeg
build, decoding the same files) on synthetic AV1 / H.264 videos whose frames carry their own number, and on
the real AV1 videos of the G1 LeRobot dataset. Videos are written with the ffmpeg command-line tool."""

import shutil
import subprocess

import numpy as np
import pytest

from robocache import _C, datasets

from conftest import DATA

pytestmark = pytest.mark.skipif(not datasets.readers()["video_decode"], reason="built without video decoding")
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg command-line tool is not installed")
G1 = DATA / "lerobot" / "g1_v21"
G1_VIDEO = G1 / "videos" / "chunk-000" / "observation.images.cam_high"

W, H = 96, 64
BIT_W = W // 8


def pattern(i: int, rng_seed: int = 0) -> np.ndarray:
    """Frame i: its number in binary as 8 black/white blocks on top (read back by `frame_number`), and a
    non-uniform picture below that changes with i."""
    img = np.full((H, W, 3), 40, np.uint8)
    for b in range(8):
        if (i >> b) & 1:
            img[:32, b * BIT_W:(b + 1) * BIT_W] = 220
    rng = np.random.default_rng(rng_seed + i)
    img[32:] = rng.integers(0, 256, (H - 32, W, 3), dtype=np.uint8) // 4 + np.uint8((i * 37) % 192)
    return img


def frame_number(img: np.ndarray) -> int:
    return sum(1 << b for b in range(8) if img[4:28, b * BIT_W + 2:(b + 1) * BIT_W - 2].mean() > 128)


CODECS = {
    # name: ffmpeg arguments; keyframe intervals that do not divide the frame count, B-frames for H.264
    "h264": ["-c:v", "libx264", "-g", "25", "-bf", "3", "-crf", "12"],
    "av1-aom": ["-c:v", "libaom-av1", "-g", "20", "-crf", "20", "-cpu-used", "8"],
    "av1-svt": ["-c:v", "libsvtav1", "-g", "24", "-crf", "25", "-preset", "12"],
}


def encoders():
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return out


def write_video(path, n, codec, fps=30, first=0, extra=()):
    enc = {"h264": "libx264", "av1-aom": "libaom-av1", "av1-svt": "libsvtav1"}[codec]
    if enc not in encoders():
        pytest.skip(f"ffmpeg has no {enc} encoder")
    raw = np.stack([pattern(first + i) for i in range(n)]).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}", "-r", str(fps),
           "-i", "-", *CODECS[codec], "-pix_fmt", "yuv420p", *extra, str(path)]
    r = subprocess.run(cmd, input=raw, capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return path


def pyav_frames(path):
    """(pts seconds, rgb24 frames) of every frame, decoded by PyAV."""
    av = pytest.importorskip("av")
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(float(f.pts * s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    frames.sort(key=lambda x: x[0])
    return np.array([t for t, _ in frames]), np.stack([f for _, f in frames])


def counters():
    return dict(_C.video_decoder_counters())


def delta(before):
    now = counters()
    return {k: now[k] - before[k] for k in now}


@needs_ffmpeg
@pytest.mark.parametrize("codec", list(CODECS))
def test_frames_at_random_times_match_pyav(tmp_path, rng, codec):
    n = 111
    path = write_video(tmp_path / f"{codec}.mp4", n, codec)
    want_t, want = pyav_frames(path)
    v = datasets.open_video(path)
    assert len(v) == n
    np.testing.assert_allclose(v.timestamps, want_t, rtol=0, atol=1e-9)
    # Random order with repeats, each time jittered inside the tolerance.
    idx = np.concatenate([rng.integers(0, n, 40), [0, n - 1, n - 1, 0, 57]])
    t = want_t[idx] + rng.uniform(-4e-5, 4e-5, idx.size)
    got = v.frames_at(t, tolerance_s=1e-4)
    assert got.shape == (idx.size, H, W, 3) and got.dtype == np.uint8
    # Same decoder algorithm family (FFmpeg) on both sides: the RGB must be identical.
    np.testing.assert_array_equal(got, want[idx])
    # And the frame is the right one: the number it carries.
    assert [frame_number(f) for f in got] == list(idx)
    # All frames, in order.
    everything = v.frames()
    assert [frame_number(f) for f in everything] == list(range(n))


@needs_ffmpeg
def test_tolerance_and_bad_times(tmp_path):
    path = write_video(tmp_path / "v.mp4", 30, "h264")
    v = datasets.open_video(path, name="cam")
    t = v.timestamps
    with pytest.raises(OSError, match=r"video 'cam': .*v\.mp4: no frame within tolerance_s=0\.0001 of t=0\.05 s "
                                      r"\(nearest frame at 0\.0666\d+ s; 30 frames from 0 to 0\.9666\d+ s\)"):
        v.frames_at([0.0, 0.05])
    assert frame_number(v.frames_at(0.05, tolerance_s=0.02)[0]) == 2  # nearest: 1/15 s is closer than 1/30 s
    with pytest.raises(OSError, match=r"no frame within tolerance_s=0\.0001 of t=1\.5 s"):
        v.frames_at([1.5])
    with pytest.raises(OSError, match=r"of t=-0\.2 s"):
        v.frames_at([-0.2])
    with pytest.raises(ValueError, match=r"timestamps\[1\] must be finite, got nan"):
        v.frames_at([0.0, float("nan")])
    with pytest.raises(ValueError, match=r"tolerance_s must be a finite number >= 0, got -1"):
        v.frames_at([0.0], tolerance_s=-1)
    with pytest.raises(ValueError, match=r"1-D array"):
        v.frames_at(np.zeros((2, 2)))
    assert v.frames_at([]).shape == (0, H, W, 3)
    np.testing.assert_array_equal(v.frames([3, 1])[1], v.frames_at(t[1])[0])


@needs_ffmpeg
@pytest.mark.parametrize("codec", ["h264", "av1-aom"])
def test_seeks_instead_of_decoding_from_the_start(tmp_path, codec):
    """A frame late in the file costs one seek and at most a keyframe interval of decoding; frames asked
    one after another keep the decoder going (no seek); a frame behind the decoder seeks back."""
    n, gop = 200, {"h264": 25, "av1-aom": 20}[codec]
    path = write_video(tmp_path / "v.mp4", n, codec)
    v = datasets.open_video(path)
    t = v.timestamps
    v.frames_at(t[5])  # opens the file, builds the index
    c = counters()
    assert frame_number(v.frames_at(t[190])[0]) == 190
    d = delta(c)
    assert d["seeks"] == 1 and d["frames_decoded"] <= gop + 4, d
    c = counters()
    for i in range(191, 200):
        assert frame_number(v.frames_at(t[i])[0]) == i
    d = delta(c)
    assert d["seeks"] == 0 and d["frames_decoded"] == 9, d
    c = counters()
    assert frame_number(v.frames_at(t[100])[0]) == 100
    d = delta(c)
    assert d["seeks"] == 1 and d["frames_decoded"] <= gop + 4, d
    c = counters()
    v.frames()
    d = delta(c)
    assert d["seeks"] == 1 and d["frames_decoded"] == n, d


@needs_ffmpeg
def test_threads_decode_the_same_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    path = write_video(tmp_path / "v.mp4", 90, "h264")
    v = datasets.open_video(path)
    t = v.timestamps
    rng = np.random.default_rng(7)
    jobs = [rng.integers(0, 90, 12) for _ in range(24)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda idx: v.frames_at(t[idx]), jobs))
    for idx, got in zip(jobs, results):
        assert [frame_number(f) for f in got] == list(idx)


@needs_ffmpeg
def test_missing_truncated_and_corrupt_files(tmp_path):
    good = write_video(tmp_path / "good.mp4", 60, "h264")
    with pytest.raises(OSError, match=r"video: .*nothere\.mp4: video file missing"):
        datasets.open_video(tmp_path / "nothere.mp4")
    raw = good.read_bytes()
    # moov at the end (ffmpeg's default): half a file has no index at all
    half = tmp_path / "half.mp4"
    half.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(OSError, match=r"half\.mp4: cannot open as a video container: .*moov atom not found"):
        datasets.open_video(half).timestamps
    # moov first (+faststart): the index survives, the frames do not
    fast = tmp_path / "fast.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(good), "-c", "copy", "-movflags", "+faststart", str(fast)],
                   check=True)
    fraw = fast.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(fraw[: int(len(fraw) * 0.6)])
    with pytest.raises(OSError, match=rf"cut\.mp4: truncated: the container's index runs to byte {len(fraw)} but "
                                      rf"the file has {int(len(fraw) * 0.6)} bytes"):
        datasets.open_video(cut).frames_at([0.0])
    # garbage in the middle of the coded frames
    garbled = tmp_path / "garbled.mp4"
    b = bytearray(fraw)
    b[len(b) // 2: len(b) // 2 + 400] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    garbled.write_bytes(bytes(b))
    v = datasets.open_video(garbled, name="cam")
    with pytest.raises(OSError, match=r"video 'cam': .*garbled\.mp4: .*(cannot decode the packet at byte offset \d+|"
                                      r"decoded with errors)"):
        v.frames()
    # not a video at all
    text = tmp_path / "text.mp4"
    text.write_bytes(b"not a video" * 100)
    with pytest.raises(OSError, match=r"text\.mp4: cannot open as a video container"):
        datasets.open_video(text).timestamps
    # the good file still decodes after all that (the pool dropped the failed readers)
    assert [frame_number(f) for f in datasets.open_video(good).frames_at([0.0, 1.0])] == [0, 30]


@pytest.mark.skipif(not (G1_VIDEO / "episode_000001.mp4").exists(), reason=f"{G1_VIDEO} not present")
def test_g1_av1_frames_match_pyav(rng):
    """The real AV1 camera of the G1 dataset: frames at the parquet's timestamps, as LeRobot queries them,
    equal PyAV's decode of the same file; the missing videos of other episodes are an error for that key
    only."""
    pq = pytest.importorskip("pyarrow.parquet")
    ds = datasets.open(G1)
    for i in (1, 2):
        ep = ds[i]
        video = ep.videos["observation.images.cam_high"]
        assert video.exists and video.codec == "av1" and video.fps == 30
        want_t, want = pyav_frames(video.path)
        np.testing.assert_allclose(video.timestamps, want_t, rtol=0, atol=1e-9)
        ts = pq.read_table(G1 / "data" / "chunk-000" / f"episode_{i:06d}.parquet").column("timestamp").to_numpy()
        assert len(video) == len(ts) == len(ep["action"])
        idx = rng.permutation(len(ts))[:60]
        got = video.frames_at(ts[idx])
        np.testing.assert_array_equal(got, want[idx])
        assert got.shape[1:] == (480, 640, 3)
    ep = ds[0]
    video = ep.videos["observation.images.cam_high"]
    assert not video.exists
    missing = str(G1_VIDEO / "episode_000000.mp4")
    with pytest.raises(OSError, match=rf"video 'observation.images.cam_high' of episode 0: {missing}: video file missing"):
        video.frames_at([0.0])
    with pytest.raises(OSError, match="video file missing"):
        video.timestamps
    assert ep["action"].numpy().shape == (479, 26)  # the rest of the episode reads fine
    with pytest.raises(KeyError, match=r"'observation.images.cam_high' is a video of episode 0: use episode.videos"):
        ep["observation.images.cam_high"]
