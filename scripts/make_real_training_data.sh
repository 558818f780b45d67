#!/usr/bin/env bash
# Make the training data of the real-trained model (issue 30): the real labelled CTs stay where they are (read from
# ../shared/data/real-train, never copied into this repository); beside them, synthetic tumours inserted into each
# real liver (its own tumours kept as tumour); and, as a third group, a few phantoms of both protocols and synthetic
# tumours in the real non-contrast CT and MR of ../shared/data/real (as the earlier models had), which keep the MRI
# channel and the benign/malignant rating alive.
#   scripts/make_real_training_data.sh WORK
# Environment: REAL_TRAIN, REAL (folders), HYBRIDS (per real case), CTMRI_CASES, MULTIPHASE_CASES, TS_CASES.
# Writes WORK/hybrid/<case>_<k>/ (the labelled phase with one synthetic lesion, label.nii.gz, case.json) and
# WORK/other/ (links to WORK/phantoms/{ctmri,multiphase}/case_NNN and WORK/ts/{ct,mr}_K: one folder of cases), and the
# same links split into WORK/phantom_links/ and WORK/ts_links/ (for a separate share of each: OTHER in train_real_folds.sh).
set -euo pipefail
work=$1
real=${REAL_TRAIN:-../shared/data/real-train}
jobs=$(nproc)
lf() { python3 -m liverfusion "$@"; }

for case in "$real"/*/; do
  name=$(basename "$case")
  labelled=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['labelled'])" "$case/case.json")
  seq 0 $(("${HYBRIDS:-4}" - 1)) | xargs -P "$jobs" -I{} sh -c "
    [ -d $work/hybrid/${name}_{} ] || python3 -m liverfusion synth-tumor --input $labelled=$case/$labelled.nii.gz \
      --liver $case/label_$labelled.nii.gz --liver-label 1 --tumor-label 2 --out $work/hybrid/${name}_{} \
      --seed {} >/dev/null"
done
ts=${REAL:-../shared/data/real}/totalsegmentator_examples
seq 0 $(("${TS_CASES:-4}" - 1)) | xargs -P "$jobs" -I{} sh -c "
  [ -d $work/ts/ct_{} ] || python3 -m liverfusion synth-tumor --input nc=$ts/example_ct_sm.nii.gz \
    --liver $ts/example_seg_fast_liver.nii.gz --out $work/ts/ct_{} --seed {} >/dev/null
  [ -d $work/ts/mr_{} ] || python3 -m liverfusion synth-tumor --input mri=$ts/example_mr_sm.nii.gz \
    --liver $ts/example_seg_mr.nii.gz --liver-label 5 --out $work/ts/mr_{} --seed {} >/dev/null"
lf phantom --protocol ct-mri --cases "${CTMRI_CASES:-12}" --seed 1000 --out "$work/phantoms/ctmri" --jobs "$jobs"
lf phantom --protocol multiphase --cases "${MULTIPHASE_CASES:-6}" --seed 5000 --out "$work/phantoms/multiphase" \
  --jobs "$jobs"
mkdir -p "$work/other" "$work/phantom_links" "$work/ts_links"
for case in "$work"/phantoms/*/case_* "$work"/ts/*; do
  name=$(basename "$(dirname "$case")")_$(basename "$case")
  ln -sfn "$(realpath "$case")" "$work/other/$name"
  case $name in ts_*) group=ts_links ;; *) group=phantom_links ;; esac
  ln -sfn "$(realpath "$case")" "$work/$group/$name"
done
