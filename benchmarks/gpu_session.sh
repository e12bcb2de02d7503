#!/bin/bash
# One call on a lent GPU machine (BENCHMARKS.md, "GPU path"; the device input pipeline). Prepare here, once:
#   echo /.gpu/ >> .git/info/exclude                                   # carried paths must be ignored by git
#   python benchmarks/gpu_carry.py --sets sign-digits --out .gpu        # the bundled weights (.gpu/site, 18 MB) ...
#   rm -rf .gpu/devdata/sign-digits && cp -r ~/devdata/sign-digits .gpu/devdata/   # ... and the set at full size (29 MB)
#   mkdir -p .gpu/oxford40 && ls ../shared/data/oxford-iiit-pet-mini/images/*.jpg | LC_ALL=C sort | awk 'NR%15==1' | head -40 | xargs cp -t .gpu/oxford40
#   (every 15th Oxford mini JPEG, 2 MB: what the CUDA cosine test samples; checkout + .gpu stays under the 64 MiB a call carries)
# then one device run, carry [".gpu"], timeout_s 600:
#   DEADLINE=570 bash benchmarks/gpu_session.sh bench tests decoders
# Steps, in the order given (about 210 + 150 + 2x100 s):
#   bench     benchmarks/gpu.py: model only, end to end (Pillow threads, DataLoader, the device pipeline), naive ImageFolder,
#             bare fine-tuning steps, and a device-fed vs CPU-fed fine-tuning epoch; two goal lines (want >= 0.5 each);
#   tests     the CUDA tests (tests/train/test_cuda.py, tests/features/test_device_input.py's cuda ones) and the training and
#             extraction tests, on the GPU;
#   decoders  one full-size fine-tune of sign-digits (2,062 photos, 10 classes) fed by the device pipeline (--decoder gpu) and
#             one fed by the CPU (--decoder cpu), same seed: accuracy and epoch images/s of each;
#   select    recipes.py --select on the carried sets, full size, seeds 0-2 (RECIPES and SEEDS override).
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
    oxford=../shared/data/oxford-iiit-pet-mini  # where tests/conftest.py looks; the carried sample stands in for it
    if [ -d .gpu/oxford40 ] && [ ! -d "$oxford" ]; then mkdir -p "$oxford/annotations" && cp -r .gpu/oxford40 "$oxford/images"; fi
    timeout "${TEST_T:-150}" $PY -m pytest -q -p no:cacheprovider -rfEs tests/train/test_cuda.py tests/features/test_device_input.py tests/train/test_finetune.py tests/features/test_extract.py tests/models/test_state.py > "$OUT/pytest.txt" 2>&1
    echo "pytest rc=$?" >> "$OUT/pytest.txt"; tail -12 "$OUT/pytest.txt" ;;
  decoders)
    for decoder in gpu cpu; do
      t=$(left); [ "$t" -lt 30 ] && { echo "stop: ${t}s left" >> "$OUT/decoders.txt"; break; }
      timeout "$(( t < ${FT_T:-120} ? t : ${FT_T:-120} ))" $PY -m transferlab train .gpu/devdata/sign-digits --strategy finetune --seed 0 --decoder $decoder \
          --out /tmp/ft-$decoder --json > "$OUT/finetune-$decoder.json" 2>> "$OUT/decoders.txt"
      echo "$decoder rc=$? at $(( $(date +%s) - start ))s" >> "$OUT/decoders.txt"
      $PY -c "import json, sys; r = json.load(open(sys.argv[1])); h = (json.load(open(sys.argv[2])).get('finetune') or {}).get('history', [])
print(sys.argv[3], 'accuracy', r['metrics'].get('accuracy'), 'epoch img/s', [round(e.get('images_per_s', 0)) for e in h[1:]])" \
          "$OUT/finetune-$decoder.json" /tmp/ft-$decoder/model.json $decoder >> "$OUT/decoders.txt" 2>&1
    done
    cat "$OUT/decoders.txt" ;;
  select)
    for set in $(ls .gpu/devdata); do for seed in ${SEEDS:-0 1 2}; do
      t=$(left); [ "$t" -lt 30 ] && { echo "stop: ${t}s left" >> "$OUT/select.txt"; break 2; }
      timeout "$t" $PY benchmarks/recipes.py --select --resume --sets "$set" --devdata .gpu/devdata --strategies "${RECIPES:-probe,finetune,finetune:epochs=10}" \
          --seeds "$seed" --max-train 1000000 --max-eval 1000000 --out "$OUT/select.json" >> "$OUT/select.txt" 2>&1
      echo "$set seed $seed rc=$? at $(( $(date +%s) - start ))s" >> "$OUT/select.txt"
    done; done
    grep '^\[\|rc=\|^stop' "$OUT/select.txt" ;;
  *) echo "unknown step: $step (bench, tests, decoders, select)"; exit 2 ;;
esac; done
