"""RLDS / TFDS reader, checked against an independent reader (the `tfrecord` PyPI package, which parses
tf.train.Example with its own protobuf-generated module, and the `crc32c` package for the framing)."""

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import robocache
from robocache import datasets

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
BRIDGE = DATA / "rlds" / "bridge_dataset" / "1.0.0"
SHARD = "bridge_dataset-train.tfrecord-00000-of-00001"

pytestmark = pytest.mark.skipif(not datasets.readers()["rlds"], reason="RLDS reader not built")
needs_bridge = pytest.mark.skipif(not BRIDGE.exists(), reason=f"{BRIDGE} not present")

tfrecord = pytest.importorskip("tfrecord")
crc32c = pytest.importorskip("crc32c")


def masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record_offsets(path: Path):
    """(offset, length) of every record, checking both masked CRCs with the crc32c package."""
    raw = path.read_bytes()
    out, pos = [], 0
    while pos < len(raw):
        (length,) = struct.unpack_from("<Q", raw, pos)
        (len_crc,) = struct.unpack_from("<I", raw, pos + 8)
        assert len_crc == masked_crc(raw[pos:pos + 8])
        data = raw[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack_from("<I", raw, pos + 12 + length)
        assert data_crc == masked_crc(data)
        out.append((pos, length))
        pos += 12 + length + 4
    return out


def reference_episodes(shard: Path):
    return list(tfrecord.tfrecord_loader(str(shard), None))


@needs_bridge
def test_bridge_matches_tfrecord_package():
    ds = datasets.open(BRIDGE, split="train")
    assert ds.format == "rlds"
    refs = reference_episodes(BRIDGE / SHARD)
    assert len(ds) == len(refs) == 25
    features = json.loads((BRIDGE / "features.json").read_text())
    steps = features["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]
    offsets = record_offsets(BRIDGE / SHARD)
    for i, (ep, ref) in enumerate(zip(ds, refs)):
        assert ep.index == i
        assert ep.metadata["source_file"].endswith(SHARD)
        assert ep.metadata["source_key"] == f"record {i} at byte offset {offsets[i][0]}"
        action = ep["steps/action"].numpy()
        S = action.shape[0]
        assert S == 10
        np.testing.assert_array_equal(action, ref["steps/action"].reshape(S, 7))
        np.testing.assert_array_equal(ep["steps/observation/state"].numpy(), ref["steps/observation/state"].reshape(S, 7))
        np.testing.assert_array_equal(ep["steps/language_embedding"].numpy(), ref["steps/language_embedding"].reshape(S, 512))
        for key in ("is_first", "is_last", "is_terminal"):
            got = ep[f"steps/{key}"].numpy()
            assert got.dtype == np.bool_
            np.testing.assert_array_equal(got, ref[f"steps/{key}"].astype(bool))
        for key in ("reward", "discount"):
            np.testing.assert_array_equal(ep[f"steps/{key}"].numpy(), ref[f"steps/{key}"])
        for cam in range(4):
            key = f"steps/observation/image_{cam}"
            assert ep[key].encoding == "jpeg"
            # the reference's fixed-width bytes array drops trailing NULs; JPEGs end in FF D9
            assert ep[key].items() == [bytes(b) for b in ref[key]]
        texts = ep["steps/language_instruction"].texts()
        assert texts == [b.decode() for b in ref["steps/language_instruction"]]
        assert ep.language_instruction == texts[0]
        assert ep.metadata["extra"]["episode_metadata/file_path"] == ref["episode_metadata/file_path"].decode()
        assert ep.metadata["extra"]["episode_metadata/episode_id"] == str(int(ref["episode_metadata/episode_id"][0]))
        assert ep.metadata["extra"]["split"] == "train"
        for name, stream in ep.streams.items():
            assert len(stream) == S, name
            np.testing.assert_array_equal(stream.timestamps, np.arange(S, dtype=np.float64))
            assert stream.time_source == "step_index"
            assert name.removeprefix("steps/").split("/")[0] in steps


@needs_bridge
def test_bridge_all_splits_random_access_and_rate():
    ds = datasets.open(BRIDGE.parent, rate_hz=5.0)  # the parent holding one version directory
    assert len(ds) == 50
    assert ds[-1].metadata["extra"]["split"] == "val"
    assert ds[30].metadata["source_file"].endswith("bridge_dataset-val.tfrecord-00000-of-00001")
    ref = reference_episodes(BRIDGE / "bridge_dataset-val.tfrecord-00000-of-00001")[7]
    np.testing.assert_array_equal(ds[32]["steps/action"].numpy().ravel(), ref["steps/action"])
    ts = ds[0]["steps/action"]
    np.testing.assert_allclose(ts.timestamps, np.arange(10) / 5.0)
    assert ts.time_source == "step_index_over_rate" and ts.rate_hz == 5.0
    with pytest.raises(IndexError):
        ds[50]
    with pytest.raises(ValueError, match="split 'test' is not in .*dataset_info.json.*train, val"):
        datasets.open(BRIDGE, split="test")


@needs_bridge
def test_numpy_and_torch_share_the_buffer():
    torch = pytest.importorskip("torch")
    ep = datasets.open(BRIDGE, split="val")[0]
    a = ep["steps/action"].numpy()
    b = ep["steps/action"].numpy()
    t = ep["steps/action"].torch()
    assert np.shares_memory(a, b)
    assert t.data_ptr() == a.__array_interface__["data"][0]
    t2 = torch.from_dlpack(a)
    assert t2.data_ptr() == t.data_ptr()
    a[0, 0] = 123.0
    assert t[0, 0].item() == 123.0
    del ep, b, t2
    import gc

    gc.collect()
    assert float(t[0, 0]) == 123.0  # the buffer outlives the episode while a view holds it


@needs_bridge
def test_jpeg_decode():
    ep = datasets.open(BRIDGE, split="train")[0]
    img = ep["steps/observation/image_0"].decode()
    assert img.shape == (10, 64, 64, 3) and img.dtype == np.uint8
    assert 20 < img.mean() < 235 and img.std() > 5  # a real photo, not a blank
    one = ep["steps/observation/image_0"].decode(3)
    np.testing.assert_array_equal(one, img[3])
    with pytest.raises(TypeError, match="not encoded images"):
        ep["steps/language_instruction"].decode()
    with pytest.raises(OSError, match=r"steps/observation/image_0\[0\]: corrupt JPEG"):
        datasets.decode_image(ep["steps/observation/image_0"].items()[0][:200], "steps/observation/image_0[0]")


def _png(pixels: np.ndarray) -> bytes:
    """A minimal PNG encoder (zlib + struct), independent of libpng."""
    h, w, c = pixels.shape
    color = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_decode_exact(channels):
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, (19, 37, channels), dtype=np.uint8)
    np.testing.assert_array_equal(datasets.decode_image(_png(pixels)), pixels)
    with pytest.raises(OSError, match="not a JPEG or PNG"):
        datasets.decode_image(b"GIF89a....")


# ---- bad and corrupt input ----

@pytest.fixture
def bridge_copy(tmp_path):
    if not BRIDGE.exists():
        pytest.skip(f"{BRIDGE} not present")
    dst = tmp_path / "bridge"
    shutil.copytree(BRIDGE, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def test_flipped_data_byte_is_a_crc_error_naming_file_and_offset(bridge_copy):
    shard = bridge_copy / SHARD
    offsets = record_offsets(shard)
    off, length = offsets[5]
    raw = bytearray(shard.read_bytes())
    raw[off + 12 + length // 2] ^= 0x01
    shard.write_bytes(raw)
    ds = datasets.open(bridge_copy, split="train")  # headers are intact: indexing works
    ds[4]
    with pytest.raises(OSError, match=rf"{SHARD}: corrupt TFRecord data in the record at byte offset {off} .*CRC32C"):
        ds[5]
    # without verification the flipped byte goes unnoticed or breaks the Example; either way no CRC message
    unverified = datasets.open(bridge_copy, split="train", verify_checksums=False)
    try:
        unverified[5]
    except OSError as e:
        assert "CRC" not in str(e)


def test_flipped_length_byte_is_a_crc_error(bridge_copy):
    shard = bridge_copy / SHARD
    off, _ = record_offsets(shard)[3]
    raw = bytearray(shard.read_bytes())
    raw[off + 1] ^= 0x40
    shard.write_bytes(raw)
    with pytest.raises(OSError, match=rf"{SHARD}: corrupt TFRecord length at byte offset {off} "):
        datasets.open(bridge_copy, split="train")


def test_truncated_shard(bridge_copy):
    shard = bridge_copy / SHARD
    offsets = record_offsets(shard)
    off, length = offsets[-1]
    shard.write_bytes(shard.read_bytes()[:off + 12 + length - 100])
    with pytest.raises(OSError, match=rf"{SHARD}: truncated TFRecord at byte offset {off}"):
        datasets.open(bridge_copy, split="train")
    shard.write_bytes(shard.read_bytes()[:off + 5])
    with pytest.raises(OSError, match=rf"{SHARD}: truncated TFRecord at byte offset {off}: 5 bytes left"):
        datasets.open(bridge_copy, split="train")


def test_missing_shard(bridge_copy):
    (bridge_copy / "bridge_dataset-val.tfrecord-00000-of-00001").unlink()
    datasets.open(bridge_copy, split="train")
    with pytest.raises(OSError, match=r"bridge_dataset-val.tfrecord-00000-of-00001: missing shard 0 of 1 of split 'val'"):
        datasets.open(bridge_copy)


def test_shard_length_mismatch(bridge_copy):
    info = json.loads((bridge_copy / "dataset_info.json").read_text())
    info["splits"][0]["shardLengths"] = ["24"]
    (bridge_copy / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(OSError, match=r"holds 25 records but .*dataset_info.json says 24"):
        datasets.open(bridge_copy, split="train")


def _write_records(path: Path, payloads):
    with open(path, "wb") as f:
        for p in payloads:
            header = struct.pack("<Q", len(p))
            f.write(header + struct.pack("<I", masked_crc(header)) + p + struct.pack("<I", masked_crc(p)))


def test_malformed_example(bridge_copy):
    shard = bridge_copy / SHARD
    payloads = [shard.read_bytes()[o + 12:o + 12 + n] for o, n in record_offsets(shard)]
    payloads[2] = b"\x0a\xff\xff\xff\x0f" + b"garbage"  # field 1, length 2^32-1: past the end
    _write_records(shard, payloads)
    off = record_offsets(shard)[2][0]
    ds = datasets.open(bridge_copy, split="train")
    with pytest.raises(OSError, match=rf"{SHARD}: record 2 at byte offset {off}: malformed tf.train.Example"):
        ds[2]


def _small_dataset(root: Path, records, steps_features, episode_features=None):
    """A TFDS directory written with the tfrecord package's writer (its own Example encoder)."""
    from tfrecord.writer import TFRecordWriter

    root.mkdir()
    feats = {"featuresDict": {"features": {"steps": {"sequence": {"feature": {"featuresDict": {"features": steps_features}}, "length": "-1"}}}}}
    feats["featuresDict"]["features"].update(episode_features or {})
    (root / "features.json").write_text(json.dumps(feats))
    info = {"name": "toy", "fileFormat": "tfrecord", "splits": [{"name": "train", "shardLengths": [str(len(records))]}]}
    (root / "dataset_info.json").write_text(json.dumps(info))
    w = TFRecordWriter(str(root / "toy-train.tfrecord-00000-of-00001"))
    for r in records:
        w.write(r)
    w.close()


def _tensor(shape, dtype):
    return {"tensor": {"shape": {"dimensions": [str(d) for d in shape]}, "dtype": dtype, "encoding": "none"}}


def test_png_images_unknown_dims_and_int_dtypes(tmp_path):
    rng = np.random.default_rng(7)
    imgs = [rng.integers(0, 256, (5, 6, 3), dtype=np.uint8) for _ in range(3)]
    pos = rng.normal(size=(3, 2, 4)).astype(np.float32)
    rec = {
        "steps/image": ([_png(i) for i in imgs], "byte"),
        "steps/pos": (pos.ravel().tolist(), "float"),
        "steps/count": ([3, -2, 70000], "int"),
        "steps/mask": ([1, 0, 1, 1, 1, 0], "int"),
        "meta/name": (b"toy episode", "byte"),
    }
    steps = {"image": {"image": {"shape": {"dimensions": ["5", "6", "3"]}, "dtype": "uint8", "encodingFormat": "png"}},
             "pos": _tensor([-1, 4], "float32"), "count": _tensor([], "int32"), "mask": _tensor([2], "bool")}
    _small_dataset(tmp_path / "toy", [rec], steps, {"meta": {"featuresDict": {"features": {"name": {"text": {}}}}}})
    ep = datasets.open(tmp_path / "toy")[0]
    np.testing.assert_array_equal(ep["steps/image"].decode(), np.stack(imgs))
    np.testing.assert_array_equal(ep["steps/pos"].numpy(), pos)
    c = ep["steps/count"].numpy()
    assert c.dtype == np.int32 and c.tolist() == [3, -2, 70000]
    np.testing.assert_array_equal(ep["steps/mask"].numpy(), [[1, 0], [1, 1], [1, 0]])
    assert ep.metadata["extra"]["meta/name"] == "toy episode"


def test_step_count_mismatch_and_missing_feature(tmp_path):
    steps = {"a": _tensor([2], "float32"), "b": _tensor([], "int64")}
    _small_dataset(tmp_path / "bad", [{"steps/a": ([1.0, 2.0, 3.0, 4.0], "float"), "steps/b": ([1, 2, 3], "int")},
                                      {"steps/a": ([1.0, 2.0], "float")}], steps)
    ds = datasets.open(tmp_path / "bad")
    with pytest.raises(OSError, match=r"record 0 at byte offset 0: feature 'steps/b' has 3 steps but 'steps/a' has 2"):
        ds[0]
    with pytest.raises(OSError, match=r"record 1 at byte offset \d+: feature 'steps/b' \(from features.json\) is missing"):
        ds[1]


def test_unknown_feature_type_is_reported(tmp_path):
    _small_dataset(tmp_path / "odd", [], {"v": {"pythonClassName": "tfds.features.Video", "video": {}}})
    with pytest.raises(OSError, match=r"features.json: feature 'steps/v' has type 'tfds.features.Video'"):
        datasets.open(tmp_path / "odd")


def test_not_a_dataset(tmp_path):
    with pytest.raises(OSError, match="no such file"):
        datasets.open(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a recognised dataset directory"):
        datasets.open(tmp_path)


def test_decode_all_needs_one_shape(tmp_path):
    rng = np.random.default_rng(11)
    imgs = [rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)]
    steps = {"image": {"image": {"shape": {"dimensions": ["-1", "-1", "3"]}, "dtype": "uint8", "encodingFormat": "png"}}}
    _small_dataset(tmp_path / "mixed", [{"steps/image": ([_png(i) for i in imgs], "byte")}], steps)
    stream = datasets.open(tmp_path / "mixed")[0]["steps/image"]
    np.testing.assert_array_equal(stream.decode(1), imgs[1])
    with pytest.raises(ValueError, match=r"steps/image\[1\] is \[4, 6, 3\] but steps/image\[0\] is \[4, 5, 3\]"):
        stream.decode()
