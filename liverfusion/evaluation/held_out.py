"""Held-out evaluation of a model on case folders with ground truth (`liverfusion evaluate --dataset`): the
figures in the model card, `docs/results.md` and the benchmarks.

Runs the whole pipeline (alignment included) on each case, as a user would, and scores liver and tumour
against the reference label (LiTS's overlap and distance metrics), lesions by detection, and the case's
malignancy probability against its truth (ROC AUC, and macro F1 and accuracy at 0.5).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..constants import TUMOR
from ..errors import InputError
from ..inference.pipeline import read_inputs, run_case
from ..inference.postprocess import MIN_LESION_ML, lesion_components, max_diameter_mm
from ..io.images import read_image, require_writable, staged_output, write_text
from ..progress import Reporter, silent
from ..training.dataset import case_info, case_reference, case_roles, find_cases
from .metrics import auc, evaluate, on_grid_of

OVERLAP = ("dice", "jaccard", "sensitivity", "precision", "specificity", "hd95_mm")
VOLUMES = ("true_ml", "pred_ml", "overlap_ml")
DETECTABLE_MM = 10.0


def truth_of(case: Path) -> tuple[sitk.Image, dict]:
    """The labelled phase's label and `case.json` of a case folder."""
    truth = read_image(case / f"label_{case_reference(case)}.nii.gz", label=True)
    return truth, case_info(case)


def detection(pred: sitk.Image, truth: sitk.Image, min_diameter_mm: float = DETECTABLE_MM) -> dict[str, int]:
    """Lesion-level counts: a true lesion is found when a predicted tumour voxel touches it, a predicted lesion
    is right when it touches a true one (LiTS's detection criterion at its loosest).

    True lesions under `MIN_LESION_ML` are not counted: the post-processing removes every predicted island that
    small, so counting them would score as missed the label's specks (a deformed lesion's detached fragments),
    which no output of the product can find. Lesions are counted as the post-processing counts them
    (`lesion_components`). `lesions_true_large` and `lesions_found_large` count the true lesions of at least
    `min_diameter_mm` (10 mm: what a radiologist reports and what the real-scan targets are set on)."""
    p_cc = sitk.GetArrayFromImage(lesion_components(on_grid_of(pred, truth) == TUMOR))
    true_components = lesion_components(truth == TUMOR, MIN_LESION_ML)
    t_cc = sitk.GetArrayFromImage(true_components)
    found = set(np.unique(t_cc[(t_cc > 0) & (p_cc > 0)]).tolist())
    large = large_lesions(true_components, min_diameter_mm)
    return {
        "lesions_true": int(t_cc.max()),
        "lesions_found": len(found),
        "lesions_pred": int(p_cc.max()),
        "lesions_right": int(len(np.unique(p_cc[(p_cc > 0) & (t_cc > 0)]))),
        "lesions_true_large": len(large),
        "lesions_found_large": len(found & large),
    }


def large_lesions(components: sitk.Image, min_diameter_mm: float) -> set[int]:
    """The labels of `components` whose largest diameter is at least `min_diameter_mm`."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    return {k for k in stats.GetLabels() if max_diameter_mm(components, k, stats) >= min_diameter_mm}


def score(labels: sitk.Image, truth: sitk.Image, info: dict, probability: float | None) -> dict:
    """One case's row: overlap metrics of liver and tumour, detection counts, and the malignancy truth."""
    metrics = evaluate(labels, truth)
    row = {f"{organ}_{k}": metrics[organ][k] for organ in ("liver", "tumor") for k in OVERLAP + VOLUMES}
    return {
        **row,
        **detection(labels, truth),
        "tumor_present": bool(metrics["tumor"]["true_ml"]),
        "malignant": bool(info.get("malignant")),
        "probability": probability,
    }


def case_images(case: Path) -> dict[str, sitk.Image]:
    """A case folder's images by role, read as the pipeline reads a user's inputs."""
    return read_inputs({r: str(case / f"{r}.nii.gz") for r in case_roles(case)})


def evaluate_case(case: Path, model: str | None, align: str, device: str) -> dict:
    images = case_images(case)
    result = run_case(images, align, device, model, reference=case_reference(case))
    truth, info = truth_of(case)
    row = score(result.labels, truth, info, result.probability)
    return {"case": case.name, "roles": "+".join(images), **row, "seconds": sum(result.timings.values())}


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def classification(rows: list[dict]) -> dict[str, float | None]:
    """Case-level AUC, macro F1 and accuracy at probability 0.5, and the Brier score (the mean squared distance of
    the probability from the truth: the AUC ranks, the Brier score also asks whether 0.8 means 8 in 10); None for
    a model that does not rate."""
    if any(r["probability"] is None for r in rows):
        return {"auc": None, "macro_f1": None, "accuracy": None, "brier": None}
    scores, truth = np.array([r["probability"] for r in rows]), np.array([r["malignant"] for r in rows])
    called = scores >= 0.5
    f1 = []
    for cls in (True, False):
        tp = np.sum((called == cls) & (truth == cls))
        denominator = np.sum(called == cls) + np.sum(truth == cls)
        f1.append(1.0 if denominator == 0 else 2 * tp / denominator)
    return {
        "auc": auc(list(scores), list(truth)),
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(np.mean(called == truth)),
        "brier": float(np.mean((scores - truth) ** 2)),
    }


