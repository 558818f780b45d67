"""The attention-fusion network: one shared encoder per present modality, attention fusion at every
scale, DANet attention at the bottleneck, an attention-gated U-Net decoder with deep supervision, and a
voxel-wise malignancy head whose lesion-pooled logits give per-lesion and per-case probabilities.

The malignancy head is linear on decoder features, so pooling its logits over a lesion equals pooling
the features first (a lesion-pooled classifier) and the logit map itself is an exact class-activation map.

The encoder is either our residual U-Net encoder (`encoder="unet"`) or the down path of KU Leuven's clinically
trained liver U-Net (`encoder="kuleuven"`: their convolutions, widths 40/80/160/160 and pooling by 3, so that
their weights can initialise it; 1x1x1 convolutions bring its features to the decoder's widths).
"""

from __future__ import annotations

import torch
from monai.networks.blocks import UnetOutBlock, UnetResBlock, UnetUpBlock
from monai.networks.nets.attentionunet import AttentionBlock
from torch import nn

from ..constants import CHANNELS
from .attention import ChannelAttention, ModalityFusion, PositionAttention
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

    def modality_features(self, x: torch.Tensor, idx: list[int]) -> list[torch.Tensor]:
        """The shared encoder's features of the modalities `idx` at every level, [B, len(idx), C, ...]. Each
        modality is encoded on its own, so its features do not depend on which others are present."""
        b = x.shape[0]
        sub = x[:, idx].flatten(0, 1).unsqueeze(1)
        h = self.stem(sub) + self.modality_embedding[idx].repeat(b, 1).view(b * len(idx), -1, 1, 1, 1)
        levels = []
        for level in range(len(self.fusion)):
            if level:
                h = self.down[level - 1](h)
            levels.append(h.view(b, len(idx), *h.shape[1:]))
        return levels

    def encode(
        self, x: torch.Tensor, present: torch.Tensor, known: dict[int, list[torch.Tensor]] | None = None
    ) -> tuple[list[torch.Tensor], dict[int, list[torch.Tensor]]]:
        """Encode every present modality (those in `known`, by channel, come already encoded, as
        `modality_features` gave them for that channel alone) and fuse the scales; returns the fused features and
        each modality's own features by channel."""
        b, m = x.shape[:2]
        idx = present[0].nonzero().flatten().tolist()  # one batch shares one modality subset
        known = known or {}
        todo = [i for i in idx if i not in known]
        computed = self.modality_features(x, todo) if todo else []
        encoded = {i: [level[:, todo.index(i)] for level in computed] for i in todo} | known
        fused, self._weights = [], None
        for level in range(len(self.fusion)):
            h = computed[level] if not known else torch.stack([encoded[i][level] for i in idx], 1)
            f, w = self.fusion[level](h, present[:, idx])
            fused.append(self.adapt[level](f))
            if level == 0:
                self._weights = w.new_zeros((b, m) + w.shape[2:])
                self._weights[:, idx] = w
        fused[-1] = self.pam(fused[-1]) + self.cam(fused[-1]) - fused[-1]
        return fused, encoded

    def load_kuleuven_encoder(self, pair: KULeuvenPair) -> None:
        """Start the encoder from their trained liver network (transfer learning)."""
        self.stem.load_state_dict(pair.liver.down[0].state_dict())
        for level, block in enumerate(pair.liver.down[1:]):
            self.down[level][1].load_state_dict(block.state_dict())

    def forward(
        self, x: torch.Tensor, present: torch.Tensor, known: dict[int, list[torch.Tensor]] | None = None
    ) -> dict[str, torch.Tensor]:
        """`known`: encoder features of some channels from an earlier pass over the same windows (`encode`); the
        output's "encoded" holds this pass's, for a later one."""
        skips, encoded = self.encode(x, present, known)
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
        out["encoded"] = encoded
        if self.training:
            out["deep"] = deep
        return out
