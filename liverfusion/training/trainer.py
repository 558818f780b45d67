"""`liverfusion train`: patch training of the fusion network with MONAI transforms and losses.

Loss is Dice + 0.5 x cross-entropy (Diff4MMLiTS) with deep supervision, plus a malignancy term on
tumour voxels. Modality dropout trains every subset of inputs; random per-channel shifts simulate
residual misregistration; rotation, scaling and elastic deformation vary pose, size and shape. Validation
picks the best checkpoint; training resumes from its last one.
"""

from __future__ import annotations

import collections
import csv
import math
import multiprocessing
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.losses import DeepSupervisionLoss, DiceCELoss
from monai.transforms import (
    Compose,
    Rand3DElasticd,
    RandAffined,
    RandCropByLabelClassesd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandWeightedCropd,
    SpatialPadd,
)
from tqdm import tqdm

from ..constants import BACKGROUND, LIVER, TUMOR
from ..evaluation.metrics import dice
from ..inference.postprocess import lesion_components
from ..inference.sliding_window import predict
from ..models import store as model_store
from ..networks.baselines import BaselineNet
from ..networks.fusion import FusionNet
from .dataset import cache_all


@dataclass
class TrainConfig:
    spacing_mm: tuple[float, float, float] = (3.0, 3.0, 3.0)
    patch: tuple[int, int, int] = (64, 64, 64)
    roi_size: tuple[int, int, int] = (64, 64, 64)
    features: tuple[int, ...] = (12, 24, 48, 96)
    batch_size: int = 8
    steps: int = 1000
    lr: float = 2e-3
    val_every: int = 200
    seed: int = 0
    minutes: float = 0.0  # a wall-clock budget: the schedule anneals over whichever of steps or minutes ends first
    workers: int = 0  # processes preparing batches (0: the training process itself)
    fill_mri: bool = False  # cases without MRI get their CT translated to MRI in the MRI channel
    encoder: str = "unet"  # or "kuleuven": KU Leuven's liver-network encoder (patches must divide by 27)
    pretrained: str | None = None  # a bundle of their weights to start that encoder from (transfer learning)
    architecture: str = "fusion"  # or a MONAI baseline of `baselines.KINDS` (issue 5's benchmark)
    lesion_crops: bool = False  # tumour crops centred on a lesion drawn uniformly, not on a tumour voxel
    spatial_augment: bool = True  # rotation, scaling and elastic deformation (False: intensity only)


warnings.filterwarnings("ignore", message="no available indices of class")  # tumour-free cases are expected


CLASS_RATIOS = (1, 1, 6)  # crop centres in background, liver, tumour


ROTATE_RAD = math.radians(15)  # patients lie square in the scanner: a few degrees either way, not nnU-Net's 30
SCALE = 0.15  # object sizes x 0.85-1.15: a lesion of one size is also seen a little smaller and larger
AFFINE_PROB, ELASTIC_PROB = 0.3, 0.2
ELASTIC_SIGMA, ELASTIC_MAGNITUDE = (5.0, 7.0), (100.0, 200.0)  # 1-2 voxels (3-6 mm) rms displacement, 3-6 at most
CONTEXT = 1.25  # crops this much wider than the patch, so that a rotated patch's corners hold image, not padding


def augmentations(patch, lesion_crops: bool = False, spatial: bool = True) -> Compose:
    """Three crops in four centred on tumour: lesions are a tiny fraction of the volume, and with fewer
    tumour crops the network learned the liver but no tumour in 1500 steps. With `lesion_crops` each lesion gets
    an equal share of the tumour crops (weights of `crop_weights`), where a tumour voxel drawn uniformly lands
    in the largest lesion most of the time and a 5 mm lesion almost never.

    With `spatial`, a wider crop is rotated and scaled about its centre (where the crop's centre voxel stays) into
    the patch, and some patches are deformed elastically: livers and lesions vary in pose, size and shape far
    more than the phantoms and the few real livers show. Intensity scale and shift always. No flips: the model grid
    is always LPS, so the liver is always on the patient's right and the spleen on the left; mirrored patches (0.3.1
    and before) taught the network that a spleen may be a liver, and it called one so on a real CT."""
    keys = ["image", "label"]
    crop_size = tuple(math.ceil(p * CONTEXT) for p in patch) if spatial else tuple(patch)
    crop = (
        RandWeightedCropd(keys, "weight", crop_size, num_samples=1)
        if lesion_crops
        else RandCropByLabelClassesd(keys, "label", crop_size, ratios=list(CLASS_RATIOS), num_classes=3, num_samples=1)
    )
    pads = [SpatialPadd(keys, crop_size, mode="edge")]  # short scans (real volumes of 20-30 slices), as at inference
    if lesion_crops:
        pads.append(SpatialPadd("weight", crop_size, mode="constant"))  # no crop centre in the padding
    resample = {"mode": ("bilinear", "nearest"), "padding_mode": "border"}
    spatial_steps = (
        [
            # always run: when it does not rotate or scale, it still crops the patch out of the wider crop
            RandAffined(keys, patch, AFFINE_PROB, rotate_range=(ROTATE_RAD,) * 3, scale_range=(SCALE,) * 3, **resample),
            Rand3DElasticd(keys, ELASTIC_SIGMA, ELASTIC_MAGNITUDE, prob=ELASTIC_PROB, **resample),
        ]
        if spatial
        else []
    )
    return Compose(
        [
            *pads,
            crop,
            *spatial_steps,
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandShiftIntensityd("image", offsets=0.1, prob=0.5),
        ]
    )


