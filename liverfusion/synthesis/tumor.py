"""Synthetic tumours in any liver: one lesion painted into one image or into a set of aligned images.

The lesion is drawn as the phantoms draw theirs (an ellipsoid deformed elastically, bumpier when
malignant, kept inside the liver, as in Diff4MMLiTS), once, on a 1 mm lesion-local grid; every image then
samples that one shape, so a CT phase and an MRI of the same patient get the same lesion, each with the
type's own appearance. Appearance is relative to the host: CT values are the type's HU offset from liver
added to the host liver's median; MR values are the type's signal ratio to liver times the host liver's
median. Noise measured in the host liver is added, so the lesion has the texture of its image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..constants import LIVER, ROLE_TO_CHANNEL, TUMOR
from ..errors import InputError
from . import anatomy, appearance

LESION_TYPES = anatomy.MALIGNANT_TYPES + anatomy.BENIGN_TYPES
SHAPE_SPACING_MM = 1.0


@dataclass
class Insertion:
    """The edited images (float32, the inputs' grids), the label on the mask's grid and what was drawn."""

    images: dict[str, sitk.Image]
    label: sitk.Image
    kind: str
    center_lps: tuple[float, float, float]
    diameter_mm: float

    @property
    def malignant(self) -> bool:
        return self.kind in anatomy.MALIGNANT_TYPES


def insert(
    images: dict[str, sitk.Image],
    liver: sitk.Image,
    kind: str | None = None,
    center_lps: tuple[float, float, float] | None = None,
    diameter_mm: float | None = None,
    seed: int = 0,
    tumors: sitk.Image | None = None,
) -> Insertion:
    """Paint one lesion into every image (all aligned to `liver`, a mask in the same physical space). `tumors`, a
    mask on the liver's grid, are the real lesions a labelled scan already has: they stay tumour in the label,
    so that a real liver with a synthetic lesion never teaches that its own tumours are liver."""
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(LESION_TYPES))
    if kind not in LESION_TYPES:
        raise InputError(f"{kind}: unknown lesion type (expected one of {', '.join(LESION_TYPES)})")
    diameter = float(diameter_mm or np.exp(rng.uniform(np.log(10.0), np.log(40.0))))
    low, high = anatomy.LESION_DIAMETER_MM  # the phantoms' range
    if not low <= diameter <= high:
        raise InputError(f"{diameter:g} mm: lesion diameter must be between {low:g} and {high:g} mm")
    mask = sitk.Cast(liver > 0, sitk.sitkUInt8)
    center = _checked_center(mask, center_lps) if center_lps is not None else random_center(mask, diameter, rng)
    level, radius = lesion_level(center, diameter, kind, rng)
    edited = {role: paint(image, role, level, radius, mask, kind, rng) for role, image in images.items()}
    lesion = sitk.Resample(level, mask, sitk.Transform(), sitk.sitkLinear, 2.0) < 1
    label = sitk.Cast(mask * LIVER, sitk.sitkUInt8)
    label = sitk.Mask(label, sitk.Cast(lesion & mask, sitk.sitkUInt8), outsideValue=TUMOR, maskingValue=1)
    if tumors is not None:
        label = sitk.Mask(label, sitk.Cast(tumors > 0, sitk.sitkUInt8), outsideValue=TUMOR, maskingValue=1)
    return Insertion(edited, label, kind, tuple(map(float, center)), diameter)


def random_center(mask: sitk.Image, diameter: float, rng: np.random.Generator) -> np.ndarray:
    """A liver voxel deep enough for the lesion (its radius, at most 15 mm, from the liver's edge)."""
    depth = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(mask, insideIsPositive=True, useImageSpacing=True))
    candidates = np.argwhere(depth >= min(diameter / 2, 15.0))
    if len(candidates) == 0:
        candidates = np.argwhere(depth > 0)
    if len(candidates) == 0:
        raise InputError("liver mask: it is empty")
    z, y, x = candidates[rng.integers(len(candidates))]
    return np.array(mask.TransformIndexToPhysicalPoint((int(x), int(y), int(z))))


def _checked_center(mask: sitk.Image, center_lps) -> np.ndarray:
    index = np.round(mask.TransformPhysicalPointToContinuousIndex(tuple(map(float, center_lps)))).astype(int)
    where = "LPS {:.1f},{:.1f},{:.1f}".format(*center_lps)
    if np.any(index < 0) or np.any(index >= np.array(mask.GetSize())) or not mask[tuple(int(i) for i in index)]:
        raise InputError(f"center {where}: is not inside the liver mask")
    return np.asarray(center_lps, float)


def lesion_level(center: np.ndarray, diameter: float, kind: str, rng: np.random.Generator) -> tuple[sitk.Image, float]:
    """The lesion as a level set on a 1 mm grid around it (< 1 inside, 0 at the core) and its mean
    radius: an ellipsoid with a random elastic surface (Diff4MMLiTS), lobulated for malignant types."""
    radii = diameter / 2 * rng.uniform(0.8, 1.2, 3)
    half = 1.4 * radii.max()
    n = int(np.ceil(2 * half / SHAPE_SPACING_MM)) + 1
    axis = -half + SHAPE_SPACING_MM * np.arange(n)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    level = np.sqrt((x / radii[0]) ** 2 + (y / radii[1]) ** 2 + (z / radii[2]) ** 2)
    bumpy = 0.25 if kind in anatomy.MALIGNANT_TYPES else 0.08
    level += bumpy * anatomy.smooth_noise(level.shape, rng, max(2.0, diameter / 8 / SHAPE_SPACING_MM))
    image = sitk.GetImageFromArray(level.astype(np.float32))
    image.SetSpacing((SHAPE_SPACING_MM,) * 3)
    image.SetOrigin(tuple(center - half))
    return image, float(radii.mean())


def paint(
    image: sitk.Image,
    role: str,
    level: sitk.Image,
    radius: float,
    mask: sitk.Image,
    kind: str,
    rng: np.random.Generator,
) -> sitk.Image:
    """A float32 copy of `image` with the lesion blended in, a one-voxel ramp at its surface (partial volume)."""
    if role not in ROLE_TO_CHANNEL:
        raise InputError(f"{role}: unknown image role (expected one of {', '.join(ROLE_TO_CHANNEL)})")
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    liver = sitk.GetArrayFromImage(sitk.Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)) > 0
    if not liver.any():
        raise InputError(f"{role}: the liver mask does not overlap this image")
    lv = sitk.GetArrayFromImage(sitk.Resample(level, image, sitk.Transform(), sitk.sitkLinear, 2.0))
    values = lesion_values(kind, role, lv, array[liver], rng)
    weight = np.clip((1 - lv) * radius / min(image.GetSpacing()) + 0.5, 0, 1) * liver
    out = sitk.GetImageFromArray((1 - weight) * array + weight * values)
    out.CopyInformation(image)
    return out


def lesion_values(
    kind: str, role: str, level: np.ndarray, liver_values: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The type's margin-to-core appearance on this image, relative to the host liver, plus host noise."""
    channel = appearance.CHANNEL_INDEX[ROLE_TO_CHANNEL[role]]
    margin, core = (float(v[channel]) for v in appearance.LESION[kind])
    table = margin + (core - margin) * np.clip((1 - level) * 2.5, 0, 1)
    table_liver = appearance.TISSUE[anatomy.LIVER][channel]
    host = float(np.median(liver_values))
    jitter = rng.uniform(0.9, 1.1)
    if ROLE_TO_CHANNEL[role] == "mri":
        values = host * jitter * table / table_liver
    else:
        values = host + jitter * (table - table_liver)
    return (values + rng.normal(0.0, noise_sd(liver_values), values.shape)).astype(np.float32)


def noise_sd(values: np.ndarray) -> float:
    """Noise from neighbour differences (robust to the organ's slow intensity changes)."""
    if values.size < 3:
        return 0.0
    diffs = np.diff(values.astype(np.float64))
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2))
