"""The attention-fusion network: one shared encoder per present modality, attention fusion at every
scale, DANet attention at the bottleneck, an attention-gated U-Net decoder with deep supervision, and a
voxel-wise malignancy head whose lesion-pooled logits give per-lesion and per-case probabilities.

The malignancy head is linear on decoder features, so pooling its logits over a lesion equals pooling
the features first (a lesion-pooled classifier) and the logit map itself is an exact class-activation map.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetOutBlock, UnetResBlock, UnetUpBlock
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from .attention import ChannelAttention, ModalityFusion, PositionAttention
from .constants import CHANNELS

NORM = ("instance", {"affine": True})


class FusionNet(nn.Module):
    """Inputs [B, M, D, H, W] (one channel per modality, zeros where missing) and presence [B, M]."""

    def __init__(
        self, features: tuple[int, ...] = (8, 16, 32, 64), n_modalities: int = len(CHANNELS), n_classes: int = 3
    ):
        super().__init__()
        self.n_modalities = n_modalities
        self.modality_embedding = nn.Parameter(torch.zeros(n_modalities, features[0]))
        self.stem = UnetResBlock(3, 1, features[0], 3, 1, NORM)
        self.down = nn.ModuleList(
            UnetResBlock(3, features[i], features[i + 1], 3, 2, NORM) for i in range(len(features) - 1)
        )
        self.fusion = nn.ModuleList(ModalityFusion(f) for f in features)
        self.pam, self.cam = PositionAttention(features[-1]), ChannelAttention()
        self.gates = nn.ModuleList(
            AttentionBlock(3, max(features[i] // 2, 4), features[i + 1], features[i]) for i in range(len(features) - 1)
        )
        self.up = nn.ModuleList(
            UnetUpBlock(3, features[i + 1], features[i], 3, 1, 2, NORM) for i in range(len(features) - 1)
        )
        self.seg_head = UnetOutBlock(3, features[0], n_classes)
        self.deep_heads = nn.ModuleList(UnetOutBlock(3, features[i], n_classes) for i in (1, 2))
        self.malignancy_head = UnetOutBlock(3, features[0], 1)

    def encode(self, x: torch.Tensor, present: torch.Tensor) -> list[torch.Tensor]:
        """Run the shared encoder on every present modality and fuse the scales; returns fused features."""
        b, m = x.shape[:2]
        idx = present[0].nonzero().flatten()  # one batch shares one modality subset
        sub = x[:, idx].flatten(0, 1).unsqueeze(1)
        h = self.stem(sub) + self.modality_embedding[idx].repeat(b, 1).view(b * len(idx), -1, 1, 1, 1)
        fused, self._weights = [], None
        for level in range(len(self.fusion)):
            if level:
                h = self.down[level - 1](h)
            f, w = self.fusion[level](h.view(b, len(idx), *h.shape[1:]), present[:, idx])
            fused.append(f)
            if level == 0:
                self._weights = x.new_zeros((b, m) + w.shape[2:])
                self._weights[:, idx] = w
        fused[-1] = self.pam(fused[-1]) + self.cam(fused[-1]) - fused[-1]
        return fused

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        skips = self.encode(x, present)
        h, deep = skips[-1], []
        for level in reversed(range(len(self.up))):
            gated = (
                self.gates[level](g=h, x=skips[level])
                if h.shape[2:] == skips[level].shape[2:]
                else self.gates[level](g=nn.functional.interpolate(h, size=skips[level].shape[2:]), x=skips[level])
            )
            h = self.up[level](h, gated)
            if level in (1, 2):
                deep.append(self.deep_heads[level - 1](h))
        out = {"seg": self.seg_head(h), "malignancy": self.malignancy_head(h), "fusion": self._weights}
        if self.training:
            out["deep"] = deep
        return out
