#!/usr/bin/env bash
# Session 3, first GPU call: loader fixes (memcheck anomaly), Bridge + cold loader benchmarks, call overhead.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/rc-out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 ROBOCACHE_DATA="$PWD/.devdata"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "== build"; python3 -m pip install -q --no-build-isolation -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 . 2>&1 | tail -3
echo "== loader + fuse cuda tests ($SECONDS s)"
timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/python/test_loader.py tests/python/test_fuse.py -k cuda 2>&1 | tail -4
echo "== memcheck fuse then loader ($SECONDS s)"
PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck --error-exitcode 9 \
  python3 -m pytest -q -x -p no:cacheprovider tests/python/test_fuse.py tests/python/test_loader.py -k cuda > "$OUT/memcheck.log" 2>&1 &
SP=$!
for i in $(seq 1 150); do kill -0 $SP 2>/dev/null || break; sleep 1; done
if kill -0 $SP 2>/dev/null; then
  echo "memcheck still running after 150 s: native stacks"
  PY=$(pgrep -f "pytest -q -x -p no:cacheprovider tests/python/test_fuse.py" | tail -1)
  timeout 60 gdb -p "$PY" -batch -ex "thread apply all bt 12" > "$OUT/gdb.txt" 2>&1
  grep -E "^Thread|^#[0-9] " "$OUT/gdb.txt" | head -80
  kill -9 $SP; pkill -9 -f "tests/python/test_fuse.py"
else
  wait $SP; echo "memcheck exit $?"
fi
grep -E "ERROR SUMMARY|passed|failed" "$OUT/memcheck.log" | tail -3
echo "== call overhead ($SECONDS s)"; timeout 60 python3 bench/profile_call_overhead.py
echo "== loader bench --train ($SECONDS s)"
timeout 240 python3 bench/bench_loader.py --device cuda --train --workers 8 --layers 6 2>&1 | tee "$OUT/bench_loader.log" | grep -v Warn
echo "== loader bench --cold ($SECONDS s)"
timeout $((560 - SECONDS)) python3 bench/bench_loader.py --device cuda --workers 8 --cold 2>&1 | tee "$OUT/bench_loader_cold.log" | grep -v Warn
echo "== done ($SECONDS s)"
