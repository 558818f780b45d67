"""Issue 5's benchmark: models on held-out phantoms (seeds 9000+ CT+MRI, 9500+ multiphase; training uses 1000+ and
5000+), every model on the same alignment of each case.

Prints a row per case and model, then Diff4MMLiTS's Table I (tumour DSC, JAC, SE, PRE) with liver Dice, LiTS's
global tumour Dice, lesion recall and the malignancy AUC, macro F1 and Brier score, per protocol: each model with all
inputs, the first model with each single input (`--singles`: the same network, trained with modality dropout), MONAI
baselines trained on the same budget (`scripts/train_benchmark_models.sh`), and peers such as `pyliverlesionseg`
(reference image only).
Then the first model against each other one and against its best single input, every gap with a 95% interval from
resampling the cases (paired).
Usage: python Testing/benchmarks/bench_models.py [--cases 10] [--align deformable] [--singles] [--device auto]
       [--models NAME_OR_DIR ...] [--json FILE] [--seeds 9000 9500] [--from-json FILE ...] [--against NAME]
(--json: every row, by default to results/bench_models.json)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchlib import PROTOCOLS, SEEDS, aligned_case, gap_text, generated_cases, json_argument, saved_rows, write_json

from liverfusion.evaluation.held_out import score, summarise
from liverfusion.inference.device import pick_device
from liverfusion.inference.pipeline import segment_aligned
from liverfusion.inference.postprocess import shown
from liverfusion.models import store as model_store
from liverfusion.models.interface import SegmentationModel

COLUMNS = (
    ("liver Dice", "liver_dice"),
    ("tumour DSC", "tumor_dice"),
    ("global DSC", "tumor_dice_global"),
    ("JAC", "tumor_jaccard"),
    ("SE", "tumor_sensitivity"),
    ("PRE", "tumor_precision"),
    ("lesion recall", "lesion_recall"),
    ("AUC", "auc"),
    ("macro F1", "macro_f1"),
    ("Brier", "brier"),
)

GAPS = ("tumor_dice", "tumor_dice_global", "auc")


def variants(models: list[SegmentationModel], roles: list[str], singles: bool):
    """(row name, model, inputs used): every model on all inputs, and the first on each input alone."""
    for model in models:
        yield model.bundle.name, model, None
    if singles and len(roles) > 1:
        for role in roles:
            yield f"{models[0].bundle.name} [{role} only]", models[0], {role}


def run_case(case: Path, models: list[SegmentationModel], args, device) -> dict[str, dict]:
    """Align once, with the first model's liver, then score every variant."""
    images, reference, regs, truth, info = aligned_case(case, models[0], args.align, device)
    rows = {}
    for name, model, use in variants(models, list(images), args.singles):
        start = time.perf_counter()
        result = segment_aligned(images, reference, regs, model, device, use=use)
        rows[name] = {"case": case.name, **score(result["labels"], truth, info, result["probability"])}
        rows[name]["seconds"] = round(time.perf_counter() - start, 2)
    return rows


def print_table(rows: dict[tuple[str, str], list[dict]]) -> None:
    print("| protocol | model | cases | " + " | ".join(c for c, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 3) + "|")
    for (protocol, name), done in rows.items():
        s = summarise(done)
        cells = ["n/a" if s[k] is None else f"{s[k]:.3f}" for _, k in COLUMNS]
        print(f"| {protocol} | {name} | {s['cases']} | " + " | ".join(cells) + " |")


def print_comparisons(rows: dict[tuple[str, str], list[dict]], fused: str) -> None:
    """The issue's criteria with their noise: `fused` minus every other model and minus its best single input (by
    tumour DSC) in `GAPS`, per protocol, each with a 95% interval from resampling the cases (paired)."""
    for protocol in dict.fromkeys(p for p, _ in rows):
        names = [n for p, n in rows if p == protocol and n != fused]
        singles = [n for n in names if n.startswith(f"{fused} [")]
        others = [n for n in names if n not in singles]
        if singles:
            others.append(max(singles, key=lambda n: summarise(rows[(protocol, n)])["tumor_dice"] or 0.0))
        for other in others:
            gaps = [gap_text(rows[(protocol, fused)], rows[(protocol, other)], k) for k in GAPS]
            label = f"its best single input ({other})" if other in singles else other
            print(f"{protocol}: {fused} minus {label}: tumour DSC {gaps[0]}, global DSC {gaps[1]}, AUC {gaps[2]}")


