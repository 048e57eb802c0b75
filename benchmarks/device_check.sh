#!/usr/bin/env bash
# One GPU check: the device, the CUDA tests, then the GPU benchmarks, in under 8 minutes.
#
#   benchmarks/device_check.sh            on a CUDA machine (the device tool's, or your own)
#   benchmarks/device_check.sh --dry-run  the same steps on the CPU at toy sizes (no GPU needed)
#
# JSON goes to $OUT when it is set (the device tool brings that folder back), else to
# benchmarks/results/, named after the GPU (bench_paper_<gpu>_triton.json, ...). No network and
# no install: it runs the checkout's src/ with the machine's python3 (override with PYTHON=...).
# Each step has its own time limit; a failing step is logged and the next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
case "$*" in
  "") DRY=0 ;;
  --dry-run) DRY=1 ;;
  *) echo "usage: benchmarks/device_check.sh [--dry-run]  (got: $*)" >&2; exit 2 ;;
esac
if [[ -n "${OUT:-}" ]]; then DEST=$OUT; elif [[ $DRY == 1 ]]; then DEST=$(mktemp -d); else
  DEST=benchmarks/results; fi
mkdir -p "$DEST"
LOG="$DEST/device_check.log"
: >"$LOG"
say() { echo "== $*" | tee -a "$LOG"; }
step() {  # step <seconds> <name> <command...>
  local limit=$1 name=$2
  shift 2
  say "$name (limit ${limit}s): $*"
  local tic=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  say "$name: exit $rc after $((SECONDS - tic)) s"
  STATUS+=("$name=$rc")
}
STATUS=()

if [[ $DRY == 1 ]]; then
  GPU=cpu-dry-run
  DEV=cpu
  ENGINE=native
  GRAPH=native
  PAPER=(--quick --batch-size 4)
  TOPO=(--scales 1 --duration 0.2 --profile 0.1)
  STORE=(--quick --device cpu --sizes 200)
  ONLINE=(--steps 200)  # the online method's per-synapse traces are slow on a CPU
else
  GPU=$("$PYTHON" -c "import torch
if torch.cuda.is_available():
    print(torch.cuda.get_device_name().split()[-1].lower())")
  if [[ -z $GPU ]]; then
    echo "device_check.sh: $PYTHON sees no CUDA device; run with --dry-run for the CPU steps" >&2
    exit 2
  fi
  DEV=cuda
  ENGINE=triton
  GRAPH=graph
  PAPER=(--batch-size 512 --batches 3 --warmup 1 --repeats 1 --idle-wait 0 --threads 4)
  TOPO=(--scales 1 2 3 4 5 6 7 --duration 4 --profile 0.5)
  STORE=(--quick --device cuda)
  ONLINE=()
fi
say "device check on $GPU, writing to $DEST, $(date -u +%FT%TZ)"
"$PYTHON" - >>"$LOG" 2>&1 <<'EOF'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__)
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("gpu", p.name, f"{p.total_memory / 2**30:.0f} GiB", p.multi_processor_count, "SMs")
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton missing")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi >>"$LOG" 2>&1

# 1. the tests that run on CUDA: the device-parametrised ones, the graph engine and the Triton
#    kernels (compiled on a GPU; under the interpreter in the dry run)
step 200 tests "$PYTHON" -m pytest -q -p no:cacheprovider -m "cuda" tests
step 120 triton-tests "$PYTHON" -m pytest -q -p no:cacheprovider tests/gpu

# 2. e-prop on the paper's SHD and DVS Gesture networks (batch 512 as the paper): factorised on
#    the Triton and torch engines, and the online method
NETS=(--networks shd dvs --configs dense static1 deepr1)
step 150 eprop-$ENGINE "$PYTHON" benchmarks/bench_paper.py "${NETS[@]}" "${PAPER[@]}" \
  --device "$DEV" --engine "$ENGINE" --out "$DEST/bench_paper_${GPU}_${ENGINE}.json"
step 90 eprop-torch "$PYTHON" benchmarks/bench_paper.py "${NETS[@]}" "${PAPER[@]}" \
  --device "$DEV" --engine torch --out "$DEST/bench_paper_${GPU}_torch.json"
step 60 eprop-online "$PYTHON" benchmarks/bench_paper.py --networks shd --configs dense deepr1 \
  "${PAPER[@]}" "${ONLINE[@]}" --batches 1 --device "$DEV" --engine torch --method online \
  --out "$DEST/bench_paper_${GPU}_online.json"

# 3. the topographic map at scales 1-7 (real-time factor and component breakdown)
step 100 topomap "$PYTHON" benchmarks/bench_topomap.py "${TOPO[@]}" --device "$DEV" \
  --engine "$GRAPH" --out "$DEST/bench_topomap_${GPU}.json"

# 4. the store benchmark
step 40 store "$PYTHON" benchmarks/bench_store.py "${STORE[@]}" --out "$DEST"

say "done: ${STATUS[*]}"
ls -la "$DEST" | tee -a "$LOG"
for s in "${STATUS[@]}"; do [[ $s == *=0 ]] || exit 1; done
