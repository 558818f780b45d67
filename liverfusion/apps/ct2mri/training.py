"""Unpaired CT -> MRI training: CycleGAN with two terms that keep anatomy where it is.

A plain CycleGAN may move or reshape organs, as long as the cycle brings them back (EssNet's point). The
structure term compares MIND descriptors (Heinrich et al. 2012: local self-similarity, the same whatever the
modality) of the input and of its translation, as the structure-constrained CycleGAN of Yang et al. 2018 does.
The shape term (Zhang et al. 2018, cycle- and shape-consistency GAN) asks a liver segmenter, trained on the MRI
side's own labels and then frozen, to find the CT's liver on the translation. With both weights 0 this is the
plain CycleGAN our benchmark compares against. CT and MRI slices come from different phantom anatomies and from
real unpaired scans: no CT is ever paired with an MRI of the same body.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from monai.networks.nets import BasicUNet, PatchDiscriminator
from tqdm import tqdm

from ... import __version__
from ...io.images import read_image
from ...models import store as model_store
from ...synthesis.phantom import aligned_pair
from .translate import CT_WINDOW, MRI_CEILING, PIXEL_MM, build_generator, ct_slices, mri_slices

UNKNOWN = 255  # label value of slices without a liver label (real scans)
BODY_FRACTION = 0.1  # slices with less body than this (the top of the lungs, below the pelvis) teach nothing


@dataclass
class TranslatorConfig:
    features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    crop: int = 128
    batch_size: int = 4
    steps: int = 2000
    minutes: float = 0.0  # wall-clock budget; whichever of steps or minutes ends first
    lr: float = 2e-4
    cycle_weight: float = 10.0
    structure_weight: float = 5.0
    shape_weight: float = 1.0  # liver shape consistency through a frozen MRI liver segmenter (0: off)
    segmenter_steps: int = 300
    phantoms: int = 24  # anatomies: even seeds give CT slices, odd seeds MRI slices
    real_weight: float = 0.1  # share of crops drawn from real scans when there are any
    seed: int = 0


MIND_VARIANCE_FLOOR = 0.1  # in squared [-1, 1] units: below it, flat tissue's noise would dominate the term


def mind(x: torch.Tensor, dilation: int = 2) -> torch.Tensor:
    """2-D MIND: for four neighbour offsets, exp(-patch distance / local variance), per pixel.

    The variance has a floor: with MIND's usual tiny one, independent noise of sd 0.05 changed a CT's
    descriptor 2.7 times more than moving its anatomy by 3 pixels did; with this floor, 2.3 times less."""
    d = dilation
    pad = F.pad(x, (d,) * 4, mode="replicate")
    h, w = x.shape[-2:]
    shifted = [pad[..., d + dy : d + dy + h, d + dx : d + dx + w] for dy, dx in ((0, d), (d, 0), (d, d), (d, -d))]
    dist = torch.cat([F.avg_pool2d((x - s) ** 2, 3, 1, 1) for s in shifted], dim=1)
    variance = dist.mean(dim=1, keepdim=True).clamp_min(MIND_VARIANCE_FLOOR)
    return torch.exp(-dist / variance)


def structure_loss(source: torch.Tensor, translated: torch.Tensor) -> torch.Tensor:
    return (mind(source) - mind(translated)).abs().mean()


def _body_slices(slices: np.ndarray, labels: np.ndarray | None) -> list[np.ndarray]:
    """(image, liver label) pairs of slices with enough body; the label is UNKNOWN where there is none."""
    labels = np.full_like(slices, UNKNOWN) if labels is None else labels.astype(np.float32)
    return [np.stack(p) for p in zip(slices, labels) if (p[0] > -0.9).mean() > BODY_FRACTION]


def _liver_slices(label: sitk.Image, grid: sitk.Image) -> np.ndarray:
    """The liver (tumours included) on a slice grid."""
    return sitk.GetArrayFromImage(sitk.Resample(label, grid, sitk.Transform(), sitk.sitkNearestNeighbor)) > 0


def phantom_slices(cfg: TranslatorConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Unpaired phantom slices with their livers: CT (a random contrast phase) from even seeds, MRI from odd."""
    rng = np.random.default_rng(cfg.seed)
    ct, mri = [], []
    for i in tqdm(range(cfg.phantoms), desc="phantoms", leave=False):
        phase = str(rng.choice(["nc", "arterial", "portal", "delayed"]))
        pair = aligned_pair(1000 + cfg.seed * 100 + i, phase=phase)
        slices, grid = ct_slices(pair["ct"])
        if i % 2 == 0:
            ct += _body_slices(slices, _liver_slices(pair["label"], grid))
        else:
            mri += _body_slices(mri_slices(pair["mri"]), _liver_slices(pair["label"], grid))
    return ct, mri


