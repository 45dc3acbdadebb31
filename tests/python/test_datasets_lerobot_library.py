"""RoboCache's LeRobot v3.0 reader against the LeRobot library itself: datasets converted from g1_v21 by
LeRobot's own v2.1 -> v3.0 converter, read by both, every frame of every stream compared, and the camera
frames LeRobotDataset decodes compared with Video.frames_at. Needs `pip install lerobot` (not in CI: it
pins its own torch; bench/bench_lerobot.py runs in the same environment)."""

import os

import numpy as np
import pytest

from robocache import datasets

from conftest import DATA

lerobot_dataset = pytest.importorskip("lerobot.datasets.lerobot_dataset")
convert_v21 = pytest.importorskip("lerobot.datasets.v30.convert_dataset_v21_to_v30")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

G1 = DATA / "lerobot" / "g1_v21"
CAM = "observation.images.cam_high"
pytestmark = [pytest.mark.skipif(not G1.exists(), reason=f"{G1} not present"),
              pytest.mark.skipif(not datasets.readers()["lerobot"], reason="LeRobot reader not built")]


def lerobot_v30(tmp_path, name, episodes, with_video):
    from lerobot_v3_writer import v21_subset

    root = tmp_path / name
    v21_subset(G1, root, episodes, with_video)
    # small data files, so that several episodes share a file and there are several files
    convert_v21.convert_dataset(repo_id=name, root=str(tmp_path), push_to_hub=False, data_file_size_in_mb=1)
    return root


def test_state_action_match_lerobot(tmp_path):
    root = lerobot_v30(tmp_path, "g1", list(range(40)), with_video=False)
    assert len(list((root / "data").rglob("*.parquet"))) > 1
    lds = lerobot_dataset.LeRobotDataset("local/g1", root=root)
    ds = datasets.open(root)
    assert len(ds) == lds.meta.total_episodes == 40
    hf = lds.hf_dataset.with_format("numpy")
    start = 0
    for ep in ds:
        n = len(ep["action"])
        rows = hf[start:start + n]
        for name in ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"):
            np.testing.assert_array_equal(ep[name].numpy(), np.asarray(rows[name]).reshape(ep[name].numpy().shape),
                                          err_msg=name)
        assert ep.language_instruction == lds.meta.tasks.index[0]
        start += n
    assert start == lds.num_frames


def test_video_frames_match_lerobot(tmp_path):
    if not datasets.readers()["video_decode"]:
        pytest.skip("built without video decoding")
    root = lerobot_v30(tmp_path, "g1video", [1, 2], with_video=True)
    lds = lerobot_dataset.LeRobotDataset("local/g1video", root=root)
    ds = datasets.open(root)
    starts = [0, len(ds[0]["action"])]
    rng = np.random.default_rng(0)
    for e in (0, 1):
        ep = ds[e]
        video = ep.videos[CAM]
        assert video.from_timestamp == pytest.approx(float(lds.meta.episodes[e][f"videos/{CAM}/from_timestamp"]))
        ts = ep["timestamp"].numpy()
        rows = rng.permutation(len(ts))[:15]
        got = video.frames_at(ts[rows].astype(np.float64), tolerance_s=lds.tolerance_s)
        for k, r in enumerate(rows):
            item = lds[starts[e] + int(r)]
            want = (item[CAM].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # LeRobot: float [3, H, W]
            np.testing.assert_array_equal(got[k], want, err_msg=f"episode {e} frame {r}")
            np.testing.assert_array_equal(ep["action"].numpy()[r], item["action"].numpy())
