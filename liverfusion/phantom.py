"""Phantom cases: one random abdomen rendered as CT+MRI or multiphase CT, each image acquired on its own
grid (spacing, field of view, orientation) after its own patient movement, with labels and the truth.

The movement between acquisitions (rigid plus a breathing-like craniocaudal shift of the liver) is
recorded, so alignment can be measured against ground truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from . import anatomy as A
from .appearance import render_tissue
from .constants import LIVER, ROLE_TO_CHANNEL, TUMOR
from .imageio import staged_output, write_image, write_text
from .roles import choose_reference

PROTOCOLS = {"ct-mri": ("ct", "mri"), "multiphase": ("nc", "arterial", "portal", "delayed")}


@dataclass
class Acquisition:
    """How one image is taken: voxel size (mm) and field of view (mm)."""

    spacing: tuple[float, float, float]
    fov: tuple[float, float, float]


def acquisition_for(
    role: str, rng: np.random.Generator, small: bool, shape: tuple[int, int, int] | None = None
) -> Acquisition:
    """Random but plausible scanner settings; `small` doubles the voxel size for quick tests, `shape`
    fixes the matrix (e.g. a clinical 512x512x120 CT) over a typical field of view."""
    if shape is not None:
        fov = (384.0, 312.0, 200.0) if role == "mri" else (380.0, 380.0, 240.0)
        return Acquisition(tuple(f / n for f, n in zip(fov, shape)), fov)
    f = 2.0 if small else 1.0
    if role == "mri":
        spacing = (f * rng.uniform(1.4, 1.9),) * 2 + (f * rng.uniform(4.0, 6.0),)
        fov = (rng.uniform(360, 400), rng.uniform(280, 310), rng.uniform(170, 210))
    else:
        spacing = (f * rng.uniform(1.2, 1.6),) * 2 + (f * rng.uniform(2.5, 5.0),)
        fov = (rng.uniform(370, 400), rng.uniform(290, 310), rng.uniform(200, 230))
    return Acquisition(spacing, fov)


def random_direction(rng: np.random.Generator, oblique_deg: float) -> np.ndarray:
    """An axial direction matrix: LPS or RAS storage, with a small oblique tilt."""
    flip = np.diag([1.0, 1.0, 1.0]) if rng.random() < 0.5 else np.diag([-1.0, -1.0, 1.0])
    return flip @ _rotation(np.deg2rad(rng.uniform(-oblique_deg, oblique_deg, 3)))


def _rotation(angles: np.ndarray) -> np.ndarray:
    t = sitk.Euler3DTransform()
    t.SetRotation(*map(float, angles))
    return np.array(t.GetMatrix()).reshape(3, 3)


def patient_motion(anat: A.Anatomy, rng: np.random.Generator, still: bool) -> tuple[sitk.Transform, sitk.Transform]:
    """Patient movement for one acquisition: (image point -> world point, world point -> image point).

    Rigid motion, then a breathing shift: a smooth craniocaudal displacement, largest at the liver
    (5 to 20 mm) and fading with distance, as the diaphragm pushes the liver. The second transform is the
    inverse, i.e. the moving->reference transform in ITK's resampling convention, the truth that our
    registration estimates.
    """
    if still:
        return sitk.TranslationTransform(3), sitk.TranslationTransform(3)
    rigid = sitk.Euler3DTransform()
    rigid.SetRotation(*map(float, np.deg2rad(rng.uniform(-4, 4, 3))))
    rigid.SetTranslation(tuple(float(v) for v in rng.uniform(-12, 12, 3)))
    field = _breathing_field(anat, rng)
    inverse_field = sitk.InvertDisplacementField(field, maximumNumberOfIterations=50, enforceBoundaryCondition=True)
    forward = sitk.CompositeTransform([sitk.DisplacementFieldTransform(sitk.Image(field)), rigid])
    inverse = sitk.CompositeTransform([rigid.GetInverse(), sitk.DisplacementFieldTransform(inverse_field)])
    return forward, inverse


def _breathing_field(anat: A.Anatomy, rng: np.random.Generator) -> sitk.Image:
    liver = np.isin(anat.tissue, (A.LIVER, A.VESSEL)) | (anat.tissue >= A.LESION_BASE)
    coarse = 4
    weight = ndimage.gaussian_filter(liver[::coarse, ::coarse, ::coarse].astype(np.float32), 4)
    weight /= weight.max()
    shift = rng.uniform(5, 20) * rng.choice([-1, 1])
    field = np.zeros(weight.shape + (3,), np.float64)
    field[..., 2] = shift * weight
    field[..., 1] = 0.25 * shift * weight  # the liver also moves a little antero-posteriorly
    image = sitk.GetImageFromArray(field, isVector=True)
    image.SetSpacing((anat.spacing_mm * coarse,) * 3)
    image.SetOrigin(anat.origin_mm)
    return image


def world_image(array: np.ndarray, anat: A.Anatomy) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((anat.spacing_mm,) * 3)
    image.SetOrigin(anat.origin_mm)
    return image


def acquisition_grid(acq: Acquisition, direction: np.ndarray, center: np.ndarray) -> sitk.Image:
    """An empty image whose grid is the acquisition's, centred on `center` (world mm)."""
    size = [max(8, int(round(f / s))) for f, s in zip(acq.fov, acq.spacing)]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing(acq.spacing)
    grid.SetDirection(direction.flatten().tolist())
    half = direction @ (np.array(acq.spacing) * (np.array(size) - 1) / 2)
    grid.SetOrigin(tuple(float(v) for v in center - half))
    return grid


