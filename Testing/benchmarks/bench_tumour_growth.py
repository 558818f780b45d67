"""Would growing each lesion found through its hesitant rim help tumour Dice? Hysteresis on P(tumour), on phantoms.

Every lesion the product finds takes the liver voxels connected to it where P(tumour) reaches a lower threshold (no
new lesion can appear); phantoms are bench_models.py's (seeds 8000 8500 are the tuning cases), one run of the model
per case.

Prints per protocol the per-case and global tumour Dice, sensitivity, precision and lesion recall of the product
and of each threshold, scored as bench_models.py scores, and each threshold minus the product with 95% intervals
(paired case resamples). Not a test. Usage: python Testing/benchmarks/bench_tumour_growth.py [--cases 20]
       [--seeds 9000 9500] [--model NAME_OR_DIR] [--device auto] [--thresholds 0.35 0.25 0.15]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from bench_models import aligned_case, gap_text, generated_cases, one_model_arguments
from scipy import ndimage

from liverfusion.constants import LIVER, TUMOR
from liverfusion.evaluation.held_out import score, summarise
from liverfusion.inference.device import pick_device
from liverfusion.inference.pipeline import segment_aligned
from liverfusion.models import store as model_store

PRODUCT = "product (argmax)"
KEYS = ("tumor_dice", "tumor_dice_global", "tumor_sensitivity", "tumor_precision", "lesion_recall")


def grown(labels: sitk.Image, tumour_probability: sitk.Image, low: float) -> sitk.Image:
    """The product's lesions grown through the liver voxels connected to them where P(tumour) >= low."""
    arr = sitk.GetArrayFromImage(labels)
    seeds = arr == TUMOR
    region, _ = ndimage.label(
        seeds | ((arr == LIVER) & (sitk.GetArrayViewFromImage(tumour_probability) >= low)), np.ones((3, 3, 3), bool)
    )
    arr[np.isin(region, np.unique(region[seeds]))] = TUMOR
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(labels)
    return out


def case_rows(case: Path, model, device, thresholds: list[float]) -> dict[str, dict]:
    images, reference, regs, truth, info = aligned_case(case, model, "deformable", device)
    result = segment_aligned(images, reference, regs, model, device)
    variants = {PRODUCT: result["labels"]}
    variants.update({f"grown to P >= {t}": grown(result["labels"], result["tumor_probability"], t) for t in thresholds})
    return {name: {"case": case.name, **score(labels, truth, info, None)} for name, labels in variants.items()}


def report(rows: dict[tuple[str, str], list[dict]]) -> None:
    rows = dict(sorted(rows.items(), key=lambda item: ("ct-mri", "multiphase", "both").index(item[0][0])))
    print("| protocol | variant | cases | " + " | ".join(KEYS) + " |\n|---|---|---|" + "---|" * len(KEYS))
    for (protocol, name), done in rows.items():
        s = summarise(done)
        cells = ["n/a" if s[k] is None else f"{s[k]:.3f}" for k in KEYS]
        print(f"| {protocol} | {name} | {len(done)} | " + " | ".join(cells) + " |")
    for (protocol, name), done in rows.items():
        if name != PRODUCT:
            for key in ("tumor_dice", "tumor_dice_global"):
                print(f"{protocol}: {name} minus the product, {key} {gap_text(done, rows[(protocol, PRODUCT)], key)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    one_model_arguments(p)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.35, 0.25, 0.15])
    args = p.parse_args()
    device = pick_device(args.device)
    model = model_store.load_model(args.model, device)
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, case in generated_cases(Path(tmp), args.cases, tuple(args.seeds)):
            done = case_rows(case, model, device, args.thresholds)
            for name, row in done.items():
                for group in (protocol, "both"):
                    rows.setdefault((group, name), []).append(row)
            print(f"{case.name}: " + ", ".join(f"{n} {r['tumor_dice']}" for n, r in done.items()), flush=True)
    report(rows)


if __name__ == "__main__":
    main()
