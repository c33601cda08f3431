#!/usr/bin/env bash
# Confirmation sweep on one GPU: the xrdphase method on unseen data seeds with 3 pretraining
# seeds, transductive pretraining, and the paper's methods on an unseen data seed.
# usage: OUT=dir EPOCHS=60 bash benchmarks/gpu_confirm.sh
set -u
OUT=${OUT:-benchmarks/results/gpu_confirm}
EPOCHS=${EPOCHS:-60}
LIMIT=${LIMIT:-330}
mkdir -p "$OUT"
run() {  # name seeds plan
  OMP_NUM_THREADS=2 timeout "$LIMIT" python -m benchmarks.ablation --device "${DEVICE:-cuda}" \
    --epochs "$EPOCHS" --seeds $2 --plan "$3" --out "$OUT/$1.json" > "$OUT/$1.log" 2>&1 &
}
run x_data1 "0 1 2" '[["xrdphase",1,false]]'
run x_data2 "0 1 2" '[["xrdphase",2,false]]'
run x_data0 "1 2" '[["xrdphase",0,false]]'
run x_transductive "0" '[["xrdphase",1,true],["xrdphase",2,true]]'
run paper_data1 "0" '[["specrr",1,false],["specselftime",1,false],["specmoco",1,false]]'
run rrmoco_seeds "1 2" '[["specrrmoco",1,false]]'
wait
nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/gpu.txt" 2>/dev/null || true
tail -n 5 "$OUT"/*.log
