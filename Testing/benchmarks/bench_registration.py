"""Ours against elastix on CT+MRI phantom pairs with known motion (seeds 6000+, never used elsewhere), and on the
real two-phase CTs of ../shared/data/real-train (`--real`).

Phantoms: for each method, liver Dice of the aligned MRI label against the CT label, error of lesion centres
(mm, against the ground-truth transform), minimum Jacobian determinant, seconds. Then one clinical-size
pair (CT 512x512x120 + MRI 320x260x40) for time.
Real pairs (phases taken in different breaths, no true transform): the other phase is aligned to the labelled one;
each phase's liver is KU Leuven's clinically trained liver network run on that phase alone (one segmenter for both,
so its own errors count less than a manual mask against a network's would; its Dice against the manual label on the
labelled phase is printed as the masks' own accuracy); each method gives the liver Dice between the phases, the mean
and 95th-percentile surface distance, the minimum Jacobian determinant and seconds. Our deformable stage focuses on
the liver our model finds on the labelled phase alone, as `liverfusion segment` does; that pass is shared with the
network in the pipeline, so its seconds are given apart (`focus_s`).
Not a test. Needs `pip install itk-elastix`.
Usage: python Testing/benchmarks/bench_registration.py [--pairs 6] [--no-clinical] [--real]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import itk
import numpy as np
import SimpleITK as sitk
from benchlib import REAL_TRAIN, RESULTS, json_argument, write_json

from liverfusion.apps.kuleuven.predict import liver_only
from liverfusion.evaluation.held_out import case_images, truth_of
from liverfusion.evaluation.metrics import dice, hd95
from liverfusion.inference.device import pick_device
from liverfusion.inference.pipeline import liver_focus
from liverfusion.io.images import read_image
from liverfusion.models import store as model_store
from liverfusion.registration.align import jacobian_range, register, resample_to
from liverfusion.synthesis.phantom import make_case
from liverfusion.training.dataset import case_reference

REAL_PAIRS = ("tace1720", "tace2022")


def lesion_centres(label: sitk.Image) -> list[tuple[float, ...]]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.ConnectedComponent(label == 2))
    return [stats.GetCentroid(i) for i in stats.GetLabels() if stats.GetNumberOfPixels(i) >= 5]


def ours(ct, mri, mode, model, device, roles=("ct", "mri")) -> tuple[sitk.Transform, float, float]:
    """Our alignment as the pipeline runs it: the transform, the seconds of the alignment and of the liver pass
    that focuses it (0 without a model)."""
    t = time.perf_counter()
    focus = liver_focus(ct, roles[0], model, device) if model is not None else None
    focus_s, t = time.perf_counter() - t, time.perf_counter()
    reg = register(ct, mri, mode, *roles, focus)
    return reg.transform, time.perf_counter() - t, focus_s


def to_itk(image: sitk.Image):
    out = itk.image_from_array(sitk.GetArrayFromImage(image).astype(np.float32))
    out.SetOrigin(image.GetOrigin())
    out.SetSpacing(image.GetSpacing())
    out.SetDirection(itk.matrix_from_array(np.array(image.GetDirection()).reshape(3, 3)))
    return out


def elastix(ct, mri):
    """elastix's default rigid + B-spline maps (AdvancedMattesMutualInformation), as a user would run it."""
    t = time.perf_counter()
    params = itk.ParameterObject.New()
    params.AddParameterMap(params.GetDefaultParameterMap("rigid"))
    params.AddParameterMap(params.GetDefaultParameterMap("bspline"))
    fixed, moving = to_itk(ct), to_itk(mri)
    _, result = itk.elastix_registration_method(fixed, moving, parameter_object=params, log_to_console=False)
    seconds = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):  # transformix writes files to cwd
        field = itk.transformix_deformation_field(moving, result)
    disp = sitk.GetImageFromArray(itk.array_from_image(field).astype(np.float64), isVector=True)
    disp.CopyInformation(ct)
    return sitk.DisplacementFieldTransform(disp), seconds


def score(case: Path, transform: sitk.Transform, seconds: float) -> dict:
    ct_label = read_image(case / "label_ct.nii.gz", label=True)
    moved = resample_to(read_image(case / "label_mri.nii.gz", label=True), ct_label, transform, label=True)
    truth = sitk.ReadTransform(str(case / "truth_transform_mri.h5"))
    errors = [
        np.linalg.norm(np.subtract(transform.TransformPoint(p), truth.TransformPoint(p)))
        for p in lesion_centres(ct_label)
    ]
    return {
        "dice": dice(sitk.GetArrayFromImage(moved) >= 1, sitk.GetArrayFromImage(ct_label) >= 1),
        "errors": errors,
        "jac": jacobian_range(transform, ct_label)[0],
        "seconds": seconds,
    }


def run_pair(case: Path, model, device) -> dict[str, dict]:
    ct, mri = read_image(case / "ct.nii.gz"), read_image(case / "mri.nii.gz")
    out = {"none": score(case, sitk.Euler3DTransform(), 0.0)}
    for name, mode, b in (("ours rigid", "rigid", None), ("ours deformable", "deformable", model)):
        transform, seconds, focus_s = ours(ct, mri, mode, b, device)
        out[name] = score(case, transform, seconds + focus_s)
    out["elastix rigid+bspline"] = score(case, *elastix(ct, mri))
    return out


