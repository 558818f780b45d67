"""From network outputs on the reference grid to a clean label map and a lesion list.

Tumour is kept only inside the liver (Diff4MMLiTS): a "lesion" mostly surrounded by other tissue is dropped, and so
are stray islands outside the largest liver; lesions are the connected components of what remains, each with its own
malignancy probability pooled from the voxel-wise malignancy logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist
from scipy.special import expit

from ..constants import BACKGROUND, LIVER, MM3_PER_ML, TUMOR

MIN_LESION_ML = 0.05  # about 4 voxels of 2.5 mm: smaller islands are noise, not lesions
# A lesion grows in the liver, so liver surrounds most of it: of the 3 mm shell around each true lesion of the real
# labelled CTs, 64-100% is liver (0.70-1.00 on the phantoms); the "lesions" 0.3.1 and the first real-trained folds
# found in a food-filled stomach, in the heart and beside the spleen had 33-39%.
SHELL_MM, MIN_LIVER_AROUND = 3.0, 0.5


@dataclass
class Lesion:
    id: int
    volume_ml: float
    max_diameter_mm: float
    centroid_lps_mm: list[float]
    malignancy_probability: float | None  # None: the model does not rate malignancy

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "volume_ml": round(self.volume_ml, 3),
            "max_diameter_mm": round(self.max_diameter_mm, 1),
            "centroid_lps_mm": [round(v, 1) for v in self.centroid_lps_mm],
            "malignancy_probability": rounded(self.malignancy_probability),
        }


def rounded(probability: float | None) -> float | None:
    return None if probability is None else round(probability, 4)


def shown(probability: float | None) -> str:
    """A probability as people read it; `not rated` for models without a malignancy head."""
    return "not rated" if probability is None else f"{probability:.2f}"


def clean_labels(labels: sitk.Image) -> sitk.Image:
    """Keep the largest liver (liver + tumour) component; tumour outside it becomes background."""
    organ = sitk.ConnectedComponent(labels > BACKGROUND, True)
    largest = sitk.RelabelComponent(organ, sortByObjectSize=True) == 1
    return sitk.Cast(labels * sitk.Cast(largest, labels.GetPixelID()), sitk.sitkUInt8)


def drop_lesions_outside_liver(labels: sitk.Image) -> sitk.Image:
    """Tumour components less than `MIN_LIVER_AROUND` surrounded by liver become background: the network's tumour
    in a stomach full of food or in the heart touches the liver, so it survives `clean_labels`, and a radiologist
    would read it as a lesion of the liver. Each lesion's shell is measured in its own box (a whole 512^2 grid
    dilated at once took 17-25 s)."""
    components = lesion_components(labels == TUMOR)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    comp, arr = sitk.GetArrayViewFromImage(components), sitk.GetArrayFromImage(labels)
    ball = _ball(labels.GetSpacing(), SHELL_MM)
    reach = np.array(ball.shape) // 2
    for k in stats.GetLabels():
        x, y, z, sx, sy, sz = stats.GetBoundingBox(k)
        lo = np.maximum(np.array([z, y, x]) - reach, 0)
        hi = np.minimum(np.array([z + sz, y + sy, x + sx]) + reach, arr.shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        lesion = comp[box] == k
        shell = ndimage.binary_dilation(lesion, ball) & ~lesion
        if np.mean(arr[box][shell] == LIVER) < MIN_LIVER_AROUND:
            arr[box][lesion] = BACKGROUND
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(labels)
    return out


def _ball(spacing: tuple[float, ...], radius_mm: float) -> np.ndarray:
    """A [z, y, x] ball of `radius_mm` in voxels of `spacing` (at least one voxel each way)."""
    reach = [max(1, round(radius_mm / s)) for s in spacing[::-1]]
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in reach)]
    return sum((g / max(r, 1e-6)) ** 2 for g, r in zip(grid, reach)) <= 1.0


def voxel_ml(image: sitk.Image) -> float:
    return float(np.prod(image.GetSpacing())) / MM3_PER_ML


def lesion_components(tumour: sitk.Image, min_ml: float = 0.0) -> sitk.Image:
    """Lesions as the product counts them, largest first: components of a tumour mask connected through faces,
    edges or corners (one lesion, not two, where it narrows to a diagonal step), none under `min_ml`. The
    evaluation counts the truth with this same function so that a recall figure never turns on a difference of
    connectivity or of size threshold."""
    smallest = int(np.ceil(min_ml / voxel_ml(tumour)))
    return sitk.RelabelComponent(sitk.ConnectedComponent(tumour, True), smallest, True)


def sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    """In the input's precision: a float64 copy of a float32 map of a whole-body CT took gigabytes."""
    return expit(x)


