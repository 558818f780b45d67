"""MONAI's UNet, AttentionUnet and SegResNet as baselines for the fusion network (issue 5's benchmark).

Each takes every channel at once (early fusion: zeros where an input is missing) and predicts four maps:
background, liver, tumour and a malignancy logit, so that the trainer, the pipeline and the benchmark treat it
exactly as they treat the fusion network. Sizes are picked near the fusion network's 0.8M parameters (1.2-1.5M),
so that a comparison on the same training budget compares designs, not capacity.
"""

from __future__ import annotations

import torch
from monai.networks.nets import AttentionUnet, SegResNet, UNet
from torch import nn

from ..constants import CHANNELS

KINDS = ("unet", "attentionunet", "segresnet")


def build(kind: str, in_channels: int, out_channels: int) -> nn.Module:
    """The MONAI network of one kind, at the size this module's docstring gives."""
    widths, strides = (16, 32, 64, 128), (2, 2, 2)
    if kind == "unet":
        return UNet(3, in_channels, out_channels, widths, strides, num_res_units=2, norm="instance")
    if kind == "attentionunet":
        return AttentionUnet(3, in_channels, out_channels, widths, strides)
    if kind == "segresnet":
        return SegResNet(3, init_filters=8, in_channels=in_channels, out_channels=out_channels)
    raise ValueError(f"baseline {kind!r}: expected one of {', '.join(KINDS)}")


class BaselineNet(nn.Module):
    """Inputs [B, M, D, H, W] and presence [B, M], like FusionNet; outputs its dict (no deep supervision).

    The "fusion weights" of a network without fusion are the present inputs' equal shares, so the pipeline's
    `attention_<role>` maps stay defined."""

    def __init__(self, kind: str, n_modalities: int = len(CHANNELS), n_classes: int = 3):
        super().__init__()
        self.kind = kind
        self.net = build(kind, n_modalities, n_classes + 1)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(x * present[:, :, None, None, None])
        shares = present / present.sum(1, keepdim=True).clamp(min=1)
        fusion = shares[:, :, None, None, None] * x.new_ones(x.shape[2:])  # a real tensor: the inferer writes into it
        result = {"seg": out[:, :-1], "malignancy": out[:, -1:], "fusion": fusion}
        if self.training:
            result["deep"] = []
        return result
