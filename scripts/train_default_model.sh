#!/usr/bin/env bash
# Make the training data and train the shipped model: phantom cases of both protocols, plus synthetic tumours
# inserted into the real livers of ../shared/data/real (hybrid training, as in Diff4MMLiTS).
#   scripts/train_default_model.sh OUT_BUNDLE [MINUTES]
# Environment: CTMRI_CASES, MULTIPHASE_CASES, REAL_CASES (per real image), REAL (folder), WORK, SMALL=1 for a quick
# run, TRAIN_ARGS (more `liverfusion train` options), DEADLINE_EPOCH (training then gets the time left before it, less a minute, instead of MINUTES).
set -euo pipefail
out=$1
minutes=${2:-5}
work=${WORK:-/tmp/liverfusion_train}
real=${REAL:-../shared/data/real}
jobs=$(nproc)
small=${SMALL:+--small}
lf() { python3 -m liverfusion "$@"; }

lf phantom --protocol ct-mri --cases "${CTMRI_CASES:-120}" --seed 1000 --out "$work/ctmri" --jobs "$jobs" $small
lf phantom --protocol multiphase --cases "${MULTIPHASE_CASES:-60}" --seed 5000 --out "$work/multiphase" --jobs "$jobs" $small
ts=$real/totalsegmentator_examples
seq 0 $(("${REAL_CASES:-24}" - 1)) | xargs -P "$jobs" -I{} sh -c "
  python3 -m liverfusion synth-tumor --input nc=$ts/example_ct_sm.nii.gz --liver $ts/example_seg_fast_liver.nii.gz \
    --out $work/real/ct_{} --seed {} >/dev/null &&
  python3 -m liverfusion synth-tumor --input mri=$ts/example_mr_sm.nii.gz --liver $ts/example_seg_mr.nii.gz \
    --liver-label 5 --out $work/real/mr_{} --seed {} >/dev/null"
if [ -n "${DEADLINE_EPOCH:-}" ]; then
  minutes=$(python3 -c "import time; print(round(($DEADLINE_EPOCH - time.time() - 60) / 60, 2))")
fi
echo "data ready at $(date +%T); training for $minutes min"
lf train --data "$work/ctmri" "$work/multiphase" "$work/real" --out "$out" --work "$work/train" \
  --steps 100000 --minutes "$minutes" --val-every 250 --workers "$jobs" --device auto ${TRAIN_ARGS:-}
