"""The pictures of `report.html`, at reading size: per lesion a crop of every input, and a whole-liver overview.

A radiologist reviews by looking, so each lesion gets a 90 mm field around it at 4 px/mm (a 1 cm lesion spans
40 px), one tile per input on the reference grid in that input's own window, thin outlines in colours that
colour-blind readers tell apart on grey (Okabe-Ito sky blue and orange), and a second row with the attention and
each input's fusion weight. Pictures are shown in patient axes whatever the image's direction: axial with anterior
up and the patient's right on the left, coronal with the head up. Pillow and NumPy only: the page must open on a
reading-room PC with nothing installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from ..constants import LIVER, ROLE_TO_CHANNEL, TUMOR
from ..inference.postprocess import MIN_LESION_ML, Lesion, lesion_components, lesion_means

TILE = 360  # px per side of a lesion tile
FIELD_MM = 90.0  # field of a lesion tile; at TILE px, 4 px/mm
FIELD_PER_DIAMETER = 1.5  # a lesion wider than 60 mm gets a field this many times its diameter
OVERVIEW_PX = 440  # width of each overview view
OVERVIEW_MARGIN_MM = 15.0  # around the liver's box
SCALE_BAR_MM = 10.0
SOFT_TISSUE_HU = (-160.0, 240.0)  # window 400, level 40: every CT phase alike
MRI_PERCENTILES = (1.0, 99.5)
LIVER_RGB, TUMOUR_RGB = (86, 180, 233), (230, 159, 0)  # Okabe-Ito sky blue and orange
# viridis at five stops: perceptually even and colour-blind safe, and unlike 'hot' it does not hide the orange outline
VIRIDIS = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], np.float32)
HEAT_ALPHA = 0.7  # opacity of the heat map at 1; it fades to nothing at 0, so the anatomy stays readable
FONT, NUMBER_FONT = ImageFont.load_default(size=15), ImageFont.load_default(size=20)


@dataclass(frozen=True)
class Frame:
    """The reference grid in patient axes: arrays viewed (no copy) as (z, y, x), each index growing towards the head,
    the back and the patient's left (LPS), whatever the grid's direction."""

    grid: sitk.Image
    index_axes: tuple[int, ...]  # the ITK index axis (i, j, k) nearest to z, y, x
    flips: tuple[bool, ...]

    @classmethod
    def of(cls, grid: sitk.Image) -> Frame:
        d = np.array(grid.GetDirection()).reshape(3, 3)
        axes = tuple(int(np.argmax(np.abs(d[lps]))) for lps in (2, 1, 0))
        return cls(grid, axes, tuple(bool(d[lps, a] < 0) for lps, a in zip((2, 1, 0), axes)))

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(self.grid.GetSpacing()[a] for a in self.index_axes)

    def view(self, image: sitk.Image) -> np.ndarray:
        """`image` (on the grid, kept alive by the caller) as a (z, y, x) view."""
        array = sitk.GetArrayViewFromImage(image).transpose([2 - a for a in self.index_axes])
        return array[tuple(slice(None, None, -1) if f else slice(None) for f in self.flips)]

    def point(self, lps: Sequence[float]) -> np.ndarray:
        """A physical point as continuous (z, y, x) voxels of the view."""
        return self.from_ijk(self.grid.TransformPhysicalPointToContinuousIndex([float(v) for v in lps]))

    def from_ijk(self, ijk: Sequence[float]) -> np.ndarray:
        """A continuous ITK index (i, j, k) as (z, y, x) voxels of the view."""
        size = self.grid.GetSize()
        return np.array([size[a] - 1 - ijk[a] if f else ijk[a] for a, f in zip(self.index_axes, self.flips)])


@dataclass(frozen=True)
class Field:
    """What one picture shows: an axial (axis 0, at z) or coronal (axis 1, at y; head up) plane of a view, a box of it
    around `centre` (rows, columns of the plane) reaching `half` voxels each way, at `size` (width, height) px."""

    axis: int
    at: int
    centre: tuple[float, float]
    half: tuple[float, float]
    size: tuple[int, int]

    def bounds(self) -> list[tuple[int, int]]:
        return [(int(round(c - h)), int(round(c + h)) + 1) for c, h in zip(self.centre, self.half)]

    def cut(self, volume: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """The field's box of `volume` in its own voxels, padded with `fill` beyond the image."""
        plane = volume[self.at] if self.axis == 0 else volume[:, self.at][::-1]
        (r0, r1), (c0, c1) = self.bounds()
        out = np.full((r1 - r0, c1 - c0), fill, np.float32)
        rows, cols = slice(max(r0, 0), min(r1, plane.shape[0])), slice(max(c0, 0), min(c1, plane.shape[1]))
        if rows.stop > rows.start and cols.stop > cols.start:
            out[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0] = plane[rows, cols]
        return out

    def scaled(self, box: np.ndarray) -> np.ndarray:
        """A box from `cut` at the field's size, linearly interpolated: images and 0/1 masks alike (a mask read at
        0.5 then gives a smooth outline, not voxel steps)."""
        return np.asarray(Image.fromarray(box.astype(np.float32), "F").resize(self.size, Image.Resampling.BILINEAR))

    def px_per_mm(self, spacing: tuple[float, ...]) -> float:
        """The scale along columns (x in both planes) given the view's (z, y, x) spacing; rows match it."""
        (_, _), (c0, c1) = self.bounds()
        return self.size[0] / ((c1 - c0) * spacing[2])

    def pixel(self, row: float, col: float) -> tuple[float, float]:
        """Where a voxel of the plane (rows, columns) lands in the picture, as (x, y) px."""
        (r0, r1), (c0, c1) = self.bounds()
        return (col - c0 + 0.5) * self.size[0] / (c1 - c0), (row - r0 + 0.5) * self.size[1] / (r1 - r0)