def real_slices(ct_paths: list[Path], mri_paths: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Real scans' slices, without labels (they take part in the adversarial and cycle terms only)."""
    read = [read_image(p) for p in ct_paths + mri_paths]
    ct = [s for image in read[: len(ct_paths)] for s in _body_slices(ct_slices(image)[0], None)]
    mri = [s for image in read[len(ct_paths) :] for s in _body_slices(mri_slices(image), None)]
    return ct, mri


def random_crops(
    pool: list[np.ndarray], n: int, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` crops of `size`^2 (images, liver labels) from random slices, padded with air when smaller."""
    crops = []
    for _ in range(n):
        s = pool[int(rng.integers(len(pool)))]
        pad = [(0, 0)] + [(0, max(0, size - d)) for d in s.shape[1:]]
        s = np.concatenate([np.pad(s[:1], pad, constant_values=-1.0), np.pad(s[1:], pad, constant_values=0.0)])
        y, x = (int(rng.integers(d - size + 1)) for d in s.shape[1:])
        crops.append(s[:, y : y + size, x : x + size])
    batch = np.stack(crops)
    return torch.from_numpy(batch[:, :1].astype(np.float32)), torch.from_numpy(batch[:, 1].astype(np.int64))


class Sampler:
    """Batches of unpaired CT and MRI crops with their liver labels, a share of them from real scans."""

    def __init__(self, phantom: tuple[list, list], real: tuple[list, list], cfg: TranslatorConfig):
        self.phantom, self.real, self.cfg = phantom, real, cfg
        self.rng = np.random.default_rng(cfg.seed)

    def draw(self, domain: int, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        size = batch_size or self.cfg.batch_size
        n_real = int(self.rng.binomial(size, self.cfg.real_weight)) if self.real[domain] else 0
        parts = [(self.phantom[domain], size - n_real), (self.real[domain], n_real)]
        drawn = [random_crops(pool, n, self.cfg.crop, self.rng) for pool, n in parts if n]
        return torch.cat([d[0] for d in drawn]), torch.cat([d[1] for d in drawn])


def train_segmenter(sampler: Sampler, cfg: TranslatorConfig, device: torch.device) -> torch.nn.Module:
    """A liver segmenter for MRI slices, trained on the MRI side's own labels; frozen, it judges whether a
    translated CT's liver is still where the CT's liver is (the shape-consistency term)."""
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=tuple(cfg.features)).to(device)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in tqdm(range(cfg.segmenter_steps), desc="MRI liver segmenter", leave=False):
        x, y = (t.to(device) for t in sampler.draw(1, 2 * cfg.batch_size))
        loss = F.cross_entropy(net(x), y, ignore_index=UNKNOWN)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval().requires_grad_(False)


def _discriminator() -> torch.nn.Module:
    return PatchDiscriminator(spatial_dims=2, channels=32, in_channels=1, num_layers_d=3, norm="INSTANCE")


def _adversarial(d: torch.nn.Module, x: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss on the discriminator's last output (MONAI returns every layer's features)."""
    score = d(x)[-1]
    return ((score - (1.0 if real else 0.0)) ** 2).mean()


def train_translator(
    cfg: TranslatorConfig, real: tuple[list, list], device: torch.device, checkpoint: Path | None = None
) -> tuple[torch.nn.Module, dict]:
    """Train G (CT->MRI) with F (MRI->CT) and two patch discriminators; returns G and a training log."""
    torch.manual_seed(cfg.seed)
    sampler = Sampler(phantom_slices(cfg), real, cfg)
    segmenter = train_segmenter(sampler, cfg, device) if cfg.shape_weight else None
    g, f = build_generator(list(cfg.features)).to(device), build_generator(list(cfg.features)).to(device)
    d_mri, d_ct = _discriminator().to(device), _discriminator().to(device)
    opt_g = torch.optim.Adam([*g.parameters(), *f.parameters()], cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam([*d_mri.parameters(), *d_ct.parameters()], cfg.lr, betas=(0.5, 0.999))
    start, step, log = time.perf_counter(), 0, {}
    bar = tqdm(total=cfg.steps, desc="ct2mri", leave=False)
    while step < cfg.steps and not (cfg.minutes and time.perf_counter() - start > 60 * cfg.minutes):
        (ct, ct_liver), (mri, _) = (tuple(t.to(device) for t in sampler.draw(d)) for d in (0, 1))
        fake_mri, fake_ct = g(ct), f(mri)
        terms = {
            "adversarial": _adversarial(d_mri, fake_mri, True) + _adversarial(d_ct, fake_ct, True),
            "cycle": (f(fake_mri) - ct).abs().mean() + (g(fake_ct) - mri).abs().mean(),
            "structure": structure_loss(ct, fake_mri) + structure_loss(mri, fake_ct),
        }
        if segmenter is not None and (ct_liver != UNKNOWN).any():
            terms["shape"] = F.cross_entropy(segmenter(fake_mri), ct_liver, ignore_index=UNKNOWN)
        weights = {"cycle": cfg.cycle_weight, "structure": cfg.structure_weight, "shape": cfg.shape_weight}
        opt_g.zero_grad()
        sum(weights.get(k, 1.0) * v for k, v in terms.items()).backward()
        opt_g.step()
        opt_d.zero_grad()
        d_loss = sum(
            _adversarial(d, real_x, True) + _adversarial(d, fake.detach(), False)
            for d, real_x, fake in ((d_mri, mri, fake_mri), (d_ct, ct, fake_ct))
        )
        (0.5 * d_loss).backward()
        opt_d.step()
        step += 1
        log = {**{k: v.item() for k, v in terms.items()}, "d": d_loss.item()}
        bar.update()
        bar.set_postfix({k: f"{v:.3f}" for k, v in log.items()})
        if checkpoint and step % 500 == 0:
            torch.save(g.state_dict(), checkpoint)
    bar.close()
    return g.eval(), {**log, "steps": step, "minutes": round((time.perf_counter() - start) / 60, 1)}


def save_translator(out: Path, g: torch.nn.Module, cfg: TranslatorConfig, log: dict, version: str, data: str) -> Path:
    config = {
        "network": {"features": list(cfg.features)},
        "pixel_mm": PIXEL_MM,
        "ct_window_hu": list(CT_WINDOW),
        "mri_ceiling": MRI_CEILING,
        "train": asdict(cfg),
    }
    metadata = {
        "name": out.name,
        "version": version,
        "kind": model_store.TRANSLATOR,
        "task": "CT to T2-weighted-MRI-like translation, slice by slice",
        "description": f"MONAI BasicUNet in 2-D (features {list(cfg.features)}) applied to every axial slice of a CT "
        f"resampled to {PIXEL_MM} mm pixels; trained as a CycleGAN with a MIND structure term and a liver shape term. "
        "See docs/README.md.",
        "intended_use": "Research only: previews, and an MRI channel for the fusion network when no MRI exists. "
        "Trained on synthetic phantoms and a few real unpaired scans; not an MRI, not for diagnosis.",
        "created": datetime.date.today().isoformat(),
        "liverfusion_version": __version__,
        "training": {**log, "data": data},
        "network_data_format": translator_data_format(),
    }
    card = translator_card(metadata, cfg)
    return model_store.save(out, g, config, metadata, card)


def translator_data_format() -> dict:
    """MONAI's description of the generator's tensors: axial slices in, MRI-like slices out."""
    slices = {"spatial_shape": ["16*n", "16*m"], "dtype": "float32", "value_range": [-1, 1], "is_patch_data": False}
    lo, hi = CT_WINDOW
    return {
        "inputs": {
            "ct": {
                "type": "image",
                "format": "hounsfield",
                "modality": "CT",
                "num_channels": 1,
                **slices,
                "channel_def": {"0": f"CT slice, HU windowed [{lo:g},{hi:g}] -> [-1,1], {PIXEL_MM} mm pixels"},
            }
        },
        "outputs": {
            "mri": {
                "type": "image",
                "format": "magnitude",
                "modality": "MR",
                "num_channels": 1,
                **slices,
                "channel_def": {"0": f"T2-like slice, [-1,1] for 0 to {MRI_CEILING:g} x the body's 99th percentile"},
            }
        },
    }


def translator_card(metadata: dict, cfg: TranslatorConfig) -> str:
    t = metadata["training"]
    return f"""# {metadata["name"]} {metadata["version"]}: CT -> MRI translator (model card)

**Intended use.** {metadata["intended_use"]}

**What it is.** A 2-D U-Net (MONAI BasicUNet, features {list(cfg.features)}) applied to every axial slice of a CT
resampled to {PIXEL_MM} mm pixels; the output goes back onto the CT's grid. Input: HU windowed to {list(CT_WINDOW)}.
Output: a T2-weighted-like image in arbitrary units (1000 = the 99th percentile of a body's signal).

**Training.** Unpaired CycleGAN (least-squares GAN, PatchGAN discriminators, cycle weight {cfg.cycle_weight}) with a
MIND structure term of weight {cfg.structure_weight} between each image and its translation, which stops organs
from moving, and a liver shape-consistency term of weight {cfg.shape_weight} (a liver segmenter trained
{cfg.segmenter_steps} steps on the MRI side's own labels, then frozen, must find the CT's liver on its translation).
{t["steps"]} steps of {cfg.batch_size} crops of {cfg.crop}x{cfg.crop} pixels in {t["minutes"]} min.
Data: {t["data"]}.

**Evaluation.** See `Testing/benchmarks/bench_ct2mri.py` and the figures below.
"""
