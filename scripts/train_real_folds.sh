#!/usr/bin/env bash
# Train the real-data model and its cross-validation folds on this CPU (issue 30), resumable: each run keeps its
# checkpoints in WORK/runs/<name>/ and a rerun continues where it stopped.
#   scripts/train_real_folds.sh DATA WORK MINUTES [FOLD ...]
# DATA is the output of scripts/make_real_training_data.sh. FOLD names a run: `all` (every real case: the shipped
# model) or a list of held-out real cases joined by `+` (say `ircad_7+tace2022`); each fold trains without its
# held-out cases and without the synthetic tumours inserted into their livers, and is written as WORK/folds/<case>
# for every case it held out, the layout `Testing/benchmarks/bench_real_cases.py --folds` reads.
# Environment: REAL_TRAIN, INIT (starting bundle), OTHER (folders of further cases, default DATA/other), MIX (shares
# of real, hybrid and each OTHER folder), LR, BATCH, PATCH, VERSION.
set -euo pipefail
data=$(realpath "$1"); work=$(realpath -m "$2"); minutes=$3; shift 3
real=$(realpath "${REAL_TRAIN:-../shared/data/real-train}")
folds=("${@:-all}")
read -r -a others <<< "${OTHER:-$data/other}"

for fold in "${folds[@]}"; do
  run=$work/runs/$fold
  mkdir -p "$run/real" "$run/hybrid" "$work/cache" "$work/folds"
  ln -sfn "$work/cache" "$run/cache"  # cache keys name the resolved case folder: folds share one cache
  for case in "$real"/*/; do
    name=$(basename "$case")
    [[ "+$fold+" == *"+$name+"* ]] && continue
    ln -sfn "$case" "$run/real/$name"
    for hybrid in "$data/hybrid/${name}"_*; do ln -sfn "$hybrid" "$run/hybrid/$(basename "$hybrid")"; done
  done
  # shellcheck disable=SC2086
  python3 -m liverfusion train --data "$run/real" "$run/hybrid" "${others[@]}" --mix ${MIX:-0.5 0.3 0.2} \
    --no-val --init "${INIT:-liverfusion_attention}" --out "$run/model" --work "$run" --minutes "$minutes" \
    --steps 100000 --lr "${LR:-5e-4}" --batch-size "${BATCH:-2}" --patch "${PATCH:-48}" --resume --version "${VERSION:-0.4.0}"
  if [[ $fold != all ]]; then
    for name in ${fold//+/ }; do ln -sfn "$run/model" "$work/folds/$name"; done
  fi
done