def window(image: sitk.Image, role: str) -> tuple[float, float]:
    """CT in the soft-tissue window; MRI between percentiles of the whole volume (a sparse sample: the same window
    in every tile of one input, and fast)."""
    if ROLE_TO_CHANNEL[role] != "mri":
        return SOFT_TISSUE_HU
    lo, hi = np.percentile(sitk.GetArrayViewFromImage(image)[::4, ::4, ::4], MRI_PERCENTILES)
    return float(lo), float(max(hi, lo + 1e-6))


def window_name(role: str, limits: tuple[float, float]) -> str:
    if ROLE_TO_CHANNEL[role] == "mri":
        return f"{MRI_PERCENTILES[0]:g}-{MRI_PERCENTILES[1]:g}th percentile"
    return f"W{limits[1] - limits[0]:.0f} L{(limits[0] + limits[1]) / 2:.0f}"


def _viridis_table(levels: int = 256) -> np.ndarray:
    x = np.linspace(0, len(VIRIDIS) - 1, levels)
    i = np.minimum(x.astype(int), len(VIRIDIS) - 2)
    return VIRIDIS[i] + (VIRIDIS[i + 1] - VIRIDIS[i]) * (x - i)[:, None]


HEAT_TABLE = _viridis_table()


def heat(t: np.ndarray) -> np.ndarray:
    """Viridis for t in [0, 1], float RGB, from a 256-entry table (interpolating per pixel took a tenth of the
    report's time)."""
    return HEAT_TABLE[(np.clip(t, 0, 1) * (len(HEAT_TABLE) - 1)).astype(np.uint8)]


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The mask's edge, `width` px wide at its inner side: thin, yet visible at reading size. The picture's border is
    no edge (the organ goes on beyond the crop). Shifted ANDs: four times faster than SciPy's erosion."""
    inner = mask.copy()
    for _ in range(width):
        core = inner.copy()
        core[1:] &= inner[:-1]
        core[:-1] &= inner[1:]
        core[:, 1:] &= inner[:, :-1]
        core[:, :-1] &= inner[:, 1:]
        inner = core
    return mask & ~inner


