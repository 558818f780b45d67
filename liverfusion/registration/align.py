"""Multimodal alignment of a moving image onto a fixed (reference) image with SimpleITK.

Rigid first (Mattes mutual information, three resolutions), then optionally a coarse B-spline. The
deformable stage is accepted only when it improves the metric and does not fold (Jacobian determinant
stays positive); otherwise the rigid result is kept with a warning, never silent nonsense.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from ..constants import CT_ROLES
from ..errors import OverlapError, one_line
from ..io.intensity_checks import require_range
from ..preprocessing import as_field, covering_box

SAMPLING_SEED = 20261125
MODES = ("none", "rigid", "deformable")
RIGID_SAMPLES = 20_000
BSPLINE_SAMPLES = 20_000  # at 10 000 the sampling noise steers the B-spline: lesion errors double
BSPLINE_ITERATIONS = 15
SCORE_SAMPLES = 30_000


@dataclass
class Registration:
    """A moving->fixed transform (maps fixed points to moving points, as ITK resampling needs) and its quality."""

    transform: sitk.Transform
    mode: str
    metric_before: float
    metric_after: float
    seconds: float
    jacobian_range: tuple[float, float] = (1.0, 1.0)
    warnings: list[str] = field(default_factory=list)


WORKING_SPACING_MM = 2.0


def prepare(image: sitk.Image, role: str) -> sitk.Image:
    """A working copy for registration: CT clamped to soft tissue (so bone and air do not dominate the
    histogram), and voxels no finer than 2 mm, anti-aliased: a 512x512x120 CT aligns as fast as a small one,
    and 2 mm is finer than the 5 mm MRI slices that limit accuracy anyway."""
    image = (
        sitk.Clamp(image, sitk.sitkFloat32, -200.0, 400.0) if role in CT_ROLES else sitk.Cast(image, sitk.sitkFloat32)
    )
    spacing = [max(s, WORKING_SPACING_MM) for s in image.GetSpacing()]
    if spacing == list(image.GetSpacing()):
        return image
    return sitk.Resample(
        anti_aliased(image, spacing),
        [max(1, int(round(n * s / w))) for n, s, w in zip(image.GetSize(), image.GetSpacing(), spacing)],
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        spacing,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


def anti_aliased(image: sitk.Image, spacing: list[float]) -> sitk.Image:
    """`image` low-passed for sampling at `spacing`: whole voxels averaged first (a 0.75 mm CT in 2x2 bins),
    then a Gaussian along each axis that still needs one, for the rest. Smoothing a 512x512x200 phase at full
    resolution took 1.2 s; the bins leave a quarter of the voxels to smooth, and axes already coarse enough
    (5 mm slices) are not filtered."""
    factors = [max(1, int(w // s)) for w, s in zip(spacing, image.GetSpacing())]
    if any(f > 1 for f in factors):
        image = sitk.BinShrink(image, factors)
    for axis, (w, s) in enumerate(zip(spacing, image.GetSpacing())):
        if w > s:
            image = sitk.RecursiveGaussian(image, (w**2 - s**2) ** 0.5 / 2.355, direction=axis)
    return image


def _voxels(image: sitk.Image, mask: sitk.Image | None) -> float:
    return float(np.prod(image.GetSize()) if mask is None else np.count_nonzero(sitk.GetArrayViewFromImage(mask)))


def _method(
    fractions: list[float], mask: sitk.Image | None, gradient_images: bool = True
) -> sitk.ImageRegistrationMethod:
    """Mattes MI on random points. Without `gradient_images` ITK takes the gradient at the sample points instead of
    filtering it over both whole images at every level: enough for a value (`evaluate_metric`). In the liver
    region's stages it halved their time, but the B-spline then fell into one of two optima on tace2022, and in
    one run in five the fused network called 145 ml of stomach liver
    (docs/experiments/2026-12-07-registration-gradients.md)."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentagePerLevel(fractions, SAMPLING_SEED)
    reg.SetInterpolator(sitk.sitkLinear)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    if not gradient_images:
        reg.SetMetricUseFixedImageGradientFilter(False)
        reg.SetMetricUseMovingImageGradientFilter(False)
    return reg


def _sampling(voxels: float, shrinks: list[int], samples: int) -> list[float]:
    """Per-level sampling fractions that draw about `samples` points from the region (the mask, or the whole
    image): the cost of an iteration then does not grow with the matrix, so a 512x512x120 CT aligns in the
    time of a small one, and a liver mask gets as many points as the whole abdomen would."""
    return [min(1.0, samples * s**3 / max(voxels, 1.0)) for s in shrinks]


