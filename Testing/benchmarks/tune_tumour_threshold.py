"""Tune the tumour probability above which a foreground voxel is called tumour, on tuning phantoms (seeds 8000+
CT+MRI, 8500+ multiphase: neither training's 1000+/5000+ nor the held-out 9000+/9500+ of bench_models.py).

Per case the network runs once (deformable alignment, as in bench_models.py); post-processing then runs once per
threshold. A voxel is tumour where argmax says so, or where its tumour probability exceeds the threshold and
liver + tumour outweighs background (0.5 is plain argmax). Prints the mean tumour DSC, precision, sensitivity and
lesion recall, malignancy AUC and macro F1 per threshold and protocol. Not a test. Usage:
python Testing/benchmarks/tune_tumour_threshold.py [--cases 10] [--model NAME_OR_DIR] [--thresholds 0.5 0.4 0.3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from benchlib import aligned_case, generated_cases, json_argument, write_json

from liverfusion.constants import TUMOR
from liverfusion.evaluation.held_out import score, summarise
from liverfusion.inference import pipeline
from liverfusion.inference.device import pick_device
from liverfusion.models import store as model_store

SEEDS = (8000, 8500)  # the tuning cases: ct-mri, multiphase
argmax_labels = pipeline._argmax_labels


def labels_at(threshold: float):
    def labels(liver: np.ndarray, tumor: np.ndarray) -> np.ndarray:
        out = argmax_labels(liver, tumor)
        out[(tumor > threshold) & (liver + tumor > 1.0 - liver - tumor)] = TUMOR
        return out

    return labels


def case_rows(case: Path, model, device, thresholds: list[float]) -> dict[float, dict]:
    images, reference, regs, truth, info = aligned_case(case, model, "deformable", device)
    transforms = {role: r.transform for role, r in regs.items()}
    grid, pred = model.predict(images, reference, transforms, device)
    rows = {}
    for t in thresholds:
        pipeline._argmax_labels = labels_at(t)
        result = pipeline._postprocess(pred, grid, images, reference, regs)
        rows[t] = score(result["labels"], truth, info, result["probability"])
    pipeline._argmax_labels = argmax_labels
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10, help="per protocol")
    p.add_argument("--model", default=None)
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.4, 0.3, 0.2])
    p.add_argument("--device", default="auto")
    json_argument(p, __file__)
    args = p.parse_args()
    device = pick_device(args.device)
    model = model_store.load_model(args.model, device)
    rows: dict[tuple[str, float], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol, case in generated_cases(Path(tmp), args.cases, SEEDS):
            for t, row in case_rows(case, model, device, args.thresholds).items():
                for key in (protocol, "both"):
                    rows.setdefault((key, t), []).append(row)
                print(f"{case.name} t={t}: tumour {row['tumor_dice']:.3f}", flush=True)
    summaries = []
    for (protocol, t), done in rows.items():
        s = summarise(done)
        summaries.append({"protocol": protocol, "threshold": t, **s})
        keys = ("tumor_dice", "tumor_precision", "tumor_sensitivity", "lesion_recall", "auc", "macro_f1")
        cells = " ".join(f"{k} {'n/a' if s[k] is None else f'{s[k]:.3f}'}" for k in keys)  # AUC: one class, n/a
        print(f"{protocol:>10} threshold {t}: {cells} ({s['cases']} cases)")
    write_json(args.json, {"summary": summaries}, args)


if __name__ == "__main__":
    main()
