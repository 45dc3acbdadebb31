#!/usr/bin/env bash
# Builds resample with several register budgets and times each (bench/tune_resample.py).
cd "$(dirname "$0")/.."
for mb in ${@:-1 4 5 6}; do
  python3 -m pip install -q --no-build-isolation -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 \
    -Ccmake.define.CMAKE_CUDA_FLAGS=-DROBOCACHE_RESAMPLE_MIN_BLOCKS=$mb . 2>&1 | tail -2
  echo "== min blocks per SM: $mb"
  (cd bench && python3 tune_resample.py)
done
