"""Issue 30's benchmark: models on the real labelled CTs of ../shared/data/real-train, each case scored on its
labelled phase alone and with every phase it has (aligned by the product, the labelled phase as reference).

With `--folds DIR`, each case is scored by the bundle `DIR/<case>` (a cross-validation fold trained without that
case), else every case by `--model`; `--peer pyliverlesionseg` adds KU Leuven's networks on the labelled phase alone
in the same run. Prints a row per case and run, then the issue's targets per model, and writes JSON.
Not a test: prints figures.
Usage: python Testing/benchmarks/bench_real_cases.py [--folds DIR | --model NAME_OR_DIR] [--peer NAME]
       [--cases tace1720 ...] [--align deformable] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchlib import REAL, json_argument, write_json

from liverfusion.evaluation.held_out import case_images, score, truth_of
from liverfusion.inference.pipeline import run_case
from liverfusion.training.dataset import case_reference, case_roles, find_cases

REAL_TRAIN = REAL.parent / "real-train"


def runs(case: Path, model: str | None, peer: str | None, align: str):
    """(run name, model, inputs, alignment): the labelled phase alone, every phase, and the peer alone."""
    labelled = case_reference(case)
    yield "labelled phase", model, [labelled], "none"
    if len(case_roles(case)) > 1:
        yield "all phases", model, case_roles(case), align
    if peer:
        yield peer, peer, [labelled], "none"


def score_run(case: Path, model: str | None, roles: list[str], align: str) -> dict:
    images = {r: im for r, im in case_images(case).items() if r in roles}
    start = time.perf_counter()
    result = run_case(images, align, "auto", model, reference=case_reference(case))
    seconds = time.perf_counter() - start
    truth, info = truth_of(case)
    row = score(result.labels, truth, info, result.probability)
    return {**row, "seconds": round(seconds, 1), "warnings": result.warnings}


def print_row(case: str, run: str, row: dict) -> None:
    false = row["lesions_pred"] - row["lesions_right"]
    print(
        f"{case:<10} {run:<18} liver {row['liver_dice']:.3f}  tumour {row['tumor_dice'] or 0:.3f}  "
        f"lesions >=10 mm {row['lesions_found_large']}/{row['lesions_true_large']}  false {false}  "
        f"{row['seconds']:.0f} s",
        flush=True,
    )


def targets(rows: list[dict]) -> dict:
    """The issue's figures over the cases: liver Dice on every case, tumour Dice on cases with a lesion of
    10 mm or more, lesion recall of those, the most false lesions in a case."""
    big = [r for r in rows if r["lesions_true_large"]]
    true = sum(r["lesions_true_large"] for r in rows)
    return {
        "liver_dice_min": min(r["liver_dice"] for r in rows),
        "liver_dice_mean": sum(r["liver_dice"] for r in rows) / len(rows),
        "tumor_dice_mean_large": sum(r["tumor_dice"] for r in big) / len(big) if big else None,
        "lesion_recall_large": sum(r["lesions_found_large"] for r in rows) / true if true else None,
        "false_lesions_max": max(r["lesions_pred"] - r["lesions_right"] for r in rows),
        "seconds_mean": sum(r["seconds"] for r in rows) / len(rows),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(REAL_TRAIN))
    p.add_argument("--folds", default=None, help="folder of bundles named by the case each one held out")
    p.add_argument("--model", default=None, help="one model for every case (default: the shipped one)")
    p.add_argument("--peer", default=None, help="a second model on the labelled phase alone (pyliverlesionseg)")
    p.add_argument("--cases", nargs="*", default=None)
    p.add_argument("--align", default="deformable")
    json_argument(p, __file__, "real_cases")
    args = p.parse_args()
    cases = [c for c in find_cases([Path(args.data)]) if not args.cases or c.name in args.cases]
    rows: dict[str, list[dict]] = {}
    for case in cases:
        model = str(Path(args.folds) / case.name) if args.folds else args.model
        for run, bundle, roles, align in runs(case, model, args.peer, args.align):
            row = {"case": case.name, "roles": "+".join(roles), **score_run(case, bundle, roles, align)}
            rows.setdefault(run, []).append(row)
            print_row(case.name, run, row)
    summary = {run: targets(r) for run, r in rows.items()}
    for run, figures in summary.items():
        print(run, json.dumps({k: v if v is None else round(v, 3) for k, v in figures.items()}))
    write_json(args.json, {"summary": summary, "rows": rows}, args)


if __name__ == "__main__":
    main()
