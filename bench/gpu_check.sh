#!/usr/bin/env bash
# The GPU check of issue 12, one script, under 8 minutes on one GPU. Run it from the repository
# root of a checkout whose .venv is set up (`make setup`):
#
#     bash bench/gpu_check.sh            # figures on stdout; logs under ${AKD_GPU_CHECK_DIR:-/tmp/akd-gpu-check}
#
# What it runs, in order, each with its own time limit:
#   1. the card (nvidia-smi), the torch/onnxruntime builds and the precision a job would pick
#   2. bench/overhead.py with AMP (the job's bf16/fp16), a Phase-1 epoch vs a student epoch
#   3. a short `akd distill` on the GPU with mixed precision and INT8 export
#   4. resume equivalence in bf16 and fp16 (deterministic mode), bench/gpu_paths.py resume
#   5. the pinned-memory path against the resident one, bench/gpu_paths.py pinned
#   6. ms per training step: eager NCHW, eager channels_last, compiled (bench/gpu_paths.py kernels)
#   7. SM utilisation over the whole run (nvidia-smi dmon) and each step's peak memory
# Without a CUDA GPU it stops at once with exit code 3 and says so: nothing is measured.
set -uo pipefail

PY=${PY:-.venv/bin/python}
AKD=${AKD:-.venv/bin/akd}
OUT=${AKD_GPU_CHECK_DIR:-/tmp/akd-gpu-check}
[ -x "$PY" ] || { echo "gpu_check: $PY not found; run from the repo root after 'make setup'" >&2; exit 2; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1 \
    || ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA GPU visible (nvidia-smi or torch.cuda); this check needs one, nothing was run" >&2
  exit 3
fi

mkdir -p "$OUT"
failed=0
step() {  # step NAME SECONDS CMD...: run with a time limit, keep going on failure
  local name=$1 limit=$2; shift 2
  echo; echo "== $name (limit ${limit}s) =="
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "-- $name: exit $rc in $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed=1
}

echo "== card =="
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv
"$PY" - <<'PY'
import onnxruntime as ort
import torch

from akd_core.device import amp_dtype_for

dev = torch.device("cuda")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), capability "
      f"{torch.cuda.get_device_capability(dev)}, a job's AMP dtype: {amp_dtype_for(dev, True)}")
print(f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}")
PY

# SM utilisation, once a second, for the whole run.
nvidia-smi dmon -s u -d 1 >"$OUT/dmon.log" 2>&1 &
DMON=$!
trap 'kill "$DMON" 2>/dev/null' EXIT

step overhead 90 "$PY" bench/overhead.py --device cuda --samples 4096 --repeats 3

# A short distillation: digits teacher trained here, GPU, mixed precision, INT8 export.
step distill 120 "$PY" bench/gpu_paths.py distill --device cuda --out "$OUT/distill" --epochs 8

step resume 90 "$PY" bench/gpu_paths.py resume --device cuda --precisions bf16,fp16 --samples 2048
step pinned 60 "$PY" bench/gpu_paths.py pinned --device cuda --samples 32768
# What optimizer.compile "auto" and the channels_last rule decide on: the compile is the
# warm-up of the last variant (tens of seconds).
step kernels 60 "$PY" bench/gpu_paths.py kernels --device cuda --batch-size 128

kill "$DMON" 2>/dev/null
echo; echo "== SM utilisation over the run (nvidia-smi dmon, % of samples) =="
awk '$1 !~ /^#/ && $2 ~ /^[0-9]+$/ {n++; s+=$2; if ($2>m) m=$2} END {if (n) printf "sm%%: mean %.1f, max %d over %d s\n", s/n, m, n; else print "no dmon samples"}' "$OUT/dmon.log"
echo "peak memory per step: see the 'peak device memory' lines above"
exit "$failed"
