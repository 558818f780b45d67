import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.evaluation.metrics import auc, dice, evaluate, hd95, overlap


def test_dice_of_known_overlap():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[:5] = True
    b[:4] = True
    assert dice(a, b) == pytest.approx(2 * 400 / 900)
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_hd95_of_a_shifted_slab_is_the_shift_in_mm():
    a = np.zeros((30, 30, 30), bool)
    a[10:20, 5:25, 5:25] = True
    b = np.roll(a, 3, axis=0)
    assert hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0, abs=0.01)


def test_auc_counts_ranked_pairs():
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    assert auc([0.1, 0.2], [True, True]) is None


def test_evaluate_reports_every_metric_for_liver_and_tumor():
    arr = np.zeros((20, 20, 20), np.uint8)
    arr[5:15, 5:15, 5:15] = 1
    arr[8:11, 8:11, 8:11] = 2
    truth = sitk.GetImageFromArray(arr)
    result = evaluate(truth, truth)
    for organ in ("liver", "tumor"):
        ratios = {"dice", "jaccard", "sensitivity", "precision", "specificity", "hd95_mm"}
        assert set(result[organ]) == ratios | {"true_ml", "pred_ml", "overlap_ml"}
        assert result[organ]["dice"] == 1.0 and result[organ]["hd95_mm"] == 0.0
    assert result["liver"]["true_ml"] == 1.0 and result["tumor"]["overlap_ml"] == 0.027  # 1000 and 27 voxels of 1 mm


def test_volumes_are_in_ml_on_the_truth_spacing():
    truth = np.zeros((10, 10, 10), bool)
    pred = np.zeros_like(truth)
    truth[:5], pred[3:] = True, True  # 500 and 700 voxels sharing 200, each 2 x 1 x 1.5 mm = 0.003 ml
    volumes = overlap(pred, truth, (2.0, 1.0, 1.5))
    assert (volumes["true_ml"], volumes["pred_ml"], volumes["overlap_ml"]) == pytest.approx((1.5, 2.1, 0.6))


def test_evaluate_a_prediction_on_a_finer_grid_than_the_truth():
    """The prediction is resampled onto the truth's grid; that resampled image must outlive the arrays read from it
    (a NumPy view of a temporary SimpleITK image reads freed memory: tumour Dice 0.0 here before the fix)."""
    a = np.zeros((80, 100, 100), np.uint8)
    a[10:70, 20:80, 20:80], a[30:50, 40:60, 40:60] = 1, 2
    truth = sitk.GetImageFromArray(a)
    fine = sitk.Resample(
        truth, [200, 200, 160], sitk.Transform(), sitk.sitkNearestNeighbor, (0, 0, 0), (0.5,) * 3, truth.GetDirection()
    )
    scores = evaluate(fine, truth)
    assert scores["liver"]["dice"] == 1.0 and scores["tumor"]["dice"] == 1.0
