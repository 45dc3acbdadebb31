#!/usr/bin/env bash
# On the GPU machine: build, then Nsight Compute metrics of the resampling kernel on the benchmark problems.
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-build-isolation -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 . 2>&1 | tail -5
ncu -k regex:resample_kernel --csv --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,\
lts__t_bytes.sum,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__registers_per_thread,\
gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed.sum \
  python3 bench/ncu_resample.py "$@" 2>&1 | grep -v "^==PROF==" | python3 -c '
import csv, sys
lines = sys.stdin.read().splitlines()
for l in lines:
    if not l.startswith(chr(34)): print(l)
rows = [r for r in csv.reader([l for l in lines if l.startswith(chr(34))]) if len(r) > 10]
hdr = rows[0]; ki, mi, vi, ui = hdr.index("ID"), hdr.index("Metric Name"), hdr.index("Metric Value"), hdr.index("Metric Unit")
cur = None
for r in rows[1:]:
    if r[ki] != cur:
        cur = r[ki]; print("kernel", cur)
    print("   ", r[mi], r[vi], r[ui])
'
