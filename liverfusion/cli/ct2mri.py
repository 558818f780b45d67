"""`liverfusion ct2mri` (translate a CT) and `liverfusion train-ct2mri` (train the translator)."""

from __future__ import annotations

from pathlib import Path

from ..errors import LiverFusionError
from .common import IMAGE_SUFFIXES, device_option, model_option, print_warnings


def add_ct2mri(sub) -> None:
    c = sub.add_parser(
        "ct2mri",
        parents=[device_option(), model_option(help="translator name under Resources/Models or a bundle folder")],
        help="translate a CT into an MRI-like image on the CT's grid",
    )
    c.add_argument("--input", required=True, help="CT: NIfTI/NRRD/MHA file, DICOM folder or FOLDER@NUMBER")
    c.add_argument("--out", required=True, help="output image file (.nii.gz, .nrrd, .mha)")
    c.set_defaults(func=run_ct2mri)


def run_ct2mri(args) -> int:
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
    print_warnings(warnings)
    return 0


def add_train_ct2mri(sub) -> None:
    tc = sub.add_parser(
        "train-ct2mri",
        parents=[device_option()],
        help="train the CT->MRI translator (unpaired, with a structure term)",
    )
    tc.add_argument("--out", required=True, help="model bundle folder to write")
    tc.add_argument("--steps", type=int, default=2000)
    tc.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget (default none)")
    tc.add_argument("--structure-weight", type=float, default=5.0, help="MIND term (0 and --shape-weight 0: CycleGAN)")
    tc.add_argument("--shape-weight", type=float, default=1.0, help="liver shape-consistency term")
    tc.add_argument("--phantoms", type=int, default=24, help="phantom anatomies (half give CT, half MRI)")
    tc.add_argument("--real-ct", nargs="*", default=[], help="real CT files to add, unpaired")
    tc.add_argument("--real-mri", nargs="*", default=[], help="real MRI files to add, unpaired")
    tc.add_argument("--version", default="0.1.0")
    tc.set_defaults(func=run_train_ct2mri)


def run_train_ct2mri(args) -> int:
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
