#!/usr/bin/env bash
# Make the training data of the shipped models: phantom cases of both protocols, plus synthetic tumours inserted
# into the real livers of ../shared/data/real (hybrid training, as in Diff4MMLiTS).
#   scripts/make_training_data.sh WORK
# Environment: CTMRI_CASES, MULTIPHASE_CASES, REAL_CASES (per real image), REAL (folder), SMALL=1 for a quick run.
set -euo pipefail
work=$1
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
