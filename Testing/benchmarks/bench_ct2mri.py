"""CT -> MRI translation, measured: ours (CycleGAN + MIND structure + liver shape terms) against a plain CycleGAN,
then the fusion network with CT + translated MRI against CT alone. Not a test: prints figures.

1. Held-out phantom pairs (one anatomy as CT and as MRI on the same grid, seeds 5000+): SSIM and PSNR of the
   translation against the true MRI (both scaled by their 99th percentile, as the translator scales MRI), and
   the liver Dice of the shipped segmentation network run on the translated image alone against the true liver
   (anatomy kept in place). The true MRI and the CT alone give the ceiling and the reference.
2. Tumour segmentation and malignancy with `fill_mri` against the CT alone: on held-out phantom CTs
   (seeds 6000+), and on the real CT of ../shared (TotalSegmentator's, native phase) with synthetic lesions of
   every type inserted into its liver. Tumour Dice per case; AUC of the case's malignancy probability.

The plain CycleGAN is trained by the same command with both terms off, for the same wall-clock time (the shipped
bundle's metadata has the full command):
    liverfusion train-ct2mri --out Testing/benchmarks/output/ct2mri_train/plain \
        --structure-weight 0 --shape-weight 0 ...
Usage: python Testing/benchmarks/bench_ct2mri.py [--pairs 6] [--cases 6] [--baseline DIR] [--real DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from benchlib import OUTPUT, REAL, json_argument, write_json
from monai.metrics import PSNRMetric, SSIMMetric

from liverfusion.apps.ct2mri.translate import load_translator, mri_to_unit, translate
from liverfusion.evaluation.metrics import auc, dice, evaluate
from liverfusion.inference.pipeline import run_case
from liverfusion.io.images import read_image
from liverfusion.models import store as model_store
from liverfusion.synthesis.phantom import aligned_pair, make_case
from liverfusion.synthesis.tumor import LESION_TYPES, insert

CPU = torch.device("cpu")


def image_scores(fake: sitk.Image, true: sitk.Image) -> tuple[float, float]:
    x, y = (torch.from_numpy(mri_to_unit(sitk.GetArrayFromImage(m)))[None, None] for m in (fake, true))
    ssim = SSIMMetric(spatial_dims=3, data_range=2.0, win_size=7)(x, y)
    return float(ssim.mean()), float(PSNRMetric(max_val=2.0)(x, y).mean())


def liver_dice_alone(image: sitk.Image, role: str, label: sitk.Image, segmenter) -> float:
    liver = segmenter.liver(image, role, CPU)
    if liver is None:
        return 0.0
    found = sitk.Resample(liver, label, sitk.Transform(), sitk.sitkNearestNeighbor)
    return dice(sitk.GetArrayFromImage(found) > 0, sitk.GetArrayFromImage(label) > 0)


def translation_table(translators: dict, pairs: int) -> dict:
    segmenter = model_store.load_model(None, CPU)
    rows: dict[str, list] = {name: [] for name in [*translators, "true MRI (ceiling)", "CT alone (reference)"]}
    for i in range(pairs):
        pair = aligned_pair(5000 + i)
        for name, bundle in translators.items():
            start = time.perf_counter()
            fake = translate(pair["ct"], bundle, CPU)
            seconds = time.perf_counter() - start
            liver = liver_dice_alone(fake, "mri", pair["label"], segmenter)
            rows[name].append((*image_scores(fake, pair["mri"]), liver, seconds))
        for name, role, scores in (("true MRI (ceiling)", "mri", (1.0, np.inf)), ("CT alone (reference)", "ct", None)):
            liver = liver_dice_alone(pair[role], role, pair["label"], segmenter)
            rows[name].append((*(scores or (np.nan, np.nan)), liver, 0.0))
    print(f"\n1. Translation on {pairs} held-out phantom pairs (mean ± sd)")
    print(f"{'image given to the network':<34} {'SSIM':>13} {'PSNR dB':>13} {'liver Dice':>13} {'s/case':>7}")
    for name, values in rows.items():
        a = np.array(values, float)
        cells = [_mean_sd(a[:, k]) for k in range(3)]
        print(f"{name:<34} {cells[0]:>13} {cells[1]:>13} {cells[2]:>13} {np.mean(a[:, 3]):7.1f}")
    keys = ("ssim", "psnr_db", "liver_dice", "seconds")
    return {name: [dict(zip(keys, row)) for row in values] for name, values in rows.items()}


def _mean_sd(values: np.ndarray) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if np.isfinite(values).all() else "—"


def clinical_timing(bundle) -> float:
    """Seconds to translate a CT of 512x512x120 voxels (0.74 x 0.74 x 2 mm), reading and writing excluded."""
    ct = sitk.GetImageFromArray(np.random.default_rng(0).normal(40, 20, (120, 512, 512)).astype(np.int16))
    ct.SetSpacing((0.74, 0.74, 2.0))
    start = time.perf_counter()
    translate(ct, bundle, CPU)
    seconds = time.perf_counter() - start
    print(f"\n0. A CT of 512x512x120 translated in {seconds:.1f} s ({torch.get_num_threads()} threads)")
    return seconds


def phantom_cases(n: int, work: Path) -> list[tuple[dict, sitk.Image, bool]]:
    cases = []
    for i in range(n):
        info = make_case(work / f"case_{i}", 6000 + i, "ct-mri", roles=("ct",))
        ct = read_image(work / f"case_{i}" / "ct.nii.gz")
        cases.append(({"ct": ct}, read_image(work / f"case_{i}" / "label_ct.nii.gz", label=True), info["malignant"]))
    return cases


def real_cases(real: Path) -> list[tuple[dict, sitk.Image, bool]]:
    """One case per lesion type (two sizes), each inserted at a random point deep in the real liver."""
    ts = real / "totalsegmentator_examples"
    ct = read_image(ts / "example_ct_sm.nii.gz")
    liver = read_image(ts / "example_seg_fast_liver.nii.gz", label=True) > 0
    cases = []
    for k, kind in enumerate(LESION_TYPES * 2):
        done = insert({"nc": ct}, liver, kind, None, 15.0 + 10.0 * (k >= len(LESION_TYPES)), seed=k)
        label = sitk.Cast(liver, sitk.sitkUInt8) + sitk.Cast(done.label > 0, sitk.sitkUInt8)
        cases.append(({"nc": done.images["nc"]}, label, done.malignant))
    return cases


def fusion_rows(cases: list, fill: bool) -> dict:
    dices, probs, truth = [], [], []
    for images, label, malignant in cases:
        result = run_case(images, "none", "cpu", fill_mri=fill)
        dices.append(evaluate(result.labels, label)["tumor"]["dice"])
        probs.append(result.probability)
        truth.append(malignant)
    return {"tumor_dice": float(np.mean(dices)), "auc": auc(probs, truth), "malignant": sum(truth), "n": len(truth)}


def fusion_table(n_phantoms: int, real: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"phantom CT (held out)": phantom_cases(n_phantoms, Path(tmp))}
        if real.is_dir():
            sets["real CT + synthetic lesions"] = real_cases(real)
        print("\n2. Fusion network: CT alone against CT + translated MRI (fill_mri)")
        print(f"{'cases':<44} {'input':<20} {'tumour Dice':>11} {'AUC':>6}")
        table: dict[str, dict] = {}
        for name, cases in sets.items():
            for label, fill in (("CT alone", False), ("CT + translated MRI", True)):
                r = table.setdefault(name, {})[label] = fusion_rows(cases, fill)
                shown = f"{r['auc']:.3f}" if r["auc"] is not None else "—"
                title = f"{name} ({r['n']}, {r['malignant']} malignant)"
                print(f"{title:<44} {label:<20} {r['tumor_dice']:>11.3f} {shown:>6}")
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--cases", type=int, default=6, help="held-out phantom CTs for part 2")
    p.add_argument("--model", default=None, help="our translator (default: the shipped one)")
    p.add_argument("--baseline", default=str(OUTPUT / "ct2mri_train" / "plain"))
    p.add_argument("--real", default=str(REAL))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    json_argument(p, __file__)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    translators = {"ours (CycleGAN + MIND + shape)": load_translator(args.model, CPU)}
    if Path(args.baseline).is_dir():
        translators["plain CycleGAN"] = load_translator(args.baseline, CPU)
    else:
        print(f"{args.baseline}: no plain CycleGAN bundle; train one with --structure-weight 0 to compare")
    figures = {"clinical_ct_seconds": clinical_timing(translators["ours (CycleGAN + MIND + shape)"])}
    figures["translation"] = translation_table(translators, args.pairs)
    figures["fusion"] = fusion_table(args.cases, Path(args.real))
    write_json(args.json, figures, args)


if __name__ == "__main__":
    main()
