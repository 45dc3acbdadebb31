"""The command line: `robocache info` and the README's main job, `robocache demo`, end to end (small)."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "robocache", *args], capture_output=True, text=True, timeout=300)


def test_info_reports_the_build():
    r = run("info")
    assert r.returncode == 0, r.stderr
    for key in ("version", "cuda", "cuda_architectures", "compiler", "cuda_device_count", "num_threads"):
        assert key in r.stdout


def test_demo_aligns_then_trains_with_the_loader():
    r = run("demo", "--device", "cpu", "--episodes", "8", "--steps", "6")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "robocache.fuse_multimodal (cpu)" in r.stdout
    assert "training on cpu" in r.stdout and "samples/s" in r.stdout


def test_demo_rejects_an_unknown_device():
    r = run("demo", "--device", "tpu", "--steps", "0")
    assert r.returncode != 0 and "device must be 'cpu' or 'cuda', got 'tpu'" in r.stderr
