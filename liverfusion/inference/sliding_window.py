"""Sliding-window inference (MONAI) of a network that takes stacked channels and their presence mask."""

from __future__ import annotations

import numpy as np
import torch
from monai.inferers import SlidingWindowInferer

from ..models.interface import Prediction

# On CUDA: (windows per batch, where the stitched output lives), tried in turn when the GPU runs out of memory.
# The window itself keeps the size the model was trained with: larger or smaller windows change what its instance
# normalisation sees (128^3 windows took a held-out tumour Dice from 0.37 to 0.11).
CUDA_ATTEMPTS = ((8, "cuda"), (2, "cpu"), (1, "cpu"))


@torch.no_grad()
def predict(
    network: torch.nn.Module,
    stacked: np.ndarray,
    present: np.ndarray,
    roi: tuple[int, int, int],
    device: torch.device,
    progress: bool = False,
) -> Prediction:
    """Gaussian-weighted sliding windows over the whole volume. On CUDA, AMP and 8 windows per batch; when the
    GPU runs out of memory, fewer windows with the stitched output in host memory, and at last the CPU."""
    notes = []
    if device.type == "cuda":
        for batch, output in CUDA_ATTEMPTS:
            try:
                return _windows(network, stacked, present, roi, device, batch, torch.device(output), progress, notes)
            except torch.OutOfMemoryError:
                torch.cuda.empty_cache()
                notes.append(f"GPU out of memory with {batch} window(s) per batch")
        notes.append("inference ran on the CPU")
        network.to("cpu")
    cpu = torch.device("cpu")
    return _windows(network, stacked, present, roi, cpu, 2, cpu, progress, notes)


def _windows(network, stacked, present, roi, device, batch: int, output: torch.device, progress, notes) -> Prediction:
    inferer = SlidingWindowInferer(
        roi_size=roi,
        sw_batch_size=batch,
        overlap=0.25,
        mode="gaussian",
        padding_mode="replicate",
        progress=progress,
        sw_device=device,
        device=output,
    )
    x = torch.from_numpy(stacked[None]).to(output)  # the input lives where the output does
    p = torch.from_numpy(present[None]).to(device)
    with torch.autocast(device.type, enabled=device.type == "cuda"):
        out = inferer(x, _Outputs(network, p))
    seg, mal, fusion = (t[0].float().cpu().numpy() for t in out)
    probabilities = np.exp(seg - seg.max(0, keepdims=True))
    probabilities /= probabilities.sum(0, keepdims=True)
    return Prediction(probabilities.astype(np.float32), mal[0].astype(np.float32), fusion.astype(np.float32), notes)


class _Outputs(torch.nn.Module):
    """Adapts the network's dict output to the tuple that the sliding-window inferer stitches."""

    def __init__(self, network: torch.nn.Module, present: torch.Tensor):
        super().__init__()
        self.network, self.present = network, present

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.network(x, self.present.expand(x.shape[0], -1))
        return out["seg"], out["malignancy"], out["fusion"]
