"""What a reader cannot see in an input's intensities: voxels that are not numbers, an image with nothing in it, a
label map given as a scan, and a CT that is not in Hounsfield units or an "MRI" that is.

The network's CT window and the air mask read CT values as Hounsfield units, so a wrong input gives a confident,
wrong answer rather than an error: a box of water given as `ct` came back as a 2.7 l liver with a lesion rated 0.87,
and a 0-255 image as a 473 ml liver. NaN voxels (some tools write them outside the field of view; NRRD and MHA keep
them, ITK reads NIfTI's as 0) reach the network's normalisation: a NaN band 4 voxels deep along one side of a
phantom CT took its liver from 1990 ml to 709 ml.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..constants import AIR_HU, ROLE_TO_CHANNEL
from ..errors import InputError
from .images import READ_NOTE

MAX_LABEL_VALUES = 256  # a label map holds at most this many whole values (TotalSegmentator's 117, say)
# and this share of their labelled voxels equal their neighbour: the real label maps here 0.82-0.95; scans under
# 0.07, and a CT smoothed and cut to 64 grey levels 0.69
FLAT_SHARE = 0.75
SAMPLE_STEP = 4  # the label-map and MRI tests look at every 4th voxel along each axis first


def checked(images: dict[str, sitk.Image], names: dict[str, str] | None = None) -> tuple[dict, list[str]]:
    """Every input checked as `checked_image` does: the images to use, and the warnings for `result.json`."""
    out, warnings = {}, []
    for role, image in images.items():
        out[role], notes = checked_image(image, role, (names or {}).get(role, role))
        warnings += notes
    return out, warnings


def checked_image(image: sitk.Image, role: str, name: str) -> tuple[sitk.Image, list[str]]:
    """The image with non-finite voxels set to its lowest finite value, and warnings (also what reading it
    changed); an InputError (naming `name`) when nothing in it can be segmented."""
    who = name if name == role else f"{name}: {role}"
    read = [image.GetMetaData(READ_NOTE)] if image.HasMetaDataKey(READ_NOTE) else []
    image, warnings = _finite(image, who)
    require_range(image, who)
    array = sitk.GetArrayViewFromImage(image)
    _reject_label_map(array, who)
    return image, read + warnings + _unit_warnings(array, float(array.min()), role, who)


def require_range(image: sitk.Image, who: str) -> None:
    """Normalisation and mutual information need intensities that vary: a constant image is an input error."""
    stats = sitk.MinimumMaximumImageFilter()
    stats.Execute(image)
    if stats.GetMaximum() - stats.GetMinimum() < 1e-6:
        raise InputError(f"{who}: no usable intensity range (every voxel is {stats.GetMinimum():g})")


def _finite(image: sitk.Image, who: str) -> tuple[sitk.Image, list[str]]:
    array = sitk.GetArrayViewFromImage(image)
    bad = ~np.isfinite(array)
    count = int(np.count_nonzero(bad))
    if count == 0:
        return image, []
    if count == bad.size:
        raise InputError(f"{who}: no voxel holds a number (all NaN or infinite)")
    fixed = sitk.GetArrayFromImage(image)
    fill = float(fixed[~bad].min())
    fixed[bad] = fill
    out = sitk.GetImageFromArray(fixed)
    out.CopyInformation(image)
    share = f"{100.0 * count / bad.size:.2g}%"
    return out, [f"{who}: {count} voxel(s) ({share}) are not numbers (NaN or infinite); read as {fill:g}, its lowest"]


def _reject_label_map(array: np.ndarray, who: str) -> None:
    values = label_values(array)
    if values is None:
        return
    shown = ", ".join(f"{v:g}" for v in values[:4]) + (f", ... {values[-1]:g}" if len(values) > 4 else "")
    raise InputError(f"{who}: holds only {len(values)} whole values ({shown}) in flat regions: a label map, not a scan")


def require_label_map(image: sitk.Image, who: str) -> None:
    """A segmentation to score must be a label map: a CT given as the prediction was scored as a 23 l liver."""
    if label_values(sitk.GetArrayViewFromImage(image)) is None:
        raise InputError(f"{who}: not a label map (a scan?): expected a few whole values in flat regions")


def label_values(array: np.ndarray) -> np.ndarray | None:
    """The values of a label map, None for anything else. A label map holds a few hundred whole values at most, in
    flat regions: nearly every labelled voxel equals its neighbour, where a scan's noise makes neighbours differ
    (even an 8-bit one). One value alone (an empty segmentation) is a label map."""
    step = SAMPLE_STEP
    for sample in (array[::step, ::step, ::step], array):
        values, counts = np.unique(sample, return_counts=True)
        if len(values) > MAX_LABEL_VALUES or not np.all(values == np.round(values)):
            return None
    common = values[np.argmax(counts)]
    left, right = array[:, :, :-1], array[:, :, 1:]
    labelled = (left != common) | (right != common)
    if np.count_nonzero(left[labelled] == right[labelled]) < FLAT_SHARE * np.count_nonzero(labelled):
        return None
    return values


def _unit_warnings(array: np.ndarray, lo: float, role: str, who: str) -> list[str]:
    if ROLE_TO_CHANNEL[role] != "mri":
        if lo > AIR_HU:
            return [
                f"{who}: no voxel below {AIR_HU:g} (lowest {lo:g}), so no air: if this CT is not in Hounsfield "
                "units (air -1000, water 0; a missing rescale intercept adds 1024), its liver and tumours are wrong"
            ]
        return []
    step = SAMPLE_STEP
    if np.percentile(array[::step, ::step, ::step], 1) < AIR_HU:
        return [f"{who}: values down to {lo:g}, as a CT in Hounsfield units has: is this image an MRI?"]
    return []
