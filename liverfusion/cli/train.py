"""`liverfusion train`: split the cases, train, and write a verified model bundle with its card."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import LiverFusionError
from .common import device_option


def add_train(sub) -> None:
    t = sub.add_parser(
        "train",
        parents=[device_option()],
        help="train a model bundle on case folders",
    )
    t.add_argument("--data", nargs="+", required=True, help="folders of case folders (phantom layout)")
    t.add_argument(
        "--mix",
        nargs="+",
        type=float,
        default=None,
        metavar="SHARE",
        help="one share per --data folder: how often its cases are drawn (default: every case alike)",
    )
    t.add_argument(
        "--val", nargs="*", default=[], help="validation case folders (default: 10%% of --data; none with --no-val)"
    )
    t.add_argument(
        "--no-val", action="store_true", help="no validation: keep the last network (cross-validation folds)"
    )
    t.add_argument("--out", required=True, help="model bundle folder to write")
    t.add_argument("--work", default=None, help="checkpoints, cache and log (default: OUT/../.train_<name>)")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--val-every", type=int, default=200)
    t.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget; the schedule fits it (default none)")
    t.add_argument("--workers", type=int, default=0, help="processes that cache cases and make batches")
    t.add_argument("--batch-size", type=int, default=None, help="patches per step (default 8)")
    t.add_argument("--patch", type=int, default=None, help="training patch edge in voxels (default 64; 48 on a CPU)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default 2e-3; lower to fine-tune)")
    t.add_argument("--resume", action="store_true", help="continue from WORK/last.pt")
    t.add_argument("--init", default=None, help="start from a model bundle (name or folder) or a .pt state dict")
    t.add_argument("--version", default="0.1.0")
    t.add_argument("--fill-mri", action="store_true", help="cases without MRI get their CT translated to MRI")
    t.add_argument("--encoder", default="unet", choices=["unet", "kuleuven"], help="kuleuven: KU Leuven's encoder")
    t.add_argument("--pretrained", default=None, help="start --encoder kuleuven from this bundle (pyliverlesionseg)")
    t.add_argument(
        "--architecture",
        default="fusion",
        choices=["fusion", "unet", "attentionunet", "segresnet"],  # baselines.KINDS, without importing torch
        help="fusion: our network; the others: MONAI baselines taking all inputs as channels (benchmarks)",
    )
    t.add_argument(
        "--lesion-crops",
        action="store_true",
        help="each lesion, small or large, is the centre of an equal share of the tumour crops",
    )
    t.add_argument(
        "--no-spatial-augment",
        dest="spatial_augment",
        action="store_false",
        help="intensity only: no rotation, scaling or elastic deformation",
    )
    t.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ..inference.device import pick_device
    from ..models import store as model_store
    from ..training.card import bundle_config, bundle_metadata, model_card
    from ..training.dataset import case_info, find_cases
    from ..training.trainer import TrainConfig, case_shares, train

    roots = [find_cases([Path(d)]) for d in args.data]
    cases = [c for group in roots for c in group]
    empty = [d for d, group in zip(args.data, roots) if not group]
    if empty:  # a folder of folders of cases holds none at its top: its share would vanish unseen
        raise LiverFusionError(f"{empty[0]}: no case folders (expected <role>.nii.gz and label_<role>.nii.gz)")
    if args.mix is not None and len(args.mix) != len(args.data):
        raise LiverFusionError(f"--mix: {len(args.mix)} shares for {len(args.data)} --data folders; give one each")
    val = (
        []
        if args.no_val
        else find_cases([Path(d) for d in args.val])
        if args.val
        else cases[:: max(10, len(cases) // max(1, len(cases) // 10))]
    )
    roots = [[c for c in group if c not in val] for group in roots]
    train_cases = [c for group in roots for c in group]
    out = Path(args.out)
    work = Path(args.work) if args.work else out.parent / f".train_{out.name}"
    cfg = TrainConfig(
        steps=args.steps,
        val_every=args.val_every,
        minutes=args.minutes,
        workers=args.workers,
        fill_mri=args.fill_mri,
        encoder=args.encoder,
        pretrained=args.pretrained,
        architecture=args.architecture,
        lesion_crops=args.lesion_crops,
        spatial_augment=args.spatial_augment,
        **({"batch_size": args.batch_size} if args.batch_size else {}),
        **({"patch": (args.patch,) * 3} if args.patch else {}),
        **({"lr": args.lr} if args.lr else {}),
        **({"patch": (81,) * 3, "roi_size": (81,) * 3} if args.encoder == "kuleuven" else {}),
    )
    if args.pretrained and args.encoder != "kuleuven":
        raise LiverFusionError(f"--pretrained {args.pretrained}: only for --encoder kuleuven")
    device = pick_device(args.device)
    init = _initial_weights(args.init) if args.init else None
    shares = case_shares(roots, args.mix)
    net, best = train(train_cases, val, work, cfg, device, resume=args.resume, init=init, shares=shares)
    real = [c for c in train_cases if case_info(c).get("labelled")]  # labelled exports (`dataset import`, real-train)
    hybrid = sum(not (c / "case.json").is_file() or (c / "label.nii.gz").is_file() for c in train_cases)
    metadata = bundle_metadata(out.name, args.version, len(train_cases), len(val), best, hybrid, real, cfg)
    model_store.save(out, net, bundle_config(cfg), metadata, model_card(metadata, cfg, best))
    print(
        f"model written to {out.resolve()} (validation liver Dice {best.get('liver', float('nan')):.3f}, "
        f"tumor Dice {best.get('tumor', float('nan')):.3f})"
    )
    return 0


def _initial_weights(source: str) -> dict:
    """A state dict from a model bundle (name or folder, checksum verified) or a `.pt` file."""
    import torch

    from ..models import store as model_store

    if source.endswith(".pt") and Path(source).is_file():
        state = torch.load(source, map_location="cpu", weights_only=False)
        return state.get("net", state)
    return model_store.load(source).network.state_dict()
