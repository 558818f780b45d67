import json

import numpy as np
import pytest
import torch

from liverfusion import model_store
from liverfusion.cli import main
from liverfusion.fusion_net import FusionNet
from liverfusion.malignancy_fit import L2_GRID, LesionSamples, fit, fit_logistic, log_loss, pooled, subsets
from liverfusion.train_cli import _initial_weights


def test_logistic_fit_works_on_raw_features_of_any_scale():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3)) * [1000.0, 0.01, 1.0] + [50.0, 0.0, -3.0]
    y = (x[:, 0] - 50.0 + 300 * rng.standard_normal(400) > 0).astype(np.float32)
    weights, bias = fit_logistic(x, y, 1e-3)
    assert ((x @ weights + bias > 0) == (y > 0)).mean() > 0.85
    assert log_loss(x, y, weights, bias) < 0.5 < log_loss(x, y, np.zeros(3), 0.0)


def test_levels_and_penalty_are_chosen_by_cross_validation_over_cases():
    rng = np.random.default_rng(1)
    y = (rng.random(150) < 0.5).astype(np.float32)
    x = rng.standard_normal((150, 40)).astype(np.float32)  # the first level is noise, the second holds the signal
    x[:, 10] += 2 * y
    found = fit(LesionSamples(x, y, np.arange(150) // 3), widths=[10, 30])
    assert found["levels"] == 2 and found["weights"].shape == (40,) and found["l2"] > min(L2_GRID)
    noise = fit(LesionSamples(x[:, :10], y, np.arange(150) // 3), widths=[10])
    assert noise["l2"] == max(L2_GRID)  # nothing to learn: the strongest penalty wins


def test_single_inputs_take_turns_over_cases():
    present = np.array([0, 1, 1, 0, 1], np.float32)
    alone = [subsets(present, True, k)[1] for k in range(4)]
    assert [int(np.flatnonzero(a)[0]) for a in alone] == [1, 2, 4, 1]
    assert len(subsets(present, False, 0)) == 1 and len(subsets(np.eye(5)[4], True, 0)) == 1


def test_lesions_are_pooled_from_truth_and_prediction_and_a_false_one_is_not_malignant():
    truth = np.zeros((20, 20, 20), np.uint8)
    truth[2:18, 2:18, 2:18] = 1
    truth[4:8, 4:8, 4:8] = 2
    labels = truth.copy()
    labels[12:15, 12:15, 12:15] = 2  # a false lesion
    features = np.stack([np.arange(20.0)[:, None, None] * np.ones((20, 20, 20))])
    rows, real = pooled(labels, features, truth)
    assert real == [True, True, False]
    assert [float(r[0]) for r in rows] == [5.5, 5.5, 13.0]


@pytest.mark.slow
def test_fit_malignancy_writes_a_bundle_with_the_same_segmentation(small_ctmri, small_multiphase, tmp_path, capsys):
    out = tmp_path / "refit"
    data = [str(small_ctmri.parent), str(small_multiphase.parent)]
    assert main(["fit-malignancy", "--data", *data, "--out", str(out), "--version", "9.1", "--device", "cpu"]) == 0
    assert "lesion log loss" in capsys.readouterr().out
    old, new = model_store.load("liverfusion_attention"), model_store.load(out)  # checksum verified
    meta = json.loads((out / "configs" / "metadata.json").read_text())
    assert meta["version"] == "9.1" and meta["malignancy_fit"]["cases"] == 2 and meta["malignancy_fit"]["lesions"] > 0
    assert new.config["network"]["malignancy_levels"] == meta["malignancy_fit"]["levels"]
    assert len(new.network.malignancy_deep) == meta["malignancy_fit"]["levels"] - 1
    assert "Malignancy read-out" in (out / "docs" / "README.md").read_text()
    x, present = torch.randn(1, 5, 64, 64, 64), torch.tensor([[0, 0, 1, 0, 1]], dtype=torch.float32)
    with torch.no_grad():
        a, b = old.network(x, present), new.network(x, present)
    assert torch.equal(a["seg"], b["seg"]) and not torch.allclose(a["malignancy"], b["malignancy"])


def test_fit_malignancy_without_case_json_is_a_one_line_error(small_ctmri, tmp_path, capsys):
    case = tmp_path / "cases" / "c"
    case.mkdir(parents=True)
    for f in small_ctmri.iterdir():
        if f.name != "case.json":
            (case / f.name).symlink_to(f)
    assert main(["fit-malignancy", "--data", str(case.parent), "--out", str(tmp_path / "o"), "--version", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no case folders with case.json" in err and "\n" not in err and not (tmp_path / "o").exists()


def test_a_refitted_bundle_starts_a_training_run_without_its_coarse_read_out(tmp_path):
    refitted = FusionNet(features=(4, 8, 16, 16), malignancy_levels=3)
    config = {"network": {"features": [4, 8, 16, 16], "malignancy_levels": 3}, "spacing_mm": [3.0] * 3}
    model_store.save(tmp_path / "refit", refitted, config, {"name": "refit", "version": "0"}, "card\n")
    FusionNet(features=(4, 8, 16, 16)).load_state_dict(_initial_weights(str(tmp_path / "refit")))  # strict
