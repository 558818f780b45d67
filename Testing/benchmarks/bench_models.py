"""Held-out accuracy of models on phantom cases never used in training (seeds 9000+), all on the same cases.

Prints per-case rows and one summary per model (liver Dice, tumour Dice per case with tumour, malignancy AUC).
A peer such as `pyliverlesionseg` (KU Leuven, one image: the reference) runs through the same pipeline.
Usage: python Testing/benchmarks/bench_models.py [--cases 10] [--align deformable] [--models NAME_OR_DIR ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from liverfusion.evaluation import evaluate_case, summarise
from liverfusion.phantom import make_case
from liverfusion.postprocess import shown


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10, help="per protocol")
    p.add_argument("--align", default="deformable")
    p.add_argument("--models", nargs="+", default=["liverfusion_attention"])
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    rows = {model: [] for model in args.models}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, base in (("ct-mri", 9000), ("multiphase", 9500)):
            for i in range(args.cases):
                case = Path(tmp) / f"{protocol}_{i:03d}"
                make_case(case, base + i, protocol)
                for model in args.models:
                    row = evaluate_case(case, model, args.align, args.device)
                    rows[model].append(row)
                    print(
                        f"{model:>22} {protocol:>10} seed {base + i}: liver {row['liver_dice']:.3f} "
                        f"tumor {row['tumor_dice']:.3f} lesions {row['lesions_found']}/{row['lesions_true']} "
                        f"p={shown(row['probability'])} malignant={row['malignant']} {row['seconds']:.1f}s",
                        flush=True,
                    )
    print("| model | protocol | cases | liver Dice | tumour Dice (cases with tumour) | malignancy AUC |")
    print("|---|---|---|---|---|---|")
    for model, done in rows.items():
        for name, subset in (("ct-mri", done[: args.cases]), ("multiphase", done[args.cases :]), ("all", done)):
            s = summarise(subset)
            auc = "n/a" if s["auc"] is None else f"{s['auc']:.3f}"
            tumor = "n/a" if s["tumor_dice"] is None else f"{s['tumor_dice']:.3f}"
            print(f"| {model} | {name} | {s['cases']} | {s['liver_dice']:.3f} | {tumor} | {auc} |")


if __name__ == "__main__":
    main()
