"""Held-out evaluation of a model on case folders with ground truth: the figures in the model card and README.

Runs the whole pipeline (alignment included) on each case, as a user would, and scores liver and tumour
against the reference label and the malignancy probability against the case's truth (ROC AUC).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .dataset import case_roles
from .imageio import read_image
from .metrics import auc, evaluate
from .pipeline import read_inputs, run_case
from .roles import choose_reference


def evaluate_case(case: Path, model: str | None, align: str, device: str) -> dict:
    roles = case_roles(case)
    images = read_inputs({r: str(case / f"{r}.nii.gz") for r in roles})
    result = run_case(images, align, device, model)
    truth = read_image(case / f"label_{choose_reference(roles)}.nii.gz", label=True)
    metrics = evaluate(result.labels, truth)
    info = json.loads((case / "case.json").read_text())
    return {
        "case": case.name,
        "roles": roles,
        "liver_dice": metrics["liver"]["dice"],
        "tumor_dice": metrics["tumor"]["dice"],
        "tumor_present": bool(info["lesions"]),
        "malignant": bool(info["malignant"]),
        "probability": result.probability,
        "lesions_found": len(result.lesions),
        "lesions_true": len(info["lesions"]),
        "seconds": sum(result.timings.values()),
    }


def summarise(rows: list[dict]) -> dict:
    """Mean liver Dice; tumour Dice over cases that have tumour (LiTS's per-case Dice); case AUC (None for a
    model that does not rate malignancy)."""
    with_tumor = [r["tumor_dice"] for r in rows if r["tumor_present"]]
    unrated = any(r["probability"] is None for r in rows)  # a model without a malignancy rating
    return {
        "cases": len(rows),
        "liver_dice": float(np.mean([r["liver_dice"] for r in rows])),
        "tumor_dice": float(np.mean(with_tumor)) if with_tumor else None,
        "auc": None if unrated else auc([r["probability"] for r in rows], [r["malignant"] for r in rows]),
    }
