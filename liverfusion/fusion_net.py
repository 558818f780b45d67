"""The attention-fusion network: one shared encoder per present modality, attention fusion at every
scale, DANet attention at the bottleneck, an attention-gated U-Net decoder with deep supervision, and a
voxel-wise malignancy head whose lesion-pooled logits give per-lesion and per-case probabilities.

The malignancy head is linear on decoder features, so pooling its logits over a lesion equals pooling
the features first (a lesion-pooled classifier) and the logit map itself is an exact class-activation map.
With `malignancy_levels` above 1 it also reads the coarser decoder levels (and the bottleneck): 1x1x1
convolutions there, upsampled and summed, still linear, so that it sees each lesion's context and not only its
finest features (`liverfusion fit-malignancy` fits it on lesions).

The encoder is either our residual U-Net encoder (`encoder="unet"`) or the down path of KU Leuven's clinically
trained liver U-Net (`encoder="kuleuven"`: their convolutions, widths 40/80/160/160 and pooling by 3, so that
their weights can initialise it; 1x1x1 convolutions bring its features to the decoder's widths).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetOutBlock, UnetResBlock, UnetUpBlock
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from .attention import ChannelAttention, ModalityFusion, PositionAttention
from .constants import CHANNELS
from .kuleuven_unet import LIVER, KULeuvenPair, KULeuvenUNet

NORM = ("instance", {"affine": True})
KULEUVEN_WIDTHS = (40, 80, 160, 160)


def kuleuven_encoder() -> tuple[nn.Module, nn.ModuleList]:
    """Stem and down levels with the layout of their liver network's encoder (pooling by 3)."""
    down = KULeuvenUNet(LIVER).down
    return down[0], nn.ModuleList(nn.Sequential(nn.MaxPool3d(LIVER.pool), block) for block in down[1:])


class FusionNet(nn.Module):
    """Inputs [B, M, D, H, W] (one channel per modality, zeros where missing) and presence [B, M]."""

    def __init__(
        self,
        features: tuple[int, ...] = (8, 16, 32, 64),
        n_modalities: int = len(CHANNELS),
        n_classes: int = 3,
        encoder: str = "unet",
        malignancy_levels: int = 1,
    ):
        super().__init__()
        self.n_modalities = n_modalities
        if encoder == "kuleuven":
            widths, self.scale = KULEUVEN_WIDTHS, LIVER.pool
            self.stem, self.down = kuleuven_encoder()
            self.adapt = nn.ModuleList(nn.Conv3d(w, f, 1) for w, f in zip(widths, features))
        else:
            widths, self.scale = features, 2
            self.stem = UnetResBlock(3, 1, features[0], 3, 1, NORM)
            self.down = nn.ModuleList(
                UnetResBlock(3, features[i], features[i + 1], 3, 2, NORM) for i in range(len(features) - 1)
            )
            self.adapt = nn.ModuleList(nn.Identity() for _ in features)
        self.modality_embedding = nn.Parameter(torch.zeros(n_modalities, widths[0]))
        self.fusion = nn.ModuleList(ModalityFusion(w) for w in widths)
        self.pam, self.cam = PositionAttention(features[-1]), ChannelAttention()
        self.gates = nn.ModuleList(
            AttentionBlock(3, max(features[i] // 2, 4), features[i + 1], features[i]) for i in range(len(features) - 1)
        )
        self.up = nn.ModuleList(
            UnetUpBlock(3, features[i + 1], features[i], 3, 1, self.scale, NORM) for i in range(len(features) - 1)
        )
        self.seg_head = UnetOutBlock(3, features[0], n_classes)
        self.deep_heads = nn.ModuleList(UnetOutBlock(3, features[i], n_classes) for i in (1, 2))
        self.malignancy_head = UnetOutBlock(3, features[0], 1)
        self.malignancy_deep = nn.ModuleList(nn.Conv3d(f, 1, 1, bias=False) for f in features[1:malignancy_levels])
        for conv in self.malignancy_deep:  # zero: added levels start as the one-level head
            nn.init.zeros_(conv.weight)

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
            fused.append(self.adapt[level](f))
            if level == 0:
                self._weights = x.new_zeros((b, m) + w.shape[2:])
                self._weights[:, idx] = w
        fused[-1] = self.pam(fused[-1]) + self.cam(fused[-1]) - fused[-1]
        return fused

    def load_kuleuven_encoder(self, pair: KULeuvenPair) -> None:
        """Start the encoder from their trained liver network (transfer learning)."""
        self.stem.load_state_dict(pair.liver.down[0].state_dict())
        for level, block in enumerate(pair.liver.down[1:]):
            self.down[level][1].load_state_dict(block.state_dict())

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
        levels = self.decode(x, present)
        h = levels[0]
        out = {"seg": self.seg_head(h), "malignancy": self.malignancy(levels), "fusion": self._weights}
        if self.training:
            out["deep"] = [self.deep_heads[level - 1](levels[level]) for level in (2, 1)]
        return out

    def decode(self, x: torch.Tensor, present: torch.Tensor) -> list[torch.Tensor]:
        """Decoder features per level, finest first; the last is the bottleneck."""
        skips = self.encode(x, present)
        h, levels = skips[-1], [skips[-1]]
        for level in reversed(range(len(self.up))):
            gated = (
                self.gates[level](g=h, x=skips[level])
                if h.shape[2:] == skips[level].shape[2:]
                else self.gates[level](g=nn.functional.interpolate(h, size=skips[level].shape[2:]), x=skips[level])
            )
            h = self.up[level](h, gated)
            levels.insert(0, h)
        return levels

    def malignancy(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Malignancy logits: the finest level's head plus each coarser level's, upsampled (a linear read-out)."""
        logit = self.malignancy_head(levels[0])
        for conv, h in zip(self.malignancy_deep, levels[1:]):
            logit = logit + nn.functional.interpolate(conv(h), size=logit.shape[2:], mode="trilinear")
        return logit

    def malignancy_features(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """The features the malignancy head reads from `decode`'s levels, each upsampled to the finest and
        concatenated: a lesion's mean of them, dotted with the weights of `set_malignancy_weights`, plus the bias,
        is its pooled logit."""
        levels = levels[: 1 + len(self.malignancy_deep)]
        up = [nn.functional.interpolate(h, size=levels[0].shape[2:], mode="trilinear") for h in levels[1:]]
        return torch.cat([levels[0], *up], 1)

    def set_malignancy_weights(self, weights: torch.Tensor, bias: float) -> None:
        """Set the head from one weight per feature of `malignancy_features` and a bias."""
        head = self.malignancy_head.conv.conv
        parts = weights.split([head.in_channels] + [c.in_channels for c in self.malignancy_deep])
        with torch.no_grad():
            head.weight.copy_(parts[0].view_as(head.weight))
            head.bias.fill_(bias)
            for conv, w in zip(self.malignancy_deep, parts[1:]):
                conv.weight.copy_(w.view_as(conv.weight))
