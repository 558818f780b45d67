"""`liverfusion dataset import`: training data from what a hospital exports."""

from __future__ import annotations

from pathlib import Path

from ..constants import ROLES
from .common import print_warnings


def add_dataset(sub) -> None:
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
    di.set_defaults(func=run_dataset_import)


def run_dataset_import(args) -> int:
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
    print_warnings(info["warnings"])
    return 0