def mean_surface_distance(a: np.ndarray, b: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Mean symmetric surface distance (mm) of two masks on one grid (array order z, y, x)."""
    from monai.metrics import compute_average_surface_distance

    both = [np.ascontiguousarray(m[None, None]) for m in (a, b)]
    return float(compute_average_surface_distance(*both, symmetric=True, spacing=spacing[::-1])[0, 0])


def real_scores(fixed_liver: sitk.Image, moving_liver: sitk.Image, transform: sitk.Transform, seconds: float) -> dict:
    moved = sitk.GetArrayFromImage(resample_to(moving_liver, fixed_liver, transform, label=True)) > 0
    fixed = sitk.GetArrayFromImage(fixed_liver) > 0
    spacing = fixed_liver.GetSpacing()
    return {
        "dice": dice(moved, fixed),
        "msd_mm": mean_surface_distance(moved, fixed, spacing),
        "hd95_mm": hd95(moved, fixed, spacing),
        "jac": jacobian_range(transform, fixed_liver)[0],
        "seconds": seconds,
    }


def run_real_pair(folder: Path, model, device, teacher) -> dict[str, dict]:
    """Align the other phase of a real case to its labelled phase with each method, scored on the livers."""
    images, reference = case_images(folder), case_reference(folder)
    other = next(r for r in images if r != reference)
    fixed, moving = images[reference], images[other]
    fixed_liver, moving_liver = (
        liver_only(image, role, teacher, device) for image, role in ((fixed, reference), (moving, other))
    )
    manual = sitk.GetArrayFromImage(truth_of(folder)[0]) >= 1
    roles = (reference, other)
    out = {"none": real_scores(fixed_liver, moving_liver, sitk.Euler3DTransform(), 0.0)}
    out["none"]["mask_dice_vs_manual"] = dice(sitk.GetArrayFromImage(fixed_liver) > 0, manual)
    for name, mode, b in (("ours rigid", "rigid", None), ("ours deformable", "deformable", model)):
        transform, seconds, focus_s = ours(fixed, moving, mode, b, device, roles)
        out[name] = {**real_scores(fixed_liver, moving_liver, transform, seconds), "focus_s": focus_s}
    out["elastix rigid+bspline"] = real_scores(fixed_liver, moving_liver, *elastix(fixed, moving))
    return out


def real_pairs(model, device) -> dict[str, dict[str, dict]]:
    teacher = model_store.load("pyliverlesionseg", device).network
    results = {}
    for name in REAL_PAIRS:
        results[name] = run_real_pair(REAL_TRAIN / name, model, device, teacher)
        print(
            f"{name}: KU Leuven's liver on the labelled phase, Dice against the manual label "
            f"{results[name]['none']['mask_dice_vs_manual']:.3f}"
        )
        for method, r in results[name].items():
            print(
                f"{name} {method:>22}: liver Dice {r['dice']:.3f}, mean surface distance {r['msd_mm']:.2f} mm, "
                f"HD95 {r['hd95_mm']:.1f} mm, jac min {r['jac']:.3f}, {r['seconds']:.1f} s",
                flush=True,
            )
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--no-clinical", action="store_true")
    p.add_argument("--real", action="store_true", help="only the real two-phase pairs of ../shared/data/real-train")
    json_argument(p, __file__)
    args = p.parse_args()
    summary, clinical = {}, {}
    device = pick_device("auto")
    model = model_store.load_model(None, device)
    if args.real:  # its own default file: the phantoms' figures stay
        path = RESULTS / "bench_registration_real.json" if args.json == p.get_default("json") else args.json
        return write_json(path, {"real_pairs": real_pairs(model, device)}, args)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            case = Path(tmp) / f"pair_{i}"
            make_case(case, 6000 + i, "ct-mri")
            for name, r in run_pair(case, model, device).items():
                rows.setdefault(name, []).append(r)
                print(
                    f"pair {i} {name:>22}: Dice {r['dice']:.3f}, lesion error "
                    f"{np.median(r['errors']) if r['errors'] else float('nan'):.2f} mm, jac min {r['jac']:.3f}, "
                    f"{r['seconds']:.1f} s",
                    flush=True,
                )
        print("\n| method | liver Dice mean (min) | lesion centre error median (p90) mm | Jacobian min | s (mean) |")
        print("|---|---|---|---|---|")
        for name, rs in rows.items():
            errors = np.concatenate([r["errors"] for r in rs]) if any(r["errors"] for r in rs) else np.array([np.nan])
            d = [r["dice"] for r in rs]
            summary[name] = {
                "liver_dice_mean": float(np.mean(d)),
                "liver_dice_min": float(np.min(d)),
                "lesion_error_median_mm": float(np.median(errors)),
                "lesion_error_p90_mm": float(np.percentile(errors, 90)),
                "jacobian_min": min(r["jac"] for r in rs),
                "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
            }
            print(
                f"| {name} | {np.mean(d):.3f} ({np.min(d):.3f}) | "
                f"{np.median(errors):.2f} ({np.percentile(errors, 90):.2f}) | "
                f"{min(r['jac'] for r in rs):.3f} | {np.mean([r['seconds'] for r in rs]):.1f} |"
            )
        if not args.no_clinical:
            case = Path(tmp) / "clinical"
            make_case(case, 6100, "ct-mri", shapes={"ct": (512, 512, 120), "mri": (320, 260, 40)})
            for name, r in run_pair(case, model, device).items():
                print(f"clinical size {name:>22}: Dice {r['dice']:.3f}, {r['seconds']:.1f} s")
                clinical[name] = {"liver_dice": r["dice"], "seconds": r["seconds"]}
    write_json(args.json, {"summary": summary, "clinical_size": clinical}, args)


if __name__ == "__main__":
    main()