def evaluate_metric(
    fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, mask: sitk.Image | None = None
) -> float:
    """Mattes MI (negative: lower is better) of the pair under `transform`, on a fixed random set of points:
    every candidate is scored on the same points, so their scores compare. The value needs no gradient: without
    the gradient images (0.5 s of the 0.6 s on a 500 mm phase) it is the same."""
    reg = _method(_sampling(_voxels(fixed, mask), [1], SCORE_SAMPLES), mask, gradient_images=False)
    reg.SetInitialTransform(transform, inPlace=False)
    try:
        return float(reg.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:
        raise OverlapError(f"images do not overlap in space (ITK: {one_line(exc)})") from None


def rigid(
    fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None = None, initial: sitk.Transform | None = None
) -> sitk.Transform:
    """Euler rigid transform by MI, initialised on the images' geometric centres (or on `initial`)."""
    if initial is None:
        initial = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
        )
    levels = ([4, 2, 1], [2.0, 1.0, 0.0]) if mask is None else ([2, 1], [1.0, 0.0])
    reg = _method(_sampling(_voxels(fixed, mask), levels[0], RIGID_SAMPLES), mask)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0 if mask is None else 0.5,
        minStep=1e-3,
        numberOfIterations=120,
        relaxationFactor=0.6,
        gradientMagnitudeTolerance=1e-6,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(levels[0])
    reg.SetSmoothingSigmasPerLevel(levels[1])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(sitk.Euler3DTransform(initial), inPlace=False)
    try:
        result = reg.Execute(fixed, moving)  # with inPlace=False: a composite holding the optimised copy
    except RuntimeError as exc:
        raise OverlapError(f"rigid alignment failed (ITK: {one_line(exc)})") from None
    while isinstance(result.Downcast(), sitk.CompositeTransform):
        result = sitk.CompositeTransform(result).GetNthTransform(0)
    return sitk.Euler3DTransform(result.Downcast())


def bspline(
    fixed: sitk.Image,
    moving: sitk.Image,
    initial: sitk.Transform,
    mask: sitk.Image | None = None,
    domain: sitk.Image | None = None,
) -> sitk.Transform:
    """A coarse B-spline on top of `initial`: a few control points per axis capture breathing, not noise.

    The control grid spans `domain` (the whole fixed image) even when `fixed` is only the liver region:
    a grid over the region alone would end in a seam at its border (ITK leaves points outside the grid
    unmoved), which folds. Points far from the mask get no gradient and stay put.
    """
    # Whole abdomen: a coarser grid, coarse levels and sparse sampling, for the gross motion only (with the
    # liver's grid, MI of the whole body improves while the liver gets worse); a liver region: full resolution
    # and enough points to follow the organ.
    if mask is None:
        mesh, levels, fractions, iterations = 3, ([4, 2], [2.0, 1.0]), [0.03, 0.03], 40
    else:
        mesh, levels = 4, ([1], [1.0])
        fractions, iterations = _sampling(_voxels(fixed, mask), levels[0], BSPLINE_SAMPLES), BSPLINE_ITERATIONS
    grid = sitk.BSplineTransformInitializer(fixed if domain is None else domain, [mesh] * 3, order=3)
    reg = _method(fractions, mask)
    reg.SetOptimizerAsLBFGSB(
        gradientConvergenceTolerance=1e-5,
        numberOfIterations=iterations,
        maximumNumberOfCorrections=5,
        maximumNumberOfFunctionEvaluations=2 * iterations,
    )
    reg.SetShrinkFactorsPerLevel(levels[0])
    reg.SetSmoothingSigmasPerLevel(levels[1])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetMovingInitialTransform(initial)
    reg.SetInitialTransform(grid, inPlace=True)
    reg.Execute(fixed, moving)
    composite = sitk.CompositeTransform([initial, grid])
    composite.FlattenTransform()  # a nested composite cannot be written to .h5
    return composite


