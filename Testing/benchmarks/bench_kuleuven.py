"""Proof of the KU Leuven port: its liver Dice on the real CT and MR of ../shared/data/real against their liver masks
(TotalSegmentator's), with our edge padding and with their zero padding, and the time each takes.

A correct port of a working model reaches about 0.9; a wrong one (transposed kernels, a lost normalisation) gives
near 0. Usage: python Testing/benchmarks/bench_kuleuven.py [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
import torch
from benchlib import REAL, json_argument, write_json

from liverfusion.apps.kuleuven import predict as kuleuven_predict
from liverfusion.evaluation.metrics import dice
from liverfusion.inference.device import pick_device
from liverfusion.models import store as model_store

TS = REAL / "totalsegmentator_examples"
CASES = (  # role, image, reference liver, its label value
    ("nc", "example_ct_sm.nii.gz", "example_seg_fast_liver.nii.gz", 1),
    ("mri", "example_mr_sm.nii.gz", "example_seg_mr.nii.gz", 5),
)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    json_argument(p, __file__)
    args = p.parse_args()
    rows = []
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    bundle = model_store.load("pyliverlesionseg", device)
    for role, image_name, truth_name, value in CASES:
        image = sitk.ReadImage(str(TS / image_name), sitk.sitkFloat32)
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(TS / truth_name))) == value
        volume, spacing = kuleuven_predict.to_ras(image)
        for edge in (True, False):
            start = time.perf_counter()
            modality = kuleuven_predict.modality_of(role)
            mask = kuleuven_predict.liver_mask(volume, spacing, modality, bundle.network.liver, device, edge)
            found = sitk.GetArrayFromImage(kuleuven_predict.from_ras(mask.astype(np.float32), image)) > 0.5
            seconds, score = time.perf_counter() - start, dice(found, truth)
            padding = "edge (ours)" if edge else "zeros (theirs)"
            print(
                f"{image_name:>22} {padding:>15}: liver Dice {score:.4f} "
                f"({int(found.sum())} voxels, reference {int(truth.sum())}), {seconds:.1f} s "
                f"on {device} ({args.threads} threads)",
                flush=True,
            )
            rows.append({"image": image_name, "padding": padding, "liver_dice": score, "voxels": int(found.sum()),
                         "reference_voxels": int(truth.sum()), "seconds": seconds, "device": str(device)})
    write_json(args.json, {"rows": rows}, args)


if __name__ == "__main__":
    main()
