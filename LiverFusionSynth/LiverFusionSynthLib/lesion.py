"""Paint one synthetic liver lesion into an image, the way the phantoms draw theirs.

Shape and appearance come from the core's phantom (`liverfusion.anatomy`, `liverfusion.appearance`): an
ellipsoid of the chosen diameter with a bumpier surface when malignant, kept inside the liver, whose
values blend from the type's margin to its core values on the image's phase. CT values are the table's
HU; MR values are the table's relative signal scaled by the liver's measured signal, because MR units are
arbitrary. The image's own noise, measured in the liver, is added so the lesion is not unnaturally smooth.
This is a teaching and testing aid, not a validated lesion simulator.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from liverfusion import anatomy, appearance
from liverfusion.constants import ROLE_TO_CHANNEL
from liverfusion.errors import LiverFusionError

LESION_TYPES = anatomy.MALIGNANT_TYPES + anatomy.BENIGN_TYPES


def lesion_box(image: sitk.Image, center_lps: np.ndarray, radius_mm: float) -> tuple[slice, slice, slice]:
    """(z, y, x) index slices of the voxels within reach of the lesion; a rotation keeps lengths, so a
    sphere spans radius/spacing voxels along every index axis whatever the direction matrix."""
    center = np.array(image.TransformPhysicalPointToContinuousIndex(tuple(map(float, center_lps))))
    half = np.ceil(radius_mm / np.array(image.GetSpacing())) + 1
    size = np.array(image.GetSize())
    lo = np.clip(np.floor(center - half), 0, size).astype(int)
    hi = np.clip(np.ceil(center + half) + 1, 0, size).astype(int)
    return tuple(slice(lo[axis], hi[axis]) for axis in (2, 1, 0))


def box_points(image: sitk.Image, box: tuple[slice, slice, slice]) -> np.ndarray:
    """LPS coordinates (z, y, x, 3) of the voxel centres in `box`."""
    zz, yy, xx = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
    index = np.stack([xx, yy, zz], -1).astype(float)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return np.array(image.GetOrigin()) + (index * np.array(image.GetSpacing())) @ direction.T


def noise_sd(values: np.ndarray) -> float:
    """Noise from neighbour differences (robust to the organ's slow intensity changes)."""
    if values.size < 3:
        return 0.0
    diffs = np.diff(values)
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2))


def lesion_values(kind: str, role: str, depth: np.ndarray, liver_signal: float,
                  rng: np.random.Generator) -> np.ndarray:
    """The type's margin-to-core values on this phase (HU for CT, liver-scaled signal for MR)."""
    channel = appearance.CHANNEL_INDEX[ROLE_TO_CHANNEL[role]]
    margin, core = (float(v[channel]) for v in appearance.LESION[kind])
    values = rng.uniform(0.9, 1.1) * (margin + (core - margin) * np.clip(depth * 2.5, 0, 1))
    if ROLE_TO_CHANNEL[role] == "mri":
        values *= liver_signal / appearance.TISSUE[anatomy.LIVER][channel]
    return values


def insert_lesion(image: sitk.Image, liver: np.ndarray, center_lps: np.ndarray, kind: str, diameter_mm: float,
                  role: str, seed: int = 0) -> tuple[sitk.Image, np.ndarray]:
    """A float32 copy of `image` with the lesion painted in, and the lesion mask (z, y, x) on its grid."""
    if kind not in LESION_TYPES:
        raise LiverFusionError(f"{kind}: unknown lesion type (expected one of {', '.join(LESION_TYPES)})")
    rng = np.random.default_rng(seed)
    radii = diameter_mm / 2 * rng.uniform(0.9, 1.1, 3)
    box = lesion_box(image, center_lps, float(radii.max()) * 1.3)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    level = np.linalg.norm((box_points(image, box) - center_lps) / radii, axis=-1)
    bumpy = 0.25 if kind in anatomy.MALIGNANT_TYPES else 0.08
    level = level + bumpy * anatomy.smooth_noise(level.shape, rng, 3)
    inside = liver[box]
    mask = (level < 1) & inside
    if not mask.any():
        raise LiverFusionError("the lesion would not overlap the liver: pick a point well inside it")
    liver_values = array[liver]
    depth = np.clip(1 - level, 0, 1)
    values = lesion_values(kind, role, depth, float(np.median(liver_values)), rng)
    values += rng.normal(0, noise_sd(liver_values), values.shape)
    # Partial volume: a one-voxel ramp across the surface instead of a staircase.
    weight = np.clip((1 - level) * radii.mean() / min(image.GetSpacing()) + 0.5, 0, 1) * inside
    array[box] = (1 - weight) * array[box] + weight * values
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    full_mask = np.zeros(liver.shape, bool)
    full_mask[box] = mask
    return out, full_mask
