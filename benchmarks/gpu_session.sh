#!/bin/bash
# One call on a lent GPU machine (BENCHMARKS.md, "GPU path"), after `python benchmarks/gpu_carry.py --out .gpu`:
#   device run, carry [".gpu"]:  DEADLINE=570 bash benchmarks/gpu_session.sh bench tests select
# Steps, in the order given: bench (benchmarks/gpu.py), tests (the CUDA tests and the training/extraction tests
# on the GPU), select (recipes.py --select on the carried sets, full size, seeds 0-2; RECIPES and SEEDS override).
# Output goes to $OUT (the device tool brings it back); every step stops in time for the next to report.
cd "$(dirname "$0")/.." || exit 1
export PYTHONPATH=$PWD/src:$PWD/.gpu/site PYTHONUNBUFFERED=1 TRANSFERLAB_CACHE=/tmp/tlcache
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"; PY=${PY:-python3}
start=$(date +%s); left() { echo $(( ${DEADLINE:-570} - ($(date +%s) - start) )); }
for step in "$@"; do case $step in
  bench)
    { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
      $PY -c "import torch, timm, torchvision; print('torch', torch.__version__, 'timm', timm.__version__, 'torchvision', torchvision.__version__)"; } > "$OUT/machine.txt" 2>&1
    timeout "${BENCH_T:-210}" $PY benchmarks/gpu.py > "$OUT/gpu.txt" 2>&1; echo "gpu.py rc=$?" >> "$OUT/gpu.txt"; tail -12 "$OUT/gpu.txt" ;;
  tests)
    timeout "${TEST_T:-120}" $PY -m pytest -q -p no:cacheprovider -rfEs tests/train/test_cuda.py tests/train/test_finetune.py tests/features/test_extract.py tests/models/test_state.py > "$OUT/pytest.txt" 2>&1
    echo "pytest rc=$?" >> "$OUT/pytest.txt"; tail -12 "$OUT/pytest.txt" ;;
  select)
    for set in $(ls .gpu/devdata); do for seed in ${SEEDS:-0 1 2}; do
      t=$(left); [ "$t" -lt 30 ] && { echo "stop: ${t}s left" >> "$OUT/select.txt"; break 2; }
      timeout "$t" $PY benchmarks/recipes.py --select --resume --sets "$set" --devdata .gpu/devdata --strategies "${RECIPES:-probe,finetune,finetune:epochs=10}" \
          --seeds "$seed" --max-train 1000000 --max-eval 1000000 --out "$OUT/select.json" >> "$OUT/select.txt" 2>&1
      echo "$set seed $seed rc=$? at $(( $(date +%s) - start ))s" >> "$OUT/select.txt"
    done; done
    grep '^\[\|rc=\|^stop' "$OUT/select.txt" ;;
  *) echo "unknown step: $step (bench, tests, select)"; exit 2 ;;
esac; done