def crop_weights(label: np.ndarray) -> np.ndarray:
    """A crop-centre weight per voxel of a [1, ...] label: background, liver and tumour get CLASS_RATIOS of the
    total, and each lesion (`postprocess.lesion_components`, as the product counts lesions) an equal part of the
    tumour's share."""
    weights = np.zeros(label.shape, np.float32)
    for cls, ratio in ((BACKGROUND, CLASS_RATIOS[0]), (LIVER, CLASS_RATIOS[1])):
        mask = label == cls
        weights[mask] = ratio / max(int(mask.sum()), 1)
    lesions = sitk.GetArrayFromImage(lesion_components(sitk.GetImageFromArray((label[0] == TUMOR).astype(np.uint8))))
    n = int(lesions.max())
    if n:
        sizes = np.bincount(lesions.ravel())
        inside = lesions > 0
        weights[0][inside] = CLASS_RATIOS[2] / (n * sizes[lesions[inside]])
    return weights


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
    """A batch from cases of one input set (the encoder runs per present modality), as numpy arrays; cases with
    a `weight` map (`crop_weights`) pass it to the transform. Cases are drawn in proportion to their `share`
    (`case_shares`: real cases weigh more than their number), the batch's input set from the first draw."""
    shares = np.array([c.get("share", 1.0) for c in cases], np.float64)
    signature = tuple(cases[int(rng.choice(len(cases), p=shares / shares.sum()))]["present"])
    group = [i for i, c in enumerate(cases) if tuple(c["present"]) == signature]
    present = modality_dropout(np.array(signature, np.float32), rng)
    images, labels, malignant = [], [], []
    for i in rng.choice(group, size=batch_size, p=shares[group] / shares[group].sum()):
        case = cases[int(i)]
        sample = transform({k: case[k] for k in ("image", "label", "weight") if k in case})[0]
        images.append(misregister(np.asarray(sample["image"]), rng) * present[:, None, None, None])
        labels.append(np.asarray(sample["label"]))
        malignant.append(float(case["malignant"]))
    return np.stack(images).astype(np.float32), np.stack(labels), np.array(malignant, np.float32), present


def case_shares(roots: list[list], mix: list[float] | None) -> list[float]:
    """A sampling share per case of each group of `roots` (one group per `--data` folder): the group's part of
    `mix` split evenly between its cases; without `mix` every case weighs the same. Four real cases beside 200
    phantoms would otherwise be drawn in 2% of batches."""
    if mix is None:
        return [1.0 for group in roots for _ in group]
    return [part / len(group) for part, group in zip(mix, roots) for _ in group]


_POOL_STATE: dict = {}


def _batch_for_step(step: int):
    """The batch of one step, drawn from a generator seeded by (seed, step) so that it does not depend on
    which process makes it: with or without workers, a run sees the same batches."""
    cases, cfg = _POOL_STATE["cases"], _POOL_STATE["cfg"]
    rng = np.random.default_rng((cfg.seed, step))
    transform = augmentations(cfg.patch, cfg.lesion_crops, cfg.spatial_augment)
    transform.set_random_state(seed=int(rng.integers(2**31)))
    return make_batch(cases, transform, rng, cfg.batch_size)


