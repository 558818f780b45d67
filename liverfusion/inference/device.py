"""Which device a run uses, and why there is no GPU when there is none."""

from __future__ import annotations

import torch

from ..errors import LiverFusionError


def pick_device(name: str = "auto") -> torch.device:
    """`auto` takes CUDA when PyTorch sees a GPU, else the CPU; `cuda` without a GPU says why."""
    if name == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if name == "cuda":
        raise LiverFusionError(f"--device cuda: {device_report()}")
    if name != "auto":
        raise LiverFusionError(f"--device {name}: expected auto, cpu or cuda")
    return torch.device("cpu")


def device_report() -> str:
    """One line saying which GPU PyTorch sees, or why it sees none (a CPU build, or no driver)."""
    if torch.cuda.is_available():
        return f"CUDA: {torch.cuda.get_device_name(0)}"
    if torch.version.cuda is None:
        return f"no GPU: this PyTorch ({torch.__version__}) is a CPU-only build"
    return f"no GPU: PyTorch {torch.__version__} has CUDA {torch.version.cuda}, but no GPU or driver answered"
