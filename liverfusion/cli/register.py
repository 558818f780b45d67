"""`liverfusion register`: align a moving image to a fixed one, outside the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from ..constants import ROLES
from ..errors import OverlapError
from .common import read_mask


def add_register(sub) -> None:
    r = sub.add_parser("register", help="align a moving image to a fixed one")
    r.add_argument("--fixed", required=True)
    r.add_argument("--moving", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--mode", default="rigid", choices=["none", "rigid", "deformable"])
    r.add_argument("--moving-label")
    r.add_argument("--focus", help="mask on the fixed image (e.g. a dilated liver) that the fit concentrates on")
    r.add_argument("--fixed-role", default="ct", choices=ROLES)
    r.add_argument("--moving-role", default="mri", choices=ROLES)
    r.set_defaults(func=run_register)


def run_register(args) -> int:
    import time

    from ..io.images import read_image, require_writable, staged_output, write_image, write_text, write_transform
    from ..io.intensity_checks import checked_image
    from ..registration.align import register, resample_to

    require_writable(args.out)
    fixed, fixed_notes = checked_image(read_image(args.fixed), args.fixed_role, args.fixed)
    moving, moving_notes = checked_image(read_image(args.moving), args.moving_role, args.moving)
    label = read_image(args.moving_label, label=True) if args.moving_label else None
    focus = read_mask(args.focus, "focus") if args.focus else None
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
