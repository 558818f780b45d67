"""The `liverfusion fit-malignancy` command: a trained fusion bundle with its malignancy read-out refitted on
the lesions of case folders, written as a new verified bundle (segmentation unchanged)."""

from __future__ import annotations

import argparse
import copy
import datetime
import shutil
from pathlib import Path

import torch

from . import model_store
from .dataset import find_cases
from .errors import LiverFusionError
from .fusion_net import FusionNet
from .inference import pick_device
from .malignancy_fit import current_readout, fit, lesion_samples, log_loss


def run_fit_malignancy(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    bundle = model_store.load(args.model, device)
    if not isinstance(bundle.network, FusionNet):
        raise LiverFusionError(f"--model {args.model}: not a fusion network; only its read-out can be refitted")
    cases = [c for c in find_cases([Path(d) for d in args.data]) if (c / "case.json").is_file()]
    if not cases:
        raise LiverFusionError(f"{', '.join(args.data)}: no case folders with case.json (the case's malignancy)")
    config = copy.deepcopy(bundle.config)
    features = config["network"]["features"]
    every = with_levels(bundle, config, len(features), device)
    samples = lesion_samples(every, config, cases, device, args.singles)
    before = log_loss(samples.features, samples.malignant, *current_readout(every))
    found = fit(samples, widths=list(features))
    config["network"]["malignancy_levels"] = found["levels"]
    network = with_levels(bundle, config, found["levels"], device)
    network.set_malignancy_weights(torch.from_numpy(found["weights"]).float(), found["bias"])
    best = found["cv_log_loss"][(found["levels"], found["l2"])]
    summary = {
        "cases": len(cases),
        "lesions": len(samples),
        "malignant_lesions": int(samples.malignant.sum()),
        "single_inputs": args.singles,
        "levels": found["levels"],
        "l2": found["l2"],
        "log_loss_before": round(before, 4),
        "cv_log_loss": round(best, 4),
    }
    config["malignancy_fit"] = summary
    metadata = {k: v for k, v in bundle.metadata.items() if k != "model_sha256"}
    metadata.update(name=Path(args.out).name, version=args.version, created=datetime.date.today().isoformat())
    metadata["malignancy_fit"] = {**summary, "from": f"{bundle.name} {bundle.version}"}
    card = (bundle.path / "docs" / "README.md").read_text() + readout_card(bundle, summary)
    out = Path(args.out)
    stage = out.with_name(f".{out.name}.partial")
    shutil.rmtree(stage, ignore_errors=True)
    model_store.save(stage, network, config, metadata, card)
    shutil.rmtree(out, ignore_errors=True)
    stage.rename(out)
    print(f"model written to {out.resolve()} (lesion log loss {before:.3f} before, {best:.3f} cross-validated)")
    return 0


def with_levels(bundle: model_store.Bundle, config: dict, levels: int, device) -> FusionNet:
    """The bundle's network reading `levels` decoder levels for malignancy (added ones start at zero)."""
    network = FusionNet(**{**config["network"], "malignancy_levels": levels})
    network.load_state_dict(bundle.network.state_dict(), strict=False)
    return network.to(device).eval()


def readout_card(bundle: model_store.Bundle, s: dict) -> str:
    singles = ", under all inputs and, in turn over cases, one input alone" if s["single_inputs"] else ""
    return f"""
## Malignancy read-out (`liverfusion fit-malignancy`)
Refitted from {bundle.name} {bundle.version} with the segmentation frozen: a logistic regression on lesion-pooled
features of the {s["levels"]} finest decoder level(s) (the levels read and the L2 penalty, {s["l2"]:g}, chosen by
5-fold cross-validation over whole cases), {s["lesions"]} lesions ({s["malignant_lesions"]} malignant) of {s["cases"]}
cases, true and predicted (a predicted lesion off the truth counts as not malignant){singles}.
Lesion log loss {s["log_loss_before"]} before, {s["cv_log_loss"]} cross-validated after.
"""
