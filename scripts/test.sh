#!/usr/bin/env bash
# The README's test command: builds and runs the C++ tests (GoogleTest via ctest) and installs the
# Python package and runs its tests (pytest). GPU tests skip where no GPU is visible.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== C++ build and tests (CPU backend)"
cmake -S . -B build/cpp-tests -G Ninja -DROBOCACHE_CUDA=OFF -DROBOCACHE_BUILD_TESTS=ON >/dev/null
cmake --build build/cpp-tests -j "$jobs"
ctest --test-dir build/cpp-tests --output-on-failure -j "$jobs"

echo "== C++ consumer: cmake --install, then find_package(robocache) from examples/cpp"
rm -rf build/install build/example
cmake --install build/cpp-tests --prefix build/install >/dev/null
cmake -S examples/cpp -B build/example -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/install" >/dev/null
cmake --build build/example
./build/example/resample_example

echo "== Python package (CUDA backend compiled where a toolkit is found)"
python3 -m pip install -q --no-build-isolation .

echo "== Python tests"
python3 -m pytest -q tests/python
