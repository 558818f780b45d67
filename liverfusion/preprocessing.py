"""The one preprocessing path that training and inference share (the nnU-Net rule): a canonical grid
at the model's spacing, per-role intensity normalisation, and channel stacking with a presence mask.

The normalisation travels with the model, as nnU-Net's plan file does: a bundle's `inference.json` records it
("normalisation"), and the values of `constants.py` serve only bundles written before it did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .constants import AIR_HU, CHANNELS, CT_TUMOR_WINDOW, MRI_ZCLIP, ROLE_TO_CHANNEL

FIELD_STEP_MM = 4.0  # the spacing of `as_field`'s displacement fields


@dataclass(frozen=True)
class Normalisation:
    """How a network's inputs are scaled: the CT window in HU (to [-1, 1]), the clip of the MRI's body z-score (in
    standard deviations, then halved), and the HU below which a CT voxel is air (`air_mask`)."""

    ct_window_hu: tuple[float, float] = CT_TUMOR_WINDOW
    mri_zclip: float = MRI_ZCLIP
    air_hu: float = AIR_HU

    @classmethod
    def from_config(cls, config: dict) -> Normalisation:
        """The normalisation a bundle's `inference.json` records; the defaults for a bundle that records none."""
        values, default = config.get("normalisation", {}), cls()
        return cls(
            tuple(float(v) for v in values.get("ct_window_hu", default.ct_window_hu)),
            float(values.get("mri_zclip", default.mri_zclip)),
            float(values.get("air_hu", default.air_hu)),
        )

    def as_config(self) -> dict:
        return {"ct_window_hu": list(self.ct_window_hu), "mri_zclip": self.mri_zclip, "air_hu": self.air_hu}

    def describe(self) -> str:
        """One line for a bundle's metadata."""
        lo, hi = self.ct_window_hu
        return f"CT HU windowed [{lo:g},{hi:g}] -> [-1,1]; MRI body z-score clipped to {self.mri_zclip:g} SD, / 2"


DEFAULT_NORMALISATION = Normalisation()


def canonical_grid(reference: sitk.Image, spacing: tuple[float, float, float]) -> sitk.Image:
    """An axis-aligned (LPS, identity direction) grid at `spacing` covering the reference's extent.

    The network always sees patients in one orientation, whatever the scanner's storage order.
    """
    size = np.array(reference.GetSize())
    corners = np.array([[i, j, k] for i in (0, size[0] - 1) for j in (0, size[1] - 1) for k in (0, size[2] - 1)])
    points = np.array([reference.TransformContinuousIndexToPhysicalPoint(c.tolist()) for c in corners.astype(float)])
    lo, hi = points.min(0), points.max(0)
    n = np.maximum(np.ceil((hi - lo) / np.array(spacing)).astype(int) + 1, 1)
    grid = sitk.Image([int(v) for v in n], sitk.sitkUInt8)
    grid.SetSpacing(tuple(float(s) for s in spacing))
    grid.SetOrigin(tuple(float(v) for v in lo))
    return grid


def normalize(array: np.ndarray, role: str, norm: Normalisation = DEFAULT_NORMALISATION) -> np.ndarray:
    """CT: the window (by default Diff4MMLiTS's tumour window [-21, 189] HU) to [-1, 1]; MRI: z-score over body
    voxels, clipped and halved."""
    if ROLE_TO_CHANNEL[role] == "mri":
        body = array > 0.1 * np.percentile(array, 99)
        values = array[body] if body.any() else array.ravel()
        z = (array - values.mean()) / (values.std() + 1e-6)
        return (np.clip(z, -norm.mri_zclip, norm.mri_zclip) / 2).astype(np.float32)
    lo, hi = norm.ct_window_hu
    return (np.clip((array - lo) / (hi - lo), 0, 1) * 2 - 1).astype(np.float32)


def background_value(role: str) -> float:
    """Padding for resampling: air, in each modality's units."""
    return -1000.0 if ROLE_TO_CHANNEL[role] != "mri" else 0.0


