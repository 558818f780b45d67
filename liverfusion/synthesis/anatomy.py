"""A random abdomen on a world grid: tissue codes for body, organs, liver vessels and liver lesions.

The anatomy is drawn once per case in patient (LPS) millimetres; every modality and phase is then
rendered from the same tissue map, so the images of one case share one truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

# Tissue codes of the world map. Lesion k (0-based) is LESION_BASE + k.
AIR, FAT, MUSCLE, LIVER, VESSEL, SPLEEN, KIDNEY, BONE, AORTA, GAS = range(10)
LESION_BASE = 16

WORLD_SPACING_MM = 2.0
WORLD_SIZE_MM = (360.0, 280.0, 240.0)  # x (right-left), y (anterior-posterior), z (inferior-superior)

BENIGN_TYPES = ("cyst", "hemangioma", "fnh")
MALIGNANT_TYPES = ("hcc", "metastasis", "cholangiocarcinoma")


@dataclass
class Lesion:
    """One lesion: its type, centre in world mm and the diameter it was drawn with."""

    kind: str
    center_mm: tuple[float, float, float]
    diameter_mm: float

    @property
    def malignant(self) -> bool:
        return self.kind in MALIGNANT_TYPES


@dataclass
class Anatomy:
    """World tissue map (z, y, x array), its grid, lesions and the per-lesion radial depth in [0, 1]."""

    tissue: np.ndarray
    spacing_mm: float
    origin_mm: tuple[float, float, float]
    lesions: list[Lesion] = field(default_factory=list)
    lesion_depth: np.ndarray | None = None  # 0 at a lesion's margin, 1 at its core


def world_coordinates(spacing: float = WORLD_SPACING_MM) -> tuple[tuple[float, float, float], list[np.ndarray]]:
    """Origin and open-grid coordinates (z, y, x order) of the world box centred on the origin."""
    sizes = [int(round(s / spacing)) for s in WORLD_SIZE_MM]
    origin = tuple(-(n - 1) * spacing / 2 for n in sizes)
    axes = [origin[i] + spacing * np.arange(sizes[i], dtype=np.float32) for i in range(3)]
    z, y, x = np.ix_(axes[2], axes[1], axes[0])
    return origin, [z, y, x]


def smooth_noise(shape: tuple[int, int, int], rng: np.random.Generator, sigma_vox: float) -> np.ndarray:
    """Zero-mean, unit-std random field smooth over about `sigma_vox` voxels (drawn coarse, then interpolated)."""
    step = max(1, int(sigma_vox // 2))
    coarse = rng.standard_normal([max(2, s // step + 2) for s in shape]).astype(np.float32)
    coarse = torch.from_numpy(ndimage.gaussian_filter(coarse, sigma_vox / step))
    field_ = F.interpolate(coarse[None, None], size=tuple(shape), mode="trilinear", align_corners=True)[0, 0].numpy()
    field_ -= field_.mean()
    return field_ / (field_.std() + 1e-6)


def _ellipsoid(z, y, x, center, radii) -> np.ndarray:
    """Normalised radius: below 1 inside the ellipsoid."""
    return np.sqrt(
        ((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2 + ((z - center[2]) / radii[2]) ** 2
    )


def make_anatomy(
    rng: np.random.Generator, n_lesions: int | None = None, lesion_kinds: list[str] | None = None
) -> Anatomy:
    """Draw one random abdomen with 0-5 liver lesions (or exactly `n_lesions` of `lesion_kinds`)."""
    origin, (z, y, x) = world_coordinates()
    shape = (z.shape[0], y.shape[1], x.shape[2])
    tissue = np.zeros(shape, np.uint8)
    cavity = _draw_body(tissue, z, y, x, rng)
    liver = _liver_mask(z, y, x, rng, shape) & cavity
    _draw_organs(tissue, z, y, x, rng, liver)
    tissue[liver] = LIVER
    _draw_vessels(tissue, liver, rng)
    anatomy = Anatomy(tissue, WORLD_SPACING_MM, origin)
    _draw_lesions(anatomy, z, y, x, rng, n_lesions, lesion_kinds)
    return anatomy


def _draw_body(tissue, z, y, x, rng) -> np.ndarray:
    """Skin-fat, muscle wall, spine, aorta and psoas; returns the abdominal cavity the organs must stay in."""
    a, b = rng.uniform(140, 170), rng.uniform(100, 125)
    taper = 1 + 0.08 * (z / 120.0)
    r = np.sqrt((x / (a * taper)) ** 2 + ((y - 10) / (b * taper)) ** 2)
    fat = rng.uniform(8, 28)
    tissue[np.broadcast_to(r < 1, tissue.shape)] = FAT
    tissue[np.broadcast_to(r < 1 - fat / a, tissue.shape)] = MUSCLE
    cavity = np.broadcast_to(r < 1 - (fat + 12) / a, tissue.shape)
    tissue[cavity] = FAT  # visceral fat
    spine = _ellipsoid(0 * z, y, x, (0, 75, 0), (22, 20, 1e9)) < 1
    tissue[np.broadcast_to(spine, tissue.shape)] = BONE
    aorta = _ellipsoid(0 * z, y, x, (15, 45, 0), (12, 12, 1e9)) < 1
    tissue[np.broadcast_to(aorta, tissue.shape)] = AORTA
    psoas = (_ellipsoid(z, y, x, (-40, 65, -60), (22, 20, 90)) < 1) | (
        _ellipsoid(z, y, x, (40, 65, -60), (22, 20, 90)) < 1
    )
    tissue[psoas] = MUSCLE
    return cavity & (tissue == FAT)


def _liver_mask(z, y, x, rng, shape) -> np.ndarray:
    """A lobulated liver: right lobe, left lobe and caudate, with a smooth random surface."""
    s = rng.uniform(0.85, 1.15)
    cx, cy, cz = rng.uniform(-65, -50), rng.uniform(-10, 10), rng.uniform(10, 40)
    right = _ellipsoid(z, y, x, (cx, cy, cz), (s * 70, s * 75, s * 75))
    left = _ellipsoid(z, y, x, (cx + s * 85, cy - 25, cz + 30), (s * 55, s * 40, s * 35))
    caudate = _ellipsoid(z, y, x, (cx + 45, cy + 35, cz + 20), (25, 22, 40))
    level = np.minimum(np.minimum(right, left), caudate)
    level = level + 0.12 * smooth_noise(shape, rng, 10)
    liver = level < 1
    labels, n = ndimage.label(liver)
    if n > 1:
        liver = labels == 1 + int(np.argmax(ndimage.sum(liver, labels, range(1, n + 1))))
    return liver


def _draw_organs(tissue, z, y, x, rng, liver) -> None:
    spleen = _ellipsoid(z, y, x, (rng.uniform(85, 105), 40, rng.uniform(20, 45)), (30, 45, 55)) < 1
    tissue[spleen & ~liver] = SPLEEN
    for side in (-1, 1):
        kidney = _ellipsoid(z, y, x, (side * 70, 60, rng.uniform(-70, -40)), (30, 28, 55)) < 1
        tissue[kidney & ~liver] = KIDNEY
    for _ in range(int(rng.integers(2, 6))):
        c = (rng.uniform(-20, 90), rng.uniform(-80, -20), rng.uniform(-100, 0))
        gas = _ellipsoid(z, y, x, c, rng.uniform(8, 25, 3)) < 1
        tissue[gas & (tissue == FAT)] = GAS


def _draw_vessels(tissue, liver, rng) -> None:
    """Portal and hepatic veins: a few tubes from the hilum, kept inside the liver."""
    zz, yy, xx = np.nonzero(liver)
    hilum = np.array([zz.mean(), yy.mean(), xx.mean()])
    tubes = np.zeros(liver.shape, bool)
    for _ in range(int(rng.integers(5, 9))):
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        length = rng.uniform(20, 45)
        for t in np.linspace(0, length, int(length * 2)):
            p = np.round(hilum + t * direction).astype(int)
            if all(0 <= p[i] < liver.shape[i] for i in range(3)):
                tubes[tuple(p)] = True
    radius = rng.uniform(1.5, 2.5)
    box = _nonzero_box(tubes, margin=int(radius) + 1)
    tissue[box][(ndimage.distance_transform_edt(~tubes[box]) <= radius) & liver[box]] = VESSEL


LESION_DIAMETER_MM = (5.0, 80.0)


def lesion_diameter(rng: np.random.Generator) -> float:
    """Log-uniform in 5-80 mm: small lesions are the common and the hard ones, so they are not drawn rarely."""
    lo, hi = np.log(LESION_DIAMETER_MM)
    return float(np.exp(rng.uniform(lo, hi)))


def _draw_lesions(anatomy: Anatomy, z, y, x, rng, n_lesions, kinds) -> None:
    """Ellipsoids deformed elastically, lobulated when malignant, kept inside the liver (Diff4MMLiTS)."""
    tissue = anatomy.tissue
    liver = np.isin(tissue, (LIVER, VESSEL))
    inside = np.zeros(tissue.shape, np.float32)
    box = _nonzero_box(liver, margin=1)
    inside[box] = ndimage.distance_transform_edt(liver[box]) * anatomy.spacing_mm
    n = int(rng.choice(6, p=[0.15, 0.3, 0.25, 0.15, 0.1, 0.05])) if n_lesions is None else n_lesions
    malignant_case = rng.random() < 0.5
    depth = np.zeros(tissue.shape, np.float32)
    for k in range(n):
        kind = kinds[k] if kinds else str(rng.choice(MALIGNANT_TYPES if malignant_case else BENIGN_TYPES))
        diameter = lesion_diameter(rng)
        candidates = np.argwhere(inside > min(diameter / 2, 15))
        if len(candidates) == 0:
            continue
        c = candidates[rng.integers(len(candidates))]
        center = tuple(float(anatomy.origin_mm[i] + anatomy.spacing_mm * c[2 - i]) for i in range(3))
        radii = diameter / 2 * rng.uniform(0.75, 1.25, 3)
        bumpy = 0.25 if kind in MALIGNANT_TYPES else 0.08
        box = _bounding_box(anatomy, center, 1.6 * radii, tissue.shape)
        level = _ellipsoid(z[box[0]], y[:, box[1]], x[:, :, box[2]], center, radii)
        level = level + bumpy * smooth_noise(level.shape, rng, 3)
        mask = np.zeros(tissue.shape, bool)
        mask[box] = (level < 1) & liver[box]
        if mask.sum() < 2:
            continue
        tissue[mask] = LESION_BASE + len(anatomy.lesions)
        depth[box][mask[box]] = np.clip(1 - level[mask[box]], 0, 1)
        anatomy.lesions.append(Lesion(kind, center, diameter))
    anatomy.lesion_depth = depth


def _bounding_box(anatomy: Anatomy, center, half_size, shape) -> tuple[slice, slice, slice]:
    """Index slices (z, y, x) of the world voxels within `half_size` mm of `center`."""
    out = []
    for axis in (2, 1, 0):
        lo = (center[axis] - half_size[axis] - anatomy.origin_mm[axis]) / anatomy.spacing_mm
        hi = (center[axis] + half_size[axis] - anatomy.origin_mm[axis]) / anatomy.spacing_mm
        out.append(slice(max(0, int(np.floor(lo))), min(shape[2 - axis], int(np.ceil(hi)) + 1)))
    return tuple(out)


def _nonzero_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Index slices of the box around `mask`'s voxels plus `margin`: distance maps need only that box."""
    found = np.nonzero(mask.any((1, 2)))[0], np.nonzero(mask.any((0, 2)))[0], np.nonzero(mask.any((0, 1)))[0]
    return tuple(slice(max(0, int(f[0]) - margin), int(f[-1]) + margin + 1) for f in found)
