"""The shared preprocessing: the air mask that keeps liver and tumour out of air."""

import numpy as np
import SimpleITK as sitk

from liverfusion.preprocessing import air_mask, canonical_grid


def _ct_with_body() -> sitk.Image:
    array = np.full((5, 40, 40), -1000, np.int16)
    array[:, 10:30, 10:30] = 60  # soft tissue
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 5.0))
    return image


def test_air_mask_marks_air_but_not_the_body_or_the_slices_past_the_last_one():
    image = _ct_with_body()
    grid = canonical_grid(image, (3.0, 3.0, 3.0))
    air = air_mask(image, grid, "ct")
    assert air[:, 0, 0].all()  # the corner is air on every slice
    centre = (slice(None), air.shape[1] // 2, air.shape[2] // 2)
    assert not air[centre].any()  # the body is not, including grid slices past the image's last slice centre


def test_air_mask_on_mri_uses_the_images_own_scale():
    array = np.zeros((5, 40, 40), np.float32)
    array[:, 10:30, 10:30] = 300.0
    image = sitk.GetImageFromArray(array)
    air = air_mask(image, canonical_grid(image, (3.0, 3.0, 3.0)), "mri")
    assert air[:, 0, 0].all() and not air[:, 6, 6].any()


def test_bounding_box_covers_the_mask_with_its_margin_and_at_least_the_window():
    from liverfusion.preprocessing import bounding_box

    mask = np.zeros((40, 100, 90), bool)
    mask[10:20, 30:70, 5:80] = True
    box = bounding_box(mask, (32, 32, 32), margin=2)
    assert mask[box].sum() == mask.sum()  # nothing of the body is cut
    assert [(s.start, s.stop) for s in box] == [(0, 32), (28, 72), (3, 82)]  # grown to 32, then the margin
    assert bounding_box(mask, (64, 128, 8)) == (slice(0, 40), slice(0, 100), slice(3, 82))  # at most the array
    assert bounding_box(np.zeros((5, 6, 7), bool), (8, 8, 8)) == (slice(0, 5), slice(0, 6), slice(0, 7))
