#!/usr/bin/env bash
# GPU readiness check: one script, under 5 minutes on one CUDA GPU; record its figures in docs/benchmarks.md.
#
#   bash benchmarks/gpu_check.sh
#
# 1. the gpu-marked tests: the xformers attention backend against the math one, bf16 autocast through VREMD
# 2. a few stage-2 training steps of vremd-vitl at 256x192 (frozen backbone, bf16 autocast): samples/s
# 3. the layers benchmark (DCA vs its unfused baseline, attention backends) on CUDA
# 4. benchmarks/gpu_decode_check.py, when the checkout has it
# The xformers tests skip unless xformers is installed: uv sync --locked --all-packages --extra xformers
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export VREMD_SHARED="${VREMD_SHARED:-$PWD/../shared}"
run() { uv run --locked "$@"; }
section() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
start=$SECONDS

if ! run python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check.sh: no CUDA device visible to torch; nothing checked" >&2
  exit 1
fi
section "device"
run python -c "import torch; p = torch.cuda.get_device_properties(0); print(p.name, f'{p.total_memory / 2**30:.0f} GiB', 'torch', torch.__version__, 'CUDA', torch.version.cuda)"
run python -c "import xformers; print('xformers', xformers.__version__)" 2>/dev/null || echo "xformers not installed: its tests will be skipped"

section "gpu-marked tests"
timeout 150 uv run --locked pytest -q -p no:cacheprovider -m gpu -rs tests/vremd_layers tests/vremd_models

section "stage-2 training steps: vremd-vitl 256x192, frozen backbone, bf16"
ACCELERATE_MIXED_PRECISION=bf16 timeout 90 uv run --locked python benchmarks/train_throughput.py \
  --preset vremd-vitl --image-size 256 192 --batch-size 32 --steps 4 --rounds 3

section "layers benchmark on CUDA"
timeout 60 uv run --locked python benchmarks/layers.py --device cuda

if [ -f benchmarks/gpu_decode_check.py ]; then
  section "gpu decode check"
  timeout 45 uv run --locked python benchmarks/gpu_decode_check.py
fi
printf '\ngpu_check.sh: done in %d s\n' "$((SECONDS - start))"