@dataclass(frozen=True)
class Layers:
    """The views one picture draws from: the image in its window, the labels, and optionally a heat map in [0, 1],
    blended in where high (attention: sparse) or `opaque` (a fusion weight: everywhere, so it would tint the whole
    image; the image is in the row above)."""

    image: np.ndarray
    limits: tuple[float, float]
    labels: np.ndarray
    heat: np.ndarray | None = None
    opaque: bool = False


def picture(field: Field, layers: Layers) -> Image.Image:
    """The image in its window, the heat map blended in where high, liver and tumour outlined."""
    lo, hi = layers.limits
    grey = np.clip((field.scaled(field.cut(layers.image, lo)) - lo) / (hi - lo), 0, 1) * 255
    rgb = np.repeat(grey[..., None], 3, -1)
    if layers.heat is not None:
        t = np.clip(field.scaled(field.cut(layers.heat)), 0, 1)
        rgb += (heat(t) - rgb) * (1.0 if layers.opaque else HEAT_ALPHA * t[..., None])
    labels = field.cut(layers.labels)
    for mask, colour in ((labels >= LIVER, LIVER_RGB), (labels == TUMOR, TUMOUR_RGB)):
        rgb[outline(field.scaled(mask) > 0.5)] = colour
    return Image.fromarray(rgb.astype(np.uint8))


def annotate(tile: Image.Image, field: Field, spacing: tuple[float, ...], text: str) -> Image.Image:
    """A label at the top left (so a saved tile says what it is) and a 10 mm scale bar at the bottom left."""
    px_per_mm = field.px_per_mm(spacing)
    draw = ImageDraw.Draw(tile)
    draw.rectangle(draw.textbbox((6, 4), text, font=FONT), fill=(0, 0, 0))
    draw.text((6, 4), text, fill=(255, 255, 255), font=FONT)
    y, end = tile.height - 12, 8 + SCALE_BAR_MM * px_per_mm
    draw.line([(8, y), (end, y)], fill=(255, 255, 255), width=3)
    draw.rectangle(draw.textbbox((end + 4, y - 9), f"{SCALE_BAR_MM:.0f} mm", font=FONT), fill=(0, 0, 0))
    draw.text((end + 4, y - 9), f"{SCALE_BAR_MM:.0f} mm", fill=(255, 255, 255), font=FONT)
    return tile


@dataclass(frozen=True)
class Spot:
    """Where a lesion is shown: its centre, in (z, y, x) voxels of the view, on the axial slice where it is widest;
    and the network's mean tumour probability in it (the weight of its vote in the case probability)."""

    lesion: Lesion
    centre: np.ndarray
    certainty: float


def spots(result, frame: Frame) -> list[Spot]:
    """Every lesion, largest first."""
    if not result.lesions:
        return []
    comp, start = lesion_map(result.labels)
    boxes = ndimage.find_objects(comp)
    ids = [les.id for les in result.lesions]
    box = tuple(slice(i, i + n) for i, n in zip(start[::-1], comp.shape))
    certainty = lesion_means(sitk.GetArrayViewFromImage(result.tumor_probability)[box], comp, ids)
    out = [
        Spot(les, widest_slice(comp, boxes, les, frame, start), float(p)) for les, p in zip(result.lesions, certainty)
    ]
    return sorted(out, key=lambda s: -s.lesion.volume_ml)