def find_lesions(labels: sitk.Image, malignancy_logits: sitk.Image | None) -> tuple[list[Lesion], sitk.Image]:
    """Connected tumour components with volume, maximum diameter, LPS centroid and pooled probability
    (None without logits: a model that does not rate malignancy).

    Returns the lesions and a component image whose value k is lesion k (0 elsewhere).
    """
    components = lesion_components(labels == TUMOR, MIN_LESION_ML)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    comp = sitk.GetArrayViewFromImage(components)
    n = int(comp.max())
    rated = malignancy_logits is not None and n
    ids = np.arange(1, n + 1)
    mean_logit = lesion_means(sitk.GetArrayViewFromImage(malignancy_logits), comp, ids) if rated else []
    lesions = [
        Lesion(
            label,
            stats.GetPhysicalSize(label) / MM3_PER_ML,
            max_diameter_mm(components, label, stats),
            list(stats.GetCentroid(label)),
            float(sigmoid(mean_logit[label - 1])) if rated else None,
        )
        for label in stats.GetLabels()
    ]
    return lesions, sitk.Cast(components, sitk.sitkUInt16)


def lesion_means(values: np.ndarray, lesion_map: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """The mean of `values` over each lesion, read only at lesion voxels: SciPy over the whole map makes float64
    copies of both arrays, gigabytes on a whole-body CT."""
    inside = lesion_map > 0
    return ndimage.mean(values[inside], lesion_map[inside], ids)


def max_diameter_mm(components: sitk.Image, label: int, stats: sitk.LabelShapeStatisticsImageFilter) -> float:
    """Largest distance between two voxel centres of a lesion, through its convex hull (fast for any size)."""
    x0, y0, z0, sx, sy, sz = stats.GetBoundingBox(label)
    box = sitk.GetArrayViewFromImage(components)[z0 : z0 + sz, y0 : y0 + sy, x0 : x0 + sx] == label
    idx = np.argwhere(box)[:, ::-1] + np.array([x0, y0, z0])
    direction = np.array(components.GetDirection()).reshape(3, 3)
    points = idx * np.array(components.GetSpacing()) @ direction.T
    if len(points) > 4:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # flat lesions (one slice): every point is on the hull
            pass
    return float(pdist(points).max()) if len(points) > 1 else float(min(components.GetSpacing()))


def drop_small_lesions(labels: sitk.Image, lesion_map: sitk.Image) -> sitk.Image:
    """Tumour voxels of islands too small to be lesions become liver."""
    arr = sitk.GetArrayFromImage(labels)
    arr[(arr == TUMOR) & (sitk.GetArrayViewFromImage(lesion_map) == 0)] = LIVER
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(labels)
    return out


def case_probability(
    lesions: list[Lesion], lesion_map: sitk.Image, tumor_prob: np.ndarray, logits: np.ndarray | None
) -> float | None:
    """The probability that the liver holds a malignant lesion: the highest, over lesions, of P(tumour) x
    P(malignant | tumour), the lesion's mean tumour probability times its malignancy probability.

    Why the product: a speck the network barely called tumour gets as extreme a malignancy rating as a lesion
    it is sure of, and rated benign cases malignant by itself (held-out phantoms,
    docs/experiments/2026-12-07-case-probability-rule.md). Without lesions, the same product voxel by voxel, which
    stays below 0.5 wherever the network did not call a tumour. `lesion_map` (lesion k where its value is k) and
    `tumor_prob` share one grid. None without logits.
    """
    if logits is None:
        return None
    if lesions:
        sure = lesion_means(tumor_prob, sitk.GetArrayViewFromImage(lesion_map), [les.id for les in lesions])
        return float(max(p * les.malignancy_probability for p, les in zip(sure, lesions)))
    return float((tumor_prob * sigmoid(logits)).max()) if tumor_prob.size else 0.0


def liver_volume_ml(labels: sitk.Image) -> float:
    return float((sitk.GetArrayViewFromImage(labels) > BACKGROUND).sum() * voxel_ml(labels))


def cut_liver_notes(labels: sitk.Image, liver_ml: float) -> list[str]:
    """A warning when the liver reaches the edge of the reference image: it goes on outside the scan (a short MRI
    slab, a CT that stops at the dome), so its volume and any lesion there are measured in part only."""
    array = sitk.GetArrayViewFromImage(labels)  # z, y, x; `labels` stays alive while the view is read
    touched = {
        "first slice": array[0].any(),
        "last slice": array[-1].any(),
        "side of the slices": array[:, [0, -1]].any() or array[:, :, [0, -1]].any(),
    }
    edges = [name for name, hit in touched.items() if hit]
    if not edges:
        return []
    return [
        f"the liver reaches the {' and the '.join(edges)} of the reference image: it goes on outside the scan, "
        f"so its volume ({liver_ml:.0f} ml) and any lesion at that edge are measured in part only"
    ]
