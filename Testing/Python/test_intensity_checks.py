"""Inputs whose intensities cannot be segmented, or say they are another kind of image."""

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.errors import InputError
from liverfusion.io.images import read_image
from liverfusion.io.intensity_checks import checked, checked_image


def _image(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing((1.5, 1.5, 3.0))
    image.SetOrigin((10.0, -4.0, 7.0))
    return image


def _body_ct(seed: int = 0) -> np.ndarray:
    """Air around a noisy soft-tissue block, as a CT in Hounsfield units."""
    array = np.full((20, 40, 40), -1000.0) + np.random.default_rng(seed).normal(0, 20, (20, 40, 40))
    array[4:16, 8:32, 8:32] += 1050.0
    return array


def test_a_scan_in_its_units_passes_unchanged_and_without_warnings():
    ct, mri = _image(_body_ct()), _image(np.abs(_body_ct(1)) / 3)
    images, warnings = checked({"ct": ct, "mri": mri}, {"ct": "ct.nii.gz", "mri": "t2.nii.gz"})
    assert warnings == []
    assert images["ct"] is ct and images["mri"] is mri


def test_non_finite_voxels_become_the_lowest_value_with_a_warning_naming_the_file():
    array = _body_ct()
    array[0, :5] = np.nan
    array[19, 0, 0] = np.inf
    image, warnings = checked_image(_image(array), "ct", "ct.nii.gz")
    out = sitk.GetArrayFromImage(image)
    assert np.isfinite(out).all()
    assert out[0, 0, 0] == out.min() == np.nanmin(array[np.isfinite(array)]).astype(np.float32)
    assert image.GetOrigin() == (10.0, -4.0, 7.0) and image.GetSpacing() == (1.5, 1.5, 3.0)
    assert len(warnings) == 1 and warnings[0].startswith("ct.nii.gz: ct: 201 voxel(s)") and "NaN" in warnings[0]


@pytest.mark.parametrize(
    "array, message",
    [
        (np.full((10, 12, 12), np.nan), "no voxel holds a number"),
        (np.full((10, 12, 12), 40.0), "no usable intensity range (every voxel is 40)"),
    ],
)
def test_an_image_with_nothing_to_segment_is_an_error_naming_the_file(array, message):
    with pytest.raises(InputError, match=r"^scan\.nrrd: ct: ") as caught:
        checked_image(_image(array), "ct", "scan.nrrd")
    assert message in str(caught.value)


def test_a_label_map_given_as_a_scan_is_an_error(real_data):
    mask = np.zeros((20, 40, 40))
    mask[5:15, 10:30, 10:30] = 1
    with pytest.raises(InputError, match=r"holds only 2 whole values \(0, 1\).*a label map"):
        checked_image(_image(mask), "ct", "mask.nii.gz")
    seg = real_data / "totalsegmentator_examples" / "example_seg.nii.gz"
    with pytest.raises(InputError, match=r"holds only 42 whole values .* a label map"):
        checked_image(read_image(seg), "mri", str(seg))


def test_an_8_bit_scan_is_not_taken_for_a_label_map():
    """Whole values from 0 to 255, but noisy: neighbours differ."""
    array = np.clip(np.round(_body_ct() / 8 + 128), 0, 255)
    image, warnings = checked_image(_image(array), "ct", "u8.nrrd")
    assert sitk.GetArrayViewFromImage(image).max() == array.max()
    assert len(warnings) == 1 and "not in Hounsfield units" in warnings[0] and "lowest 0" in warnings[0]


def test_a_smooth_scan_cut_to_64_grey_levels_is_not_taken_for_a_label_map(real_data):
    ct = sitk.Cast(read_image(real_data / "totalsegmentator_examples" / "example_ct.nii.gz"), sitk.sitkFloat32)
    smooth = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(ct, 6.0))
    levels = np.round(63 * (smooth - smooth.min()) / (smooth.max() - smooth.min()))
    _, warnings = checked_image(_image(levels), "ct", "smooth.nrrd")
    assert len(warnings) == 1 and "not in Hounsfield units" in warnings[0]


def test_a_ct_without_air_and_an_mri_with_air_in_hounsfield_units_are_flagged():
    _, ct = checked_image(_image(_body_ct() + 1024), "arterial", "art.nii.gz")
    assert len(ct) == 1 and ct[0].startswith("art.nii.gz: arterial: no voxel below -500")
    _, mri = checked_image(_image(_body_ct()), "mri", "t2.nii.gz")
    assert len(mri) == 1 and "is this image an MRI?" in mri[0]


@pytest.mark.parametrize(
    "path, role",
    [
        ("totalsegmentator_examples/example_ct.nii.gz", "ct"),
        ("totalsegmentator_examples/example_ct_dicom", "portal"),
        ("dcmqi_ct3slice_liver", "ct"),
        ("totalsegmentator_examples/example_mr_sm.nii.gz", "mri"),
    ],
)
def test_real_scans_pass_without_warnings(real_data, path, role):
    image = read_image(real_data / path)
    out, warnings = checked_image(image, role, path)
    assert warnings == [] and out is image
