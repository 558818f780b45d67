"""Phantom cases: one random abdomen rendered as CT+MRI or multiphase CT, each image acquired on its own
grid (spacing, field of view, orientation) after its own patient movement, with labels and the truth.

The movement between acquisitions (rigid plus a breathing-like craniocaudal shift of the liver) is
recorded, so alignment can be measured against ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from ..constants import LIVER, ROLE_TO_CHANNEL, TUMOR
from ..io.images import staged_output, write_image, write_text
from ..io.roles import choose_reference
from . import anatomy as A
from .acquisition import (
    acquire,
    acquisition_for,
    acquisition_grid,
    add_scanner_physics,
    patient_motion,
    random_direction,
)
from .appearance import render_tissue

PROTOCOLS = {"ct-mri": ("ct", "mri"), "multiphase": ("nc", "arterial", "portal", "delayed")}


def single_threaded() -> None:
    """For a worker process among as many as there are cores: torch and ITK would each start a thread per core."""
    torch.set_num_threads(1)
    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)


def world_image(array: np.ndarray, anat: A.Anatomy) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((anat.spacing_mm,) * 3)
    image.SetOrigin(anat.origin_mm)
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
            motion = patient_motion(anat, rng, still)
            direction = random_direction(rng, 0 if role != "mri" else 8)
            center = body_center + (0 if still else rng.uniform(-15, 15, 3))
            grid = acquisition_grid(acq, direction, center)
            world = world_image(render_tissue(anat, ROLE_TO_CHANNEL[role], rng), anat)
            array, label = acquire(world, labels, grid, motion, acq)
            image = add_scanner_physics(array, grid, role, rng)
            write_image(image, stage / f"{role}.nii.gz")
            write_image(label, stage / f"label_{role}.nii.gz")
            sitk.WriteTransform(motion.truth, str(stage / f"truth_transform_{role}.h5"))
            info["images"][role] = {
                "spacing_mm": list(acq.spacing),
                "size": list(grid.size),
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
    still = patient_motion(anat, rng, still=True)
    out = {}
    for name, channel in (("ct", phase), ("mri", "mri")):
        array, out["label"] = acquire(world_image(render_tissue(anat, channel, rng), anat), labels, grid, still, acq)
        out[name] = add_scanner_physics(array, grid, name, rng)
    return out


def _liver_center(anat: A.Anatomy) -> np.ndarray:
    zz, yy, xx = np.nonzero(anat.tissue == A.LIVER)
    idx = np.array([xx.mean(), yy.mean(), zz.mean()])
    return np.array(anat.origin_mm) + anat.spacing_mm * idx
