"""`liverfusion segment` (one case) and `liverfusion batch` (a cohort from a CSV)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import LiverFusionError
from ..inference.postprocess import shown
from .common import align_option, device_option, model_option


def add_segment(sub) -> None:
    s = sub.add_parser(
        "segment",
        parents=[align_option(), device_option(), model_option()],
        help="segment liver and tumours, rate malignancy",
    )
    s.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="ROLE=PATH",
        help="image per role (ct, mri, nc, arterial, portal, delayed): NIfTI/NRRD/MHA file, DICOM folder, or "
        "FOLDER@NUMBER for one series of a folder that holds several",
    )
    s.add_argument("--out", required=True)
    s.add_argument(
        "--fill-mri", action="store_true", help="without an MRI, feed the network the CT translated to MRI (ct2mri)"
    )
    s.add_argument(
        "--reference",
        default=None,
        metavar="ROLE",
        help="the input whose grid the outputs take (default: portal/ct, "
        "else the first input); say the phase you will read or edit on",
    )
    s.set_defaults(func=run_segment)


def run_segment(args) -> int:
    from ..inference.pipeline import segment
    from ..io.roles import parse_inputs
    from ..progress import terminal_bar

    inputs = parse_inputs(args.input)
    with terminal_bar() as report:
        summary = segment(inputs, args.out, args.align, args.device, args.model, report, args.fill_mri, args.reference)
    print(format_summary(summary, args.out))
    return 0


def format_summary(summary: dict, out: str | Path) -> str:
    """The few lines a user reads after a run."""
    lesions = summary["lesions"]
    lines = [
        f"malignancy probability: {shown(summary['malignancy_probability'])} "
        f"(model {summary['model']['name']} {summary['model']['version']}; research use only, not for diagnosis)",
        f"liver volume: {summary['liver_volume_ml']:.0f} ml; lesions: {len(lesions)}",
    ]
    lines += [
        f"  lesion {les['id']}: {les['volume_ml']:.2f} ml, {les['max_diameter_mm']:.0f} mm, "
        f"p(malignant) {shown(les['malignancy_probability'])}"
        for les in lesions
    ]
    lines.append(
        "timings (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in summary["timings_s"].items())
        + f" on {summary['device']}"
    )
    lines += [f"warning: {w}" for w in summary["warnings"]]
    lines.append(f"outputs: {Path(out).resolve()}")
    return "\n".join(lines)


def add_batch(sub) -> None:
    b = sub.add_parser(
        "batch",
        parents=[align_option(), device_option(), model_option(help=None)],
        help="segment a cohort from a CSV, resumable, serially or on a Dask cluster",
    )
    b.add_argument("--cases", required=True, help="CSV: case_id and one column per role (ct, mri, nc, ...)")
    b.add_argument("--out", required=True, help="DIR/<case_id>/ per case, DIR/summary.csv")
    b.add_argument("--workers", type=int, default=1, help="processes on a local Dask cluster (1: serial)")
    b.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (shared --out needed)")
    b.add_argument("--threads", type=int, default=0, help="torch threads per case (default: cores / workers)")
    b.add_argument("--fill-mri", action="store_true", help="cases without MRI: the CT translated to MRI fills it")
    b.set_defaults(func=run_batch)


def run_batch(args) -> int:
    import os

    from ..inference.cohort import Options, run_cohort

    if args.workers < 1:
        raise LiverFusionError(f"--workers {args.workers}: expected 1 or more processes")
    if args.threads < 0:
        raise LiverFusionError(f"--threads {args.threads}: expected 0 (cores / workers) or more")
    workers = args.workers
    threads = args.threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0)
    options = Options(args.align, args.device, args.model, threads, args.fill_mri)
    rows = run_cohort(args.cases, args.out, options, workers, args.scheduler)
    failed = [r["case_id"] for r in rows if r["status"] != "done"]
    print(f"{len(rows) - len(failed)} of {len(rows)} case(s) done; summary: {Path(args.out).resolve() / 'summary.csv'}")
    for row in rows:
        if row["status"] != "done":
            print(f"error: case {row['case_id']}: {row['error']}", file=sys.stderr)
    return 1 if failed else 0
