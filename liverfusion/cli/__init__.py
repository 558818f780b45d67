"""`liverfusion`: the command line for machines without Slicer.

Errors a user can cause print one line, `error: ...`, and exit 2; outputs appear only when complete.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..constants import ROLES
from ..errors import LiverFusionError, OverlapError
from ..inference.postprocess import shown

if TYPE_CHECKING:  # for annotations; each command imports what it uses
    import SimpleITK as sitk

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")


def _segment(args) -> int:
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


def _register(args) -> int:
    import time

    from ..io.images import read_image, require_writable, staged_output, write_image, write_text, write_transform
    from ..io.intensity_checks import checked_image
    from ..registration.align import register, resample_to

    require_writable(args.out)
    fixed, fixed_notes = checked_image(read_image(args.fixed), args.fixed_role, args.fixed)
    moving, moving_notes = checked_image(read_image(args.moving), args.moving_role, args.moving)
    label = read_image(args.moving_label, label=True) if args.moving_label else None
    focus = _mask(args.focus, "focus") if args.focus else None
    try:
        reg = register(fixed, moving, args.mode, args.fixed_role, args.moving_role, focus)
    except OverlapError as exc:
        raise OverlapError(f"{args.moving} onto {args.fixed}: {exc}") from None
    with staged_output(args.out) as stage:
        write_image(resample_to(moving, fixed, reg.transform), stage / "aligned.nii.gz")
        write_transform(reg.transform, stage / "transform.h5")
        if label is not None:
            write_image(resample_to(label, fixed, reg.transform, label=True), stage / "aligned_label.nii.gz")
        result = {
            "mode": reg.mode,
            "metric": "Mattes mutual information (lower is better)",
            "metric_before": reg.metric_before,
            "metric_after": reg.metric_after,
            "seconds": round(reg.seconds, 2),
            "jacobian_range": list(reg.jacobian_range),
            "warnings": fixed_notes + moving_notes + reg.warnings,
            "finished": time.time(),
        }
        write_text(json.dumps(result, indent=2) + "\n", stage / "result.json")
    print(
        f"{reg.mode} alignment: MI {reg.metric_before:.3f} -> {reg.metric_after:.3f} in {reg.seconds:.1f} s; "
        f"outputs: {Path(args.out).resolve()}"
    )
    return 0


def _phantom(args) -> int:
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from ..synthesis.phantom import make_case, single_threaded

    jobs = max(1, min(args.jobs or os.cpu_count() or 1, args.cases))
    folders = [Path(args.out) / f"case_{i:03d}" for i in range(args.cases)]
    # one case per process and one thread per process: the same seed gives the same bytes anyway
    with ProcessPoolExecutor(jobs, initializer=single_threaded if jobs > 1 else None) as pool:
        futures = [
            pool.submit(make_case, folder, args.seed + i, args.protocol, args.small) for i, folder in enumerate(folders)
        ]
        for future in tqdm(as_completed(futures), total=len(futures), desc="phantom", disable=not sys.stderr.isatty()):
            future.result()
    print(f"{args.cases} {args.protocol} case(s) in {Path(args.out).resolve()} ({jobs} processes)")
    return 0


def _mask(path: str, what: str, value: int | None = None) -> sitk.Image:
    """A mask file as a binary image (voxels equal to `value`, or any label); an empty one is an error naming it,
    not a failure further on that blames something else."""
    import SimpleITK as sitk

    from ..io.images import read_image

    labels = read_image(path, label=True)
    mask = labels == value if value is not None else labels > 0
    if not sitk.GetArrayViewFromImage(mask).any():
        raise LiverFusionError(f"{path}: the {what} mask is empty")
    return mask


def _insertion_liver(args, images: dict, paths: dict) -> tuple:
    """The liver mask given with --liver, else the one KU Leuven's liver network finds on the first input (real
    scans seldom come with a liver mask); the real tumours to keep (`--tumor-label` of that map, else None); and
    where the liver came from."""
    import SimpleITK as sitk

    from ..io.images import read_image

    if args.liver:
        tumors = read_image(args.liver, label=True) == args.tumor_label if args.tumor_label is not None else None
        return _mask(args.liver, "liver", args.liver_label), tumors, str(Path(args.liver).resolve())
    from ..apps.kuleuven.predict import liver_only
    from ..inference.device import pick_device
    from ..models.store import load

    role, device = next(iter(images)), pick_device("auto")
    bundle = load("pyliverlesionseg", device)
    liver = liver_only(images[role], role, bundle.network, device)
    if not sitk.GetArrayViewFromImage(liver).any():
        raise LiverFusionError(f"{paths[role]}: {bundle.name} found no liver; pass the liver mask with --liver")
    return liver, None, f"{bundle.name} {bundle.version} liver network on {role} (liver.nii.gz)"


def _synth_tumor(args) -> int:
    from ..io.images import read_image, require_writable, staged_output, write_image, write_text
    from ..io.intensity_checks import checked
    from ..io.roles import parse_inputs
    from ..synthesis.tumor import insert

    require_writable(args.out)
    paths = parse_inputs(args.input)
    images, warnings = checked({role: read_image(path) for role, path in paths.items()}, paths)
    center = _center(args.center_lps) if args.center_lps else None
    liver, tumors, liver_source = _insertion_liver(args, images, paths)
    done = insert(images, liver, args.type, center, args.diameter_mm, args.seed, tumors)
    with staged_output(args.out) as stage:
        for role, image in done.images.items():
            write_image(image, stage / f"{role}.nii.gz")
        write_image(done.label, stage / "label.nii.gz")
        if not args.liver:
            write_image(liver, stage / "liver.nii.gz")
        info = {
            "synthetic_lesion": {
                "type": done.kind,
                "center_lps_mm": [round(v, 2) for v in done.center_lps],
                "diameter_mm": round(done.diameter_mm, 1),
                "seed": args.seed,
            },
            "malignant": done.malignant,
            "liver": liver_source,
            "inputs": {role: str(Path(path).resolve()) for role, path in paths.items()},
            "warnings": warnings,
        }
        write_text(json.dumps(info, indent=2) + "\n", stage / "case.json")
    print(
        f"{done.kind} of {done.diameter_mm:.0f} mm at LPS "
        + ",".join(f"{v:.1f}" for v in done.center_lps)
        + f" in {', '.join(done.images)}; outputs: {Path(args.out).resolve()}"
    )
    _print_warnings(warnings)
    return 0


def _print_warnings(warnings: list[str], stream: TextIO | None = None) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=stream)


def _center(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise LiverFusionError(f"--center-lps {text}: expected three numbers x,y,z in mm")
    return values


def _batch(args) -> int:
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


def _evaluate(args) -> int:
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
    _print_warnings(warnings, sys.stderr)  # stdout is the JSON
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


def _train(args) -> int:
    from .train import run_training

    return run_training(args)


def _ct2mri(args) -> int:
    from ..apps.ct2mri.translate import load_translator, translate
    from ..inference.device import pick_device
    from ..io.images import read_image, require_writable, write_image
    from ..io.intensity_checks import checked_image
    from ..progress import terminal_bar

    require_writable(args.out, folder=False)
    if not args.out.endswith(IMAGE_SUFFIXES):
        raise LiverFusionError(f"{args.out}: output must end with one of {', '.join(IMAGE_SUFFIXES)}")
    ct, warnings = checked_image(read_image(args.input), "ct", args.input)
    device = pick_device(args.device)
    bundle = load_translator(args.model, device)
    with terminal_bar() as report:
        mri = translate(ct, bundle, device, report)
    write_image(mri, args.out)  # atomic: a temporary name, then a rename
    print(f"MRI-like image from {args.input} ({bundle.name} {bundle.version}, not an MRI): {Path(args.out).resolve()}")
    _print_warnings(warnings)
    return 0


def _train_ct2mri(args) -> int:
    from ..apps.ct2mri.training import TranslatorConfig, real_slices, save_translator, train_translator
    from ..inference.device import pick_device

    cfg = TranslatorConfig(
        steps=args.steps,
        minutes=args.minutes,
        structure_weight=args.structure_weight,
        shape_weight=args.shape_weight,
        phantoms=args.phantoms,
    )
    real = real_slices([Path(p) for p in args.real_ct], [Path(p) for p in args.real_mri])
    out = Path(args.out)
    g, log = train_translator(cfg, real, pick_device(args.device), out.parent / f".{out.name}_last.pt")
    data = f"{cfg.phantoms} phantom anatomies (half CT, half MRI)"
    if args.real_ct or args.real_mri:
        data += f"; real unpaired scans: {', '.join(Path(p).name for p in args.real_ct + args.real_mri)}"
    save_translator(out, g, cfg, log, args.version, data)
    print(f"translator written to {out.resolve()} ({log['steps']} steps in {log['minutes']} min)")
    return 0


def _import_weights(args) -> int:
    from ..apps.kuleuven.import_weights import CACHE, import_weights

    wheel = Path(args.wheel) if args.wheel else None
    weights = import_weights(args.source, wheel, Path(args.cache or CACHE), args.force)
    print(f"{args.source}: PyTorch weights ready at {weights} (use --model {args.source})")
    return 0


def _dataset_import(args) -> int:
    from ..training.dataset_import import MASK_KINDS, ImportOptions, import_case, parse_pairs, parse_segment_map

    options = ImportOptions(
        dicom=[Path(d) for d in args.dicom],
        seg=[Path(s) for s in args.seg],
        masks={k: Path(v) for k, v in parse_pairs(args.mask, "--mask", MASK_KINDS).items()},
        labelled=args.labelled,
        roles=parse_pairs(args.role, "--role"),
        segment_map=parse_segment_map(args.segment_map),
        diagnosis=args.diagnosis,
        malignant={"yes": True, "no": False}.get(args.malignant),
        source=args.source,
    )
    info = import_case(options, args.out)
    for role, series in info["provenance"]["series"].items():
        print(f"{role}: series {series['series_number']} '{series['description']}' ({series['role_from']})")
    volumes = info["label_volumes_ml"]
    print(
        f"labels on {info['labelled']}: liver {volumes['liver']:.0f} ml, tumour {volumes['tumor']:.1f} ml; "
        f"case: {Path(args.out).resolve()}"
    )
    _print_warnings(info["warnings"])
    return 0


def _add_dataset(sub) -> None:
    d = sub.add_parser("dataset", help="training data from what a hospital exports")
    dsub = d.add_subparsers(dest="dataset_command", required=True)
    di = dsub.add_parser(
        "import",
        help="DICOM series plus DICOM SEG or masks -> one training case folder",
        description="Write OUT/<role>.nii.gz per phase, OUT/label_<role>.nii.gz (0/1/2) on the labelled phase and "
        "OUT/case.json with provenance. Roles come from each series' description (MR: mri), else from acquisition "
        "time order; --role overrides. Nothing is written unless the whole export checks out.",
    )
    di.add_argument(
        "--dicom", action="append", required=True, metavar="FOLDER", help="DICOM folder (a study or one series)"
    )
    di.add_argument("--out", required=True, help="case folder to write")
    di.add_argument("--seg", action="append", default=[], metavar="FILE", help="DICOM SEG (default: those in --dicom)")
    di.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="KIND=PATH",
        help="instead of a SEG: liver=PATH and tumor=PATH binary masks, or labels=PATH (0/1/2), NIfTI/NRRD on the "
        "labelled series' grid",
    )
    di.add_argument("--labelled", choices=ROLES, help="the role the masks lie on (default: the only series)")
    di.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="SERIES=ROLE",
        help="series number (or UID) -> role, or none to leave it out; overrides description and time",
    )
    di.add_argument(
        "--segment-map",
        action="append",
        default=[],
        metavar="N=CLASS,...",
        help="SEG segment number -> liver, tumor or none, where its code and label do not say",
    )
    di.add_argument("--diagnosis", default=None, help="e.g. HCC (case.json)")
    di.add_argument("--malignant", default="unknown", choices=["yes", "no", "unknown"], help="case.json's malignant")
    di.add_argument("--source", default=None, help="where the export came from, its licence (case.json)")
    di.set_defaults(func=_dataset_import)


def _view(args) -> int:
    from ..reports.viewer import view

    view(args.result, args.port, not args.no_browser)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liverfusion", description="Multimodal liver tumour segmentation.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("segment", help="segment liver and tumours, rate malignancy")
    s.add_argument(
        "--input",
        action="append",
        required=True,
        metavar="ROLE=PATH",
        help="image per role (ct, mri, nc, arterial, portal, delayed): NIfTI/NRRD/MHA file, DICOM folder, or "
        "FOLDER@NUMBER for one series of a folder that holds several",
    )
    s.add_argument("--out", required=True)
    s.add_argument("--align", default="deformable", choices=["none", "rigid", "deformable"])
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--model", default=None, help="model name under Resources/Models or a bundle folder")
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
    s.set_defaults(func=_segment)
    r = sub.add_parser("register", help="align a moving image to a fixed one")
    r.add_argument("--fixed", required=True)
    r.add_argument("--moving", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--mode", default="rigid", choices=["none", "rigid", "deformable"])
    r.add_argument("--moving-label")
    r.add_argument("--focus", help="mask on the fixed image (e.g. a dilated liver) that the fit concentrates on")
    r.add_argument("--fixed-role", default="ct", choices=ROLES)
    r.add_argument("--moving-role", default="mri", choices=ROLES)
    r.set_defaults(func=_register)
    st = sub.add_parser("synth-tumor", help="insert a synthetic lesion into a liver (one image or aligned images)")
    st.add_argument("--input", action="append", required=True, metavar="ROLE=PATH", help="image per role, aligned")
    st.add_argument(
        "--liver", default=None, help="liver mask (any grid in the images' space); default: found by pyliverlesionseg"
    )
    st.add_argument("--liver-label", type=int, default=None, help="the liver's value in a multi-organ map (e.g. 5)")
    st.add_argument(
        "--tumor-label",
        type=int,
        default=None,
        help="the real tumours' value in that map (e.g. 2 in our labels): they stay tumour in label.nii.gz",
    )
    st.add_argument("--out", required=True)
    st.add_argument("--type", default=None, help="cyst, hemangioma, fnh, hcc, metastasis, cholangiocarcinoma")
    st.add_argument("--center-lps", default=None, metavar="X,Y,Z", help="lesion centre in LPS mm (default random)")
    st.add_argument("--diameter-mm", type=float, default=None, help="5 to 80 (default random 10 to 40)")
    st.add_argument("--seed", type=int, default=0)
    st.set_defaults(func=_synth_tumor)
    ph = sub.add_parser("phantom", help="generate synthetic cases with ground truth")
    ph.add_argument("--out", required=True)
    ph.add_argument("--cases", type=int, default=1)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--protocol", default="ct-mri", choices=["ct-mri", "multiphase"])
    ph.add_argument("--jobs", type=int, default=None, help="processes (default: every core)")
    ph.add_argument("--small", action="store_true", help="coarser voxels, for quick tests")
    ph.set_defaults(func=_phantom)
    e = sub.add_parser("evaluate", help="metrics of a segmentation, or of a model on a folder of cases")
    e.add_argument("--pred", help="a segmentation to score against --truth")
    e.add_argument("--truth")
    e.add_argument("--dataset", help="case folders with ground truth (phantom layout): run --model on each")
    e.add_argument("--model", default=None, help="model name under Resources/Models or a bundle folder")
    e.add_argument("--out", help="with --dataset: folder for cases.csv, cases.json and summary.json")
    e.add_argument("--align", default="deformable", choices=["none", "rigid", "deformable"])
    e.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    e.set_defaults(func=_evaluate)
    t = sub.add_parser("train", help="train a model bundle on case folders")
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
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
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
    t.set_defaults(func=_train)
    c = sub.add_parser("ct2mri", help="translate a CT into an MRI-like image on the CT's grid")
    c.add_argument("--input", required=True, help="CT: NIfTI/NRRD/MHA file, DICOM folder or FOLDER@NUMBER")
    c.add_argument("--out", required=True, help="output image file (.nii.gz, .nrrd, .mha)")
    c.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    c.add_argument("--model", default=None, help="translator name under Resources/Models or a bundle folder")
    c.set_defaults(func=_ct2mri)
    tc = sub.add_parser("train-ct2mri", help="train the CT->MRI translator (unpaired, with a structure term)")
    tc.add_argument("--out", required=True, help="model bundle folder to write")
    tc.add_argument("--steps", type=int, default=2000)
    tc.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget (default none)")
    tc.add_argument("--structure-weight", type=float, default=5.0, help="MIND term (0 and --shape-weight 0: CycleGAN)")
    tc.add_argument("--shape-weight", type=float, default=1.0, help="liver shape-consistency term")
    tc.add_argument("--phantoms", type=int, default=24, help="phantom anatomies (half give CT, half MRI)")
    tc.add_argument("--real-ct", nargs="*", default=[], help="real CT files to add, unpaired")
    tc.add_argument("--real-mri", nargs="*", default=[], help="real MRI files to add, unpaired")
    tc.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tc.add_argument("--version", default="0.1.0")
    tc.set_defaults(func=_train_ct2mri)
    b = sub.add_parser("batch", help="segment a cohort from a CSV, resumable, serially or on a Dask cluster")
    b.add_argument("--cases", required=True, help="CSV: case_id and one column per role (ct, mri, nc, ...)")
    b.add_argument("--out", required=True, help="DIR/<case_id>/ per case, DIR/summary.csv")
    b.add_argument("--workers", type=int, default=1, help="processes on a local Dask cluster (1: serial)")
    b.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler (shared --out needed)")
    b.add_argument("--threads", type=int, default=0, help="torch threads per case (default: cores / workers)")
    b.add_argument("--align", default="deformable", choices=["none", "rigid", "deformable"])
    b.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    b.add_argument("--model", default=None)
    b.add_argument("--fill-mri", action="store_true", help="cases without MRI: the CT translated to MRI fills it")
    b.set_defaults(func=_batch)
    iw = sub.add_parser("import-weights", help="convert a third-party model's published weights into a bundle")
    iw.add_argument("source", choices=["pyliverlesionseg"], help="KU Leuven liver and lesion U-Nets (PyPI, Apache-2.0)")
    iw.add_argument("--wheel", default=None, help="the package's wheel file, for a machine without pip access")
    iw.add_argument("--cache", default=None, help="where the downloaded wheel is kept (default ~/.cache/liverfusion)")
    iw.add_argument("--force", action="store_true", help="convert again even if the bundle's weights verify")
    iw.set_defaults(func=_import_weights)
    _add_dataset(sub)
    v = sub.add_parser("view", help="a segment result in the browser: linked views, opening on the largest lesion")
    v.add_argument("result", help="a `liverfusion segment` output folder")
    v.add_argument("--port", type=int, default=0, help="local port (default: any free one)")
    v.add_argument("--no-browser", action="store_true", help="print the address only (e.g. on a remote machine)")
    v.set_defaults(func=_view)
    return p


def _tolerate_ascii_terminals() -> None:
    """Messages carry "·", "—" and "≥"; a terminal in the C locale must get "?" rather than a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    _tolerate_ascii_terminals()
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LiverFusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
