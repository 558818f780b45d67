"""Model bundles: `Resources/Models/<name>/` in MONAI bundle layout, verified by SHA-256 before use.

Layout: `configs/metadata.json` (MONAI's mandatory metadata, and ours: name, kind, intended use, `model_sha256`),
`configs/inference.json` (the model's kind as "architecture", the network's arguments, the normalisation, spacing,
window), `models/model.pt` (state dict), `docs/README.md` (model card).
No code here downloads anything: hospitals are often offline, and so are we.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import monai
import numpy as np
import torch

from ..errors import ModelError
from . import registry
from .interface import SegmentationModel

DEFAULT_MODEL = "liverfusion_attention"
SEGMENTATION, TRANSLATOR = "segmentation", "translator"
# The metadata keys MONAI's bundle specification makes mandatory (docs/source/mb_specification.rst, schema
# meta_schema_20220324.json), and those of each tensor of its network_data_format.
MONAI_SCHEMA = (
    "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json"
)
MONAI_REQUIRED = (
    "version",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "optional_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
)
MONAI_TENSOR_REQUIRED = (
    "type",
    "format",
    "modality",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
)
AUTHORS = "LiverFusion team"
MODELS_DIR = Path(os.environ.get("LIVERFUSION_MODELS", Path(__file__).resolve().parents[2] / "Resources" / "Models"))


@dataclass
class Bundle:
    """A loaded, verified model with its configuration."""

    path: Path
    name: str
    version: str
    sha256: str
    config: dict
    metadata: dict
    network: torch.nn.Module


def bundle_kind(metadata: dict) -> str:
    """What a bundle does; bundles from before translators existed are segmentation models."""
    return metadata.get("kind", SEGMENTATION)


def available(kind: str = SEGMENTATION) -> list[str]:
    """Names of the bundles of one kind under `Resources/Models/`, the default segmentation model first."""
    names = []
    for folder in sorted(MODELS_DIR.glob("*")):
        try:
            if bundle_kind(json.loads((folder / "configs" / "metadata.json").read_text(encoding="utf-8"))) == kind:
                names.append(folder.name)
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(names, key=lambda name: name != DEFAULT_MODEL)


def resolve(name_or_dir: str | os.PathLike | None) -> Path:
    """A bundle folder from a path or a name under `Resources/Models/`."""
    candidate = Path(name_or_dir or DEFAULT_MODEL)
    if candidate.is_dir():
        return candidate
    if (MODELS_DIR / candidate).is_dir():
        return MODELS_DIR / candidate
    available = ", ".join(sorted(p.name for p in MODELS_DIR.glob("*") if p.is_dir())) or "none"
    raise ModelError(f"{name_or_dir}: no such model (available in {MODELS_DIR}: {available})")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_file(path: Path) -> Path:
    """Where a bundle whose weights are converted on this machine (`converted_from` in its metadata) keeps
    their SHA-256: the converted bytes depend on the local PyTorch, so they cannot be recorded in the repository."""
    return path / "models" / "model.pt.sha256"


def expected_sha256(path: Path) -> str | None:
    metadata = json.loads((path / "configs" / "metadata.json").read_text(encoding="utf-8"))
    if "converted_from" not in metadata:
        return metadata.get("model_sha256")
    try:
        return checksum_file(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def load(
    name_or_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    build: Callable[..., torch.nn.Module] | None = None,
    kind: str = SEGMENTATION,
) -> Bundle:
    """Load and verify a bundle; a missing file, a checksum mismatch or a bundle of another kind is a
    ModelError, not a crash.

    `build` makes the network from `inference.json`'s `network` arguments; by default the network class of the
    bundle's kind (`registry.KINDS`: its `architecture`, the fusion network when it names none)."""
    path = resolve(name_or_dir)
    try:
        metadata = json.loads((path / "configs" / "metadata.json").read_text(encoding="utf-8"))
        config = json.loads((path / "configs" / "inference.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: incomplete model bundle ({exc.__class__.__name__}: {exc})") from None
    if bundle_kind(metadata) != kind:
        raise ModelError(f"{path}: a {bundle_kind(metadata)} model, not a {kind} model")
    weights = path / "models" / "model.pt"
    if not weights.is_file():
        hint = f"; run `liverfusion import-weights {path.name}`" if "converted_from" in metadata else ""
        raise ModelError(f"{weights}: model weights missing{hint}")
    digest, expected = sha256(weights), expected_sha256(path)
    if digest != expected:
        raise ModelError(
            f"{weights}: SHA-256 {digest[:12]}... does not match the bundle's "
            f"{str(expected)[:12]}...; the file is corrupt or was replaced"
        )
    network = (build or registry.model_class(config, path).network_class)(**config["network"])
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.to(device).eval()
    return Bundle(path, metadata["name"], metadata["version"], digest, config, metadata, network)


def load_model(name_or_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> SegmentationModel:
    """A verified segmentation bundle wrapped in the class of its kind: what the pipeline runs."""
    bundle = load(name_or_dir, device)
    return registry.model_class(bundle.config, bundle.path)(bundle)


def monai_metadata(metadata: dict) -> dict:
    """`metadata` with MONAI's mandatory keys that it lacks: the versions of this run's MONAI, PyTorch and NumPy, our
    authorship, and placeholders that send the reader to the model card."""
    defaults = {
        "schema": MONAI_SCHEMA,
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "optional_packages_version": {},
        "task": "see the model card, docs/README.md",
        "description": "see the model card, docs/README.md",
        "authors": AUTHORS,
        "copyright": f"Copyright (c) {AUTHORS}",
        "network_data_format": {"inputs": {}, "outputs": {}},
    }
    first = {k: metadata[k] for k in ("name", "version") if k in metadata}
    return {**first, **defaults, **metadata}


def save(path: Path, network: torch.nn.Module, config: dict, metadata: dict, card: str) -> Path:
    """Write a bundle (weights, configs with the weights' checksum and MONAI's mandatory metadata, model card)."""
    (path / "models").mkdir(parents=True, exist_ok=True)
    (path / "configs").mkdir(parents=True, exist_ok=True)
    (path / "docs").mkdir(parents=True, exist_ok=True)
    weights = path / "models" / "model.pt"
    torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, weights)
    metadata = {**monai_metadata(metadata), "model_sha256": sha256(weights)}
    (path / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (path / "configs" / "inference.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (path / "docs" / "README.md").write_text(card, encoding="utf-8")
    return path