def batches(cases: list[dict], cfg: TrainConfig, start: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Batches for steps start, start+1, ...; made ahead by `cfg.workers` forked processes when asked, at most
    two per worker in flight (fork before CUDA work; results travel through pipes, not the shared memory that
    small VMs lack)."""
    _POOL_STATE.update(cases=cases, cfg=cfg)
    fork = multiprocessing.get_context("fork")
    # one thread per worker: forked workers inherit the parent's thread pool, and N workers x N threads spin-waiting
    # made the first GPU run 0.85 s per step
    pool = fork.Pool(cfg.workers, initializer=torch.set_num_threads, initargs=(1,)) if cfg.workers > 0 else None
    ahead: collections.deque = collections.deque()
    try:
        for step in range(start, cfg.steps):
            if pool is None:
                image, label, malignant, present = _batch_for_step(step)
            else:
                while len(ahead) < 2 * cfg.workers and step + len(ahead) < cfg.steps:
                    ahead.append(pool.apply_async(_batch_for_step, (step + len(ahead),)))
                image, label, malignant, present = ahead.popleft().get()
            yield (
                torch.from_numpy(image),
                torch.from_numpy(label).float(),
                torch.from_numpy(malignant),
                torch.from_numpy(present)[None].repeat(image.shape[0], 1),
            )
    finally:
        if pool is not None:
            pool.terminate()


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
        known = ~torch.isnan(malignant)  # real cases whose lesions' type is not recorded rate nothing
        tumor = (label[:, 0] == TUMOR).float() * known.view(-1, 1, 1, 1)
        target = torch.nan_to_num(malignant).view(-1, 1, 1, 1).expand_as(tumor)
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


def learning_rate_factor(step: int, elapsed_s: float, cfg: TrainConfig) -> float:
    """Linear warm-up over 5% then cosine decay, over the steps or the time budget, whichever runs out first."""
    progress = step / cfg.steps
    if cfg.minutes > 0:
        progress = max(progress, elapsed_s / (60 * cfg.minutes))
    progress = min(progress, 1.0)
    if progress < 0.05:
        return 0.05 + 0.95 * progress / 0.05
    return 0.5 * (1 + math.cos(math.pi * (progress - 0.05) / 0.95))


def initial_network(cfg: TrainConfig) -> torch.nn.Module:
    """The network a run starts from: seeded, so that a transfer run and a run from scratch differ only in
    the encoder's starting weights."""
    torch.manual_seed(cfg.seed)
    if cfg.architecture != "fusion":
        return BaselineNet(cfg.architecture)
    net = FusionNet(features=cfg.features, encoder=cfg.encoder)
    if cfg.pretrained:
        net.load_kuleuven_encoder(model_store.load(cfg.pretrained).network)
    return net


def train(
    train_dirs: list[Path],
    val_dirs: list[Path],
    work: Path,
    cfg: TrainConfig,
    device: torch.device,
    resume: bool = False,
    init: dict | None = None,
    shares: list[float] | None = None,
) -> tuple[FusionNet, dict]:
    """Train; writes `work/last.pt`, `work/best.pt` and `work/log.csv`. Returns the best network and its scores
    (the last network where there are no validation cases).

    `init` is a state dict to start from (fine-tuning a shipped model, or transfer from another one); `shares`
    weighs how often each training case is drawn (`case_shares`).
    """
    torch.manual_seed(cfg.seed)
    torch.backends.cudnn.benchmark = True  # fixed patch size: let cuDNN pick its fastest 3-D convolutions
    train_cases = cache_all(train_dirs, work / "cache", cfg.spacing_mm, max(1, cfg.workers), cfg.fill_mri)
    val_cases = cache_all(val_dirs, work / "cache", cfg.spacing_mm, max(1, cfg.workers), cfg.fill_mri)
    for case, share in zip(train_cases, shares or []):
        case["share"] = share
    if cfg.lesion_crops:  # once, before the batch workers fork
        for case in train_cases:
            case["weight"] = crop_weights(case["label"])
    net = initial_network(cfg).to(device)
    if init is not None:
        net.load_state_dict(init)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    state = {"step": 0, "elapsed_s": 0.0, "best": {"score": -1.0}}
    if resume and (work / "last.pt").is_file():
        saved = torch.load(work / "last.pt", map_location=device, weights_only=False)
        net.load_state_dict(saved.pop("net")), opt.load_state_dict(saved.pop("opt"))
        state = saved
    losses, scaler = Losses(), torch.amp.GradScaler(enabled=device.type == "cuda")
    work.mkdir(parents=True, exist_ok=True)
    start = time.time() - state["elapsed_s"]
    bar = tqdm(total=cfg.steps, initial=state["step"], desc="train")
    with open(work / "log.csv", "a", newline="", encoding="utf-8") as log, bar:
        for batch in batches(train_cases, cfg, state["step"]):
            x, y, mal, present = (t.to(device, non_blocking=True) for t in batch)
            state["elapsed_s"] = time.time() - start
            for group in opt.param_groups:
                group["lr"] = cfg.lr * learning_rate_factor(state["step"], state["elapsed_s"], cfg)
            with torch.autocast(device.type, enabled=device.type == "cuda"):
                loss = losses(net(x, present), y, mal)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            state["step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            out_of_time = cfg.minutes > 0 and time.time() - start > 60 * cfg.minutes
            last = out_of_time or state["step"] == cfg.steps
            row = [state["step"], f"{loss.item():.4f}", "", "", f"{time.time():.0f}"]
            if val_cases and (state["step"] % cfg.val_every == 0 or last):
                row[2:4] = _validate_and_keep(net, val_cases, cfg, device, state, work)
            csv.writer(log).writerow(row)
            log.flush()
            if state["step"] % 50 == 0 or last:
                torch.save({"net": net.state_dict(), "opt": opt.state_dict(), **state}, work / "last.pt")
            if last:
                break
    if (work / "best.pt").is_file():
        net.load_state_dict(torch.load(work / "best.pt", map_location=device, weights_only=True))
    return net, state["best"]


def _validate_and_keep(net, val_cases, cfg, device, state: dict, work: Path) -> list[str]:
    """Validate; save `best.pt` when liver + 2 x tumour Dice improves (the tumour is the hard part)."""
    scores = validate(net, val_cases, cfg, device)
    score = scores["liver"] + 2 * scores["tumor"]
    if score > state["best"]["score"]:
        state["best"] = {"score": score, "step": state["step"], **scores}
        torch.save(net.state_dict(), work / "best.pt")
    return [f"{scores['liver']:.4f}", f"{scores['tumor']:.4f}"]