def jacobian_range(transform: sitk.Transform, reference: sitk.Image) -> tuple[float, float]:
    """Min and max Jacobian determinant of `transform` on a coarse copy of the reference grid."""
    coarse = sitk.Image([max(4, s // 4) for s in reference.GetSize()], sitk.sitkUInt8)
    coarse.SetSpacing([sp * s / max(4, s // 4) for sp, s in zip(reference.GetSpacing(), reference.GetSize())])
    coarse.SetOrigin(reference.GetOrigin())
    coarse.SetDirection(reference.GetDirection())
    field_ = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        coarse.GetSize(),
        coarse.GetOrigin(),
        coarse.GetSpacing(),
        coarse.GetDirection(),
    )
    det = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field_))
    return float(det.min()), float(det.max())


def register(
    fixed: sitk.Image,
    moving: sitk.Image,
    mode: str = "rigid",
    fixed_role: str = "ct",
    moving_role: str = "mri",
    focus: sitk.Image | None = None,
) -> Registration:
    """Align `moving` to `fixed`; `mode` is none, rigid or deformable.

    `focus` (a mask on the fixed image, e.g. the dilated liver) adds a rigid refinement and a B-spline
    restricted to it: the liver moves with breathing independently of the spine, so a global fit is a
    compromise. Every candidate is scored by MI inside the focus (on the same points), and the best one
    that does not fold is kept; a rejected deformable stage leaves a warning.
    """
    start = time.perf_counter()
    for image, role in ((fixed, fixed_role), (moving, moving_role)):
        require_range(image, role)
    f, m = prepare(fixed, fixed_role), prepare(moving, moving_role)
    region, mask = f, None
    if focus is not None:
        mask = sitk.Cast(sitk.Resample(focus, f, sitk.Transform(), sitk.sitkNearestNeighbor), sitk.sitkUInt8)
        if not sitk.GetArrayViewFromImage(mask).any():
            raise OverlapError("the focus mask has no voxel inside the fixed image")
        region, mask = crop_to_mask([f, mask], mask)
    identity = sitk.Euler3DTransform()
    if mode == "none":
        before = evaluate_metric(region, m, identity, mask)
        return Registration(identity, mode, before, before, time.perf_counter() - start)
    candidates = {"identity": identity, "rigid": rigid(f, m)}
    if mask is not None:
        m = moving_part(m, region, candidates.values())
        candidates["liver rigid"] = rigid(region, m, mask, candidates["rigid"])
    scores = {name: evaluate_metric(region, m, t, mask) for name, t in candidates.items()}
    before, best = scores["identity"], min(scores, key=scores.get)
    warnings = (
        []
        if best != "identity"
        else [f"{moving_role}: rigid alignment made the match worse; kept the images as they were"]
    )
    result = Registration(
        candidates[best], "rigid" if best != "identity" else "none", before, scores[best], 0.0, warnings=warnings
    )
    if mode == "deformable":
        result = _try_deformable(region, m, result, mask, moving_role, f)
    result.seconds = time.perf_counter() - start
    return result


def crop_to_mask(images: list[sitk.Image], mask: sitk.Image, margin: int = 3) -> list[sitk.Image]:
    """`images` cut to the mask's bounding box (all on the mask's grid): the metric, its gradients and its
    sampler then cost what the liver region costs, not what the whole abdomen does."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    if not stats.GetLabels():
        return images
    box = stats.GetBoundingBox(stats.GetLabels()[0])
    lower = [max(0, i - margin) for i in box[:3]]
    upper = [min(n, i + s + margin) for i, s, n in zip(box[:3], box[3:], mask.GetSize())]
    return [sitk.RegionOfInterest(image, [u - lo for lo, u in zip(lower, upper)], lower) for image in images]


MOVING_MARGIN_MM = 40.0


def moving_part(moving: sitk.Image, region: sitk.Image, transforms, margin_mm: float = MOVING_MARGIN_MM) -> sitk.Image:
    """The box of `moving` that the fixed `region` maps into under any of `transforms`, with a margin for the
    refinements still to come; `moving` itself when that box would change the metric (MI bins the moving image
    between its minimum and maximum, so the box must hold both). Each evaluation of the metric, and each level
    of a registration, filters the whole moving image first: on a 500 mm chest-abdomen-pelvis phase that took
    a second each, for a liver region a third of its length."""
    size = region.GetSize()
    corners = [
        region.TransformContinuousIndexToPhysicalPoint([float(c) for c in corner])
        for corner in itertools.product(*[(-0.5, n - 0.5) for n in size])
    ]
    mapped = [t.TransformPoint(p) for t in transforms for p in corners]
    lower, upper = covering_box(mapped, moving, np.array([margin_mm / s for s in moving.GetSpacing()]))
    if np.any(upper <= lower) or np.array_equal(upper - lower, moving.GetSize()):
        return moving
    part = sitk.RegionOfInterest(moving, (upper - lower).tolist(), lower.tolist())
    whole, box = sitk.MinimumMaximumImageFilter(), sitk.MinimumMaximumImageFilter()
    whole.Execute(moving)
    box.Execute(part)
    same_range = (whole.GetMinimum(), whole.GetMaximum()) == (box.GetMinimum(), box.GetMaximum())
    return part if same_range else moving


def _try_deformable(f, m, rigid_result: Registration, mask, role: str, domain: sitk.Image) -> Registration:
    transform = bspline(f, m, rigid_result.transform, mask, domain)
    after = evaluate_metric(f, m, transform, mask)
    jac = jacobian_range(transform, domain)
    if jac[0] <= 0 or after > rigid_result.metric_after:
        reason = f"it folds (Jacobian min {jac[0]:.2f})" if jac[0] <= 0 else "it did not improve the match"
        rigid_result.warnings.append(f"{role}: deformable alignment rejected because {reason}; kept rigid")
        return rigid_result
    return Registration(transform, "deformable", rigid_result.metric_before, after, 0.0, jac, rigid_result.warnings)


def resample_to(moving: sitk.Image, fixed: sitk.Image, transform: sitk.Transform, label: bool = False) -> sitk.Image:
    """The moving image on the fixed grid: linear for images, nearest neighbour for labels."""
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    default = 0.0 if label else float(np.min(sitk.GetArrayViewFromImage(moving)))
    return sitk.Resample(moving, fixed, as_field(transform, fixed), interpolator, default, moving.GetPixelID())
