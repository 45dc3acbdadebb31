"""Writes a LeRobot v3.0 dataset from a v2.1 one with pyarrow (and the ffmpeg tool for the videos),
following LeRobot's v3.0 layout:

    meta/info.json                       codebase_version "v3.0", data_path / video_path with
                                         {chunk_index:03d} / {file_index:03d}, fps, features
    meta/tasks.parquet                   task_index + the task string (as pandas writes its index)
    meta/episodes/chunk-XXX/file-XXX.parquet   one row per episode: episode_index, length, tasks,
                                         data/chunk_index, data/file_index, dataset_from_index,
                                         dataset_to_index, videos/<key>/{chunk_index, file_index,
                                         from_timestamp, to_timestamp}, meta/episodes/{chunk,file}_index
    data/chunk-XXX/file-XXX.parquet      many episodes' rows, back to back
    videos/<key>/chunk-XXX/file-XXX.mp4  many episodes' videos, back to back (ffmpeg's concat demuxer,
                                         stream copy); an episode's frames start at its from_timestamp

Used by the tests (several episodes per file, several files and chunks) and by bench/bench_lerobot.py, as
is `v21_subset` (a v2.1 copy of some episodes, renumbered, for LeRobot's own v2.1 -> v3.0 converter).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"


def _jsonl(path: Path) -> List[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def video_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def concat_videos(paths: List[Path], dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    listing = dst.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in paths))
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy",
                    str(dst)], check=True)
    listing.unlink()


def write_v3(src: Path, dst: Path, *, episodes: Optional[List[int]] = None, episodes_per_file: int = 9,
             files_per_chunk: int = 4, episodes_per_meta_file: int = 40, row_group_size: Optional[int] = None,
             videos_per_file: int = 2, with_videos: bool = True) -> Dict[int, dict]:
    """Writes `dst` from the v2.1 dataset `src`; returns the episode metadata rows by episode index.
    Episodes whose source video is missing get a video file name that does not exist (the reader must
    report it when that video is used). `with_videos=False` drops the video features altogether."""
    src, dst = Path(src), Path(dst)
    info = json.loads((src / "meta" / "info.json").read_text())
    src_eps = {e["episode_index"]: e for e in _jsonl(src / "meta" / "episodes.jsonl")}
    episodes = sorted(src_eps) if episodes is None else list(episodes)
    chunks_size = info.get("chunks_size", 1000)
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    if not with_videos:
        for k in video_keys:
            del info["features"][k]
        video_keys = []

    def loc(i: int, per_chunk: int):
        return {"chunk_index": i // per_chunk, "file_index": i % per_chunk}

    rows: Dict[int, dict] = {}
    # data files: `episodes_per_file` episodes each, `files_per_chunk` files per chunk directory
    for f in range(0, len(episodes), episodes_per_file):
        group = episodes[f:f + episodes_per_file]
        where = loc(f // episodes_per_file, files_per_chunk)
        tables = []
        for e in group:
            t = pq.read_table(src / info["data_path"].format(episode_chunk=e // chunks_size, episode_index=e))
            t = t.replace_schema_metadata(None)
            tables.append(t)
            index = t.column("index").to_numpy()
            rows[e] = {
                "episode_index": e,
                "tasks": src_eps[e].get("tasks", []),
                "length": t.num_rows,
                "data/chunk_index": where["chunk_index"],
                "data/file_index": where["file_index"],
                "dataset_from_index": int(index[0]),
                "dataset_to_index": int(index[0]) + t.num_rows,
            }
        path = dst / DATA_PATH.format(**where)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(tables), path, row_group_size=row_group_size)
    # videos: the episodes that have one, `videos_per_file` per file, back to back
    for key in video_keys:
        have = [e for e in episodes
                if (src / info["video_path"].format(episode_chunk=e // chunks_size, video_key=key, episode_index=e)).exists()]
        for f in range(0, len(have), videos_per_file):
            group = have[f:f + videos_per_file]
            where = loc(f // videos_per_file, files_per_chunk)
            paths = [src / info["video_path"].format(episode_chunk=e // chunks_size, video_key=key, episode_index=e)
                     for e in group]
            concat_videos(paths, dst / VIDEO_PATH.format(video_key=key, **where))
            start = 0.0
            for e, p in zip(group, paths):
                d = video_duration(p)
                rows[e].update({f"videos/{key}/chunk_index": where["chunk_index"], f"videos/{key}/file_index": where["file_index"],
                                f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": start + d})
                start += d
        absent = loc(len(have) // videos_per_file + 5, files_per_chunk)  # a file never written
        for e in episodes:
            if f"videos/{key}/chunk_index" not in rows[e]:
                n = rows[e]["length"] / info["fps"]
                rows[e].update({f"videos/{key}/chunk_index": absent["chunk_index"], f"videos/{key}/file_index": absent["file_index"],
                                f"videos/{key}/from_timestamp": 0.0, f"videos/{key}/to_timestamp": n})
    # episode metadata, `episodes_per_meta_file` rows per file
    for f in range(0, len(episodes), episodes_per_meta_file):
        where = loc(f // episodes_per_meta_file, files_per_chunk)
        group = [rows[e] for e in episodes[f:f + episodes_per_meta_file]]
        for r in group:
            r["meta/episodes/chunk_index"], r["meta/episodes/file_index"] = where["chunk_index"], where["file_index"]
        cols = {k: [r[k] for r in group] for k in group[0]}
        schema = pa.schema([(k, pa.list_(pa.string()) if k == "tasks" else
                             pa.float64() if k.endswith("_timestamp") else pa.int64()) for k in cols])
        path = dst / EPISODES_PATH.format(**where)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(cols, schema=schema), path)
    tasks = _jsonl(src / "meta" / "tasks.jsonl")
    pq.write_table(pa.table({"task_index": [t["task_index"] for t in tasks],
                             "__index_level_0__": [t["task"] for t in tasks]}), dst / "meta" / "tasks.parquet")
    info.update(codebase_version="v3.0", data_path=DATA_PATH, video_path=VIDEO_PATH if video_keys else None,
                total_episodes=len(episodes), total_frames=sum(r["length"] for r in rows.values()),
                data_files_size_in_mb=100, video_files_size_in_mb=500)
    info["splits"] = {"train": f"0:{max(episodes) + 1}"}
    for k in ("total_chunks", "total_videos"):
        info.pop(k, None)
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    if (src / "LICENSE").exists():
        shutil.copy(src / "LICENSE", dst / "LICENSE")
    return rows


def v21_subset(src: Path, dst: Path, episodes, with_video: bool, cam: str = "observation.images.cam_high") -> None:
    """A v2.1 copy of `src` holding `episodes`, renumbered 0..n-1 (and their videos when with_video)."""
    info = json.loads((src / "meta" / "info.json").read_text())
    eps = {json.loads(l)["episode_index"]: json.loads(l) for l in (src / "meta" / "episodes.jsonl").read_text().splitlines() if l.strip()}
    stats = {json.loads(l)["episode_index"]: json.loads(l) for l in (src / "meta" / "episodes_stats.jsonl").read_text().splitlines() if l.strip()}
    (dst / "meta").mkdir(parents=True)
    (dst / "data" / "chunk-000").mkdir(parents=True)
    shutil.copy(src / "meta" / "tasks.jsonl", dst / "meta" / "tasks.jsonl")
    index = 0
    ep_lines, stat_lines = [], []
    for new, old in enumerate(episodes):
        t = pq.read_table(src / "data" / "chunk-000" / f"episode_{old:06d}.parquet")
        n = t.num_rows
        t = t.set_column(t.schema.get_field_index("episode_index"), "episode_index", pa.array(np.full(n, new, np.int64)))
        t = t.set_column(t.schema.get_field_index("index"), "index", pa.array(np.arange(index, index + n, dtype=np.int64)))
        pq.write_table(t, dst / "data" / "chunk-000" / f"episode_{new:06d}.parquet")
        index += n
        ep_lines.append(json.dumps({**eps[old], "episode_index": new}))
        stat_lines.append(json.dumps({**stats[old], "episode_index": new}))
        if with_video:
            v = dst / "videos" / "chunk-000" / cam
            v.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / "videos" / "chunk-000" / cam / f"episode_{old:06d}.mp4", v / f"episode_{new:06d}.mp4")
    (dst / "meta" / "episodes.jsonl").write_text("\n".join(ep_lines) + "\n")
    (dst / "meta" / "episodes_stats.jsonl").write_text("\n".join(stat_lines) + "\n")
    if not with_video:
        del info["features"][cam]
        info["video_path"] = None
    info.update(total_episodes=len(episodes), total_frames=index, total_videos=len(episodes) if with_video else 0,
                splits={"train": f"0:{len(episodes)}"})
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=4))


def synthetic_video_dataset(dst: Path, n: int = 40, fps: int = 30, key: str = "observation.images.front") -> Path:
    """Three episodes of n steps back to back in one LeRobot v3.0 data file and one H.264 video (written by
    the ffmpeg tool; B-frames, a keyframe every 25 frames, so episodes start mid-GOP). Frame i of the file
    carries the number i (test_datasets_video.frame_number reads it back); 4 float32 state channels."""
    from test_datasets_video import write_video

    dst = Path(dst)
    write_video(dst / "videos" / key / "chunk-000" / "file-000.mp4", 3 * n, "h264", fps=fps)
    rng = np.random.default_rng(3)
    (dst / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({
        "observation.state": pa.array(list(rng.normal(size=(3 * n, 4)).astype(np.float32)), pa.list_(pa.float32(), 4)),
        "timestamp": pa.array(np.tile(np.arange(n) / fps, 3).astype(np.float32)),
        "frame_index": pa.array(np.tile(np.arange(n), 3)),
        "episode_index": pa.array(np.repeat(np.arange(3), n)),
        "index": pa.array(np.arange(3 * n)),
    }), dst / "data" / "chunk-000" / "file-000.parquet")
    (dst / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    pq.write_table(pa.table({
        "episode_index": [0, 1, 2], "length": [n] * 3, "tasks": [["a"], ["b"], ["c"]],
        "data/chunk_index": [0] * 3, "data/file_index": [0] * 3,
        "dataset_from_index": [0, n, 2 * n], "dataset_to_index": [n, 2 * n, 3 * n],
        f"videos/{key}/chunk_index": [0] * 3, f"videos/{key}/file_index": [0] * 3,
        f"videos/{key}/from_timestamp": [e * n / fps for e in range(3)],
        f"videos/{key}/to_timestamp": [(e + 1) * n / fps for e in range(3)],
    }), dst / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    (dst / "meta" / "info.json").write_text(json.dumps({
        "codebase_version": "v3.0", "fps": fps, "robot_type": "synthetic",
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {key: {"dtype": "video", "shape": [64, 96, 3], "info": {"video.fps": fps, "video.codec": "h264"}},
                     "observation.state": {"dtype": "float32", "shape": [4]}}}))
    return dst
