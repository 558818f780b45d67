#!/usr/bin/env bash
# Issue 5's benchmark models: the fusion network and MONAI's UNet, AttentionUnet and SegResNet, each trained from
# scratch side by side on one GPU for the same minutes on the same data (scripts/make_training_data.sh) with the
# same seed, loss and batches; plus a fine-tuning of the shipped model on that data (the candidate next bundle).
#   scripts/train_benchmark_models.sh OUT_DIR [MINUTES]
# Environment: as make_training_data.sh, plus WORK, DEADLINE_EPOCH (training then gets the time left before it,
# less a minute), WORKERS (batch processes per run; default: the cores shared among the runs).
set -euo pipefail
out=$1
minutes=${2:-5}
work=${WORK:-/tmp/liverfusion_bench}
mkdir -p "$out"
source "$(dirname "$0")/side_by_side_data.sh"
runs=(fusion unet attentionunet segresnet finetune)
workers=${WORKERS:-$(($(nproc) / ${#runs[@]} - 1))}
echo "data ready at $(date +%T); training ${runs[*]} for $minutes min, $workers batch workers each"
for run in "${runs[@]}"; do
  mkdir -p "$work/$run" && ln -sfn "$work/cache" "$work/$run/cache"
  case $run in
    finetune) args=(--init liverfusion_attention) ;;
    *) args=(--architecture "$run") ;;
  esac
  python3 -m liverfusion train --data "${data[@]}" --out "$out/$run" --work "$work/$run" --steps 100000 \
    --minutes "$minutes" --val-every 200 --workers "$workers" --device auto "${args[@]}" > "$out/$run.log" 2>&1 &
done
wait
for run in "${runs[@]}"; do cp "$work/$run/log.csv" "$out/$run/log.csv"; tail -n 1 "$out/$run.log"; done
