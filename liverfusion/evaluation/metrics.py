"""Overlap and distance metrics for liver and tumour, as the LiTS and MSD challenges report them."""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..constants import LIVER, TUMOR


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice; 1.0 when both are empty (nothing to find, nothing found)."""
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(pred, truth).sum() / total)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> float | None:
    """95th percentile symmetric surface distance in mm; None when either mask is empty."""
    if not pred.any() or not truth.any():
        return None

    def surface(m):
        return m & ~ndimage.binary_erosion(m)

    dt_truth = ndimage.distance_transform_edt(~surface(truth), sampling=spacing)
    dt_pred = ndimage.distance_transform_edt(~surface(pred), sampling=spacing)
    d = np.concatenate([dt_truth[surface(pred)], dt_pred[surface(truth)]])
    return float(np.percentile(d, 95))


def overlap(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float | None]:
    """The ratios, and the true, predicted and shared volumes in ml: a radiologist reads tumour burden in ml, and
    volumes pooled over cases give LiTS's global Dice."""
    tp = float(np.logical_and(pred, truth).sum())
    fp, fn = float(pred.sum() - tp), float(truth.sum() - tp)
    tn = float(pred.size - tp - fp - fn)
    ml = float(np.prod(spacing)) / 1000.0

    def ratio(a, b):
        return None if b == 0 else round(a / b, 4)

    return {
        "dice": round(dice(pred, truth), 4),
        "jaccard": ratio(tp, tp + fp + fn) if tp + fp + fn else 1.0,
        "sensitivity": ratio(tp, tp + fn),
        "precision": ratio(tp, tp + fp),
        "specificity": ratio(tn, tn + fp),
        "hd95_mm": None if (h := hd95(pred, truth, spacing)) is None else round(h, 2),
        "true_ml": round((tp + fn) * ml, 4),
        "pred_ml": round((tp + fp) * ml, 4),
        "overlap_ml": round(tp * ml, 4),
    }


def on_grid_of(labels: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """`labels` itself when it lies on the reference's grid, else resampled onto it (nearest neighbour)."""
    if (
        labels.GetSize() == reference.GetSize()
        and labels.GetSpacing() == reference.GetSpacing()
        and labels.GetOrigin() == reference.GetOrigin()
        and labels.GetDirection() == reference.GetDirection()
    ):
        return labels
    return sitk.Resample(labels, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)


def extent(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest physical corner (mm) of the box holding the image's voxels."""
    corners = itertools.product(*[(-0.5, n - 0.5) for n in image.GetSize()])
    points = np.array([image.TransformContinuousIndexToPhysicalPoint(c) for c in corners])
    return points.min(0), points.max(0)


def apart_warnings(pred: sitk.Image, truth: sitk.Image, names: tuple[str, str]) -> list[str]:
    """A warning when the two images share no point in space: every score is then 0 (or 1) by construction, not
    by the prediction's quality (a prediction 3 m from its truth scored Dice 0 without a word)."""
    (p_lo, p_hi), (t_lo, t_hi) = extent(pred), extent(truth)
    gap = np.maximum(np.maximum(p_lo - t_hi, t_lo - p_hi), 0.0)
    if not gap.any():
        return []
    return [f"{names[0]}: does not overlap {names[1]} in space ({np.linalg.norm(gap):.0f} mm apart): check the files"]


def evaluate(pred: sitk.Image, truth: sitk.Image) -> dict[str, dict]:
    """Metrics for liver (liver + tumour) and tumour; `pred` is resampled onto `truth` if grids differ."""
    on_grid = on_grid_of(pred, truth)  # kept: a view of an image that is no longer referenced reads freed memory
    p, t = sitk.GetArrayViewFromImage(on_grid), sitk.GetArrayViewFromImage(truth)
    spacing = truth.GetSpacing()[::-1]
    return {"liver": overlap(p >= LIVER, t >= LIVER, spacing), "tumor": overlap(p == TUMOR, t == TUMOR, spacing)}


def auc(scores: list[float], labels: list[bool]) -> float | None:
    """Area under the ROC curve (Mann-Whitney); None without both classes."""
    s, y = np.asarray(scores, float), np.asarray(labels, bool)
    if y.all() or not y.any():
        return None
    ranks = np.argsort(np.argsort(s)) + 1.0
    for v in np.unique(s):  # average ranks of ties
        ranks[s == v] = ranks[s == v].mean()
    return float((ranks[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum()))
