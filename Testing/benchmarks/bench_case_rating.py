"""How a case's malignancy probability is best pooled from its lesions: the product's rule (the highest, over lesions,
of P(tumour) x P(malignant)) against the most malignant lesion and other rules, on phantoms (bench_models.py's
seeds; 8000 8500 are the tuning cases), from one run of the model per case.

Each run keeps the product's case probability and every predicted lesion's volume, malignancy probability, mean
malignancy logit (also pooled over other regions: its rim, its surest voxels, the truth), mean tumour probability
and overlap with the truth; the other rules are computed from those, so
`--from-json` rates saved runs again without the network. Prints AUC, macro F1 and Brier score per protocol and
rule, then the product's rule minus the most malignant lesion with 95% intervals (paired case resamples).
Not a test. Usage: python Testing/benchmarks/bench_case_rating.py [--cases 20] [--seeds 9000 9500]
       [--model NAME_OR_DIR] [--device auto] [--json FILE] [--from-json FILE ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from benchlib import aligned_case, gap_text, generated_cases, json_argument, one_model_arguments, saved_rows, write_json
from scipy import ndimage

from liverfusion.constants import TUMOR
from liverfusion.evaluation.held_out import classification, score
from liverfusion.evaluation.metrics import on_grid_of
from liverfusion.inference.device import pick_device
from liverfusion.inference.pipeline import segment_aligned
from liverfusion.inference.postprocess import MIN_LESION_ML, lesion_components, sigmoid
from liverfusion.models import store as model_store

SHIPPED, OLD = "P(tumour) x P(malignant) (shipped)", "most malignant lesion"
POOLS = {
    "logit_grown3": "the lesion grown 3 mm",
    "logit_grown6": "the lesion grown 6 mm",
    "logit_weighted6": "the lesion grown 6 mm weighted by P(tumour)",
    "logit_sure": "voxels of P(tumour) >= 0.9",
    "logit_truth": "the truth's lesions it touches (for scale)",
}


def case_row(protocol: str, case: Path, model, device) -> dict:
    """The product's output on one case scored as bench_models.py scores it, with what every rule needs of each
    predicted lesion."""
    images, reference, regs, truth, info = aligned_case(case, model, "deformable", device)
    return rated_row(protocol, case.name, segment_aligned(images, reference, regs, model, device), truth, info)


def rated_row(protocol: str, name: str, result: dict, truth: sitk.Image, info: dict) -> dict:
    """One case's row from the product's result on it."""
    components = sitk.GetArrayFromImage(lesion_components(result["labels"] == TUMOR, MIN_LESION_ML))
    truth_tumour = on_grid_of(truth, result["labels"]) == TUMOR  # kept: a view of a temporary image dangles
    true_tumour = sitk.GetArrayViewFromImage(truth_tumour)
    tumour = sitk.GetArrayViewFromImage(result["tumor_probability"])
    logits = sitk.GetArrayViewFromImage(result["malignancy_logits"])
    liver = sitk.GetArrayViewFromImage(result["labels"]) > 0
    truth_lesions = sitk.GetArrayFromImage(lesion_components(truth_tumour))
    spacing = result["labels"].GetSpacing()[::-1]
    lesions = []
    for lesion in result["lesions"]:
        inside = components == lesion.id
        lesions.append(
            {
                "volume_ml": lesion.volume_ml,
                "p": lesion.malignancy_probability,
                "logit": float(logits[inside].mean()),
                "p_tumour": float(tumour[inside].mean()),
                "on_truth": float(true_tumour[inside].mean()),
                **pooled_logits(inside, liver, tumour, logits, truth_lesions, spacing),
            }
        )
    row = score(result["labels"], truth, info, result["probability"])
    return {"case": name, "protocol": protocol, **row, "lesions": lesions}


def pooled_logits(inside, liver, tumour, logits, truth_lesions, spacing) -> dict:
    """Other regions to pool a lesion's malignancy logit over: the lesion grown by 3 and 6 mm inside the liver
    (its rim, which a lesion found in part leaves out), the grown one weighted by P(tumour), the voxels the network
    is sure are tumour, and, for scale, the truth's lesions it touches (None off the truth)."""
    reach = [int(np.ceil(6 / s)) + 1 for s in spacing]
    box = tuple(slice(max(i.min() - r, 0), i.max() + r + 1) for i, r in zip(np.nonzero(inside), reach))
    distance = np.full(inside.shape, np.inf)
    distance[box] = ndimage.distance_transform_edt(~inside[box], sampling=spacing)
    grown = {mm: (distance <= mm) & liver for mm in (3, 6)}
    sure = inside & (tumour >= 0.9)
    touched = np.setdiff1d(np.unique(truth_lesions[inside]), [0])
    on_truth = np.isin(truth_lesions, touched) if touched.size else None
    weights = tumour[grown[6]]
    return {
        "logit_grown3": float(logits[grown[3]].mean()),
        "logit_grown6": float(logits[grown[6]].mean()),
        "logit_weighted6": float((weights * logits[grown[6]]).sum() / weights.sum()),
        "logit_sure": float(logits[sure].mean()) if sure.any() else float(logits[inside].mean()),
        "logit_truth": None if on_truth is None else float(logits[on_truth].mean()),
    }


