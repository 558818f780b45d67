"""Training cases on the model grid: any folder in the phantom layout becomes cached arrays.

A case folder holds `<role>.nii.gz` images, `label_<reference>.nii.gz` (or `label.nii.gz`), optionally `case.json`
(`malignant`) and `truth_transform_<role>.h5`. Known transforms align the inputs exactly; without them
our own rigid registration does, as at inference. A hospital can thus train on its own folders.
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from tqdm import tqdm

from ..apps.ct2mri.translate import load_translator, translate
from ..constants import ROLES
from ..io.images import read_image
from ..io.roles import choose_reference
from ..preprocessing import canonical_grid, stack_channels, to_grid
from ..registration.align import register


def case_roles(case_dir: Path) -> list[str]:
    return [r for r in ROLES if (case_dir / f"{r}.nii.gz").is_file()]


def case_reference(case_dir: Path) -> str:
    """The labelled phase named in `case.json` (`labelled`), else the product's reference choice: a real export is
    labelled on one phase only (the delayed one of an arterial + delayed pair, say), and the other phases are aligned
    to it, so training and evaluation work on the grid the truth was drawn on."""
    info = case_info(case_dir)
    roles = case_roles(case_dir)
    return info["labelled"] if info.get("labelled") in roles else choose_reference(roles)


def case_info(case_dir: Path) -> dict:
    path = case_dir / "case.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_case(case_dir: Path, spacing: tuple[float, float, float], fill_mri: bool = False) -> dict[str, np.ndarray]:
    """Stacked channels, presence, labels and the case's malignancy on the canonical grid.

    With `fill_mri`, a case without MRI gets its reference CT translated to MRI in the MRI channel, as
    `liverfusion segment --fill-mri` gives the network at inference."""
    roles = case_roles(case_dir)
    reference = case_reference(case_dir)
    images = {r: read_image(case_dir / f"{r}.nii.gz") for r in roles}
    transforms = {r: _alignment(case_dir, images, reference, r) for r in roles}
    if fill_mri and "mri" not in images:  # the translation lies on the reference: no transform
        images["mri"] = translate(images[reference], _translator(), torch.device("cpu"))
    grid = canonical_grid(images[reference], spacing)
    arrays = {r: to_grid(img, grid, r, transforms.get(r)) for r, img in images.items()}
    stacked, present = stack_channels(arrays)
    label = read_image(_label_path(case_dir, reference), label=True)
    label = sitk.GetArrayFromImage(sitk.Resample(label, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    info = case_info(case_dir)
    return {
        "image": stacked,
        "present": present,
        "label": label[None].astype(np.uint8),
        "malignant": malignancy(info),
    }


def malignancy(info: dict) -> np.float32:
    """1 or 0 from `case.json`; NaN where the case says `"malignant": null` (a real export whose lesions' type is
    not recorded), so that the malignancy loss skips the case rather than learn its lesions as benign."""
    if "malignant" in info and info["malignant"] is None:
        return np.float32("nan")
    return np.float32(bool(info.get("malignant", False)))


@functools.cache
def _translator():
    """Loaded and checksum-verified once per process, not once per case."""
    return load_translator()


def _label_path(case_dir: Path, reference: str) -> Path:
    """A phantom's `label_<reference>.nii.gz`, or the `label.nii.gz` of `liverfusion synth-tumor` output, so
    that real livers with synthetic tumours train beside phantoms (Diff4MMLiTS's hybrid training)."""
    own = case_dir / f"label_{reference}.nii.gz"
    return own if own.is_file() else case_dir / "label.nii.gz"


def _alignment(case_dir: Path, images: dict, reference: str, role: str) -> sitk.Transform | None:
    if role == reference:
        return None
    truth = case_dir / f"truth_transform_{role}.h5"
    if truth.is_file():
        return sitk.ReadTransform(str(truth))
    return register(images[reference], images[role], "rigid", reference, role).transform


def cached(
    case_dir: Path, cache_dir: Path, spacing: tuple[float, float, float], fill_mri: bool = False
) -> dict[str, np.ndarray]:
    """Load a case from the cache, building the cache entry on first use."""
    key = "_".join(f"{s:g}" for s in spacing) + ("_fillmri" if fill_mri else "")
    path = cache_dir / f"{case_dir.resolve().parent.name}_{case_dir.name}_{key}.npz"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **load_case(case_dir, spacing, fill_mri))
        tmp.replace(path)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def cache_all(
    case_dirs: list[Path], cache_dir: Path, spacing: tuple[float, float, float], jobs: int, fill_mri: bool = False
) -> list[dict]:
    """Every case on the model grid, building missing cache entries in `jobs` processes, with progress."""
    if jobs > 1 and len(case_dirs) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(cached, d, cache_dir, spacing, fill_mri) for d in case_dirs]
            return [f.result() for f in tqdm(futures, desc="cache", leave=False)]
    return [cached(d, cache_dir, spacing, fill_mri) for d in tqdm(case_dirs, desc="cache", leave=False)]


def find_cases(roots: list[Path]) -> list[Path]:
    """Every case folder (one holding case images) under the given roots, sorted."""
    cases = []
    for root in roots:
        candidates = [root] if case_roles(root) else sorted(p for p in root.iterdir() if p.is_dir())
        cases += [c for c in candidates if case_roles(c)]
    return cases