def global_dice(rows: list[dict], organ: str) -> float | None:
    """LiTS's "Dice global": the volumes of every case pooled, so a large lesion weighs more than a small one and a
    false lesion in a tumour-free case counts. The per-case mean weighs each case alike, and a case whose one
    small lesion is missed scores 0; the two together say whether small or large lesions are the trouble."""
    shared = sum(r[f"{organ}_overlap_ml"] for r in rows)
    total = sum(r[f"{organ}_true_ml"] + r[f"{organ}_pred_ml"] for r in rows)
    return 2 * shared / total if total else None


def summarise(rows: list[dict]) -> dict:
    """Means over cases (tumour metrics over cases that have tumour: LiTS's per-case Dice), global Dice, lesion
    detection pooled over cases, and the case-level classification figures."""
    with_tumor = [r for r in rows if r["tumor_present"]]
    out: dict = {"cases": len(rows), "cases_with_tumor": len(with_tumor)}
    for k in OVERLAP:
        out[f"liver_{k}"] = _mean([r[f"liver_{k}"] for r in rows])
        out[f"tumor_{k}"] = _mean([r[f"tumor_{k}"] for r in with_tumor])
    for organ in ("liver", "tumor"):
        out[f"{organ}_dice_global"] = global_dice(rows, organ)
    true, pred = sum(r["lesions_true"] for r in rows), sum(r["lesions_pred"] for r in rows)
    out["lesion_recall"] = sum(r["lesions_found"] for r in rows) / true if true else None
    out["lesion_precision"] = sum(r["lesions_right"] for r in rows) / pred if pred else None
    return {**out, **classification(rows)}


INTERVAL_KEYS = ("liver_dice", "tumor_dice", "tumor_dice_global", "lesion_recall", "auc")


def resamples(cases: int, draws: int = 2000, seed: int = 0):
    """Index draws of `cases` cases with replacement (the case bootstrap), the same for every model given `seed`."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, cases, cases) for _ in range(draws))


def interval(values: list[float | None]) -> list[float] | None:
    """The central 95% of a figure over the resamples where it is defined."""
    defined = [v for v in values if v is not None]
    return [float(q) for q in np.percentile(defined, [2.5, 97.5])] if defined else None


def intervals(rows: list[dict], keys=INTERVAL_KEYS) -> dict[str, list[float] | None]:
    """`<key>_ci95` for summary figures, from resampling the cases: on the dozen cases a hospital may have, a mean
    Dice says little without its spread."""
    if not rows:
        return {}
    drawn = [summarise([rows[i] for i in pick]) for pick in resamples(len(rows))]
    found = {k: interval([d[k] for d in drawn]) for k in keys}  # undefined on the cases: undefined on every draw
    return {f"{k}_ci95": v and [round(q, 4) for q in v] for k, v in found.items()}


def paired_difference(a: list[dict], b: list[dict], key: str) -> tuple[float, float, float] | None:
    """Summary figure `key` of model a minus model b on the same cases, with its 95% interval from resampling the
    cases (paired: both models keep each draw), so a ranking on 10 or 20 cases is read with its noise. None when
    the figure is undefined on the cases themselves (an AUC without both classes)."""
    if [r["case"] for r in a] != [r["case"] for r in b]:
        raise ValueError("paired_difference needs both models' rows for the same cases in the same order")

    def difference(pick) -> float | None:
        x, y = summarise([a[i] for i in pick])[key], summarise([b[i] for i in pick])[key]
        return None if x is None or y is None else x - y

    observed = difference(range(len(a)))
    if observed is None:
        return None
    low, high = interval([difference(pick) for pick in resamples(len(a))])
    return observed, low, high


def write_tables(rows: list[dict], summary: dict, out: Path) -> None:
    """`cases.csv`, `cases.json` and `summary.json` in `out`, written whole or not at all."""
    with staged_output(out) as stage:
        fields = list(rows[0]) if rows else ["case"]
        with open(stage / "cases.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fields)
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        write_text(json.dumps(rows, indent=2) + "\n", stage / "cases.json")
        write_text(json.dumps(summary, indent=2) + "\n", stage / "summary.json")


def evaluate_dataset(
    dataset: Path, model: str | None, align: str, device: str, out: Path, report: Reporter = silent
) -> dict:
    """Evaluate every case folder under `dataset`; write the per-case and summary tables to `out`."""
    require_writable(out)
    cases = find_cases([dataset])
    if not cases:
        raise InputError(f"{dataset}: no case folders (each with <role>.nii.gz images and label_<reference>.nii.gz)")
    rows = []
    for i, case in enumerate(cases):
        report(i / len(cases), case.name)
        rows.append(evaluate_case(case, model, align, device))
    report(1.0, "done")
    summary = {**summarise(rows), **intervals(rows)}
    write_tables(rows, summary, out)
    return summary
