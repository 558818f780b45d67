#!/usr/bin/env bash
# Train several runs side by side on one GPU, on the data of make_training_data.sh (cached once for all runs), for
# the same minutes and with the same seed. Each run is NAME=ARGS, ARGS being more `liverfusion train` options (a
# later option wins over the defaults here), e.g. "unet=--architecture unet" or "b16=--init liverfusion_attention
# --batch-size 16". Writes OUT_DIR/NAME (the bundle and its log.csv) and OUT_DIR/NAME.log.
#   scripts/train_side_by_side.sh OUT_DIR MINUTES NAME=ARGS...
# Environment: as make_training_data.sh, plus WORK, DEADLINE_EPOCH (training then gets the time left before it,
# less a minute), WORKERS (batch processes per run; default: the cores shared among the runs).
set -euo pipefail
out=$1
minutes=$2
shift 2
work=${WORK:-/tmp/liverfusion_side_by_side}
mkdir -p "$out"
source "$(dirname "$0")/side_by_side_data.sh"
workers=${WORKERS:-$(($(nproc) / $# - 1))}
echo "data ready at $(date +%T); training ${*%%=*} for $minutes min, $workers batch workers each"
names=()
for run in "$@"; do
  name=${run%%=*}
  names+=("$name")
  mkdir -p "$work/$name" && ln -sfn "$work/cache" "$work/$name/cache"
  # shellcheck disable=SC2086  # ARGS are words
  python3 -m liverfusion train --data "${data[@]}" --out "$out/$name" --work "$work/$name" --steps 100000 \
    --minutes "$minutes" --val-every 200 --workers "$workers" --device auto ${run#*=} > "$out/$name.log" 2>&1 &
done
wait
for name in "${names[@]}"; do cp "$work/$name/log.csv" "$out/$name/log.csv"; tail -n 1 "$out/$name.log"; done
