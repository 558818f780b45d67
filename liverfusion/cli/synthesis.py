"""`liverfusion synth-tumor` (a lesion into a real liver) and `liverfusion phantom` (synthetic cases)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import LiverFusionError
from .common import print_warnings, read_mask


def add_synth_tumor(sub) -> None:
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
    st.set_defaults(func=run_synth_tumor)


def _insertion_liver(args, images: dict, paths: dict) -> tuple:
    """The liver mask given with --liver, else the one KU Leuven's liver network finds on the first input (real
    scans seldom come with a liver mask); the real tumours to keep (`--tumor-label` of that map, else None); and
    where the liver came from."""
    import SimpleITK as sitk

    from ..io.images import read_image

    if args.liver:
        tumors = read_image(args.liver, label=True) == args.tumor_label if args.tumor_label is not None else None
        return read_mask(args.liver, "liver", args.liver_label), tumors, str(Path(args.liver).resolve())
    from ..apps.kuleuven.predict import liver_only
    from ..inference.device import pick_device
    from ..models.store import load

    role, device = next(iter(images)), pick_device("auto")
    bundle = load("pyliverlesionseg", device)
    liver = liver_only(images[role], role, bundle.network, device)
    if not sitk.GetArrayViewFromImage(liver).any():
        raise LiverFusionError(f"{paths[role]}: {bundle.name} found no liver; pass the liver mask with --liver")
    return liver, None, f"{bundle.name} {bundle.version} liver network on {role} (liver.nii.gz)"


def run_synth_tumor(args) -> int:
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
    print_warnings(warnings)
    return 0


def _center(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise LiverFusionError(f"--center-lps {text}: expected three numbers x,y,z in mm")
    return values


def add_phantom(sub) -> None:
    ph = sub.add_parser("phantom", help="generate synthetic cases with ground truth")
    ph.add_argument("--out", required=True)
    ph.add_argument("--cases", type=int, default=1)
    ph.add_argument("--seed", type=int, default=0)
    ph.add_argument("--protocol", default="ct-mri", choices=["ct-mri", "multiphase"])
    ph.add_argument("--jobs", type=int, default=None, help="processes (default: every core)")
    ph.add_argument("--small", action="store_true", help="coarser voxels, for quick tests")
    ph.set_defaults(func=run_phantom)


def run_phantom(args) -> int:
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
