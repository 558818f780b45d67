import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.errors import InputError, OverlapError
from liverfusion.imageio import read_image
from liverfusion.metrics import dice
from liverfusion.registration import jacobian_range, register, resample_to


def _liver_dice(case, transform):
    fixed = read_image(case / "label_ct.nii.gz", label=True)
    moved = resample_to(read_image(case / "label_mri.nii.gz", label=True), fixed, transform, label=True)
    return dice(sitk.GetArrayFromImage(moved) >= 1, sitk.GetArrayFromImage(fixed) >= 1)


def test_rigid_alignment_recovers_the_liver(small_ctmri):
    ct, mri = read_image(small_ctmri / "ct.nii.gz"), read_image(small_ctmri / "mri.nii.gz")
    result = register(ct, mri, "rigid", "ct", "mri")
    before = _liver_dice(small_ctmri, sitk.Euler3DTransform())
    after = _liver_dice(small_ctmri, result.transform)
    assert result.metric_after < result.metric_before  # Mattes MI: lower is better
    assert after > 0.88 and after > before + 0.05, (before, after)


@pytest.mark.slow
def test_deformable_does_not_fold_and_is_not_worse_than_rigid(small_ctmri):
    ct, mri = read_image(small_ctmri / "ct.nii.gz"), read_image(small_ctmri / "mri.nii.gz")
    rigid = register(ct, mri, "rigid", "ct", "mri")
    deformable = register(ct, mri, "deformable", "ct", "mri")
    assert deformable.jacobian_range[0] > 0
    assert _liver_dice(small_ctmri, deformable.transform) >= _liver_dice(small_ctmri, rigid.transform) - 0.01
    assert deformable.mode in ("rigid", "deformable")  # a rejected deformable stage falls back, with a warning
    assert deformable.mode == "deformable" or deformable.warnings


def test_jacobian_of_a_rigid_transform_is_one():
    image = sitk.Image([20, 20, 20], sitk.sitkFloat32)
    t = sitk.Euler3DTransform((0, 0, 0), 0.1, 0.2, 0.0, (5, 0, 0))
    lo, hi = jacobian_range(t, image)
    # finite differences at the border of the coarse grid cost about 1%
    assert lo == pytest.approx(1.0, abs=0.02) and hi == pytest.approx(1.0, abs=0.02)


def test_images_that_do_not_overlap_are_an_error():
    a = sitk.GetImageFromArray(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    b = sitk.Image(a)
    b.SetOrigin((5000.0, 5000.0, 5000.0))
    with pytest.raises(OverlapError, match="overlap"):
        register(a, b, "rigid")


def test_a_constant_image_has_no_usable_intensity_range():
    a = sitk.GetImageFromArray(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    flat = sitk.Image(a.GetSize(), sitk.sitkFloat32) + 7.0
    with pytest.raises(InputError, match="no usable intensity range"):
        register(a, flat, "rigid", "ct", "mri")
