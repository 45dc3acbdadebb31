#!/usr/bin/env bash
# Session 3, second GPU call: cooperative search kernel + image gather in the loader.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rc-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ROBOCACHE_DATA="$PWD/.devdata"
left() { echo $((580 - SECONDS)); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== build"; python3 -m pip install -q --no-build-isolation -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 . 2>&1 | tail -3
echo "== GPU tests ($SECONDS s)"
timeout 170 python3 -m pytest -q -x -p no:cacheprovider tests/python -k "cuda or gpu" 2>&1 | tail -4
echo "== tile sweep ($SECONDS s)"
timeout 90 python3 bench/bench_fuse.py --sweep-tiles 4,8,16,32
echo "== memcheck resample + fuse ($SECONDS s)"
PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout 110 compute-sanitizer --tool memcheck --error-exitcode 9 \
  python3 -m pytest -q -x -p no:cacheprovider tests/python/test_resample.py tests/python/test_fuse.py -k cuda > "$OUT/memcheck_ops.log" 2>&1
echo "memcheck exit $?"; grep -E "ERROR SUMMARY|passed|failed" "$OUT/memcheck_ops.log" | tail -3
echo "== loader bench --train ($SECONDS s)"
timeout $(left) python3 bench/bench_loader.py --device cuda --train --workers 8 --layers 8 2>&1 | tee "$OUT/bench_loader.log" | grep -v Warn
echo "== done ($SECONDS s)"
