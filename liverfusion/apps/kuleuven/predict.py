"""The KU Leuven liver and lesion models applied as their `cnn_liver_lesion_seg_CT_MR_main` applies them
(F = `cnn_liver_lesion_seg_CT_MR_functions.py` of pyliverlesionseg 0.3), on a SimpleITK image of any orientation.

Liver (F:1124-1227): resample to 1.5 mm, median 3, resample to 3 mm (pymirc `zoom3d`), scale intensities, one
patch at the image centre, probability > 0.5, erosion, largest component, dilation, back to the image grid.
Lesion (F:1260-1383): intensities scaled (MR: on the liver's median and range), resampled to 1 x 1 x 3 mm, masked
to the dilated liver, predicted in tiles. Three departures, each for a measured reason: their CT/MR body-crop
heuristics (which loop forever on some scans, F:500-503) give way to the body's in-plane bounding box (`body_box`),
and an image larger than the liver model's output is tiled instead of extrapolated; the liver patch is edge-padded
(`liver_mask`); an empty liver prediction stays empty (theirs then labels the whole background liver, F:906-911).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from ...constants import CHANNELS, CT_ROLES, ROLE_TO_CHANNEL
from ...models.interface import Prediction
from ...networks.kuleuven_unet import KULeuvenPair, KULeuvenUNet

CT, MR = "CT", "MR"
# iterate_structure(generate_binary_structure(3, 2), n): the structuring elements of F:893 and F:1332
_STRUCTURE = ndimage.generate_binary_structure(3, 2)
OnTile = Callable[[int, int], None]


def zoom_matrix(n: int, zoom: float) -> np.ndarray:
    """pymirc `zoom3d` along one axis as a matrix: linear interpolation on centred grids when enlarging,
    exact area averaging when shrinking, ceil(n * zoom) samples, zeros beyond the edges."""
    size = math.ceil(n * zoom)
    weights = np.zeros((size, n))
    if zoom >= 1:
        centres = (np.arange(size) - 0.5 * size + 0.5) / zoom + 0.5 * n - 0.5
        left, rows = np.floor(centres).astype(int), np.arange(size)
        for cols, w in ((left, left + 1 - centres), (left + 1, centres - left)):
            ok = (cols >= 0) & (cols < n)
            np.add.at(weights, (rows[ok], cols[ok]), w[ok])
        return weights
    for i in range(n):
        lo, hi = zoom * (i - 0.5 * n) + 0.5 * size, zoom * (i + 1 - 0.5 * n) + 0.5 * size
        first, last = math.floor(lo), math.ceil(hi) - 1
        if first == last:
            weights[first, i] += zoom
        else:
            weights[first, i] += math.ceil(lo) - lo
            weights[last, i] += hi - math.ceil(lo)
    return weights


def zoom3d(volume: np.ndarray, zoom) -> np.ndarray:
    """Resample a 3-D array by a zoom factor per axis (pymirc.image_operations.zoom3d, cval 0)."""
    out = np.asarray(volume, dtype=np.float64)
    for axis, factor in enumerate(zoom):
        if factor != 1:
            out = np.moveaxis(np.tensordot(zoom_matrix(out.shape[axis], factor), out, axes=([1], [axis])), 0, axis)
    return out


def extract_patch(image: np.ndarray, size: tuple[int, ...], centre: list[int], edge: bool = False) -> np.ndarray:
    """Their sampler (`ExtractSegment3D2.get_sample`): a patch of `size` whose voxel k is the image's
    centre - size // 2 + k; outside the image zeros (theirs) or, with `edge`, the nearest border voxel."""
    index = [c - s // 2 + np.arange(s) for n, s, c in zip(image.shape, size, centre)]
    patch = image[np.ix_(*[np.clip(i, 0, n - 1) for i, n in zip(index, image.shape)])].astype(np.float32)
    if not edge:
        x, y, z = ((i >= 0) & (i < n) for i, n in zip(index, image.shape))
        patch *= x[:, None, None] & y[None, :, None] & z[None, None, :]
    return patch


def tile_predict(
    image: np.ndarray, net: KULeuvenUNet, device, on_tile: OnTile | None = None, edge: bool = False
) -> np.ndarray:
    """Their `DeepVoxNet.predict`: one centred patch if the output covers the image, else tiles of the output
    size; voxels no output reached take the nearest prediction (F's `distance_transform_edt`)."""
    spec = net.spec
    net = net.to(memory_format=torch.channels_last_3d)  # 10-20% faster on a CPU; outputs equal to 1e-4
    tile = [min(n, o) for n, o in zip(image.shape, spec.output_size)]
    starts = [sorted(set(range(0, n, t)) | {n - t}) for n, t in zip(image.shape, tile)]
    out = np.full(image.shape, np.nan, dtype=np.float32)
    grid = [(x, y, z) for x in starts[0] for y in starts[1] for z in starts[2]]
    for k, start in enumerate(grid):
        centre = [math.ceil(s + (t - 1) / 2) for s, t in zip(start, tile)]
        src, dst = [], []
        for n, c, o, i in zip(image.shape, centre, spec.output_size, spec.input_size):
            first = (c if i % 2 else c - 0.5) - (o - 1) / 2  # image index of the output's first voxel
            under, over = math.ceil(max(0.0, -first)), math.ceil(max(0.0, first + o - n))
            dst.append(slice(round(first + under - 1e-7), round(first + o - over - 1e-7)))
            src.append(slice(under, o - over))
        with torch.no_grad():
            x = torch.from_numpy(extract_patch(image, spec.input_size, centre, edge))[None, None]
            x = x.to(device, memory_format=torch.channels_last_3d)
            y = net(x)[0, 0].float().cpu().numpy()
        out[tuple(dst)] = y[tuple(src)]
        if on_tile:
            on_tile(k + 1, len(grid))
    missing = np.isnan(out)
    if missing.any():
        nearest = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
        out = out[tuple(nearest)]
    return out


def to_ras(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(x, y, z) array in RAS order, as their code feeds the networks (F:1104-1110, 1189), and its spacing."""
    ras = sitk.DICOMOrient(image, "RAS")
    return sitk.GetArrayFromImage(ras).transpose(2, 1, 0).astype(np.float64), np.array(ras.GetSpacing())


def from_ras(array: np.ndarray, like: sitk.Image) -> sitk.Image:
    """An RAS-ordered (x, y, z) array back onto the grid of `like`."""
    ras_like = sitk.DICOMOrient(like, "RAS")
    out = sitk.GetImageFromArray(array.transpose(2, 1, 0).astype(np.float32))
    out.CopyInformation(ras_like)
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(like.GetDirection())
    out = sitk.DICOMOrient(out, code)
    out.CopyInformation(like)
    return out


def scale_for_liver(volume: np.ndarray, modality: str) -> np.ndarray:
    """F:1175-1186: CT [-200, 200] HU to [-0.5, 0.5]; MR [min, min + 80% of the range] to [-0.5, 0.5]."""
    if modality == CT:
        return np.clip(volume / 1000, -0.2, 0.2) * 2.5
    lo, hi = volume.min(), volume.min() + 0.8 * (volume.max() - volume.min())
    return (np.clip(volume, lo, hi) - lo) / max(hi - lo, 1e-6) - 0.5


def scale_for_lesion(volume: np.ndarray, liver: np.ndarray, modality: str) -> np.ndarray:
    """F:1298-1316: CT as for the liver; MR centred on the liver's median, its extremes at +-0.5."""
    if modality == CT:
        return scale_for_liver(volume, CT)
    values = volume[liver]
    median = np.median(values)
    spread = max(abs(values.min() - median), abs(values.max() - median), 1e-6)
    return (volume - median) * (0.5 / spread)


def largest_component(mask: np.ndarray) -> np.ndarray | None:
    """The largest 6-connected component of a mask (their `label` default); None for an empty mask."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    return labels == 1 + int(np.argmax(ndimage.sum_labels(mask, labels, range(1, count + 1))))


def body_box(volume: np.ndarray, modality: str) -> tuple[slice, slice, slice]:
    """The in-plane bounding box of the body (the largest component above their tissue thresholds: -150 HU,
    1% of the MR maximum; F:1127-1143), every slice kept: what their crop is for ("the whole abdomen in each
    slice"), without their heuristics that can loop forever."""
    body = largest_component(volume > (-150.0 if modality == CT else 0.01 * float(volume.max())))
    if body is None:
        return (slice(None),) * 3
    x, y, _ = ndimage.find_objects(body.astype(np.int32))[0]
    return x, y, slice(None)


def liver_mask(
    volume: np.ndarray, spacing: np.ndarray, modality: str, net: KULeuvenUNet, device, edge: bool = True
) -> np.ndarray:
    """The liver on the RAS array's own grid (F:1124-1227, with `body_box` for their crop).

    `edge`: the patch around a scan smaller than 489 x 408 x 408 mm continues the scan's border voxels instead
    of their zeros. Instance normalisation runs over the whole patch, so the padding's value shapes every feature;
    zero is a soft-tissue grey on CT (harmless) but a mid-grey between liver and fat on a T1 MR, and on a 20-slice
    MR their zero padding left no voxel above 0.5 (`Testing/benchmarks/bench_kuleuven.py` measures both). Edge
    padding is also what our own sliding windows use."""
    box = body_box(volume, modality)
    target = np.array(net.spec.spacing_mm)
    fine = ndimage.median_filter(zoom3d(volume[box], spacing / (target / 2)), size=3)
    coarse = scale_for_liver(zoom3d(fine, np.full(3, 0.5)), modality)
    probability = tile_predict(coarse.astype(np.float32), net, device, edge=edge)
    largest = largest_component(ndimage.binary_erosion(probability > 0.5, ndimage.iterate_structure(_STRUCTURE, 1)))
    out = np.zeros(volume.shape, bool)
    if largest is not None:
        mask = ndimage.binary_dilation(largest, ndimage.iterate_structure(_STRUCTURE, 1))
        zoom = [n / m for n, m in zip(volume[box].shape, mask.shape)]
        out[box] = ndimage.zoom(mask.astype(np.float32), zoom, order=1) > 0
    return out


def lesion_probability(
    volume: np.ndarray, spacing: np.ndarray, liver: np.ndarray, modality: str, net: KULeuvenUNet, device,
    on_tile: OnTile | None = None,
) -> np.ndarray:
    """Lesion probability on the RAS array's grid, zero away from the liver (F:1298-1383)."""
    zoom = spacing / np.array(net.spec.spacing_mm)
    image = zoom3d(scale_for_lesion(volume, liver, modality), zoom)
    near = zoom3d(liver.astype(np.float64), zoom) > 0.5
    mask = ndimage.binary_dilation(near, ndimage.iterate_structure(_STRUCTURE, 2))
    image = np.clip(np.where(mask, image, -0.5), -0.5, 0.5)
    probability = np.zeros(image.shape, np.float32)
    if mask.any():  # a liver of a voxel or two can vanish on the lesion grid
        box = ndimage.find_objects(mask.astype(np.int32))[0]
        probability[box] = tile_predict(image[box].astype(np.float32), net, device, on_tile)
    return ndimage.zoom(probability, [n / m for n, m in zip(volume.shape, probability.shape)], order=1)


def predict(
    image: sitk.Image, modality: str, pair: KULeuvenPair, device, on_tile: OnTile | None = None
) -> tuple[sitk.Image, sitk.Image]:
    """Liver mask (0/1) and lesion probability, both on `image`'s grid."""
    volume, spacing = to_ras(image)
    liver = liver_mask(volume, spacing, modality, pair.liver, device)
    lesion = np.zeros(volume.shape, np.float32)
    if liver.any():
        lesion = lesion_probability(volume, spacing, liver, modality, pair.lesion, device, on_tile) * liver
    return from_ras(liver.astype(np.float32), image), from_ras(lesion, image)


def modality_of(role: str) -> str:
    return CT if role in CT_ROLES else MR


def liver_only(image: sitk.Image, role: str, pair: KULeuvenPair, device) -> sitk.Image:
    """Their liver mask (uint8) on `image`'s grid, without running the lesion model."""
    volume, spacing = to_ras(image)
    mask = from_ras(liver_mask(volume, spacing, modality_of(role), pair.liver, device).astype(np.float32), image)
    return sitk.Cast(mask > 0.5, sitk.sitkUInt8)


def prediction(image: sitk.Image, role: str, pair: KULeuvenPair, device, on_tile: OnTile | None = None) -> Prediction:
    """Their two models as our network's output on `image`'s own grid: (background, liver, tumour) =
    (1 - L, L (1 - q), L q) for liver mask L and lesion probability q, so the argmax calls tumour where q > 0.5
    (q resampled to the image first; theirs thresholds on the lesion grid, then resamples the mask); no malignancy
    rating; the one input used gets all the fusion weight."""
    liver, lesion = (sitk.GetArrayFromImage(m) for m in predict(image, modality_of(role), pair, device, on_tile))
    probabilities = np.stack([1.0 - liver, liver * (1.0 - lesion), liver * lesion]).astype(np.float32)
    weights = np.zeros((len(CHANNELS), 1, 1, 1), np.float32)
    weights[CHANNELS.index(ROLE_TO_CHANNEL[role])] = 1.0
    return Prediction(probabilities, None, np.broadcast_to(weights, (len(CHANNELS),) + liver.shape))
