"""LeRobot v2.1 reader, checked against pyarrow on the real G1 dataset."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robocache import datasets

pq = pytest.importorskip("pyarrow.parquet")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
G1 = DATA / "lerobot" / "g1_v21"

pytestmark = pytest.mark.skipif(not datasets.readers()["lerobot"], reason="LeRobot reader not built")
needs_g1 = pytest.mark.skipif(not G1.exists(), reason=f"{G1} not present")


@needs_g1
def test_g1_matches_pyarrow():
    ds = datasets.open(G1)
    assert ds.format == "lerobot" and len(ds) == 100
    episodes = [json.loads(line) for line in (G1 / "meta" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    total = 0
    for ep, meta in zip(ds, episodes):
        i = meta["episode_index"]
        f = G1 / "data" / "chunk-000" / f"episode_{i:06d}.parquet"
        table = pq.read_table(f)
        assert sorted(ep.keys()) == sorted(table.column_names)
        for name in table.column_names:
            col = table.column(name)
            want = np.stack(col.to_pylist()).astype(np.float32) if name in ("observation.state", "action") \
                else col.to_numpy()
            got = ep[name].numpy()
            assert got.dtype == want.dtype and got.shape == want.shape, name
            np.testing.assert_array_equal(got, want)
        t = table.column("timestamp").to_numpy().astype(np.float64)
        for s in ep.streams.values():
            np.testing.assert_array_equal(s.timestamps, t)
            assert s.time_source == "recorded"
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
    info["codebase_version"] = "v3.0"
    (g1_copy / "meta" / "info.json").write_text(json.dumps(info))
    with pytest.raises(OSError, match=r"info.json: codebase_version 'v3.0' is not supported"):
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
