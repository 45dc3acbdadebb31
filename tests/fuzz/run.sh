#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan) and runs each for a bounded time on seeds from the real files.
# Usage: bash tests/fuzz/run.sh [seconds per target, default 20]. A crash, leak or timeout fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DROBOCACHE_CUDA=OFF -DROBOCACHE_BUILD_TESTS=OFF \
  -DROBOCACHE_BUILD_FUZZERS=ON -DROBOCACHE_WITH_RLDS=ON -DROBOCACHE_WITH_LEROBOT=OFF -DROBOCACHE_WITH_HDF5=OFF \
  -DROBOCACHE_WITH_CALVIN=OFF -DROBOCACHE_WITH_IMAGE=OFF -DROBOCACHE_WITH_VIDEO=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target fuzz_npy fuzz_tfrecord_example
python3 tests/fuzz/make_seeds.py build/fuzz/corpus
mkdir -p build/fuzz/artifacts
for target in npy tfrecord; do
  bin=build/fuzz/fuzz_npy
  [ "$target" = tfrecord ] && bin=build/fuzz/fuzz_tfrecord_example
  echo "== fuzz $target for ${secs}s"
  rc=0
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build/fuzz/artifacts/ \
    -print_final_stats=1 "build/fuzz/corpus/$target" >"build/fuzz/$target.log" 2>&1 || rc=$?
  grep -E "^(Done|stat::number_of_executed_units)" "build/fuzz/$target.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "build/fuzz/$target.log"
    echo "fuzz $target FAILED (exit $rc); the input is in build/fuzz/artifacts/"
    exit "$rc"
  fi
done
