"""CT -> MRI translation: a 2-D U-Net generator applied slice by slice on a 1.5 mm in-plane grid.

Slices, not 3-D patches: CTs differ most in slice thickness (0.6 to 5 mm), and a 2-D network neither learns
nor needs it. The output is resampled back onto the CT's own grid, so it overlays the CT voxel for voxel and
can fill the MRI channel of the fusion network without alignment.

The translator's bundle records its pixel size, CT window and MRI ceiling (`inference.json`); the values here serve
only a bundle that records none.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch
from monai.networks.nets import BasicUNet

from ...errors import InputError
from ...models import store as model_store
from ...progress import Reporter, silent

DEFAULT_TRANSLATOR = "liverfusion_ct2mri"
PIXEL_MM = 1.5
CT_WINDOW = (-250.0, 450.0)  # fat, soft tissue and bone stay apart; air clips to the floor
MRI_CEILING = 1.25  # MRI in units of its 99th percentile, clipped here: fat and fluid are the brightest tissues
MRI_OUTPUT_SCALE = 1000.0  # arbitrary units, like a scanner's magnitude image
DIVISOR = 16  # four poolings


def build_generator(features: list[int]) -> torch.nn.Module:
    """The generator: MONAI's BasicUNet in 2-D, one channel in and out, tanh to [-1, 1]."""
    return torch.nn.Sequential(
        BasicUNet(spatial_dims=2, in_channels=1, out_channels=1, features=tuple(features)), torch.nn.Tanh()
    )


def ct_to_unit(hu: np.ndarray, window: tuple[float, float] = CT_WINDOW) -> np.ndarray:
    lo, hi = window
    return (np.clip(hu, lo, hi) - lo) / (hi - lo) * 2.0 - 1.0


def mri_to_unit(signal: np.ndarray) -> np.ndarray:
    """Magnitudes have no absolute scale: divide by the 99th percentile of the body (voxels above 5% of it)."""
    body = signal[signal > 0.05 * np.percentile(signal, 99.5)]
    scale = float(np.percentile(body, 99)) if body.size else 1.0
    return np.clip(signal / max(scale, 1e-6), 0.0, MRI_CEILING) / MRI_CEILING * 2.0 - 1.0


def unit_to_mri(unit: np.ndarray, ceiling: float = MRI_CEILING) -> np.ndarray:
    return (np.clip(unit, -1.0, 1.0) + 1.0) / 2.0 * ceiling * MRI_OUTPUT_SCALE


def slice_grid(image: sitk.Image, pixel_mm: float = PIXEL_MM) -> sitk.Image:
    """The image's own slices, resampled in-plane to `pixel_mm` and padded to a multiple of 16 pixels."""
    spacing = image.GetSpacing()
    size = [int(np.ceil(n * s / pixel_mm)) for n, s in zip(image.GetSize()[:2], spacing[:2])]
    size = [DIVISOR * int(np.ceil(n / DIVISOR)) for n in size] + [image.GetSize()[2]]
    grid = sitk.Image(size, sitk.sitkUInt8)
    grid.SetSpacing((pixel_mm, pixel_mm, spacing[2]))
    grid.SetDirection(image.GetDirection())
    grid.SetOrigin(image.GetOrigin())
    return grid


def ct_slices(
    ct: sitk.Image, pixel_mm: float = PIXEL_MM, window: tuple[float, float] = CT_WINDOW
) -> tuple[np.ndarray, sitk.Image]:
    """A CT as normalised (z, y, x) slices on its slice grid, air outside the field of view."""
    grid = slice_grid(ct, pixel_mm)
    resampled = sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, window[0], sitk.sitkFloat32)
    return ct_to_unit(sitk.GetArrayFromImage(resampled), window).astype(np.float32), grid


def mri_slices(mri: sitk.Image) -> np.ndarray:
    grid = slice_grid(mri)
    resampled = sitk.Resample(mri, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return mri_to_unit(sitk.GetArrayFromImage(resampled)).astype(np.float32)


@torch.no_grad()
def translate(
    ct: sitk.Image,
    bundle: model_store.Bundle,
    device: torch.device,
    report: Reporter = silent,
    batch: int = 8,
) -> sitk.Image:
    """An MRI-like image on the CT's grid (float32, arbitrary units)."""
    if ct.GetDimension() != 3 or ct.GetNumberOfComponentsPerPixel() != 1:
        raise InputError("CT->MRI translation needs a 3-D single-channel CT")
    config = bundle.config
    window = tuple(float(v) for v in config.get("ct_window_hu", CT_WINDOW))
    slices, grid = ct_slices(ct, float(config.get("pixel_mm", PIXEL_MM)), window)
    out = np.empty_like(slices)
    for start in range(0, len(slices), batch):
        report(start / len(slices), "translate CT to MRI")
        x = torch.from_numpy(slices[start : start + batch, None]).to(device)
        out[start : start + batch] = bundle.network(x)[:, 0].float().cpu().numpy()
    out[slices <= -1.0] = -1.0  # air, lung and gas (below the window's floor, -250 HU) give no MR signal
    mri = sitk.GetImageFromArray(unit_to_mri(out, float(config.get("mri_ceiling", MRI_CEILING))).astype(np.float32))
    mri.CopyInformation(grid)
    report(1.0, "translate CT to MRI")
    return sitk.Resample(mri, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def load_translator(name: str | None = None, device: str | torch.device = "cpu") -> model_store.Bundle:
    return model_store.load(name or DEFAULT_TRANSLATOR, device, build_generator, model_store.TRANSLATOR)
