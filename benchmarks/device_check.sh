#!/usr/bin/env bash
# One prepared run on a lent GPU machine: CUDA tests, then the benchmarks on CUDA.
# Everything it writes lands in $OUT (copied back by the device tool; at most 8 files), from
# where it is copied into benchmarks/results/. Uses the machine's own python3 with PyTorch.
set -uo pipefail
OUT=${OUT:-benchmarks/results/device}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
python3 - <<'PY' 2>&1 | tee "$OUT/device.txt"
import torch, platform
print(platform.python_version(), torch.__version__, torch.cuda.get_device_name(0))
PY
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_synapses.py \
    tests/learning -m "not slow" -x 2>&1 | tail -40 > "$OUT/tests.log"
timeout 180 python3 benchmarks/bench_store.py --device cuda --sizes 1000 10000 100000 \
    --out "$OUT" > "$OUT/bench_store.log" 2>&1
timeout 240 python3 benchmarks/bench_topomap.py --device cuda --engine eager --scales 1 4 7 \
    --duration 2 --profile 0.5 --out "$OUT/bench_topomap_cuda.json" > "$OUT/bench_topomap.log" 2>&1
timeout 240 python3 benchmarks/bench_eprop.py --device cuda --out "$OUT/bench_eprop_cuda.json" \
    > "$OUT/bench_eprop.log" 2>&1
ls -la "$OUT"
