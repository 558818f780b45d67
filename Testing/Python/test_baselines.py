"""MONAI baselines of issue 5's benchmark: same interface as the fusion network, trainable, saved and loaded as
verified bundles."""

from pathlib import Path

import pytest
import SimpleITK as sitk
import torch

from liverfusion.cli import parser
from liverfusion.evaluation.held_out import case_images, truth_of
from liverfusion.evaluation.metrics import dice
from liverfusion.inference import pipeline
from liverfusion.models import store as model_store
from liverfusion.models.grid import BaselineModel
from liverfusion.networks.baselines import KINDS, BaselineNet
from liverfusion.training.card import bundle_config
from liverfusion.training.trainer import Losses, TrainConfig, initial_network

BENCHMARK_MODELS = Path(__file__).parents[1] / "benchmarks" / "models"


@pytest.mark.parametrize("kind", KINDS)
def test_baseline_takes_any_subset_and_learns_one_step(kind):
    cfg = TrainConfig(architecture=kind)
    net = initial_network(cfg)
    assert isinstance(net, BaselineNet) and 1e6 < sum(p.numel() for p in net.parameters()) < 2e6
    x = torch.randn(2, 5, 32, 32, 32)
    present = torch.tensor([[1.0, 0, 0, 0, 1]] * 2)
    label = torch.zeros(2, 1, 32, 32, 32)
    label[:, :, 8:24, 8:24, 8:24], label[:, :, 14:18, 14:18, 14:18] = 1, 2
    out = net(x, present)
    assert out["seg"].shape == (2, 3, 32, 32, 32) and out["malignancy"].shape == (2, 1, 32, 32, 32)
    assert torch.allclose(out["fusion"][:, [0, 4]], torch.tensor(0.5)) and (out["fusion"][:, 1:4] == 0).all()
    # a missing input is ignored even if its channel holds values
    x2 = x.clone()
    x2[:, 2] = 100.0
    assert torch.allclose(net(x2, present)["seg"], out["seg"])
    losses, opt = Losses(), torch.optim.SGD(net.parameters(), lr=0.01)
    first = losses(out, label, torch.ones(2))
    first.backward()
    opt.step()
    assert torch.isfinite(first) and losses(net(x, present), label, torch.ones(2)) < first


def test_baseline_bundle_round_trip(tmp_path):
    cfg = TrainConfig(architecture="segresnet")
    net = initial_network(cfg).eval()
    config = bundle_config(cfg)  # what `liverfusion train` writes
    assert config["architecture"] == "baseline" and config["network"]["kind"] == "segresnet"
    model_store.save(tmp_path / "b", net, config, {"name": "b", "version": "0"}, "card")
    assert isinstance(model_store.load_model(tmp_path / "b"), BaselineModel)
    loaded = model_store.load(tmp_path / "b").network
    x, present = torch.randn(1, 5, 16, 16, 16), torch.ones(1, 5)
    with torch.no_grad():
        assert torch.equal(loaded(x, present)["seg"], net(x, present)["seg"])


def test_cli_offers_exactly_the_baselines_it_can_build():
    for kind in KINDS:
        assert parser().parse_args(["train", "--data", "d", "--out", "o", "--architecture", kind]).architecture == kind
    with pytest.raises(SystemExit):
        parser().parse_args(["train", "--data", "d", "--out", "o", "--architecture", "vnet"])


@pytest.mark.parametrize("name", ["fusion", *KINDS])
def test_committed_benchmark_models_load_verified_and_segment_a_phantom(name, small_ctmri):
    """The trained models of Testing/benchmarks/models (bench_models.py's table) are intact and tell liver from
    the rest of a case they never saw."""
    model = model_store.load_model(BENCHMARK_MODELS / name, torch.device("cpu"))
    assert model.bundle.name == name
    images = case_images(small_ctmri)
    result = pipeline.segment_aligned(images, "ct", {}, model, torch.device("cpu"))
    truth, _ = truth_of(small_ctmri)
    assert dice(sitk.GetArrayFromImage(result["labels"]) > 0, sitk.GetArrayFromImage(truth) > 0) > 0.85  # 0.93-0.95