def to_grid(
    image: sitk.Image,
    grid: sitk.Image,
    role: str,
    transform: sitk.Transform | None = None,
    norm: Normalisation = DEFAULT_NORMALISATION,
) -> np.ndarray:
    """Resample one image (through its alignment transform, a B-spline as its displacement field: `as_field`) onto
    the grid and normalise it. Through the B-spline itself, a 200-slice phase took 1.5 s; through the field 0.55 s."""
    transform = sitk.Transform(3, sitk.sitkIdentity) if transform is None else as_field(transform, grid)
    resampled = sitk.Resample(image, grid, transform, sitk.sitkLinear, background_value(role), sitk.sitkFloat32)
    return normalize(sitk.GetArrayFromImage(resampled), role, norm)


def air_mask(image: sitk.Image, grid: sitk.Image, role: str, norm: Normalisation = DEFAULT_NORMALISATION) -> np.ndarray:
    """Voxels of the grid that are air outside or inside the body (CT below -500 HU by default; MRI below 5% of its 99th
    percentile). No liver or tumour lies there; on real CTs with much air in front of the patient the network
    once called a band of that air liver, in the windows that held little body."""
    resample = sitk.ResampleImageFilter()
    resample.SetReferenceImage(grid)
    resample.SetOutputPixelType(sitk.sitkFloat32)
    resample.SetUseNearestNeighborExtrapolator(True)  # grid voxels just past the last slice are not air
    array = sitk.GetArrayFromImage(resample.Execute(image))
    if ROLE_TO_CHANNEL[role] == "mri":
        return array < 0.05 * np.percentile(array, 99)
    return array < norm.air_hu


def stack_channels(arrays: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """[M, D, H, W] in `CHANNELS` order with zeros where a modality is missing, and the presence mask."""
    shape = next(iter(arrays.values())).shape
    stacked = np.zeros((len(CHANNELS),) + shape, np.float32)
    present = np.zeros(len(CHANNELS), np.float32)
    for role, array in arrays.items():
        c = CHANNELS.index(ROLE_TO_CHANNEL[role])
        stacked[c], present[c] = array, 1.0
    return stacked, present


def bounding_box(mask: np.ndarray, minimum: tuple[int, ...], margin: int = 2) -> tuple[slice, ...]:
    """The box around `mask` (plus `margin` voxels), grown about its centre to at least `minimum` where the
    array allows: the network then skips the air around the patient, as nnU-Net crops to the body."""
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    box = []
    for axis, (n, least) in enumerate(zip(mask.shape, minimum)):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        lo, hi = max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, n)
        width = max(hi - lo, min(least, n))
        lo = min(max(lo - (width - (hi - lo)) // 2, 0), n - width)
        box.append(slice(lo, lo + width))
    return tuple(box)


def covering_box(points, image: sitk.Image, margin: float | np.ndarray = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """First index and end (exclusive) of the box of `image`'s voxels that holds the physical `points`, `margin`
    voxels wider on each side (per axis, where an array), clipped to the image: where one grid's box lies on
    another grid."""
    index = np.array([image.TransformPhysicalPointToContinuousIndex(p) for p in points])
    lower = np.clip(np.floor(index.min(0) - margin).astype(int), 0, None)
    upper = np.minimum(np.ceil(index.max(0) + margin).astype(int) + 1, image.GetSize())
    return lower, upper


def as_field(transform: sitk.Transform, reference: sitk.Image, step_mm: float = FIELD_STEP_MM) -> sitk.Transform:
    """A B-spline composite as a displacement field sampled every few mm over the reference (a linear
    transform is returned as it is). Resampling a 512x512x120 CT then costs a trilinear lookup per voxel
    instead of a B-spline evaluation, seconds instead of tens of seconds; the control points are about
    100 mm apart, so the field is a faithful copy (tested)."""
    if transform.IsLinear():  # a composite is linear when all of its parts are
        return transform
    spacing = [max(step_mm, s) for s in reference.GetSpacing()]
    size = [int(np.ceil(n * s / c)) + 2 for n, s, c in zip(reference.GetSize(), reference.GetSpacing(), spacing)]
    field_ = sitk.TransformToDisplacementField(
        transform, sitk.sitkVectorFloat64, size, reference.GetOrigin(), spacing, reference.GetDirection()
    )
    return sitk.DisplacementFieldTransform(field_)
