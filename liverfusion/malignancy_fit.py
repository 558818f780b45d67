"""Fit the malignancy read-out of a trained network on its lesions (`liverfusion fit-malignancy`).

Training rates malignancy voxel by voxel, so that large lesions outweigh small ones and the finest decoder level
alone decides. The product rates a lesion by its mean logit, and that mean is linear in the lesion's mean features:
so the read-out can be refitted as a logistic regression on lesion-pooled features of every decoder level, with the
segmentation frozen. It takes minutes on a CPU where retraining the network needs a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer
from scipy import ndimage
from tqdm import tqdm

from .constants import BACKGROUND, TUMOR
from .dataset import load_case
from .errors import LiverFusionError

MARGIN_VOX = 24  # context around the liver that the windows see, as at inference
CONNECTIVITY = np.ones((3, 3, 3))  # lesions as the product counts them (postprocess.lesion_components)
MIN_VOXELS = 4


@dataclass
class LesionSamples:
    """One row per lesion and input subset: pooled features, malignant (0/1) and the case it came from."""

    features: np.ndarray
    malignant: np.ndarray
    case: np.ndarray

    def __len__(self) -> int:
        return len(self.malignant)


def subsets(present: np.ndarray, singles: bool, k: int) -> list[np.ndarray]:
    """Presence vectors to pool features under: all inputs, and with `singles` the case's input number k (in
    turn over cases) alone, so that the read-out also serves users with one image at half the cost of all."""
    out = [present]
    if singles and present.sum() > 1:
        alone = np.zeros_like(present)
        inputs = np.flatnonzero(present)
        alone[inputs[k % len(inputs)]] = 1
        out.append(alone)
    return out


def liver_box(label: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The liver's bounding box with MARGIN_VOX of context."""
    idx = np.argwhere(label > BACKGROUND)
    lo, hi = idx.min(0) - MARGIN_VOX, idx.max(0) + MARGIN_VOX + 1
    return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, shape))


@torch.no_grad()
def feature_maps(network, image: np.ndarray, present: np.ndarray, roi, device) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and the head's input features over `image`, by Gaussian-blended windows as at inference
    (blending is linear, so a lesion's mean feature still gives its mean logit)."""

    def windows(x: torch.Tensor) -> torch.Tensor:
        levels = network.decode(x, torch.from_numpy(present[None]).to(x.device).expand(x.shape[0], -1))
        return torch.cat([network.seg_head(levels[0]), network.malignancy_features(levels)], 1)

    inferer = SlidingWindowInferer(roi, 2, 0.25, mode="gaussian", padding_mode="replicate", sw_device=device)
    out = inferer(torch.from_numpy(image[None] * present[:, None, None, None]), windows)[0].float().numpy()
    return out[:3].argmax(0), out[3:]


def pooled(labels: np.ndarray, features: np.ndarray, truth: np.ndarray) -> tuple[list[np.ndarray], list[bool]]:
    """Mean features of every true lesion and every predicted one (inside the largest predicted organ); a
    predicted lesion counts as a true one when it touches true tumour, else as a false one (not malignant)."""
    organ, n = ndimage.label(labels > BACKGROUND)
    if n:
        labels = labels * (organ == 1 + int(np.argmax(np.bincount(organ.ravel())[1:])))
    rows, real = [], []
    for mask, is_truth in ((truth == TUMOR, True), (labels == TUMOR, False)):
        comp, k = ndimage.label(mask, CONNECTIVITY)
        for c in range(1, k + 1):
            m = comp == c
            if m.sum() >= MIN_VOXELS:
                rows.append(features[:, m].mean(1))
                real.append(is_truth or bool((truth[m] == TUMOR).any()))
    return rows, real


def lesion_samples(network, config: dict, case_dirs: list[Path], device, singles: bool) -> LesionSamples:
    """Pooled features of the lesions of `case_dirs` (phantom layout, with `case.json`), with progress;
    `config` is the bundle's inference config (model spacing and window)."""
    spacing, roi = tuple(config["spacing_mm"]), tuple(config["roi_size"])
    feats, malignant, cases = [], [], []
    for k, case_dir in enumerate(tqdm(case_dirs, desc="lesion features")):
        case = load_case(case_dir, spacing)
        box = liver_box(case["label"][0], case["label"].shape[1:])
        image, truth = case["image"][(slice(None), *box)], case["label"][0][box]
        for present in subsets(case["present"], singles, k):
            labels, features = feature_maps(network, image, present, roi, device)
            rows, real = pooled(labels, features, truth)
            feats += rows
            malignant += [float(case["malignant"]) * r for r in real]
            cases += [k] * len(rows)
    if len(set(malignant)) < 2:
        raise LiverFusionError(f"{case_dirs[0].parent}: fitting needs malignant and benign lesions, found one kind")
    return LesionSamples(np.array(feats, np.float32), np.array(malignant, np.float32), np.array(cases))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression on standardised features, returned on the raw features (weights, bias)."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = torch.from_numpy((x - mean) / std).double()
    t = torch.from_numpy(y).double()
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, t) + l2 * (w @ w) / 2
        value.backward()
        return value

    opt.step(loss)
    weights = w.detach().numpy() / std
    return weights, float(b.detach()) - float(weights @ mean)


def log_loss(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: float) -> float:
    p = 1.0 / (1.0 + np.exp(-np.clip(x @ weights + bias, -30, 30)))
    return float(-np.mean(y * np.log(p + 1e-9) + (1 - y) * np.log(1 - p + 1e-9)))


def cross_validated(samples: LesionSamples, l2: float, folds: int = 5) -> float:
    """Mean held-out log loss over folds of whole cases (a case's lesions never straddle train and test)."""
    fold = samples.case % folds
    losses = []
    for f in range(folds):
        test = fold == f
        if test.any() and (~test).any():
            w, b = fit_logistic(samples.features[~test], samples.malignant[~test], l2)
            losses.append(log_loss(samples.features[test], samples.malignant[test], w, b) * test.sum())
    return float(np.sum(losses) / len(samples))


L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)


def fit(samples: LesionSamples, widths: list[int]) -> dict:
    """The number of decoder levels read (their feature `widths`, finest first) and the penalty with the lowest
    cross-validated log loss, then the read-out fitted on every lesion."""
    scores = {}
    for levels in range(1, len(widths) + 1):
        subset = LesionSamples(samples.features[:, : sum(widths[:levels])], samples.malignant, samples.case)
        scores.update({(levels, l2): cross_validated(subset, l2) for l2 in L2_GRID})
    levels, l2 = min(scores, key=scores.get)
    weights, bias = fit_logistic(samples.features[:, : sum(widths[:levels])], samples.malignant, l2)
    return {"weights": weights, "bias": bias, "levels": levels, "l2": l2, "cv_log_loss": scores}


def current_readout(network) -> tuple[np.ndarray, float]:
    """The network's read-out as (weights over `malignancy_features`, bias): zeros for levels it does not read."""
    head = network.malignancy_head.conv.conv
    deep = [c.weight.detach().flatten() for c in network.malignancy_deep]
    width = sum(h.shape[0] for h in deep) + head.in_channels
    weights = np.zeros(width, np.float32)
    weights[: head.in_channels] = head.weight.detach().flatten().numpy()
    weights[head.in_channels :] = torch.cat(deep).numpy() if deep else []
    return weights, float(head.bias.detach())
