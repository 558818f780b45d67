"""`liverfusion evaluate`: a segmentation against its truth, or a model on a folder of cases."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import LiverFusionError
from .common import align_option, device_option, model_option, print_warnings


def add_evaluate(sub) -> None:
    e = sub.add_parser(
        "evaluate",
        parents=[model_option(), align_option(), device_option()],
        help="metrics of a segmentation, or of a model on a folder of cases",
    )
    e.add_argument("--pred", help="a segmentation to score against --truth")
    e.add_argument("--truth")
    e.add_argument("--dataset", help="case folders with ground truth (phantom layout): run --model on each")
    e.add_argument("--out", help="with --dataset: folder for cases.csv, cases.json and summary.json")
    e.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    if args.dataset:
        return _evaluate_dataset(args)
    import SimpleITK as sitk

    from ..evaluation.metrics import apart_warnings, evaluate
    from ..io.images import read_image
    from ..io.intensity_checks import require_label_map

    if not (args.pred and args.truth):
        raise LiverFusionError("evaluate: give --pred and --truth, or --dataset and --out")
    pred, truth = read_image(args.pred), read_image(args.truth)
    for image, path in ((pred, args.pred), (truth, args.truth)):
        require_label_map(image, path)
    warnings = apart_warnings(pred, truth, (args.pred, args.truth))
    metrics = evaluate(sitk.Cast(pred, sitk.sitkUInt8), sitk.Cast(truth, sitk.sitkUInt8))
    print(json.dumps({**metrics, "warnings": warnings}, indent=2))
    print_warnings(warnings, sys.stderr)  # stdout is the JSON
    return 0


def _evaluate_dataset(args) -> int:
    from ..evaluation.held_out import evaluate_dataset
    from ..inference.postprocess import rounded
    from ..progress import terminal_bar

    if not args.out:
        raise LiverFusionError(f"--dataset {args.dataset}: --out is required (where the tables go)")
    if not Path(args.dataset).is_dir():
        raise LiverFusionError(f"--dataset {args.dataset}: no such folder")
    with terminal_bar() as report:
        summary = evaluate_dataset(Path(args.dataset), args.model, args.align, args.device, Path(args.out), report)
    print(json.dumps({k: rounded(v) if isinstance(v, float) else v for k, v in summary.items()}, indent=2))
    print(f"per-case tables: {Path(args.out).resolve() / 'cases.csv'}")
    return 0
