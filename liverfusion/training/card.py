"""What a training run writes beside the weights: the bundle's `inference.json` (kind, network, normalisation),
its metadata (MONAI bundle keys) and its model card."""

from __future__ import annotations

import dataclasses
import datetime
import math
from pathlib import Path

from .. import __version__
from ..constants import CHANNELS, TUMOR
from ..preprocessing import DEFAULT_NORMALISATION, Normalisation
from .dataset import case_info
from .trainer import AFFINE_PROB, ELASTIC_PROB, ROTATE_RAD, SCALE, TrainConfig

INTENDED_USE = (
    "Research only. Trained on synthetic phantoms and on real livers with synthetic tumours; not validated on "
    "patients and not for diagnosis. Segments liver and liver lesions on CT and/or MRI and rates lesion malignancy."
)
SPATIAL_TEXT = (
    f"rotation up to {math.degrees(ROTATE_RAD):.0f} degrees and scaling by up to {SCALE:.0%} ({AFFINE_PROB:.0%} of "
    f"patches), elastic deformation ({ELASTIC_PROB:.0%}), "
)


def bundle_config(cfg: TrainConfig) -> dict:
    """The trained bundle's `inference.json`: its kind and the network's arguments (`models/registry.py` builds it
    from them), the normalisation its training data had, the model grid, the sliding window and the training run."""
    classes = TUMOR + 1  # background, liver, tumour
    if cfg.architecture == "fusion":
        kind, network = "fusion", {"features": list(cfg.features), "encoder": cfg.encoder}
    else:
        kind, network = "baseline", {"kind": cfg.architecture}
    return {
        "architecture": kind,
        "network": {**network, "n_modalities": len(CHANNELS), "n_classes": classes},
        "normalisation": DEFAULT_NORMALISATION.as_config(),  # what training's `to_grid` applies
        "spacing_mm": list(cfg.spacing_mm),
        "roi_size": list(cfg.roi_size),
        "channels": list(CHANNELS),
        "train": dataclasses.asdict(cfg),
    }


def bundle_metadata(
    name: str,
    version: str,
    n_train: int,
    n_val: int,
    best: dict,
    n_hybrid: int = 0,
    real: list[Path] = (),
    cfg: TrainConfig | None = None,
) -> dict:
    """MONAI bundle metadata (the store adds the software versions); `n_hybrid` counts training cases that are real
    images with synthetic tumours, `real` the real labelled cases (named, with the source and licence their
    `case.json` gives: a model card must cite every real patient it learned from)."""
    cfg = cfg or TrainConfig()
    return {
        "name": name,
        "version": version,
        "liverfusion_version": __version__,
        "created": datetime.date.today().isoformat(),
        "task": "Liver and liver tumour segmentation with malignancy rating from CT and/or MRI",
        "description": description(cfg),
        "intended_use": INTENDED_USE,
        "training_data": {
            "train_cases": n_train,
            "validation_cases": n_val,
            "source": "LiverFusion phantoms (synthetic)"
            + (f" and {n_hybrid} real images with synthetic tumours (hybrid)" if n_hybrid else "")
            + (f" and {len(real)} real labelled cases" if real else ""),
            "real_cases": {c.name: case_info(c).get("source", "not recorded") for c in real},
        },
        "validation": {k: v for k, v in best.items() if k != "score"},
        "network_data_format": network_data_format(DEFAULT_NORMALISATION, cfg.roi_size),
    }


def description(cfg: TrainConfig) -> str:
    if cfg.architecture != "fusion":
        return (
            f"MONAI {cfg.architecture}, a baseline of the fusion network's benchmark: every input as a channel (zeros "
            "where missing), background, liver and tumour scores and a malignancy logit per voxel. See docs/README.md."
        )
    return (
        f"Attention-fusion network ({cfg.encoder} encoder, features {list(cfg.features)}): one shared encoder per "
        "present input, attention fusion at every scale, an attention-gated U-Net decoder and a voxel-wise malignancy "
        "head; any subset of CT phases and MRI. See docs/README.md."
    )


