#!/usr/bin/env bash
# Issue 9's experiment: the fusion network with KU Leuven's encoder, started from their trained liver network
# (transfer) or from random weights (scratch), trained side by side on one GPU for the same minutes on the same data
# (scripts/make_training_data.sh), same seed, so that only the encoder's starting weights differ.
#   scripts/train_transfer_vs_scratch.sh OUT_DIR [MINUTES]
# Environment: as make_training_data.sh, plus WORK, DEADLINE_EPOCH, and INIT: a state dict to start the transfer run
# from instead of `--pretrained pyliverlesionseg` (for a machine without the converted bundle; make it with
# `python -c "from liverfusion.training.trainer import *; import torch; torch.save(initial_network(TrainConfig(
# encoder='kuleuven', pretrained='pyliverlesionseg')).state_dict(), 'transfer_init.pt')"`).
set -euo pipefail
out=$1
minutes=${2:-5}
work=${WORK:-/tmp/liverfusion_transfer}
mkdir -p "$out"
source "$(dirname "$0")/side_by_side_data.sh"
echo "data ready at $(date +%T); training both for $minutes min"
start=${INIT:+--init $INIT}
for run in transfer scratch; do
  mkdir -p "$work/$run" && ln -sfn "$work/cache" "$work/$run/cache"
  args=(--encoder kuleuven)
  [ "$run" = transfer ] && args+=(${start:---pretrained pyliverlesionseg})
  python3 -m liverfusion train --data "${data[@]}" --out "$out/$run" --work "$work/$run" --steps 100000 \
    --minutes "$minutes" --val-every 100 --workers $(($(nproc) / 2 - 1)) --device auto "${args[@]}" \
    > "$out/$run.log" 2>&1 &
done
wait
cp "$work/transfer/log.csv" "$out/transfer_log.csv"; cp "$work/scratch/log.csv" "$out/scratch_log.csv"
tail -n 2 "$out/transfer.log" "$out/scratch.log"
