"""Attention blocks of the fusion network: modality fusion by channel + spatial attention, and DANet's
position (PAM) and channel (CAM) attention at the bottleneck, as DTAN uses them."""

from __future__ import annotations

import torch
from monai.networks.blocks import ChannelSELayer
from torch import nn


class ModalityFusion(nn.Module):
    """Fuse per-modality features [B, M, C, ...] into [B, C, ...].

    Channel attention (squeeze-and-excitation, shared across modalities) reweights each modality's
    channels; a 1x1 convolution scores every voxel of every modality, and a softmax over the present
    modalities turns the scores into fusion weights. Missing modalities get weight 0, so any subset works,
    and the weights are what we show as `attention_<role>`.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.channel_attention = ChannelSELayer(3, channels, r=2)
        self.score = nn.Conv3d(channels, 1, kernel_size=1)

    def forward(self, feats: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, m = feats.shape[:2]
        flat = self.channel_attention(feats.flatten(0, 1))
        scores = self.score(flat).view(b, m, *feats.shape[3:])
        mask = present.view(b, m, *([1] * (feats.dim() - 3))) > 0
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1)
        fused = (flat.view_as(feats) * weights.unsqueeze(2)).sum(1)
        return fused, weights


class PositionAttention(nn.Module):
    """DANet PAM: every voxel attends to every other voxel (affordable at the bottleneck only)."""

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 4)
        self.query, self.key = nn.Conv3d(channels, inner, 1), nn.Conv3d(channels, inner, 1)
        self.value = nn.Conv3d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2)
        attn = torch.softmax(q @ k, dim=-1)
        v = self.value(x).flatten(2)
        return x + self.gamma * (v @ attn.transpose(1, 2)).view_as(x)


class ChannelAttention(nn.Module):
    """DANet CAM: channels attend to channels through their Gram matrix."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        energy = flat @ flat.transpose(1, 2)
        energy = energy.max(-1, keepdim=True).values - energy
        attn = torch.softmax(energy, dim=-1)
        return x + self.gamma * (attn @ flat).view_as(x)
