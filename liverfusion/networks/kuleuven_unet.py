"""PyTorch port of the KU Leuven liver and lesion U-Nets (PyPI `pyliverlesionseg` 0.3, Apache-2.0; Tang et al.,
Eur J Nucl Med Mol Imaging 2020), so that their clinically trained weights run without TensorFlow 1.12.

A literal translation of `architectures/unet_generalized.py` (UG) for the two configurations their prediction uses
(`cnn_liver_lesion_seg_CT_MR_functions.py` lines 152-175 and 263-287). Tensors are (N, C, X, Y, Z), X, Y, Z being the
axes of the RAS-ordered array they fed as (N, X, Y, Z, C); the (3, 3, 1) kernels are in-plane. What the Keras code does
and we repeat: instance normalisation without affine over the whole patch (population std, eps 1e-7, UG:105),
pre-activation blocks (norm, LeakyReLU 0.01, conv) except for the network's first conv (UG:280-283), skip
concatenation as [skip, upsampled] (UG:298), "linear" upsampling as nearest repeat then a stride-1 average pool
(UG:140-146), residual shortcuts cropped from the block input with a 1x1x1 conv when the width changes (UG:285-289).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

IN_PLANE, FULL = (3, 3, 1), (3, 3, 3)
DOWN_FEATURES = ((20, 40), (40, 80), (80, 160), (160, 160))
UP_FEATURES = ((40, 20), (80, 40), (160, 80))


@dataclass(frozen=True)
class UNetSpec:
    """One of their two trained configurations."""

    pool: int  # pooling factor between levels
    deepest_kernels: tuple[tuple[int, int, int], ...]
    padding: str  # "same" or "valid"
    upsampling: str  # "linear" or "copy"
    residual: bool
    input_size: tuple[int, int, int]  # the patch their sampler feeds (UG:209-250 for output_size)
    output_size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]  # header/voxel_size of the hdf5 files


LIVER = UNetSpec(3, (FULL, FULL), "same", "linear", False, (189, 162, 162), (163, 136, 136), (3.0, 3.0, 3.0))
LESION = UNetSpec(2, (IN_PLANE, FULL), "valid", "copy", True, (180, 172, 86), (92, 84, 42), (1.0, 1.0, 3.0))


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Their Lambda layer: (x - mean) / (population std + 1e-7) per sample and channel, no affine.
    The variance is floored at 1e-14 before the square root, which changes no output but keeps the gradient
    of a constant channel finite (the square root's slope at 0 is infinite)."""
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    std = ((x - mean) ** 2).mean(dim=(2, 3, 4), keepdim=True).clamp_min(1e-14).sqrt()
    return (x - mean) / (std + 1e-7)


def center_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Keras Cropping3D(int((l - r) / 2)) on both sides of each spatial axis."""
    index = [slice(None), slice(None)]
    for have, want in zip(x.shape[2:], shape[-3:]):
        cut = (have - want) // 2
        index.append(slice(cut, have - cut))
    return x[tuple(index)]


class KerasBlock(nn.Module):
    """Convolutions of one level (pre-activation), with their residual shortcut if the model has one."""

    def __init__(self, convs: list[nn.Conv3d], shortcut: nn.Conv3d | None, residual: bool, first: bool = False):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.shortcut, self.residual, self.first = shortcut, residual, first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In float32 even under autocast: their pre-norm activations outgrow float16 when fine-tuned."""
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        block_input = x
        for j, conv in enumerate(self.convs):
            if not (self.first and j == 0):
                x = F.leaky_relu(instance_norm(x), 0.01)
            x = conv(x)
        if self.residual:
            shortcut = center_crop(block_input, x.shape)
            x = x + (self.shortcut(shortcut) if self.shortcut is not None else shortcut)
        return x


