"""The one interface every kind of segmentation model offers the pipeline, and what it returns.

A kind (our fusion network, a MONAI baseline, KU Leuven's pair of U-Nets, the next one) is a class that wraps a
loaded bundle and answers three questions: the class probabilities for a case (`predict`), the prediction on the
reference image alone when the model would see more than that (`alone`), and where the liver is on one image
(`liver`, which focuses the deformable alignment). `registry.KINDS` maps a bundle's kind to its class, so the
pipeline never asks which kind it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import SimpleITK as sitk

from ..inference.postprocess import liver_volume_ml
from ..progress import Reporter, silent

if TYPE_CHECKING:
    import torch

    from ..inference.sliding_window import EncoderReuse
    from .store import Bundle


@dataclass
class Prediction:
    """Network outputs on the model grid: class probabilities [3, ...] (background, liver, tumour), malignancy
    logits (None for a model that does not rate malignancy) and fusion weights [len(CHANNELS), ...]; `notes` say
    how it was made when that was not as asked (a GPU that ran out of memory)."""

    probabilities: np.ndarray
    malignancy_logits: np.ndarray | None
    fusion_weights: np.ndarray
    notes: list[str] = field(default_factory=list)
    reuse: EncoderReuse | None = None  # a prediction on one input alone: its encoder features, for the fused pass


class SegmentationModel(Protocol):
    """What the pipeline asks of a segmentation model. `images` are the inputs by role on their own grids,
    `transforms` the alignment of each non-reference input to the reference (absent: identity)."""

    network_class: Callable[..., torch.nn.Module]  # built from inference.json's "network" arguments
    bundle: Bundle

    def __init__(self, bundle: Bundle) -> None: ...

    def predict(
        self,
        images: dict[str, sitk.Image],
        reference: str,
        transforms: dict[str, sitk.Transform],
        device: torch.device,
        report: Reporter = silent,
        use: Collection[str] | None = None,
        alone: Prediction | None = None,
    ) -> tuple[sitk.Image, Prediction]:
        """The grid the prediction lies on (in the reference's space) and the prediction; `use` names the inputs
        the model may see (default all); `alone`, what `alone` returned for the reference, whose work the model
        may reuse."""
        ...

    def alone(self, image: sitk.Image, role: str, device: torch.device) -> tuple[sitk.Image, Prediction] | None:
        """`predict` on one image, for a case where the model sees more than that image: it guards the fused
        prediction (`guarded`) and finds the liver before alignment. None for a model that never sees the others."""
        ...

    def liver(
        self, image: sitk.Image, role: str, device: torch.device, alone: tuple[sitk.Image, Prediction] | None = None
    ) -> sitk.Image | None:
        """The largest liver component (tumours included) on one image, on the model grid; None if under
        `MIN_LIVER_ML`. `alone` is what `alone` returned for that image, when it has run already."""
        ...

    def notes(self, roles: Collection[str], reference: str) -> list[str]:
        """Warnings for a run on these inputs: what the model will not use."""
        ...


MIN_LIVER_ML = 100.0  # a liver found "alone" smaller than this is no liver (a few stray voxels, a kidney)


def found_liver(liver: sitk.Image) -> sitk.Image | None:
    """`liver`, or None where it is under `MIN_LIVER_ML`: the rule every kind's `liver` answers by."""
    return liver if liver_volume_ml(liver) >= MIN_LIVER_ML else None


ORGAN_MARGIN_MM = 10.0


def guarded(fused: Prediction, alone: Prediction, spacing: tuple[float, ...]) -> Prediction:
    """A fused prediction that keeps every tumour the reference image alone finds, and no organ far from the one
    it finds: the organ (liver or tumour) is the fused network's within `ORGAN_MARGIN_MM` of the reference alone's
    organ (when that pass found a liver at all), and within it the tumour is the more confident of the two (its
    malignancy logit too). `spacing` is the model grid's, in array order.

    On real phases taken in different breaths the fused network missed an HCC that the labelled phase alone found
    (real-train tace1720, cross-validated: tumour Dice 0.03 against 0.62), and on tace2022 an alignment that mutual
    information rated as good as another made it call 145 ml of stomach liver (liver Dice 0.897 against 0.948 on the
    labelled phase alone; docs/experiments/2026-12-07-registration-gradients.md). The organ stays the fused one's
    near the reference alone's: taking the mean of the two livers grew the liver of a phantom to the edge of its
    scan, and on tace1720 the fused liver is the better one (0.861 against 0.637) yet lies almost all within 5 mm
    of the reference alone's organ. The fusion weights are the fused network's."""
    organ = fused.probabilities[1:].sum(0)
    organ[_far_from(alone.probabilities[1:].sum(0) > 0.5, organ > 0.5, spacing)] = 0.0
    tumor = np.minimum(np.maximum(fused.probabilities[2], np.minimum(alone.probabilities[2], organ)), organ)
    probabilities = np.stack([1 - organ, organ - tumor, tumor]).astype(np.float32)
    logits = fused.malignancy_logits
    if logits is not None and alone.malignancy_logits is not None:
        logits = np.maximum(logits, alone.malignancy_logits)
    return Prediction(probabilities, logits, fused.fusion_weights, fused.notes + alone.notes)


def _far_from(reference: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """The voxels of `mask` farther than `ORGAN_MARGIN_MM` from `reference`; none when `reference` holds less than
    `MIN_LIVER_ML` (a pass that found no liver restricts nothing). ITK's distance map, on two threads, took 0.26 s
    for a 200-slice model grid where SciPy's took 0.89 s, with the same result."""
    image = sitk.GetImageFromArray(reference.astype(np.uint8))
    image.SetSpacing(spacing[::-1])
    if found_liver(image) is None:
        return np.zeros_like(mask)
    distance = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return mask & (sitk.GetArrayViewFromImage(distance) > ORGAN_MARGIN_MM)
