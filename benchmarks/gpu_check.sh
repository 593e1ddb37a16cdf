#!/usr/bin/env bash
# The GPU check (docs/performance.md): on one CUDA GPU, in under 10 minutes,
#   1. the CUDA-only tests (tests/gpu: Hugging Face parity on the GPU, bf16 autocast, memory-lean peak memory);
#   2. `blockmae bench --preset deit-s --device cuda` under bf16 autocast: every regime's row beside E2E and E2E
#      with monitors (the per-regime table of docs/performance.md), torch.compile rows included;
#   3. a 200-step run of the paper config (DeiT-S, 16 x 128 x 128, K=4 simultaneous, bf16) on procedural scenes;
# then writes OUT/gpu_check.json: every step's command, exit status, seconds and numbers, in one file.
# A step that fails is recorded and the others still run; the script exits non-zero if any failed.
# Without a CUDA GPU it refuses (exit 3) instead of measuring the CPU.
#
# usage: benchmarks/gpu_check.sh [--out DIR] [--dry-run]
#   --out DIR   logs and results (default: gpu-check)
#   --dry-run   print the commands and exit (no GPU needed)
set -uo pipefail

usage() { sed -n '10,12p' "$0" | sed 's/^# \{0,1\}//'; }
OUT=gpu-check
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] && [ -n "$2" ] || { echo "gpu_check: --out needs a directory" >&2; usage >&2; exit 2; }
           OUT=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PY" ] || PY=python3

TESTS="$PY -m pytest -q -m cuda $ROOT/tests/gpu --junitxml=$OUT/tests.xml"
BENCH="$PY -m blockmae bench --preset deit-s --device cuda --set train.amp=bf16 --repeats 1 \
--configs hf,e2e,e2e-K4-monitors,e2e-K4-monitors-every4,e2e-K4-fitted-monitors,sim-K4,sim-K4-lean,sim-K6-lean,seq-K4,\
overlap-K4-lean,noisy-K4-lean,coarse-K4-lean,sim-K4-lean-light-lower,sim-K4-lean-light-lower-dmask0.75,e2e-compile,sim-K4-lean-compile \
--json $OUT/bench-deit-s-cuda-bf16.json"
RUN="$PY -m blockmae pretrain paper/deit-s train.regime=simultaneous model.partition=4 train.max_steps=200 \
train.epochs=null train.batch_size=32 train.device=cuda train.amp=bf16 train.log_every=20 \
train.checkpoint_every=200 train.progress=false data.train=scenes,n=2048 data.num_workers=8 --out $OUT/paper-run"

if [ "$DRY" = 1 ]; then
  printf '%s\n' "$TESTS" "$BENCH" "$RUN"
  exit 0
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: no CUDA GPU visible to $PY (torch.cuda.is_available() is False); refusing to run, since every" \
       "step would measure the CPU instead. Run it on a machine with a CUDA GPU and a CUDA build of torch." >&2
  exit 3
fi
mkdir -p "$OUT"
rm -rf "$OUT/paper-run"  # a fresh run every time: the check times 200 steps, not a resume

step() {  # name, time limit (s), command: run it, log it, record its exit status and seconds
  local name=$1 limit=$2 cmd=$3 start rc
  echo "gpu_check: $name (at most ${limit}s): $cmd"
  start=$(date +%s)
  timeout "$limit" bash -c "$cmd" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '{"step": "%s", "command": "%s", "rc": %d, "seconds": %d, "log": "%s"}\n' \
    "$name" "$cmd" "$rc" "$(( $(date +%s) - start ))" "$OUT/$name.log" >> "$OUT/steps.jsonl"
  echo "gpu_check: $name exit $rc"
}
: > "$OUT/steps.jsonl"
step tests 120 "$TESTS"
step bench 300 "$BENCH"
step paper-run 150 "$RUN"
"$PY" "$ROOT/benchmarks/gpu_summary.py" "$OUT"
