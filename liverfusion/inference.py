"""Device choice and sliding-window inference (MONAI) of the fusion network."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer

from .errors import LiverFusionError


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


@dataclass
class Prediction:
    """Network outputs on the model grid: class probabilities [3, ...], malignancy logits (None for a model that
    does not rate malignancy) and fusion weights."""

    probabilities: np.ndarray
    malignancy_logits: np.ndarray | None
    fusion_weights: np.ndarray


@torch.no_grad()
def predict(
    network: torch.nn.Module,
    stacked: np.ndarray,
    present: np.ndarray,
    roi: tuple[int, int, int],
    device: torch.device,
    progress: bool = False,
) -> Prediction:
    """Gaussian-weighted sliding windows over the whole volume; AMP on CUDA."""
    inferer = SlidingWindowInferer(
        roi_size=roi, sw_batch_size=2, overlap=0.25, mode="gaussian", padding_mode="replicate", progress=progress
    )
    x = torch.from_numpy(stacked[None]).to(device)
    p = torch.from_numpy(present[None]).to(device)
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        out = inferer(x, _Outputs(network, p))
    seg, mal, fusion = (t[0].float().cpu().numpy() for t in out)
    probabilities = np.exp(seg - seg.max(0, keepdims=True))
    probabilities /= probabilities.sum(0, keepdims=True)
    return Prediction(probabilities.astype(np.float32), mal[0].astype(np.float32), fusion.astype(np.float32))


class _Outputs(torch.nn.Module):
    """Adapts the network's dict output to the tuple that the sliding-window inferer stitches."""

    def __init__(self, network: torch.nn.Module, present: torch.Tensor):
        super().__init__()
        self.network, self.present = network, present

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.network(x, self.present.expand(x.shape[0], -1))
        return out["seg"], out["malignancy"], out["fusion"]
