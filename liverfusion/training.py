"""`liverfusion train`: patch training of the fusion network with MONAI transforms and losses.

Loss is Dice + 0.5 x cross-entropy (Diff4MMLiTS) with deep supervision, plus a malignancy term on
tumour voxels. Modality dropout trains every subset of inputs; random per-channel shifts simulate
residual misregistration. Validation picks the best checkpoint; training resumes from its last one.
"""

from __future__ import annotations

import csv
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.transforms import Compose, RandCropByLabelClassesd, RandFlipd, RandScaleIntensityd, RandShiftIntensityd
from tqdm import tqdm

from .constants import TUMOR
from .dataset import cached
from .fusion_net import FusionNet
from .inference import predict
from .metrics import dice


@dataclass
class TrainConfig:
    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)
    patch: tuple[int, int, int] = (48, 48, 48)
    roi_size: tuple[int, int, int] = (64, 64, 64)
    features: tuple[int, ...] = (8, 16, 32, 64)
    batch_size: int = 2
    steps: int = 1000
    lr: float = 2e-3
    val_every: int = 200
    seed: int = 0


warnings.filterwarnings("ignore", message="no available indices of class")  # tumour-free cases are expected


def augmentations(patch) -> Compose:
    """Three crops in four centred on tumour: lesions are a tiny fraction of the volume, and with fewer
    tumour crops the network learned the liver but no tumour in 1500 steps."""
    keys = ["image", "label"]
    return Compose(
        [
            RandCropByLabelClassesd(keys, "label", patch, ratios=[1, 1, 6], num_classes=3, num_samples=1),
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandFlipd(keys, prob=0.5, spatial_axis=2),
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        ]
    )


def misregister(image: np.ndarray, rng: np.random.Generator, max_vox: int = 1) -> np.ndarray:
    """Shift each channel by up to `max_vox` voxels: alignment is never perfect at inference."""
    out = image.copy()
    for c in range(image.shape[0]):
        out[c] = np.roll(image[c], tuple(rng.integers(-max_vox, max_vox + 1, 3)), axis=(0, 1, 2))
    return out


