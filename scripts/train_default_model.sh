#!/usr/bin/env bash
# Make the training data (scripts/make_training_data.sh, same environment variables) and train the shipped model.
#   scripts/train_default_model.sh OUT_BUNDLE [MINUTES]
# Environment: WORK, TRAIN_ARGS (more `liverfusion train` options), DEADLINE_EPOCH (training then gets the time left
# before it, less a minute, instead of MINUTES).
set -euo pipefail
out=$1
minutes=${2:-5}
work=${WORK:-/tmp/liverfusion_train}
"$(dirname "$0")/make_training_data.sh" "$work"
if [ -n "${DEADLINE_EPOCH:-}" ]; then
  minutes=$(python3 -c "import time; print(round(($DEADLINE_EPOCH - time.time() - 60) / 60, 2))")
fi
echo "data ready at $(date +%T); training for $minutes min"
python3 -m liverfusion train --data "$work/ctmri" "$work/multiphase" "$work/real" --out "$out" --work "$work/train" \
  --steps 100000 --minutes "$minutes" --val-every 250 --workers "$(nproc)" --device auto ${TRAIN_ARGS:-}