def lesion_map(labels: sitk.Image) -> tuple[np.ndarray, list[int]]:
    """Lesion k where its value is k, as `find_lesions` made it (the same function on the same tumour), in the
    tumour's box (k, j, i), and the box's start (i, j, k). Labelled in that box alone: a quarter of the time of the
    whole grid, and the components keep their order (by size, then raster order)."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels == TUMOR)
    bounds = stats.GetBoundingBox(1)
    box = sitk.RegionOfInterest(labels, bounds[3:], bounds[:3]) == TUMOR
    return sitk.GetArrayFromImage(lesion_components(box, MIN_LESION_ML)), list(bounds[:3])


def widest_slice(comp: np.ndarray, boxes: list, lesion: Lesion, frame: Frame, start: list[int]) -> np.ndarray:
    """The lesion's centre on its widest axial slice (the centroid's slice may miss a crescent), in (z, y, x) of
    the view; its centroid if the map lacks it."""
    box = boxes[lesion.id - 1] if lesion.id <= len(boxes) else None
    if box is None:
        return frame.point(lesion.centroid_lps_mm)
    inside = comp[box] == lesion.id
    axis = 2 - frame.index_axes[0]  # the array axis along z
    others = [a for a in range(3) if a != axis]
    widest = int(np.argmax(inside.sum(tuple(others))))
    kji = np.empty(3)
    kji[axis] = widest
    kji[others] = np.argwhere(np.take(inside, widest, axis)).mean(0)
    kji += [s.start for s in box]
    return frame.from_ijk(kji[::-1] + start)


def lesion_field(spot: Spot, frame: Frame, shape: tuple[int, ...]) -> Field:
    half_mm = max(FIELD_MM, FIELD_PER_DIAMETER * spot.lesion.max_diameter_mm) / 2
    _, sy, sx = frame.spacing
    z = int(np.clip(round(spot.centre[0]), 0, shape[0] - 1))
    return Field(0, z, (spot.centre[1], spot.centre[2]), (half_mm / sy, half_mm / sx), (TILE, TILE))


def liver_fields(labels: np.ndarray, frame: Frame) -> tuple[Field, Field]:
    """Axial and coronal fields through the slice and row with the most liver, framing the whole liver (the whole
    image when there is none)."""
    liver = labels >= LIVER
    nz, ny, nx = liver.shape
    if not liver.any():
        liver = np.ones_like(liver)
    spans = [np.flatnonzero(liver.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
    centre = [(s[0] + s[-1]) / 2 for s in spans]
    half = [(s[-1] - s[0]) / 2 + OVERVIEW_MARGIN_MM / mm for s, mm in zip(spans, frame.spacing)]
    z, y = int(np.argmax(liver.sum((1, 2)))), int(np.argmax(liver.sum((0, 2))))
    sz, sy, sx = frame.spacing
    axial_h = round(OVERVIEW_PX * half[1] * sy / (half[2] * sx))
    coronal_h = round(OVERVIEW_PX * half[0] * sz / (half[2] * sx))
    return (
        Field(0, z, (centre[1], centre[2]), (half[1], half[2]), (OVERVIEW_PX, axial_h)),
        Field(1, y, (nz - 1 - centre[0], centre[2]), (half[0], half[2]), (OVERVIEW_PX, coronal_h)),
    )


def numbered(tile: Image.Image, field: Field, found: list[Spot], frame: Frame, depth: int) -> Image.Image:
    """Every lesion marked on an overview: a circle of its longest diameter where it projects onto the plane, and
    its number as in the table."""
    draw = ImageDraw.Draw(tile)
    for spot in found:
        z, y, x = spot.centre
        cx, cy = field.pixel(y if field.axis == 0 else depth - 1 - z, x)
        r = max(spot.lesion.max_diameter_mm / 2 * field.px_per_mm(frame.spacing), 6.0)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=TUMOUR_RGB, width=2)
        label = str(spot.lesion.id)
        at = (cx + r * 0.7 + 2, cy - r * 0.7 - 20)
        left, top, right, bottom = draw.textbbox(at, label, font=NUMBER_FONT)
        draw.rectangle((left - 2, top - 2, right + 2, bottom + 2), fill=(0, 0, 0))
        draw.text(at, label, fill=(255, 255, 255), font=NUMBER_FONT)
    return tile


def colour_bar(width: int = 200, height: int = 14) -> Image.Image:
    """The heat map from 0 (left) to 1 (right), for the legend."""
    ramp = np.linspace(0, 1, width)[None].repeat(height, 0)
    return Image.fromarray(heat(ramp).astype(np.uint8))
