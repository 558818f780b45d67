"""How a scanner takes one image of the phantom world: its grid, the patient's movement before it, the
partial-volume blur of its slices and its noise.

A phantom case is written at clinical size (a 512x512x120 CT per phase), so this module is the cost of
synthesis: every step that touches the acquisition grid is done once, on the coarsest grid that holds the
world's detail, and only interpolation, noise and storage run at full size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from . import anatomy as A


@dataclass
class Acquisition:
    """How one image is taken: voxel size (mm) and field of view (mm)."""

    spacing: tuple[float, float, float]
    fov: tuple[float, float, float]


@dataclass
class Motion:
    """Patient movement before one acquisition: a point p of the image's frame shows the world at
    field(rigid(p)). `truth` is the inverse (reference point -> image point, ITK's resampling convention),
    the transform that registration estimates."""

    rigid: sitk.Transform
    field: sitk.Image | None  # breathing displacement on a coarse world grid; None for a still image
    truth: sitk.Transform


@dataclass(frozen=True)
class Grid:
    """An image grid without pixels: a 512x512x120 CT's grid need not cost 31 MB of zeros."""

    size: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    def resample(self, image: sitk.Image, transform: sitk.Transform, label: bool, background: float) -> sitk.Image:
        interpolator, pixel = (
            (sitk.sitkNearestNeighbor, sitk.sitkUInt8) if label else (sitk.sitkLinear, sitk.sitkFloat32)
        )
        return sitk.Resample(
            image, self.size, transform, interpolator, self.origin, self.spacing, self.direction, background, pixel
        )

    def image(self, array: np.ndarray) -> sitk.Image:
        """`array` (z, y, x) as an image on this grid."""
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def coarser(self, spacing: float) -> Grid:
        """The same corners with voxels of at least `spacing` mm, so that interpolating it back onto this
        grid (corners aligned) is exact at the corners."""
        size, new = [], []
        for n, s in zip(self.size, self.spacing):
            m = n if s >= spacing else int(np.ceil((n - 1) * s / spacing)) + 1
            size.append(m)
            new.append((n - 1) * s / (m - 1) if m > 1 else s)
        return Grid(tuple(size), tuple(new), self.origin, self.direction)


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


def patient_motion(anat: A.Anatomy, rng: np.random.Generator, still: bool) -> Motion:
    """Rigid motion, then a breathing shift: a smooth craniocaudal displacement, largest at the liver
    (5 to 20 mm) and fading with distance, as the diaphragm pushes the liver."""
    if still:
        return Motion(sitk.TranslationTransform(3), None, sitk.TranslationTransform(3))
    rigid = sitk.Euler3DTransform()
    rigid.SetRotation(*map(float, np.deg2rad(rng.uniform(-4, 4, 3))))
    rigid.SetTranslation(tuple(float(v) for v in rng.uniform(-12, 12, 3)))
    field = _breathing_field(anat, rng)
    # 20 iterations: the same inverse as 50 to 0.03 mm at the 95th percentile, in 2/5 of the time
    inverse_field = sitk.InvertDisplacementField(field, maximumNumberOfIterations=20, enforceBoundaryCondition=True)
    truth = sitk.CompositeTransform([rigid.GetInverse(), sitk.DisplacementFieldTransform(inverse_field)])
    return Motion(rigid, field, truth)


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


def acquisition_grid(acq: Acquisition, direction: np.ndarray, center: np.ndarray) -> Grid:
    """The acquisition's grid, centred on `center` (world mm)."""
    size = [max(8, int(round(f / s))) for f, s in zip(acq.fov, acq.spacing)]
    half = direction @ (np.array(acq.spacing) * (np.array(size) - 1) / 2)
    origin = tuple(float(v) for v in center - half)
    return Grid(tuple(size), tuple(map(float, acq.spacing)), origin, tuple(direction.flatten().tolist()))


def acquire(
    world: sitk.Image, labels: sitk.Image, grid: Grid, motion: Motion, acq: Acquisition
) -> tuple[np.ndarray, sitk.Image]:
    """The world as this acquisition sees it: (image array in z, y, x order, label image), both on `grid`.

    Resampling runs on a grid no finer than 3/4 of a world voxel (the world holds no finer detail), then
    plain interpolation reaches the acquisition grid. The breathing warp's displacement lookups are the
    costly part of resampling, so they are done on whichever is smaller, that coarse grid or the world's."""
    background = float(np.min(sitk.GetArrayViewFromImage(world)))
    world = _slice_blur(world, grid, acq)
    coarse = grid.coarser(0.75 * world.GetSpacing()[0])
    transform = motion.rigid
    if motion.field is not None:
        warp = sitk.DisplacementFieldTransform(sitk.Image(motion.field))  # the transform takes the image over
        if np.prod(coarse.size) < world.GetNumberOfPixels():
            transform = sitk.CompositeTransform([warp, motion.rigid])  # rigid first, then the warp
        else:
            world = sitk.Resample(world, world, warp, sitk.sitkLinear, background)
            labels = sitk.Resample(labels, labels, warp, sitk.sitkNearestNeighbor, 0)
    image = coarse.resample(world, transform, False, background)
    label = coarse.resample(labels, transform, True, 0)
    fine = grid.size[::-1]
    label_on_grid = grid.image(_nearest_up(sitk.GetArrayViewFromImage(label), fine))
    return _linear_up(sitk.GetArrayFromImage(image), fine), label_on_grid


def _slice_blur(world: sitk.Image, grid: Grid, acq: Acquisition) -> sitk.Image:
    """Partial volume: blur the world by what a voxel of the acquisition averages beyond a world voxel
    (the slice thickness, mostly), along the world axis each image axis lies on."""
    step = world.GetSpacing()[0]
    fwhm = np.sqrt(np.maximum(np.square(acq.spacing) - step**2, 0.0))
    axes = np.abs(np.array(grid.direction).reshape(3, 3)).argmax(0)  # world axis of each image axis
    sigma = np.zeros(3)
    sigma[axes] = fwhm / 2.355 / step
    if sigma.max() < 0.25:
        return world
    array = ndimage.gaussian_filter(sitk.GetArrayViewFromImage(world), sigma[::-1], truncate=3.0)
    blurred = sitk.GetImageFromArray(array)
    blurred.CopyInformation(world)
    return blurred


def _linear_up(array: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Linear interpolation onto `shape`, corners aligned; in-plane only when the slices match (2x faster)."""
    if tuple(array.shape) == tuple(shape):
        return array
    t = torch.from_numpy(array)
    if array.shape[0] == shape[0]:
        up = torch.nn.functional.interpolate(t[None], size=shape[1:], mode="bilinear", align_corners=True)
    else:
        up = torch.nn.functional.interpolate(t[None, None], size=shape, mode="trilinear", align_corners=True)
    return up.reshape(shape).numpy()


def _nearest_up(array: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Nearest-neighbour interpolation onto `shape`, corners aligned (torch's nearest is not)."""
    for axis, n in enumerate(shape):
        m = array.shape[axis]
        if m != n:
            array = np.take(array, np.rint(np.arange(n) * ((m - 1) / max(n - 1, 1))).astype(np.intp), axis=axis)
    return np.ascontiguousarray(array)


def add_scanner_physics(array: np.ndarray, grid: Grid, role: str, rng: np.random.Generator) -> sitk.Image:
    """The stored image a scanner of this role would write from the noiseless `array`."""
    return add_mri_physics(array, grid, rng) if role == "mri" else add_ct_noise(array, grid, rng)


def add_ct_noise(array: np.ndarray, grid: Grid, rng: np.random.Generator) -> sitk.Image:
    """Quantum noise, then whole Hounsfield units stored as int16, as a scanner writes them.

    The noise is drawn by torch: 0.32 s for the 31 million voxels of a clinical CT, NumPy 0.47 s (float32)."""
    t = torch.from_numpy(array)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    t.add_(torch.randn(t.shape, generator=generator), alpha=float(rng.uniform(6, 14)))
    return grid.image(t.round_().clamp_(-1024, 3071).to(torch.int16).numpy())


def add_mri_physics(array: np.ndarray, grid: Grid, rng: np.random.Generator) -> sitk.Image:
    """Arbitrary units, a smooth bias field and Rician noise, as a magnitude MR image has."""
    array = array * np.float32(rng.uniform(600, 1400))
    array *= np.exp(0.15 * A.smooth_noise(array.shape, rng, max(array.shape) / 3))
    sigma = np.float32(rng.uniform(0.015, 0.03) * float(np.percentile(array, 99)))
    real = array + sigma * rng.standard_normal(array.shape, dtype=np.float32)
    noisy = np.hypot(real, sigma * rng.standard_normal(array.shape, dtype=np.float32))
    return grid.image(np.clip(np.round(noisy), 0, 65535).astype(np.uint16))  # integer magnitudes