class KULeuvenUNet(nn.Module):
    """Their U-Net: four levels down, three up, a 1x1x1 sigmoid output. `keras_order` lists the convolutions
    in Keras creation order (conv3d_1, conv3d_2, ...), the order their hdf5 weights are named in."""

    def __init__(self, spec: UNetSpec):
        super().__init__()
        self.spec = spec
        self.keras_order: list[nn.Conv3d] = []
        widths, channels = [], 1
        kernels = [(IN_PLANE, FULL)] * 3 + [spec.deepest_kernels]
        self.down = nn.ModuleList()
        for level, (features, ks) in enumerate(zip(DOWN_FEATURES, kernels)):
            self.down.append(self._block(channels, features, ks, first=level == 0))
            channels = features[-1]
            widths.append(channels)
        self.up = nn.ModuleList()
        for level in reversed(range(3)):
            self.up.insert(0, self._block(widths[level] + channels, UP_FEATURES[level], (FULL, IN_PLANE)))
            channels = UP_FEATURES[level][-1]
        self.head = self._conv(channels, 1, (1, 1, 1))

    def _conv(self, cin: int, cout: int, kernel: tuple[int, int, int]) -> nn.Conv3d:
        padding = tuple(k // 2 for k in kernel) if self.spec.padding == "same" else 0
        conv = nn.Conv3d(cin, cout, kernel, padding=padding)
        self.keras_order.append(conv)
        return conv

    def _block(self, cin: int, features: tuple[int, int], kernels, first: bool = False) -> KerasBlock:
        convs, channels = [], cin
        for width, kernel in zip(features, kernels):
            convs.append(self._conv(channels, width, kernel))
            channels = width
        shortcut = self._conv(cin, channels, (1, 1, 1)) if self.spec.residual and cin != channels else None
        return KerasBlock(convs, shortcut, self.spec.residual, first)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of the four down levels (before pooling), finest first."""
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool3d(x, self.spec.pool)
            x = block(x)
            skips.append(x)
        return skips

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec.pool
        x = x.repeat_interleave(s, 2).repeat_interleave(s, 3).repeat_interleave(s, 4)
        return F.avg_pool3d(x, s, stride=1) if self.spec.upsampling == "linear" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities (sigmoid) for the centre `output_size` voxels of an `input_size` patch."""
        skips = self.encode(x)
        x = skips[-1]
        for level in reversed(range(3)):
            x = self.upsample(x)
            x = self.up[level](torch.cat([center_crop(skips[level], x.shape), x], dim=1))
        return torch.sigmoid(self.head(F.leaky_relu(instance_norm(x), 0.01)))


def keras_state_dict(hdf5: Path, network: KULeuvenUNet) -> dict[str, torch.Tensor]:
    """Their Keras 2.2 weights as this network's state dict: conv3d_<k> is the k-th conv created, and a
    Keras kernel (kX, kY, kZ, Cin, Cout) is a torch weight (Cout, Cin, kX, kY, kZ)."""
    import h5py  # only the importer needs it

    with h5py.File(hdf5, "r") as handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        layers = {}
        for name in (n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]):
            weights = {w.decode() if isinstance(w, bytes) else w for w in group[name].attrs["weight_names"]}
            if weights:
                kernel = next(w for w in weights if "kernel" in w)
                bias = next(w for w in weights if "bias" in w)
                layers[int(re.findall(r"\d+", name)[-1])] = (np.array(group[name][kernel]), np.array(group[name][bias]))
    if sorted(layers) != list(range(1, len(network.keras_order) + 1)):
        raise ModelError(f"{hdf5}: {len(layers)} conv layers, the port has {len(network.keras_order)}")
    names = {id(module): name for name, module in network.named_modules()}
    state = {}
    for k, conv in enumerate(network.keras_order, start=1):
        kernel, bias = layers[k]
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(4, 3, 0, 1, 2))).float()
        if weight.shape != conv.weight.shape:
            expected = tuple(conv.weight.shape)
            raise ModelError(f"{hdf5}: conv3d_{k} has shape {tuple(weight.shape)}, the port expects {expected}")
        state[f"{names[id(conv)]}.weight"] = weight
        state[f"{names[id(conv)]}.bias"] = torch.from_numpy(bias).float()
    return state


class KULeuvenPair(nn.Module):
    """Their liver and lesion networks, one state dict for one model bundle."""

    def __init__(self):
        super().__init__()
        self.liver, self.lesion = KULeuvenUNet(LIVER), KULeuvenUNet(LESION)
