"""Liver Dice of the shipped model on the real CT and MR of ../shared/data/real (single-input cases).

The references are TotalSegmentator's own liver predictions and dcmqi's liver mask. The first two images'
livers (with synthetic tumours inserted) were in the hybrid training data, so they are marked `seen`; the
DICOM CT and the 3-slice dcmqi CT were never used in training. Not a test: prints figures.
Usage: python Testing/benchmarks/bench_real_liver.py [--real ../shared/data/real] [--model NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import SimpleITK as sitk
from benchlib import REAL, json_argument, write_json

from liverfusion.constants import LIVER
from liverfusion.evaluation.metrics import dice
from liverfusion.inference.pipeline import run_case
from liverfusion.io.images import read_image

# (name, role, image, reference mask, its liver value or None for "non-zero", seen in training)
CASES = [
    ("CT non-contrast (TotalSegmentator)", "nc", "totalsegmentator_examples/example_ct_sm.nii.gz",
     "totalsegmentator_examples/example_seg_fast_liver.nii.gz", None, True),
    ("MR (TotalSegmentator)", "mri", "totalsegmentator_examples/example_mr_sm.nii.gz",
     "totalsegmentator_examples/example_seg_mr.nii.gz", 5, True),
    ("CT DICOM, 20 slices (TotalSegmentator)", "ct", "totalsegmentator_examples/example_ct_dicom",
     "totalsegmentator_examples/example_seg_dicom.nii.gz", 5, False),
    ("CT DICOM, 3 slices (dcmqi)", "ct", "dcmqi_ct3slice_liver", "dcmqi_ct3slice_liver/liver_seg.nrrd", None, False),
]  # fmt: skip


def liver_dice(real: Path, role: str, image: str, mask: str, value: int | None, model: str | None) -> float:
    result = run_case({role: read_image(real / image)}, "none", "cpu", model)
    truth = read_image(real / mask, label=True)
    truth = truth == value if value is not None else truth > 0
    truth = sitk.Resample(truth, result.labels, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return dice(sitk.GetArrayFromImage(result.labels) >= LIVER, sitk.GetArrayFromImage(truth) > 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--real", default=str(REAL))
    p.add_argument("--model", default=None)
    json_argument(p, __file__)
    args = p.parse_args()
    rows = []
    for name, role, image, mask, value, seen in CASES:
        score = liver_dice(Path(args.real), role, image, mask, value, args.model)
        print(f"{name:<40} {role:>4}: liver Dice {score:.3f}{'  (liver seen in training)' if seen else ''}")
        rows.append({"case": name, "role": role, "liver_dice": score, "seen_in_training": seen})
    write_json(args.json, {"rows": rows}, args)


if __name__ == "__main__":
    main()
