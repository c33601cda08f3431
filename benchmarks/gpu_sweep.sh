#!/usr/bin/env bash
# The GPU sweeps behind docs/benchmarks.md (benchmarks/ablation.py): several processes share one
# GPU, each writes its JSON to $OUT after every run, so a time-out keeps what was finished.
# usage: OUT=dir EPOCHS=60 bash benchmarks/gpu_sweep.sh ablation|confirm|candidates
#   ablation    the steps from SpecRRMoco to the physics-augmented variants (data seed 0)
#   confirm     variants on unseen data seeds, transductive pretraining, the paper's methods
#   candidates  collapse-safe defaults: physics augmentations with MoCo weight 0, 0.01, 0.1
set -u
SWEEP=${1:?name a sweep: ablation, confirm or candidates}
OUT=${OUT:-benchmarks/results/$SWEEP}
EPOCHS=${EPOCHS:-60}
LIMIT=${LIMIT:-330}
mkdir -p "$OUT"
run() {  # name seeds plan
  OMP_NUM_THREADS=2 timeout "$LIMIT" python -m benchmarks.ablation --device "${DEVICE:-cuda}" \
    --epochs "$EPOCHS" --seeds $2 --plan "$3" --out "$OUT/$1.json" > "$OUT/$1.log" 2>&1 &
}
case "$SWEEP" in
  ablation)
    run p1 0 '[["raw_logistic",0,false],["random_init",0,false],["specrrmoco",0,false],["rrmoco_bnfix",0,false],["rrmoco_bnfix_phys",0,false]]'
    run p2 0 '[["rrmoco_bnfix_phys_c1",0,false],["rrmoco_bnfix_phys_c1",1,false],["rrmoco_bnfix_phys_c1",2,false]]'
    run p3 0 '[["specrrmoco",1,false],["specrrmoco",2,false],["moco_bnfix_phys",0,false],["rr_bnfix_phys",0,false]]'
    run p4 0 '[["rrmoco_phys_c1",0,false],["rrmoco_bnfix_phys_c1_t02",0,false],["moco_bnfix_phys",1,false],["moco_bnfix_phys",2,false]]'
    run p5 0 '[["raw_logistic",1,false],["raw_logistic",2,false],["random_init",1,false],["random_init",2,false]]'
    ;;
  confirm)
    run x_data1 "0 1 2" '[["rrmoco_phys_c1",1,false]]'
    run x_data2 "0 1 2" '[["rrmoco_phys_c1",2,false]]'
    run x_data0 "1 2" '[["rrmoco_phys_c1",0,false]]'
    run x_transductive 0 '[["rrmoco_phys_c1",1,true],["rrmoco_phys_c1",2,true]]'
    run paper_data1 0 '[["specrr",1,false],["specselftime",1,false],["specmoco",1,false]]'
    run rrmoco_seeds "1 2" '[["specrrmoco",1,false]]'
    ;;
  candidates)
    for variant in rr_phys rrmoco_phys rrmoco_phys_c01; do
      for data in 0 1 2; do
        run "${variant}_data${data}" "0 1" "[[\"$variant\",$data,false]]"
      done
    done
    ;;
  *) echo "unknown sweep $SWEEP: use ablation, confirm or candidates" >&2; exit 2 ;;
esac
wait
nvidia-smi --query-gpu=name --format=csv,noheader > "$OUT/gpu.txt" 2>/dev/null || true
tail -q -n 1 "$OUT"/*.log