def network_data_format(norm: Normalisation, roi: tuple[int, ...]) -> dict:
    """MONAI's description of the network's tensors (sliding windows of `roi` voxels on the model grid)."""
    channels = {str(i): c for i, c in enumerate(CHANNELS)}
    window = {"spatial_shape": list(roi), "dtype": "float32", "is_patch_data": True}
    return {
        "inputs": {
            "image": {
                "type": "image",
                "format": "magnitude",
                "modality": "CT and MR",
                "num_channels": len(CHANNELS),
                **window,
                "value_range": [-max(1.0, norm.mri_zclip / 2), max(1.0, norm.mri_zclip / 2)],
                "channel_def": channels,
                "description": norm.describe() + "; zeros where an input is missing",
            },
            "present": {
                "type": "tuples",
                "format": "presence",
                "modality": "n/a",
                "num_channels": len(CHANNELS),
                "spatial_shape": [],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": channels,
            },
        },
        "outputs": {
            "seg": {
                "type": "image",
                "format": "labels",
                "modality": "n/a",
                "num_channels": TUMOR + 1,
                **window,
                "value_range": [],
                "channel_def": {"0": "background", "1": "liver", "2": "tumor"},
            },
            "malignancy": {
                "type": "image",
                "format": "logits",
                "modality": "n/a",
                "num_channels": 1,
                **window,
                "value_range": [],
                "channel_def": {"0": "malignancy logit per voxel"},
            },
        },
    }


def model_card(meta: dict, cfg: TrainConfig, best: dict) -> str:
    return f"""# {meta["name"]} {meta["version"]}: model card

## Intended use
{meta["intended_use"]}

## Architecture
{architecture_text(cfg)}

## Training
Data: {meta["training_data"]["train_cases"]} cases: {meta["training_data"]["source"]}; validation on
{meta["training_data"]["validation_cases"]} others. Spacing {cfg.spacing_mm} mm, patches {cfg.patch},
batch {cfg.batch_size}, AdamW lr {cfg.lr} with warm-up and cosine decay over {cfg.steps} steps
{f"or {cfg.minutes} min, whichever ends first" if cfg.minutes else ""} ({_kept(best)}).
Loss Dice + 0.5 x CE{" with deep supervision" if cfg.architecture == "fusion" else ""}, plus BCE malignancy on
tumour voxels.
Crops: 1 : 1 : 6 centred on background, liver, tumour{"; each lesion gets an equal share" if cfg.lesion_crops else ""}.
Augmentation: {SPATIAL_TEXT if cfg.spatial_augment else ""}intensity scale/shift (no mirroring), per-channel shifts
(misregistration), modality dropout.

## Metrics
{_validation_text(best)} Held-out figures: see `docs/results.md` and `Testing/benchmarks/`.

## Limits
{_data_limits(meta["training_data"].get("real_cases"))} Not a medical device.
"""


def _data_limits(real_cases: dict | None) -> str:
    if real_cases:
        return f"Real labelled cases: {', '.join(real_cases)} (sources and licences in metadata.json)."
    return "Synthetic training data only: real scans differ in texture, anatomy and artefacts."


def _kept(best: dict) -> str:
    return f"best checkpoint at step {best['step']}" if "step" in best else "no validation: the last network"


def _validation_text(best: dict) -> str:
    if "step" not in best:
        return "No validation during training (cross-validation folds score held-out cases afterwards)."
    liver, tumor = best["liver"], best["tumor"]
    return f"Validation (best checkpoint, step {best['step']}): liver Dice {liver:.3f}, tumour Dice {tumor:.3f}."


def architecture_text(cfg: TrainConfig) -> str:
    """The card's architecture paragraph: the fusion network, or the MONAI baseline it was trained as."""
    if cfg.architecture != "fusion":
        return (
            f"MONAI {cfg.architecture} (`liverfusion/networks/baselines.py`), a baseline of the fusion network's "
            f"benchmark: all inputs as channels {', '.join(CHANNELS)} (zeros where missing, early fusion), four "
            "outputs (background, liver, tumour, malignancy logit)."
        )
    return f"""One shared encoder per present modality (channels {", ".join(CHANNELS)}) with a learned modality
embedding, so any subset of inputs works and the weights are shared across modalities (a small dataset cannot feed five
encoders). At every scale the modalities are fused by squeeze-and-excitation channel attention and a spatial
softmax over present modalities (the `attention_<role>` maps). DANet position and channel attention at the
bottleneck (as in DTAN). Attention-gated U-Net decoder (Oktay) with deep supervision; features {list(cfg.features)}.
A voxel-wise malignancy head, linear on decoder features: pooling its logits over a lesion gives that lesion's
probability, and the logit map is an exact class-activation map (`attention.nii.gz`)."""
