#!/usr/bin/env bash
# GPU check of issue 23 (bf16 base, 4-bit QLoRA, FSDP) on the tiny test model: a few minutes on
# one GPU, well under ten. Run from the repository root on a machine with a CUDA GPU:
#     bash bench/gpu_check.sh [OUT_DIR]
# Writes OUT_DIR/gpu_check.log (default bench/results/gpu_check-DATE/) and exits non-zero if a
# check fails. QLoRA needs `pip install bitsandbytes`; FSDP uses assets/accelerate/fsdp.yaml with
# one process per visible GPU (one GPU still runs the FSDP code path: wrap, shard, save, export).
set -uo pipefail
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
OUT="${1:-bench/results/gpu_check-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
exec > >(tee "$LOG") 2>&1
status=0
echo "=== gpu_check $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'bf16', torch.cuda.is_bf16_supported(), '| transformers', transformers.__version__, '| accelerate', accelerate.__version__)"
"$PY" -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)" || echo "bitsandbytes missing: the QLoRA check will FAIL (pip install bitsandbytes)"
echo "=== bf16 base and NF4 base (one process)"
timeout 300 "$PY" bench/gpu_check.py precision "$OUT/precision" || status=1
echo "=== FSDP preset over $GPUS process(es)"
timeout 240 "$PY" -m accelerate.commands.launch --config_file assets/accelerate/fsdp.yaml \
    --num_processes "$GPUS" --num_machines 1 --main_process_port 29531 \
    bench/gpu_check.py fsdp "$OUT/fsdp" || status=1
echo "=== done: $(grep -c 'CHECK .*: PASS' "$LOG") checks passed, exit $status"
exit $status
