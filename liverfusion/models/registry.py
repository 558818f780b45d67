"""Which class runs a segmentation bundle: its kind, `inference.json`'s "architecture", looked up in `KINDS`.

Adding a kind of model is one class with the `interface.SegmentationModel` methods and one line here.
"""

from __future__ import annotations

from ..apps.kuleuven.model import KULeuvenModel
from ..errors import ModelError
from .grid import BaselineModel, FusionModel
from .interface import SegmentationModel

KINDS: dict[str, type[SegmentationModel]] = {
    "fusion": FusionModel,
    "baseline": BaselineModel,
    "kuleuven": KULeuvenModel,
}
DEFAULT_KIND = "fusion"  # bundles from before "architecture" was written hold the fusion network


def kind_of(config: dict) -> str:
    return config.get("architecture", DEFAULT_KIND)


def model_class(config: dict, where: object = "inference.json") -> type[SegmentationModel]:
    """The class of a bundle's kind; an unknown kind is a ModelError naming the bundle."""
    kind = kind_of(config)
    if kind not in KINDS:
        raise ModelError(f"{where}: unknown model kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind]
