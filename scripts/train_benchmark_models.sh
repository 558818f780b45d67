#!/usr/bin/env bash
# Issue 5's benchmark models: the fusion network and MONAI's UNet, AttentionUnet and SegResNet, each trained from
# scratch side by side on one GPU for the same minutes on the same data (scripts/make_training_data.sh) with the
# same seed, loss and batches; plus a fine-tuning of the shipped model on that data (the candidate next bundle).
#   scripts/train_benchmark_models.sh OUT_DIR [MINUTES]
# Environment: as scripts/train_side_by_side.sh (WORK, DEADLINE_EPOCH, WORKERS, and the data's).
set -euo pipefail
WORK=${WORK:-/tmp/liverfusion_bench} exec "$(dirname "$0")/train_side_by_side.sh" "$1" "${2:-5}" \
  "fusion=--architecture fusion" "unet=--architecture unet" "attentionunet=--architecture attentionunet" \
  "segresnet=--architecture segresnet" "finetune=--init liverfusion_attention"
