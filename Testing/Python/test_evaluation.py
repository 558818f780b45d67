"""Evaluation tables: lesion detection, case classification figures and their summary."""

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.evaluation.held_out import classification, detection, intervals, paired_difference, summarise
from liverfusion.inference.postprocess import find_lesions


def _labels(*boxes) -> sitk.Image:
    """A liver with lesions of 4 voxels of 1 mm cubed (0.064 ml, over the 0.05 ml of the smallest lesion)."""
    array = np.zeros((20, 40, 40), np.uint8)
    array[2:18, 2:38, 2:38] = 1
    for z, y, x in boxes:
        array[z : z + 4, y : y + 4, x : x + 4] = 2
    return sitk.GetImageFromArray(array)


def test_detection_counts_found_missed_and_false_lesions():
    truth = _labels((5, 5, 5), (5, 25, 25))
    pred = _labels((6, 6, 6), (12, 30, 5))  # the first lesion found (partly), the second missed, one false
    counts = detection(pred, truth)
    assert counts == {"lesions_true": 2, "lesions_found": 1, "lesions_pred": 2, "lesions_right": 1, **NONE_LARGE}


NONE_LARGE = {"lesions_true_large": 0, "lesions_found_large": 0}  # 4 mm cubes: 5.2 mm across, under 10 mm


def test_detection_counts_lesions_of_10_mm_and_more_apart():
    array = sitk.GetArrayFromImage(_labels((5, 5, 5), (12, 30, 30)))
    array[3:15, 20:32, 5:17] = 2  # 12 mm across: reported, and missed
    truth = sitk.GetImageFromArray(array)
    counts = detection(_labels((5, 5, 5)), truth)
    assert counts["lesions_true"] == 3 and counts["lesions_found"] == 1
    assert counts["lesions_true_large"] == 1 and counts["lesions_found_large"] == 0
    assert detection(truth, truth)["lesions_found_large"] == 1


def test_detection_ignores_true_specks_smaller_than_a_reported_lesion():
    array = sitk.GetArrayFromImage(_labels((5, 5, 5)))
    array[12:15, 30:33, 30:33] = 2  # 0.027 ml: a speck that post-processing would remove from any prediction
    counts = detection(_labels((5, 5, 5)), sitk.GetImageFromArray(array))
    assert counts["lesions_true"] == 1 and counts["lesions_found"] == 1


def test_detection_counts_lesions_joined_at_a_corner_once_as_the_post_processing_does():
    truth = _labels((5, 5, 5), (9, 9, 9))  # two cubes that meet at one corner voxel pair: one lesion
    counts = detection(_labels((5, 5, 5)), truth)
    assert counts["lesions_true"] == 1 and counts["lesions_found"] == 1
    assert len(find_lesions(truth, None)[0]) == 1


def test_classification_figures():
    rows = [{"probability": p, "malignant": m} for p, m in ((0.9, True), (0.6, False), (0.2, False), (0.4, True))]
    out = classification(rows)
    assert out["auc"] == 0.75 and out["accuracy"] == 0.5
    assert out["macro_f1"] == 0.5  # malignant: tp 1, 2 called, 2 true -> 0.5; benign likewise
    assert out["brier"] == pytest.approx((0.01 + 0.36 + 0.04 + 0.36) / 4)
    assert classification([{"probability": None, "malignant": True}])["auc"] is None


def _row(tumor_dice, present, found, true, probability=0.5, malignant=True, ml=(1.0, 1.0, 1.0)):
    """A case's row; `ml`: the tumour's true, predicted and shared volumes."""
    row = {f"{o}_{k}": 0.5 for o in ("liver", "tumor") for k in ("jaccard", "sensitivity", "precision")}
    row.update({f"liver_{k}": 1500.0 for k in ("true_ml", "pred_ml", "overlap_ml")})
    row.update(zip(("tumor_true_ml", "tumor_pred_ml", "tumor_overlap_ml"), ml))
    row.update({f"{o}_{k}": None for o in ("liver", "tumor") for k in ("specificity", "hd95_mm")})
    row.update(liver_dice=0.9, tumor_dice=tumor_dice, tumor_present=present, lesions_found=found)
    row.update(lesions_true=true, lesions_pred=found, lesions_right=found, probability=probability)
    return {**row, "malignant": malignant}


def test_summary_scores_tumour_over_cases_with_tumour_and_pools_lesions():
    s = summarise([_row(0.8, True, 2, 3, 0.9), _row(1.0, False, 0, 0, 0.1, False), _row(0.4, True, 1, 1)])
    assert s["cases"] == 3 and s["cases_with_tumor"] == 2
    assert abs(s["tumor_dice"] - 0.6) < 1e-9 and s["liver_dice"] == 0.9
    assert s["lesion_recall"] == 0.75 and s["lesion_precision"] == 1.0 and s["tumor_hd95_mm"] is None
    assert s["auc"] == 1.0


def test_global_dice_pools_the_volumes_of_every_case():
    big = _row(0.9, True, 1, 1, ml=(50.0, 50.0, 45.0))
    missed = _row(0.0, True, 0, 1, ml=(0.5, 0.0, 0.0))  # one small lesion missed: 0 per case, little globally
    false = _row(1.0, False, 0, 0, ml=(0.0, 2.0, 0.0))  # a false lesion in a tumour-free case counts globally
    s = summarise([big, missed, false])
    assert s["tumor_dice"] == pytest.approx(0.45)
    assert s["tumor_dice_global"] == pytest.approx(90.0 / 102.5) and s["liver_dice_global"] == 1.0
    assert summarise([_row(1.0, False, 0, 0, ml=(0.0, 0.0, 0.0))])["tumor_dice_global"] is None


def test_paired_difference_gives_the_gap_with_an_interval_from_the_cases():
    dice_b = np.linspace(0.3, 0.7, 12)
    b = [{**_row(d, True, 1, 1), "case": f"c{i}"} for i, d in enumerate(dice_b)]
    better = [{**r, "tumor_dice": r["tumor_dice"] + 0.1 + 0.02 * (i % 3)} for i, r in enumerate(b)]
    gap, low, high = paired_difference(better, b, "tumor_dice")
    assert abs(gap - 0.12) < 1e-9 and 0.1 <= low < gap < high <= 0.14  # paired: the spread of the gap, not of Dice
    assert paired_difference(b, b, "tumor_dice") == (0.0, 0.0, 0.0)
    assert paired_difference(b, b, "auc") is None  # every case malignant: no AUC
    with pytest.raises(ValueError):
        paired_difference(b, b[::-1], "tumor_dice")


def test_intervals_of_summary_figures_spread_with_the_cases():
    rows = [{**_row(d, True, 1, 1, malignant=i % 2 == 0), "case": f"c{i}"} for i, d in enumerate(np.linspace(0, 1, 9))]
    out = intervals(rows)
    low, high = out["tumor_dice_ci95"]
    assert 0.0 < low < 0.5 < high < 1.0  # the mean 0.5, and no resample of 9 cases reaches an extreme
    assert out["liver_dice_ci95"] == [0.9, 0.9] and out["lesion_recall_ci95"] == [1.0, 1.0]
    assert intervals([{**r, "malignant": True} for r in rows])["auc_ci95"] is None
