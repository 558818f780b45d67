import json
from pathlib import Path

import pytest
import torch

from liverfusion.errors import ModelError
from liverfusion.models import store as model_store
from liverfusion.networks.fusion import FusionNet
from liverfusion.preprocessing import DEFAULT_NORMALISATION, Normalisation

REPO = Path(__file__).resolve().parents[2]


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


def test_a_saved_bundle_carries_monai_s_mandatory_metadata(bundle):
    meta = json.loads((bundle / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert set(model_store.MONAI_REQUIRED) <= set(meta)
    assert meta["schema"] == model_store.MONAI_SCHEMA and meta["name"] == "tiny"


BUNDLES = [d for root in (REPO / "Resources" / "Models", REPO / "Testing" / "benchmarks" / "models")
           for d in sorted(root.iterdir()) if (d / "configs").is_dir()]


@pytest.mark.parametrize("folder", BUNDLES, ids=lambda d: d.name)
def test_every_committed_bundle_carries_its_kind_architecture_normalisation_and_monai_metadata(folder):
    """What a bundle needs to run travels with it; the code's defaults serve only bundles older than these keys."""
    config = json.loads((folder / "configs" / "inference.json").read_text(encoding="utf-8"))
    meta = json.loads((folder / "configs" / "metadata.json").read_text(encoding="utf-8"))
    assert set(model_store.MONAI_REQUIRED) <= set(meta)
    for direction in ("inputs", "outputs"):
        for name, tensor in meta["network_data_format"][direction].items():
            assert set(model_store.MONAI_TENSOR_REQUIRED) <= set(tensor), (direction, name)
    if model_store.bundle_kind(meta) == model_store.TRANSLATOR:
        assert {"pixel_mm", "ct_window_hu", "mri_ceiling", "network"} <= set(config)
    elif config["architecture"] == "kuleuven":
        assert {"liver_spacing_mm", "lesion_spacing_mm", "liver_patch", "lesion_patch"} <= set(config)
    else:
        assert config["architecture"] in ("fusion", "baseline")
        assert {"n_modalities", "n_classes"} <= set(config["network"])
        assert Normalisation.from_config(config).as_config() == config["normalisation"]  # every value, none defaulted


def test_a_bundle_s_normalisation_is_the_one_its_model_applies(bundle, tmp_path):
    config = json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))
    assert model_store.load_model(bundle).normalisation == DEFAULT_NORMALISATION  # an old bundle: the defaults
    config["normalisation"] = {"ct_window_hu": [-100, 300], "mri_zclip": 3, "air_hu": -400}
    (bundle / "configs" / "inference.json").write_text(json.dumps(config), encoding="utf-8")
    assert model_store.load_model(bundle).normalisation == Normalisation((-100.0, 300.0), 3.0, -400.0)