def rules() -> dict:
    """Rule name -> case probability from a row (without lesions each falls back to the product's voxel-wise
    evidence; the size thresholds leave cases with only smaller lesions to the product's rule). The volume-weighted
    mean is there for scale: every lesion of a phantom case shares its class, so it
    wins on phantoms, while a patient's small metastasis beside a large cyst would be outvoted."""

    def most(f):
        return lambda row: max(f(les) for les in row["lesions"]) if row["lesions"] else row["probability"]

    def shrunk(v0):
        return most(lambda les: float(sigmoid(les["logit"] * les["volume_ml"] / (les["volume_ml"] + v0))))

    def large_first(ml):
        def rate(row):
            large = [les["p"] for les in row["lesions"] if les["volume_ml"] >= ml]
            return max(large) if large else row["probability"]

        return rate

    def volume_mean(row):
        if not row["lesions"]:
            return row["probability"]
        volume = np.array([les["volume_ml"] for les in row["lesions"]])
        return float(sigmoid(volume @ [les["logit"] for les in row["lesions"]] / volume.sum()))

    def pooled(key):
        return most(lambda les: les["p_tumour"] * float(sigmoid(les[key] if les[key] is not None else les["logit"])))

    return {
        SHIPPED: lambda row: row["probability"],
        OLD: most(lambda les: les["p"]),
        **{f"shipped, logit pooled over {name}": pooled(key) for key, name in POOLS.items()},
        **{f"logit x v / (v + {v0} ml)": shrunk(v0) for v0 in (0.1, 0.3, 1.0, 3.0)},
        **{f"lesions under {ml} ml only if no larger": large_first(ml) for ml in (0.5, 1.0, 2.0)},
        "volume-weighted mean logit (for scale)": volume_mean,
    }


def report(rows: list[dict]) -> None:
    rated = {name: [{**row, "probability": rate(row)} for row in rows] for name, rate in rules().items()}
    protocols = ("ct-mri", "multiphase", "both")
    groups = {p: [i for i, r in enumerate(rows) if p in ("both", r["protocol"])] for p in protocols}
    print("| rule | protocol | cases | AUC | macro F1 | Brier |\n|---|---|---|---|---|---|")
    for name, done in rated.items():
        for protocol, idx in groups.items():
            c = classification([done[i] for i in idx])
            cells = ["n/a" if c[k] is None else f"{c[k]:.3f}" for k in ("auc", "macro_f1", "brier")]
            print(f"| {name} | {protocol} | {len(idx)} | " + " | ".join(cells) + " |")
    for protocol, idx in groups.items():
        for key in ("auc", "brier"):
            gap = gap_text([rated[SHIPPED][i] for i in idx], [rated[OLD][i] for i in idx], key)
            print(f"{protocol}: shipped minus most malignant lesion, {key} {gap}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    one_model_arguments(p)
    json_argument(p, __file__)
    p.add_argument("--from-json", nargs="+", default=None, help="rate saved rows again, pooled; nothing runs")
    args = p.parse_args()
    if args.from_json:
        rows = [row for file in args.from_json for row in saved_rows(file)]
    else:
        device = pick_device(args.device)
        model = model_store.load_model(args.model, device)
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for protocol, case in generated_cases(Path(tmp), args.cases, tuple(args.seeds)):
                rows.append(case_row(protocol, case, model, device))
                print(json.dumps(rows[-1]), flush=True)
    report(rows)
    write_json(args.json, {"rows": rows}, args)


if __name__ == "__main__":
    main()