def evaluate_models(args) -> dict[tuple[str, str], list[dict]]:
    """Rows per (protocol, model) from phantoms made now; `both` pools the protocols' rows."""
    device = pick_device(args.device)
    models = [model_store.load_model(m, device) for m in args.models]
    names = [m.bundle.name for m in models]
    if len(set(names)) < len(names):  # rows are keyed by name: one model's would silently replace another's
        raise SystemExit(f"--models: two models named {max(names, key=names.count)}; rename one in its metadata.json")
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, case in generated_cases(Path(tmp), args.cases, args.seeds):
            for name, row in run_case(case, models, args, device).items():
                rows.setdefault((protocol, name), []).append(row)
                if " only]" not in name:  # a single input differs between protocols
                    rows.setdefault(("both", name), []).append(row)
                print(
                    f"{name:>36} {case.name}: liver {row['liver_dice']:.3f} tumour {row['tumor_dice']:.3f} "
                    f"lesions {row['lesions_found']}/{row['lesions_true']} p={shown(row['probability'])} "
                    f"malignant={row['malignant']} {row['seconds']:.1f}s",
                    flush=True,
                )
    order = [protocol for protocol, _ in PROTOCOLS] + ["both"]
    return dict(sorted(rows.items(), key=lambda item: order.index(item[0][0])))  # stable: models keep their order


def pooled_rows(files: list[str]) -> dict[tuple[str, str], list[dict]]:
    """The rows of several runs' --json (other seeds, say), pooled per (protocol, model), so that intervals narrow
    with the cases. A case in two files would count twice, and a model missing from one file would unpair the
    gaps, so either stops the pooling."""
    rows: dict[tuple[str, str], list[dict]] = {}
    for file in files:
        try:
            saved = saved_rows(file)
        except (OSError, ValueError) as error:
            raise SystemExit(f"{file}: not a bench_models --json file ({error})") from None
        if rows and set(saved) != {"/".join(key) for key in rows}:
            raise SystemExit(f"{file}: other protocols or models than {files[0]}")
        for key, done in saved.items():
            pooled = rows.setdefault(tuple(key.split("/", 1)), [])
            twice = {r["case"] for r in pooled} & {r["case"] for r in done}
            if twice:
                raise SystemExit(f"{file}: case {min(twice)} of {key} is already in an earlier file")
            pooled.extend(done)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10, help="per protocol")
    p.add_argument("--align", default="deformable")
    p.add_argument("--models", nargs="+", default=[model_store.DEFAULT_MODEL])
    p.add_argument("--singles", action="store_true", help="also the first model with each single input")
    p.add_argument("--device", default="auto")
    json_argument(p, __file__)
    p.add_argument(
        "--seeds",
        type=int,
        nargs=2,
        default=list(SEEDS),
        help="first seed of each protocol (ct-mri, multiphase); 8000 8500 are the tuning cases",
    )
    p.add_argument("--from-json", nargs="+", default=None, help="print the tables of runs' --json, pooled, not run")
    p.add_argument("--against", default=None, help="the model whose gaps to the others are printed (first model)")
    args = p.parse_args()
    if args.from_json:
        rows = pooled_rows(args.from_json)
    else:
        rows = evaluate_models(args)
    against = args.against or next(iter(rows))[1]
    if against not in {n for _, n in rows}:
        p.error(f"--against {against}: no such model in the rows")
    print_table(rows)
    print_comparisons(rows, against)
    write_json(args.json, {"rows": {f"{p}/{n}": r for (p, n), r in rows.items()}}, args)


if __name__ == "__main__":
    main()
