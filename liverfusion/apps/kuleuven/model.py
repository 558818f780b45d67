"""KU Leuven's liver and lesion U-Nets as a segmentation model kind: one image, the reference, on its own grid."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import SimpleITK as sitk

from ...errors import ModelError
from ...models.interface import Prediction, found_liver
from ...networks.kuleuven_unet import LESION, LIVER, KULeuvenPair, UNetSpec
from ...preprocessing import canonical_grid
from ...progress import Reporter, silent
from .predict import liver_only, prediction

if TYPE_CHECKING:
    from ...models.store import Bundle


class KULeuvenModel:
    """Their liver network, then their lesion network inside the liver, on the reference image alone (the other
    inputs are only aligned); no malignancy rating. The lesion tiles are reported between 0.55 and 0.8 of a run
    (minutes on a CPU)."""

    network_class = KULeuvenPair

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        for part, spec in (("liver", LIVER), ("lesion", LESION)):
            check_spec(bundle.config, part, spec, bundle.path)

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
        def on_tile(done: int, total: int) -> None:
            report(0.55 + 0.25 * done / total, f"lesion tile {done}/{total}")

        return images[reference], prediction(images[reference], reference, self.bundle.network, device, on_tile)

    def alone(self, image: sitk.Image, role: str, device) -> None:
        return None  # it never sees the other inputs, so there is nothing to guard

    def liver(self, image: sitk.Image, role: str, device, alone: tuple | None = None) -> sitk.Image | None:
        liver = liver_only(image, role, self.bundle.network, device)
        grid = canonical_grid(image, self.bundle.network.liver.spec.spacing_mm)
        liver = sitk.Resample(liver, grid, sitk.Transform(), sitk.sitkNearestNeighbor)
        return found_liver(liver)

    def notes(self, roles: Collection[str], reference: str) -> list[str]:
        if len(roles) > 1:
            return [f"{self.bundle.name} segments one image, the reference ({reference}); the others are only aligned"]
        return []


def check_spec(config: dict, part: str, spec: UNetSpec, where) -> None:
    """The bundle's grid and patches of one network (`inference.json`) are the port's: their weights were trained for
    exactly those, so a bundle that says otherwise is a ModelError, not a silent mismatch."""
    patch = config.get(f"{part}_patch", {})
    declared = {
        "spacing_mm": tuple(config.get(f"{part}_spacing_mm", spec.spacing_mm)),
        "input": tuple(patch.get("input", spec.input_size)),
        "output": tuple(patch.get("output", spec.output_size)),
    }
    port = {"spacing_mm": spec.spacing_mm, "input": spec.input_size, "output": spec.output_size}
    for key, value in declared.items():
        if tuple(float(v) for v in value) != tuple(float(v) for v in port[key]):
            raise ModelError(f"{where}: inference.json's {part} {key} {list(value)}, not the port's {list(port[key])}")
