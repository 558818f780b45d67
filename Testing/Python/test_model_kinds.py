"""One interface for every kind of segmentation model: the registry, the kinds, and a new kind added in one class."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from liverfusion.constants import CHANNELS
from liverfusion.errors import ModelError
from liverfusion.inference.pipeline import run_case
from liverfusion.io.images import read_image
from liverfusion.models import registry
from liverfusion.models import store as model_store
from liverfusion.models.interface import Prediction, SegmentationModel

REPO = Path(__file__).resolve().parents[2]
BUNDLE_DIRS = [d for root in ("Resources/Models", "Testing/benchmarks/models") for d in sorted((REPO / root).iterdir())]
METHODS = [name for name, _ in inspect.getmembers(SegmentationModel, inspect.isfunction) if not name.startswith("_")]


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
def test_every_kind_offers_the_interface(kind):
    cls = registry.KINDS[kind]
    assert callable(cls.network_class)
    for name in METHODS:
        ours, theirs = inspect.signature(getattr(SegmentationModel, name)), inspect.signature(getattr(cls, name))
        assert list(theirs.parameters) == list(ours.parameters), (kind, name)


@pytest.mark.parametrize("folder", [d for d in BUNDLE_DIRS if (d / "configs").is_dir()], ids=lambda d: d.name)
def test_every_segmentation_bundle_names_a_known_kind(folder):
    metadata = json.loads((folder / "configs" / "metadata.json").read_text(encoding="utf-8"))
    if model_store.bundle_kind(metadata) != model_store.SEGMENTATION:
        return
    config = json.loads((folder / "configs" / "inference.json").read_text(encoding="utf-8"))
    assert registry.model_class(config) in registry.KINDS.values()


def test_an_unknown_kind_is_a_one_line_model_error():
    with pytest.raises(ModelError, match="unknown model kind 'vnet'"):
        registry.model_class({"architecture": "vnet"}, "somewhere")


def test_no_inference_module_imports_a_network_or_a_model_kind():
    """The pipeline asks the interface; it never knows which kind it runs."""
    for path in sorted((REPO / "liverfusion" / "inference").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = {a.name for a in node.names}
                assert not module.lstrip(".").startswith(("networks", "apps.kuleuven", "models.grid")), path.name
                assert not names & {"FusionNet", "BaselineNet", "KULeuvenPair", "FusionModel", "KULeuvenModel"}


class BrightIsLiver:
    """A kind in a few lines (docs/development.md shows it): every CT voxel between 0 and 300 HU is liver."""

    network_class = torch.nn.Identity  # no weights to learn

    def __init__(self, bundle):
        self.bundle = bundle

    def predict(self, images, reference, transforms, device, report=None, use=None, alone=None):
        hu = sitk.GetArrayFromImage(images[reference])
        liver = ((hu > 0) & (hu < 300)).astype(np.float32)
        weights = np.zeros((len(CHANNELS), *hu.shape), np.float32)
        return images[reference], Prediction(np.stack([1 - liver, liver, 0 * liver]), None, weights)

    def alone(self, image, role, device):
        return None

    def liver(self, image, role, device, alone=None):
        return None

    def notes(self, roles, reference):
        return ["bright is liver: a test kind"]


def test_a_new_kind_is_one_class_and_one_registry_line(small_ctmri, tmp_path, monkeypatch):
    monkeypatch.setitem(registry.KINDS, "bright", BrightIsLiver)
    bundle = model_store.save(tmp_path / "bright", torch.nn.Identity(), {"architecture": "bright", "network": {}},
                              {"name": "bright", "version": "0"}, "# bright\n")
    ct = read_image(small_ctmri / "ct.nii.gz")
    result = run_case({"ct": ct}, "none", "cpu", str(bundle))
    assert isinstance(model_store.load_model(bundle), BrightIsLiver)
    assert result.model.name == "bright" and result.probability is None
    assert "bright is liver: a test kind" in result.warnings
    assert result.liver_volume_ml > 100
