import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.constants import BACKGROUND, LIVER, TUMOR
from liverfusion.inference.postprocess import (
    case_probability,
    clean_labels,
    cut_liver_notes,
    drop_lesions_outside_liver,
    find_lesions,
)


def _labels():
    arr = np.zeros((40, 60, 60), np.uint8)
    arr[5:35, 5:55, 5:55] = LIVER
    zz, yy, xx = np.ogrid[:40, :60, :60]
    arr[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 <= 36] = TUMOR  # radius 6 voxels
    arr[18:22, 40:44, 40:44] = TUMOR
    arr[0:2, 0:2, 58:60] = TUMOR  # an island outside the liver
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing((1.0, 1.0, 2.0))
    image.SetOrigin((10.0, -5.0, 3.0))
    return image


def test_tumor_outside_the_liver_is_removed():
    cleaned = sitk.GetArrayFromImage(clean_labels(_labels()))
    assert cleaned[0:2, 0:2, 58:60].max() == 0
    assert (cleaned == TUMOR).sum() > 0


def test_lesions_have_volume_diameter_centroid_and_probability():
    labels = clean_labels(_labels())
    logits = sitk.GetImageFromArray(np.full((40, 60, 60), 2.0, np.float32))
    logits.CopyInformation(labels)
    lesions, lesion_map = find_lesions(labels, logits)
    assert len(lesions) == 2
    big = lesions[0]
    assert big.volume_ml == pytest.approx(4 / 3 * np.pi * 6**3 * 2 / 1000, rel=0.1)
    assert big.max_diameter_mm == pytest.approx(24.0, abs=1.5)  # 12 voxels of 2 mm along z
    assert big.centroid_lps_mm == pytest.approx([30.0, 15.0, 43.0], abs=0.2)  # origin + index * spacing
    assert big.malignancy_probability == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert sitk.GetArrayViewFromImage(lesion_map).max() == 2


def test_case_probability_is_the_most_likely_malignant_lesion():
    """P(tumour) x P(malignant | tumour), highest over lesions: a hesitant speck rated malignant counts for less."""
    labels = clean_labels(_labels())
    logits_arr = np.zeros((40, 60, 60), np.float32)
    logits_arr[18:22, 40:44, 40:44] = 3.0
    logits = sitk.GetImageFromArray(logits_arr)
    logits.CopyInformation(labels)
    lesions, lesion_map = find_lesions(labels, logits)
    sure = np.ones(logits_arr.shape, np.float32)
    assert case_probability(lesions, lesion_map, sure, logits_arr) == pytest.approx(1 / (1 + np.exp(-3.0)))
    hesitant = np.where(sitk.GetArrayViewFromImage(lesion_map) == 2, 0.2, 1.0).astype(np.float32)
    speck, large_benign = 0.2 / (1 + np.exp(-3.0)), 0.5
    assert case_probability(lesions, lesion_map, hesitant, logits_arr) == pytest.approx(max(speck, large_benign))
    assert case_probability([], lesion_map, np.full(4, 0.2), np.full(4, 10.0)) == pytest.approx(0.2, abs=1e-3)
    assert case_probability(lesions, lesion_map, sure, None) is None


def test_a_liver_cut_by_the_edge_of_the_scan_is_named_with_the_edges_it_reaches():
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[2:8, 5:15, 5:15] = 1
    image = sitk.GetImageFromArray(labels)
    assert cut_liver_notes(image, 100.0) == []
    labels[0:8, 5:15, 0:15] = 1
    (note,) = cut_liver_notes(sitk.GetImageFromArray(labels), 1234.4)
    assert note.startswith("the liver reaches the first slice and the side of the slices of the reference image")
    assert "(1234 ml)" in note and "last slice" not in note


def test_a_lesion_mostly_outside_the_liver_is_dropped_and_one_inside_kept():
    """The network's "tumour" in a food-filled stomach or in the heart touches the liver but is mostly surrounded by
    other tissue; a lesion of the liver is mostly surrounded by liver, even at its edge."""
    array = np.zeros((40, 60, 60), np.uint8)
    array[5:35, 5:40, 5:55] = LIVER
    array[15:25, 15:25, 15:25] = TUMOR  # inside
    array[15:25, 20:30, 45:59] = TUMOR  # at the edge, most of it in the liver (an exophytic lesion)
    array[12:28, 40:56, 20:36] = TUMOR  # against the liver's surface, outside it (the stomach)
    labels = sitk.GetImageFromArray(array)
    labels.SetSpacing((1.5, 1.5, 3.0))
    out = sitk.GetArrayFromImage(drop_lesions_outside_liver(labels))
    assert (out[15:25, 15:25, 15:25] == TUMOR).all() and (out[15:25, 20:30, 45:55] == TUMOR).all()
    assert (out[12:28, 41:56, 20:36] == BACKGROUND).all()
    assert (out[array == LIVER] == LIVER).all()
