#!/usr/bin/env bash
# On the GPU machine: build, GPU tests, compute-sanitizer, benchmarks, in one go.
#   bash scripts/gpu_check.sh [pytest -k expression]     (writes logs to $OUT when set)
# Environment: SAN_K (pytest -k expression for the sanitizer runs, default "cuda"), SKIP_OPS_BENCH=1, SKIP_LOADER_BENCH=1,
# SKIP_VOXEL_BENCH=1.
# Expects a copy of ../shared/data in .devdata/ (the GPU machine has no ../shared).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rc-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ROBOCACHE_DATA="$PWD/.devdata"
K=${1:-}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== build"
python3 -m pip install -q --no-build-isolation -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 . 2>&1 | tail -5
python3 -m robocache info

echo "== tests"
python3 -m pytest -q -x tests/python ${K:+-k "$K"} 2>&1 | tee "$OUT/pytest.log" | tail -15

echo "== compute-sanitizer memcheck (CUDA tests)"
for tool in memcheck racecheck; do
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool $tool --error-exitcode 9 \
    python3 -m pytest -q -x -p no:cacheprovider tests/python -k "${SAN_K:-cuda}" 2>&1 \
    | tee "$OUT/$tool.log" | grep -E "ERROR SUMMARY|passed|failed|rror" | tail -5
  echo "$tool exit: ${PIPESTATUS[0]}"
done

if [ -z "${SKIP_OPS_BENCH:-}" ]; then
  echo "== call overhead"
  python3 bench/profile_call_overhead.py 2>&1 | tee "$OUT/overhead.log"
  echo "== benchmarks"
  python3 bench/bench_resample.py --gpu --json "$OUT/bench_resample.json" 2>&1 | tee "$OUT/bench_resample.log"
  python3 bench/bench_fuse.py --json "$OUT/bench_fuse.json" 2>&1 | tee "$OUT/bench_fuse.log"
fi
if [ -z "${SKIP_LOADER_BENCH:-}" ]; then
  python3 -m robocache demo 2>&1 | tee "$OUT/demo.log"
  # targets (issue 6): the Loader >= 5x the DataLoader's samples/s, GPU busy >= 90% for a step >= 5 ms
  python3 bench/bench_loader.py --device cuda --train --workers 8 --layers 6 2>&1 | tee "$OUT/bench_loader.log"
  python3 bench/bench_loader.py --device cuda --workers 8 --cold 2>&1 | tee "$OUT/bench_loader_cold.log"
fi
[ -n "${SKIP_VOXEL_BENCH:-}" ] || python3 bench/bench_voxelize.py --data .devdata/pointclouds 2>&1 | tee "$OUT/bench_voxelize.log"
