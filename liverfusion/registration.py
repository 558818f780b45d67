"""Multimodal alignment of a moving image onto a fixed (reference) image with SimpleITK.

Rigid first (Mattes mutual information, three resolutions), then optionally a coarse B-spline. The
deformable stage is accepted only when it improves the metric and does not fold (Jacobian determinant
stays positive); otherwise the rigid result is kept with a warning, never silent nonsense.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from .constants import CT_ROLES
from .errors import OverlapError

SAMPLING_SEED = 20261125
MODES = ("none", "rigid", "deformable")


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


def prepare(image: sitk.Image, role: str) -> sitk.Image:
    """Clamp CT to soft tissue so bone and air do not dominate the histogram; leave MRI as is."""
    if role in CT_ROLES:
        return sitk.Clamp(image, sitk.sitkFloat32, -200.0, 400.0)
    return sitk.Cast(image, sitk.sitkFloat32)


def _method(sampling: float, mask: sitk.Image | None) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, SAMPLING_SEED)
    reg.SetInterpolator(sitk.sitkLinear)
    if mask is not None:
        reg.SetMetricFixedMask(mask)
    return reg


def evaluate_metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform,
                    mask: sitk.Image | None = None) -> float:
    """Mattes MI (negative: lower is better) of the pair under `transform`."""
    reg = _method(0.2, mask)
    reg.SetInitialTransform(transform, inPlace=False)
    try:
        return float(reg.MetricEvaluate(fixed, moving))
    except RuntimeError as exc:
        raise OverlapError(f"images do not overlap after centring ({str(exc).splitlines()[-1][:80]})") from None


def rigid(fixed: sitk.Image, moving: sitk.Image, mask: sitk.Image | None = None) -> sitk.Transform:
    """Euler rigid transform by MI, initialised on the images' geometric centres."""
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = _method(0.05, mask)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=120,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(initial, inPlace=False)
    try:
        return reg.Execute(fixed, moving)
    except RuntimeError as exc:
        raise OverlapError(f"rigid alignment failed: {str(exc).splitlines()[-1][:100]}") from None


def bspline(fixed: sitk.Image, moving: sitk.Image, initial: sitk.Transform,
            mask: sitk.Image | None = None, mesh: int = 4) -> sitk.Transform:
    """A coarse B-spline on top of `initial`: a few control points per axis capture breathing, not noise."""
    grid = sitk.BSplineTransformInitializer(fixed, [mesh] * 3, order=3)
    reg = _method(0.03, mask)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=40,
                             maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=200)
    reg.SetShrinkFactorsPerLevel([4, 2])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0])
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
    field_ = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, coarse.GetSize(),
                                               coarse.GetOrigin(), coarse.GetSpacing(), coarse.GetDirection())
    det = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field_))
    return float(det.min()), float(det.max())


def register(fixed: sitk.Image, moving: sitk.Image, mode: str = "rigid", fixed_role: str = "ct",
             moving_role: str = "mri", mask: sitk.Image | None = None) -> Registration:
    """Align `moving` to `fixed`; `mode` is none, rigid or deformable."""
    start = time.perf_counter()
    f, m = prepare(fixed, fixed_role), prepare(moving, moving_role)
    identity = sitk.Euler3DTransform()
    before = evaluate_metric(f, m, identity, mask)
    if mode == "none":
        return Registration(identity, mode, before, before, time.perf_counter() - start)
    transform = rigid(f, m, mask)
    after = evaluate_metric(f, m, transform, mask)
    warnings: list[str] = []
    if after > before:
        warnings.append(f"{moving_role}: rigid alignment made the match worse (MI {before:.3f} -> {after:.3f}); "
                        "kept the images as they were")
        transform, after = identity, before
    result = Registration(transform, "rigid", before, after, 0.0, warnings=warnings)
    if mode == "deformable":
        result = _try_deformable(f, m, result, mask, moving_role)
    result.seconds = time.perf_counter() - start
    return result


def _try_deformable(f, m, rigid_result: Registration, mask, role: str) -> Registration:
    transform = bspline(f, m, rigid_result.transform, mask)
    after = evaluate_metric(f, m, transform, mask)
    jac = jacobian_range(transform, f)
    if jac[0] <= 0 or after > rigid_result.metric_after:
        reason = "it folds (Jacobian min %.2f)" % jac[0] if jac[0] <= 0 else "it did not improve the match"
        rigid_result.warnings.append(f"{role}: deformable alignment rejected because {reason}; kept rigid")
        return rigid_result
    return Registration(transform, "deformable", rigid_result.metric_before, after, 0.0, jac, rigid_result.warnings)


def resample_to(moving: sitk.Image, fixed: sitk.Image, transform: sitk.Transform, label: bool = False) -> sitk.Image:
    """The moving image on the fixed grid: linear for images, nearest neighbour for labels."""
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    default = 0.0 if label else float(np.min(sitk.GetArrayViewFromImage(moving)))
    return sitk.Resample(moving, fixed, transform, interpolator, default, moving.GetPixelID())
