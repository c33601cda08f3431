#!/usr/bin/env bash
# Candidates for a collapse-safe default on one GPU: physics augmentations with the reference
# init and MoCo weight c = 0, 0.01, 0.1, on every data seed with 2 pretraining seeds.
# usage: OUT=dir EPOCHS=60 bash benchmarks/gpu_candidates.sh
set -u
OUT=${OUT:-benchmarks/results/gpu_candidates}
EPOCHS=${EPOCHS:-60}
LIMIT=${LIMIT:-230}
mkdir -p "$OUT"
run() {  # name seeds plan
  OMP_NUM_THREADS=2 timeout "$LIMIT" python -m benchmarks.ablation --device "${DEVICE:-cuda}" \
    --epochs "$EPOCHS" --seeds $2 --plan "$3" --out "$OUT/$1.json" > "$OUT/$1.log" 2>&1 &
}
for variant in rr_phys rrmoco_phys rrmoco_phys_c01; do
  for data in 0 1 2; do
    run "${variant}_data${data}" "0 1" "[[\"$variant\",$data,false]]"
  done
done
wait
tail -q -n 1 "$OUT"/*.log
