#!/usr/bin/env bash
# One prepared run on a lent GPU machine (about 9 minutes at most): CUDA tests, then the
# benchmarks on CUDA. Everything lands in $OUT (copied back by the device tool: at most 8
# files), from where it is copied into benchmarks/results/. Uses the machine's python3/PyTorch.
#   device run: bash benchmarks/device_check.sh      (timeout_s 600)
set -uo pipefail
OUT=${OUT:-benchmarks/results/device}
mkdir -p "$OUT"
export PYTHONPATH=src PYTHONUNBUFFERED=1
{
  python3 -c "import torch, platform; print(platform.python_version(), torch.__version__,
torch.cuda.get_device_name(0))"
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_synapses.py \
      tests/learning -m "not slow" -x 2>&1 | tail -30
} > "$OUT/tests.log" 2>&1
timeout 90 python3 benchmarks/bench_store.py --device cuda --sizes 1000 10000 \
    --out "$OUT" > "$OUT/bench_store.log" 2>&1
timeout 120 python3 benchmarks/bench_topomap.py --device cuda --engine eager --scales 1 4 \
    --duration 1 --profile 0.2 --out "$OUT/bench_topomap_cuda.json" > "$OUT/bench_topomap.log" 2>&1
timeout 180 python3 benchmarks/bench_eprop.py --device cuda --dvs-check --dvs-batch 128 \
    --out "$OUT/bench_eprop_cuda.json" > "$OUT/bench_eprop.log" 2>&1
ls -la "$OUT"
