"""The most a perfect network on the model grid could score: issue 5's held-out cases (the seeds of bench_models.py)
with the network replaced by the truth itself, averaged over each model-grid voxel, then through the pipeline's own
post-processing (linear resampling to the reference grid, argmax, cleaning, lesions under the size threshold
dropped). What this misses, a network on that grid cannot find: it tells whether a tumour Dice goal needs a finer grid.

Prints a row per case, then the mean tumour Dice (cases with tumour), liver Dice and pooled lesion recall per
protocol. Not a test. Usage: python Testing/benchmarks/bench_grid_ceiling.py [--cases 10] [--spacing 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from benchlib import generated_cases, json_argument, write_json

from liverfusion.constants import CHANNELS
from liverfusion.evaluation.held_out import case_images, score, summarise, truth_of
from liverfusion.inference import pipeline
from liverfusion.io.roles import choose_reference
from liverfusion.models.interface import Prediction
from liverfusion.preprocessing import canonical_grid


def oracle(truth: sitk.Image, grid: sitk.Image) -> Prediction:
    """Each class's share of every grid voxel: the one-hot truth smoothed over a grid voxel's extent (a box of
    width s has standard deviation s / sqrt(12)) and sampled at the grid's voxel centres."""
    sigma = [max(g / np.sqrt(12), 1e-3) for g in grid.GetSpacing()]
    shares = []
    for label in range(3):
        one_hot = sitk.Cast(truth == label, sitk.sitkFloat32)
        smooth = sitk.SmoothingRecursiveGaussian(one_hot, sigma)
        shares.append(sitk.GetArrayFromImage(sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, 0.0)))
    probabilities = np.stack(shares).astype(np.float32)
    probabilities[0] += 1.0 - probabilities.sum(0)  # outside the truth's extent: background
    fusion = np.ones((len(CHANNELS), *probabilities.shape[1:]), np.float32)
    return Prediction(probabilities, None, fusion)


def ceiling_case(case: Path, spacing: float) -> dict:
    images = case_images(case)
    reference = choose_reference(images)
    truth, info = truth_of(case)
    grid = canonical_grid(images[reference], (spacing,) * 3)
    pred = oracle(truth, grid)
    result = pipeline._postprocess(pred, grid, {reference: images[reference]}, reference, {})
    return score(result["labels"], truth, info, result["probability"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10, help="per protocol")
    p.add_argument("--spacing", type=float, default=3.0, help="model grid spacing, mm")
    json_argument(p, __file__)
    args = p.parse_args()
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, case in generated_cases(Path(tmp), args.cases):
            r = ceiling_case(case, args.spacing)
            rows.setdefault(protocol, []).append(r)
            print(
                f"{case.name}: liver {r['liver_dice']:.3f} tumour {r['tumor_dice']:.3f} "
                f"lesions {r['lesions_found']}/{r['lesions_true']}",
                flush=True,
            )
    summaries = {}
    for protocol, done in rows.items():
        s = summaries[protocol] = summarise(done)
        print(
            f"{protocol}, {args.spacing:g} mm grid, perfect network: liver Dice {s['liver_dice']:.3f}, "
            f"tumour DSC {s['tumor_dice']:.3f}, lesion recall {s['lesion_recall']:.3f} ({s['cases']} cases)"
        )
    write_json(args.json, {"summary": summaries, "rows": rows}, args)


if __name__ == "__main__":
    main()
