#!/usr/bin/env bash
# Session 3, last GPU call: the kernel as on main with tile work 16 (the group search reverted);
# tests, ops sanitizers, tile sweep (tile work 8 = main's kernel, the same-run baseline), benchmarks.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rc-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ROBOCACHE_DATA="$PWD/.devdata"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== build"; python3 -m pip install -q --no-build-isolation -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 . 2>&1 | tail -3
echo "== GPU tests ($SECONDS s)"
timeout 170 python3 -m pytest -q -x -p no:cacheprovider tests/python -k "cuda or gpu" 2>&1 | tail -2
echo "== sanitizers ($SECONDS s)"
for tool in memcheck racecheck; do
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 90 compute-sanitizer --tool $tool --error-exitcode 9 \
  python3 -m pytest -q -x -p no:cacheprovider tests/python/test_resample.py tests/python/test_fuse.py -k cuda > "$OUT/${tool}_ops.log" 2>&1
echo "ops $tool exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/${tool}_ops.log" | tail -2
done
echo "== sweep ($SECONDS s)"
timeout 100 python3 bench/bench_fuse.py --sweep-tiles 8,16
echo "== benchmarks ($SECONDS s)"
timeout 100 python3 bench/bench_resample.py --gpu --json "$OUT/bench_resample.json" 2>&1 | tee "$OUT/bench_resample.log" | tail -9
timeout 60 python3 bench/bench_fuse.py --json "$OUT/bench_fuse.json" 2>&1 | tee "$OUT/bench_fuse.log" | tail -3
echo "== done ($SECONDS s)"
