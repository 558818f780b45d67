"""The kinds that see every input at once on one canonical grid: our fusion network and the MONAI baselines.

The inputs are resampled (through their alignment) onto an axis-aligned grid at the bundle's spacing around the
reference, normalised and stacked into channels with a presence mask; the network runs in sliding windows over the
box around the body, and the air outside is background.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import torch

from ..constants import CHANNELS, ROLE_TO_CHANNEL
from ..inference.sliding_window import EncoderReuse, predict
from ..networks.baselines import BaselineNet
from ..networks.fusion import FusionNet
from ..preprocessing import Normalisation, air_mask, bounding_box, canonical_grid, stack_channels, to_grid
from ..progress import Reporter, silent
from .interface import Prediction, found_liver

if TYPE_CHECKING:  # the store imports the registry, which imports this module
    from .store import Bundle


class GridModel:
    """A network that takes stacked channels and their presence mask (`FusionNet`'s signature) on the model grid,
    its inputs normalised as its bundle says."""

    network_class: type[torch.nn.Module]
    reuses_encoder = False  # the fused pass may reuse the reference's encoder features from the pass alone

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.normalisation = Normalisation.from_config(bundle.config)

    def predict(
        self,
        images: dict[str, sitk.Image],
        reference: str,
        transforms: dict[str, sitk.Transform],
        device,
        report: Reporter = silent,
        use: Collection[str] | None = None,
        alone: Prediction | None = None,
    ) -> tuple[sitk.Image, Prediction]:
        reuse = alone.reuse if alone is not None and (use is None or reference in use) else None
        if alone is not None:
            alone.reuse = None  # consumed here: its memory goes as the pass replays it
        return self._run(images, reference, transforms, device, use, reuse)

    def alone(self, image: sitk.Image, role: str, device) -> tuple[sitk.Image, Prediction]:
        reuse = EncoderReuse(CHANNELS.index(ROLE_TO_CHANNEL[role])) if self.reuses_encoder else None
        grid, pred = self._run({role: image}, role, {}, device, None, reuse)
        pred.reuse = reuse
        return grid, pred

    def _run(self, images, reference, transforms, device, use, reuse: EncoderReuse | None):
        config = self.bundle.config
        grid = canonical_grid(images[reference], tuple(config["spacing_mm"]))
        arrays = {
            role: to_grid(image, grid, role, transforms.get(role), self.normalisation)
            for role, image in images.items()
            if use is None or role in use
        }
        stacked, present = stack_channels(arrays)
        air = air_mask(images[reference], grid, reference, self.normalisation)
        roi = tuple(config["roi_size"])
        box = bounding_box(~air, roi)
        if reuse is not None and reuse.box not in (None, box):
            reuse = None  # other windows than the recorded ones
        elif reuse is not None:
            reuse.box = box
        inside = predict(self.bundle.network, stacked[(slice(None), *box)], present, roi, device, reuse=reuse)
        pred = embedded(inside, box, air.shape)
        pred.probabilities[:, air] = 0.0
        pred.probabilities[0, air] = 1.0
        return grid, pred

    def liver(self, image: sitk.Image, role: str, device, alone: tuple | None = None) -> sitk.Image | None:
        grid, pred = alone or self.alone(image, role, device)
        liver = sitk.GetImageFromArray((pred.probabilities[1:].sum(0) > 0.5).astype(np.uint8))
        liver.CopyInformation(grid)
        liver = sitk.RelabelComponent(sitk.ConnectedComponent(liver), sortByObjectSize=True) == 1
        return found_liver(liver)

    def notes(self, roles: Collection[str], reference: str) -> list[str]:
        return []


class FusionModel(GridModel):
    """Our attention-fusion network (`networks.fusion`)."""

    network_class = FusionNet
    reuses_encoder = True


class BaselineModel(GridModel):
    """A MONAI baseline of the fusion network's benchmark (`networks.baselines`): every input as a channel."""

    network_class = BaselineNet


def embedded(pred: Prediction, box: tuple[slice, ...], shape: tuple[int, ...]) -> Prediction:
    """A prediction made inside `box` placed on the whole grid: background, no malignancy and no fusion weight
    outside it (the air around the patient, which the network no longer sees)."""
    if all(s.start == 0 and s.stop == n for s, n in zip(box, shape)):
        return pred

    def full(part: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(part.shape[:1] + tuple(shape), fill, np.float32)
        out[(slice(None), *box)] = part
        return out

    probabilities = full(pred.probabilities, 0.0)
    outside = np.ones(shape, bool)
    outside[box] = False
    probabilities[0, outside] = 1.0
    logits = None if pred.malignancy_logits is None else full(pred.malignancy_logits[None], 0.0)[0]
    return Prediction(probabilities, logits, full(pred.fusion_weights, 0.0), pred.notes)
