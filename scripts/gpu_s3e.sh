#!/usr/bin/env bash
# Session 3, final GPU call: tests, sanitizers (ops; each loader CUDA test in its own process), sweep,
# benchmarks (resample, fuse, loader with training, cold), demo.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rc-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ROBOCACHE_DATA="$PWD/.devdata"
left() { echo $((590 - SECONDS)); }
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
for t in test_cuda_matches_cpu test_cuda_loader_after_a_failed_validation_and_a_validating_thread \
         test_cuda_buffer_reuse_waits_for_the_consumer_stream test_cuda_no_pinned_or_device_leak_across_epochs; do
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 45 compute-sanitizer --tool memcheck --error-exitcode 9 \
  python3 -m pytest -q -x -p no:cacheprovider "tests/python/test_loader.py::$t" > "$OUT/memcheck_$t.log" 2>&1
echo "loader memcheck $t exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/memcheck_$t.log" | tail -2
done
echo "== sweep ($SECONDS s)"
timeout 100 python3 bench/bench_fuse.py --sweep-tiles 8,16 --sweep-lanes 1,32
echo "== benchmarks ($SECONDS s)"
timeout 100 python3 bench/bench_resample.py --gpu --json "$OUT/bench_resample.json" 2>&1 | tee "$OUT/bench_resample.log" | tail -9
timeout 60 python3 bench/bench_fuse.py --json "$OUT/bench_fuse.json" 2>&1 | tee "$OUT/bench_fuse.log" | tail -3
timeout 60 python3 -m robocache demo 2>&1 | tee "$OUT/demo.log" | tail -6
timeout 120 python3 bench/bench_loader.py --device cuda --train --workers 8 --layers 8 2>&1 | tee "$OUT/bench_loader.log" | grep -v Warn
timeout $(left) python3 bench/bench_loader.py --device cuda --train --workers 8 --layers 8 --cold 2>&1 | tee "$OUT/bench_loader_cold.log" | grep -v Warn
echo "== done ($SECONDS s)"