def modality_dropout(present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the time keep every input, else a random non-empty subset."""
    idx = np.flatnonzero(present)
    if rng.random() < 0.5 or len(idx) == 1:
        return present
    keep = rng.choice(idx, size=int(rng.integers(1, len(idx) + 1)), replace=False)
    out = np.zeros_like(present)
    out[keep] = 1
    return out


def make_batch(cases: list[dict], transform: Compose, rng: np.random.Generator, batch_size: int):
    """A batch from cases of one input set (the encoder runs per present modality)."""
    signature = tuple(cases[int(rng.integers(len(cases)))]["present"])
    group = [c for c in cases if tuple(c["present"]) == signature]
    present = modality_dropout(np.array(signature, np.float32), rng)
    images, labels, malignant = [], [], []
    for _ in range(batch_size):
        case = group[int(rng.integers(len(group)))]
        sample = transform({"image": case["image"], "label": case["label"]})[0]
        images.append(misregister(np.asarray(sample["image"]), rng) * present[:, None, None, None])
        labels.append(np.asarray(sample["label"]))
        malignant.append(float(case["malignant"]))
    return (
        torch.from_numpy(np.stack(images)).float(),
        torch.from_numpy(np.stack(labels)).float(),
        torch.tensor(malignant).float(),
        torch.from_numpy(present)[None].repeat(batch_size, 1),
    )


class Losses(torch.nn.Module):
    """Dice + 0.5 CE with deep supervision, and BCE of the malignancy logits on tumour voxels.

    Dice is computed over the whole batch and without the background class (as nnU-Net does): per-sample
    Dice with background let the network ignore small lesions entirely (tumour Dice 0 after 900 steps).
    """

    def __init__(self):
        super().__init__()
        dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, lambda_ce=0.5, include_background=False, batch=True)
        self.seg = DeepSupervisionLoss(dice_ce, weight_mode="exp")
        self.bce = torch.nn.BCEWithLogitsLoss(reduction="none")

    def forward(self, out: dict, label: torch.Tensor, malignant: torch.Tensor) -> torch.Tensor:
        seg = self.seg([out["seg"]] + out["deep"][::-1], label)
        tumor = (label[:, 0] == TUMOR).float()
        target = malignant.view(-1, 1, 1, 1).expand_as(tumor)
        voxel = self.bce(out["malignancy"][:, 0], target)
        mal = (voxel * tumor).sum() / tumor.sum().clamp(min=1.0)
        return seg + 0.5 * mal


def validate(net: FusionNet, cases: list[dict], cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """Mean liver and tumour Dice of whole-volume inference on the validation cases."""
    net.eval()
    scores = {"liver": [], "tumor": []}
    for case in cases:
        pred = predict(net, case["image"], case["present"], cfg.roi_size, device)
        labels = pred.probabilities.argmax(0)
        truth = case["label"][0]
        scores["liver"].append(dice(labels >= 1, truth >= 1))
        scores["tumor"].append(dice(labels == TUMOR, truth == TUMOR))
    net.train()
    return {k: float(np.mean(v)) for k, v in scores.items()}


def train(
    train_dirs: list[Path],
    val_dirs: list[Path],
    work: Path,
    cfg: TrainConfig,
    device: torch.device,
    resume: bool = False,
    init: dict | None = None,
) -> tuple[FusionNet, dict]:
    """Train; writes `work/last.pt`, `work/best.pt` and `work/log.csv`. Returns the best network and its scores.

    `init` is a state dict to start from (fine-tuning a shipped model, or transfer from another one).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    cache = work / "cache"
    train_cases = [cached(d, cache, cfg.spacing_mm) for d in tqdm(train_dirs, desc="cache", leave=False)]
    val_cases = [cached(d, cache, cfg.spacing_mm) for d in val_dirs]
    net = FusionNet(features=cfg.features).to(device)
    if init is not None:
        net.load_state_dict(init)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.05)
    losses, transform = Losses(), augmentations(cfg.patch)
    step, best = 0, {"score": -1.0}
    if resume and (work / "last.pt").is_file():
        state = torch.load(work / "last.pt", map_location=device, weights_only=False)
        net.load_state_dict(state["net"]), opt.load_state_dict(state["opt"]), sched.load_state_dict(state["sched"])
        step, best = state["step"], state["best"]
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda")
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "log.csv", "a", newline="") as log, tqdm(total=cfg.steps, initial=step, desc="train") as bar:
        writer = csv.writer(log)
        while step < cfg.steps:
            x, y, mal, present = (t.to(device) for t in make_batch(train_cases, transform, rng, cfg.batch_size))
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = losses(net(x, present), y, mal)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            row = [step, f"{loss.item():.4f}", "", "", f"{time.time():.0f}"]
            if val_cases and (step % cfg.val_every == 0 or step == cfg.steps):
                scores = validate(net, val_cases, cfg, device)
                row[2:4] = [f"{scores['liver']:.4f}", f"{scores['tumor']:.4f}"]
                if scores["liver"] + 2 * scores["tumor"] > best["score"]:
                    best = {"score": scores["liver"] + 2 * scores["tumor"], "step": step, **scores}
                    torch.save(net.state_dict(), work / "best.pt")
            writer.writerow(row)
            log.flush()
            if step % 50 == 0 or step == cfg.steps:
                torch.save(
                    {
                        "net": net.state_dict(),
                        "opt": opt.state_dict(),
                        "sched": sched.state_dict(),
                        "step": step,
                        "best": best,
                    },
                    work / "last.pt",
                )
    if (work / "best.pt").is_file():
        net.load_state_dict(torch.load(work / "best.pt", map_location=device, weights_only=True))
    return net, best
