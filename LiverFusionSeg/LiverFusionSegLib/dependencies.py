"""What LiverFusion needs in Slicer's Python, what is missing, and how each missing package gets installed.

PyTorch goes through Slicer's PyTorch extension (PyTorchUtils), which picks the CUDA build that matches the
driver; a plain `pip install torch` would fetch whichever build PyPI serves. The rest comes from pip, at the
versions the tests ran with. Kept Qt-free so that pytest checks the plan; the widget asks and runs it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

# import name -> pip requirement (the versions in constraints.txt)
PIP_PACKAGES = {
    "monai": "monai==1.6.1",
    "SimpleITK": "SimpleITK==2.5.7",
    "scipy": "scipy>=1.10",
    "tqdm": "tqdm>=4.60",
    "highdicom": "highdicom==0.28.2",
    "isal": "isal==1.9.1",
}
TORCH = "torch"


@dataclass(frozen=True)
class InstallStep:
    """One thing to install: torch through the PyTorch extension, or a pip requirement."""

    name: str
    via: str  # "pytorch-extension" or "pip"
    requirement: str


def missing(find_spec=importlib.util.find_spec) -> list[str]:
    """Import names of the required packages that Slicer's Python cannot import."""
    return [name for name in (TORCH, *PIP_PACKAGES) if find_spec(name) is None]


def install_plan(names: list[str]) -> list[InstallStep]:
    """Steps for the missing packages, PyTorch first (MONAI imports it when installed)."""
    steps = [InstallStep(TORCH, "pytorch-extension", TORCH)] if TORCH in names else []
    return steps + [InstallStep(n, "pip", PIP_PACKAGES[n]) for n in PIP_PACKAGES if n in names]


def describe(steps: list[InstallStep]) -> str:
    """The confirmation text: what will be installed, and how."""
    lines = [
        f"- {s.requirement} (with the PyTorch extension, CUDA build matched to your GPU driver)"
        if s.via == "pytorch-extension"
        else f"- {s.requirement} (pip)"
        for s in steps
    ]
    ask = "Install them now? Restart Slicer afterwards."
    return "LiverFusion needs these in Slicer's Python:\n" + "\n".join(lines) + "\n" + ask
