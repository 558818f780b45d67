"""Held-out accuracy of the shipped model on phantom cases never used in training (seeds 9000+).

Prints per-case rows and the summary (liver Dice, tumour Dice per case with tumour, malignancy AUC).
Usage: python Testing/benchmarks/bench_models.py [--cases 10] [--align deformable] [--model NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from liverfusion.evaluation import evaluate_case, summarise
from liverfusion.phantom import make_case


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10, help="per protocol")
    p.add_argument("--align", default="deformable")
    p.add_argument("--model", default=None)
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, base in (("ct-mri", 9000), ("multiphase", 9500)):
            for i in range(args.cases):
                case = Path(tmp) / f"{protocol}_{i:03d}"
                make_case(case, base + i, protocol)
                row = evaluate_case(case, args.model, args.align, args.device)
                rows.append(row)
                print(
                    f"{protocol:>10} seed {base + i}: liver {row['liver_dice']:.3f} tumor {row['tumor_dice']:.3f} "
                    f"lesions {row['lesions_found']}/{row['lesions_true']} p={row['probability']:.2f} "
                    f"malignant={row['malignant']} {row['seconds']:.1f}s",
                    flush=True,
                )
        for name, subset in (("ct-mri", rows[: args.cases]), ("multiphase", rows[args.cases :]), ("all", rows)):
            s = summarise(subset)
            auc = "n/a" if s["auc"] is None else f"{s['auc']:.3f}"
            tumor = "n/a" if s["tumor_dice"] is None else f"{s['tumor_dice']:.3f}"
            print(f"{name:>10}: {s['cases']} cases, liver Dice {s['liver_dice']:.3f}, tumour Dice {tumor}, AUC {auc}")


if __name__ == "__main__":
    main()