def acquire(
    world: sitk.Image, labels: sitk.Image, grid: sitk.Image, motion: sitk.Transform, acq: Acquisition
) -> tuple[sitk.Image, sitk.Image]:
    """Resample the world onto the grid through the motion, after a blur matching the voxel size.

    The motion (a displacement field) is evaluated on a grid no finer than 3/4 of the world's voxel, then
    interpolated onto the acquisition grid: the world holds no finer detail, and a 512x512 CT needs a
    quarter of the costly field lookups."""
    sigma = [max(0.0, (s**2 - world.GetSpacing()[0] ** 2)) ** 0.5 / 2.355 for s in acq.spacing]
    blurred = sitk.SmoothingRecursiveGaussian(world, [max(v, 0.01) for v in sigma])
    background = float(np.min(sitk.GetArrayViewFromImage(world)))
    coarse = _coarser(grid, 0.75 * world.GetSpacing()[0])
    image = sitk.Resample(blurred, coarse, motion, sitk.sitkLinear, background, sitk.sitkFloat32)
    label = sitk.Resample(labels, coarse, motion, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    if coarse is not grid:
        image = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, background, sitk.sitkFloat32)
        label = sitk.Resample(label, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return image, label


def _coarser(grid: sitk.Image, spacing: float) -> sitk.Image:
    """`grid` itself, or the same field of view with voxels of at least `spacing` mm."""
    new = [max(s, spacing) for s in grid.GetSpacing()]
    if new == list(grid.GetSpacing()):
        return grid
    coarse = sitk.Image(
        [int(np.ceil(n * s / c)) + 1 for n, s, c in zip(grid.GetSize(), grid.GetSpacing(), new)], sitk.sitkUInt8
    )
    coarse.SetSpacing(new)
    coarse.SetOrigin(grid.GetOrigin())
    coarse.SetDirection(grid.GetDirection())
    return coarse


def add_ct_noise(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """Quantum noise, then whole Hounsfield units stored as int16, as a scanner writes them (and a
    third of the time to compress that float32 would take)."""
    array = sitk.GetArrayFromImage(image)
    array += rng.normal(0, rng.uniform(6, 14), array.shape).astype(np.float32)
    return _like(np.clip(np.round(array), -1024, 3071), image, np.int16)


def add_mri_physics(image: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """Arbitrary units, a smooth bias field and Rician noise, as a magnitude MR image has."""
    array = sitk.GetArrayFromImage(image) * rng.uniform(600, 1400)
    bias = np.exp(0.15 * A.smooth_noise(array.shape, rng, max(array.shape) / 3))
    array *= bias.astype(np.float32)
    sigma = rng.uniform(0.015, 0.03) * float(np.percentile(array, 99))
    noisy = np.hypot(array + rng.normal(0, sigma, array.shape), rng.normal(0, sigma, array.shape))
    return _like(np.clip(np.round(noisy), 0, 65535), image, np.uint16)  # integer magnitudes, as scanners store


def _like(array: np.ndarray, reference: sitk.Image, dtype=np.float32) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(dtype))
    image.CopyInformation(reference)
    return image


def label_world(anat: A.Anatomy) -> np.ndarray:
    labels = np.zeros(anat.tissue.shape, np.uint8)
    labels[np.isin(anat.tissue, (A.LIVER, A.VESSEL))] = LIVER
    labels[anat.tissue >= A.LESION_BASE] = TUMOR
    return labels


def make_case(
    out_dir: str | Path,
    seed: int,
    protocol: str = "ct-mri",
    small: bool = False,
    roles: tuple[str, ...] | None = None,
    shapes: dict[str, tuple[int, int, int]] | None = None,
) -> dict:
    """Generate one case folder: an image and a label per role, ground-truth transforms and case.json."""
    rng = np.random.default_rng(seed)
    anat = A.make_anatomy(rng)
    roles = roles or PROTOCOLS[protocol]
    labels = world_image(label_world(anat), anat)
    body_center = np.array([0.0, 10.0, _liver_center(anat)[2]])
    info = {"seed": seed, "protocol": protocol, "reference": choose_reference(roles), "images": {}}
    with staged_output(out_dir) as stage:
        for role in roles:
            acq = acquisition_for(role, rng, small, (shapes or {}).get(role))
            still = role == info["reference"]
            motion, truth = patient_motion(anat, rng, still)
            direction = random_direction(rng, 0 if role != "mri" else 8)
            center = body_center + (0 if still else rng.uniform(-15, 15, 3))
            grid = acquisition_grid(acq, direction, center)
            world = world_image(render_tissue(anat, ROLE_TO_CHANNEL[role], rng), anat)
            image, label = acquire(world, labels, grid, motion, acq)
            image = add_mri_physics(image, rng) if role == "mri" else add_ct_noise(image, rng)
            write_image(image, stage / f"{role}.nii.gz")
            write_image(label, stage / f"label_{role}.nii.gz")
            sitk.WriteTransform(truth, str(stage / f"truth_transform_{role}.h5"))
            info["images"][role] = {
                "spacing_mm": list(acq.spacing),
                "size": list(grid.GetSize()),
                "direction": direction.flatten().round(6).tolist(),
                "truth_transform": f"truth_transform_{role}.h5",
            }
        info["lesions"] = [
            {
                "type": les.kind,
                "malignant": les.malignant,
                "diameter_mm": round(les.diameter_mm, 1),
                "center_world_mm": [round(v, 2) for v in les.center_mm],
            }
            for les in anat.lesions
        ]
        info["malignant"] = any(les.malignant for les in anat.lesions)
        info["transforms_note"] = (
            "truth_transform_<role>.h5 maps a point of the reference's frame to the same "
            "anatomy in that image (ITK resampling convention, like transform_<role>.h5)"
        )
        write_text(json.dumps(info, indent=2), stage / "case.json")
    return info


def aligned_pair(seed: int, small: bool = False, phase: str = "portal") -> dict[str, sitk.Image]:
    """One anatomy seen as a CT (of `phase`) and as an MRI on the same CT grid, without motion, and its label.

    The ground truth that translation needs: the MRI a CT->MRI translator should produce, voxel for voxel."""
    rng = np.random.default_rng(seed)
    anat = A.make_anatomy(rng)
    acq = acquisition_for("ct", rng, small)
    center = np.array([0.0, 10.0, _liver_center(anat)[2]])
    grid = acquisition_grid(acq, random_direction(rng, 0), center)
    labels = world_image(label_world(anat), anat)
    still = sitk.TranslationTransform(3)
    out = {}
    for name, channel in (("ct", phase), ("mri", "mri")):
        image, out["label"] = acquire(world_image(render_tissue(anat, channel, rng), anat), labels, grid, still, acq)
        out[name] = add_mri_physics(image, rng) if name == "mri" else add_ct_noise(image, rng)
    return out


def _liver_center(anat: A.Anatomy) -> np.ndarray:
    zz, yy, xx = np.nonzero(anat.tissue == A.LIVER)
    idx = np.array([xx.mean(), yy.mean(), zz.mean()])
    return np.array(anat.origin_mm) + anat.spacing_mm * idx
