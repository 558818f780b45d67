"""Proof of the KU Leuven port: its liver Dice on the real CT and MR of ../shared/data/real against their liver masks
(TotalSegmentator's), with our edge padding and with their zero padding, and the time each takes.

A correct port of a working model reaches about 0.9; a wrong one (transposed kernels, a lost normalisation) gives
near 0. Usage: python Testing/benchmarks/bench_kuleuven.py [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from liverfusion.apps.kuleuven import predict as kuleuven_predict
from liverfusion.evaluation.metrics import dice
from liverfusion.inference.device import pick_device
from liverfusion.models import store as model_store

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "totalsegmentator_examples"
CASES = (  # role, image, reference liver, its label value
    ("nc", "example_ct_sm.nii.gz", "example_seg_fast_liver.nii.gz", 1),
    ("mri", "example_mr_sm.nii.gz", "example_seg_mr.nii.gz", 5),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    bundle = model_store.load("pyliverlesionseg", device)
    for role, image_name, truth_name, value in CASES:
        image = sitk.ReadImage(str(REAL / image_name), sitk.sitkFloat32)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL / truth_name))) == value
        volume, spacing = kuleuven_predict.to_ras(image)
        for edge in (True, False):
            start = time.perf_counter()
            modality = kuleuven_predict.modality_of(role)
            mask = kuleuven_predict.liver_mask(volume, spacing, modality, bundle.network.liver, device, edge)
            found = sitk.GetArrayFromImage(kuleuven_predict.from_ras(mask.astype(np.float32), image)) > 0.5
            padding = "edge (ours)" if edge else "zeros (theirs)"
            print(
                f"{image_name:>22} {padding:>15}: liver Dice {dice(found, truth):.4f} "
                f"({int(found.sum())} voxels, reference {int(truth.sum())}), {time.perf_counter() - start:.1f} s "
                f"on {device} ({args.threads} threads)",
                flush=True,
            )


if __name__ == "__main__":
    main()
