#!/usr/bin/env bash
# Fine-tune the shipped model in several variants side by side on one GPU, on the data of make_training_data.sh
# (cached once for all runs), for the same minutes. Each variant is NAME=ARGS (more `liverfusion train` options,
# e.g. "b16=--batch-size 16"); every run starts from the shipped bundle with the same seed.
#   scripts/finetune_variants.sh OUT_DIR MINUTES NAME=ARGS...
# Environment: as make_training_data.sh, plus WORK, DEADLINE_EPOCH (training then gets the time left before it,
# less a minute), VERSION (of the bundles written).
set -euo pipefail
out=$1
minutes=$2
shift 2
work=${WORK:-/tmp/liverfusion_finetune}
mkdir -p "$out"
source "$(dirname "$0")/side_by_side_data.sh"
workers=$(($(nproc) / $# - 1))
echo "data ready at $(date +%T); fine-tuning ${*%%=*} for $minutes min, $workers batch workers each"
names=()
for variant in "$@"; do
  name=${variant%%=*}
  names+=("$name")
  mkdir -p "$work/$name" && ln -sfn "$work/cache" "$work/$name/cache"
  # shellcheck disable=SC2086  # ARGS are words
  python3 -m liverfusion train --data "${data[@]}" --out "$out/$name" --work "$work/$name" --steps 100000 \
    --minutes "$minutes" --val-every 250 --workers "$workers" --device auto --init liverfusion_attention \
    --version "${VERSION:-0.0.0}" ${variant#*=} > "$out/$name.log" 2>&1 &
done
wait
for name in "${names[@]}"; do cp "$work/$name/log.csv" "$out/$name/log.csv"; tail -n 1 "$out/$name.log"; done
