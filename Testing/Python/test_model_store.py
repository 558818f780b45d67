import json

import pytest
import torch

from liverfusion.errors import ModelError
from liverfusion.models import store as model_store
from liverfusion.networks.fusion import FusionNet


@pytest.fixture
def bundle(tmp_path):
    net = FusionNet(features=(4, 8, 16, 16))
    config = {"network": {"features": [4, 8, 16, 16]}, "spacing_mm": [3, 3, 3], "roi_size": [32, 32, 32]}
    return model_store.save(tmp_path / "tiny", net, config, {"name": "tiny", "version": "0.0.1"}, "# card\n")


def test_a_saved_bundle_loads_with_its_checksum(bundle):
    loaded = model_store.load(bundle)
    assert loaded.name == "tiny" and loaded.version == "0.0.1"
    assert loaded.sha256 == model_store.sha256(bundle / "models" / "model.pt")
    assert (bundle / "docs" / "README.md").is_file()
    assert not loaded.network.training


def test_a_changed_weight_file_is_refused(bundle):
    weights = bundle / "models" / "model.pt"
    state = torch.load(weights, weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, weights)
    with pytest.raises(ModelError, match="SHA-256"):
        model_store.load(bundle)


def test_missing_parts_and_unknown_names_are_model_errors(bundle):
    with pytest.raises(ModelError, match="no such model"):
        model_store.load("no_such_model_here")
    (bundle / "configs" / "inference.json").unlink()
    with pytest.raises(ModelError, match="incomplete"):
        model_store.load(bundle)


def test_the_shipped_model_is_a_verified_bundle_with_a_card():
    path = model_store.resolve(None)
    meta = json.loads((path / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert {"name", "version", "intended_use", "model_sha256", "training_data"} <= set(meta)
    assert "synthetic" in (path / "docs" / "README.md").read_text(encoding="utf-8").lower()
    assert model_store.load(None).sha256 == meta["model_sha256"]
