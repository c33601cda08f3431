#!/usr/bin/env bash
# One GPU sweep of the ablation (benchmarks/ablation.py): five processes share the GPU, each
# writes its JSON to $OUT after every run, so a time-out keeps what was finished.
# usage: OUT=dir EPOCHS=60 bash benchmarks/gpu_sweep.sh
set -u
OUT=${OUT:-benchmarks/results/sweep}
EPOCHS=${EPOCHS:-60}
LIMIT=${LIMIT:-380}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
run() {  # name plan
  OMP_NUM_THREADS=3 timeout "$LIMIT" python -m benchmarks.ablation --device "${DEVICE:-cuda}" \
    --epochs "$EPOCHS" $EXTRA --plan "$2" --out "$OUT/$1.json" > "$OUT/$1.log" 2>&1 &
}
run p1 '[["raw_logistic",0,false],["random_init",0,false],["specrrmoco",0,false],["rrmoco_bnfix",0,false],["rrmoco_bnfix_phys",0,false]]'
run p2 '[["xrdphase",0,false],["xrdphase",1,false],["xrdphase",2,false]]'
run p3 '[["specrrmoco",1,false],["specrrmoco",2,false],["moco_bnfix_phys",0,false],["rr_bnfix_phys",0,false]]'
run p4 '[["rrmoco_phys_c1",0,false],["rrmoco_bnfix_phys_c1_t02",0,false],["moco_bnfix_phys",1,false],["moco_bnfix_phys",2,false]]'
run p5 '[["raw_logistic",1,false],["raw_logistic",2,false],["random_init",1,false],["random_init",2,false],["xrdphase",1,true],["xrdphase",2,true]]'
wait
nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/gpu.txt" 2>/dev/null || true
tail -n 20 "$OUT"/p*.log
