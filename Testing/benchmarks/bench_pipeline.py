"""Per-stage times and peak memory of `liverfusion segment` on clinical-size and real cases (issue 33).

Cases: `phantom` (CT 512x512x120 + MRI 320x260x40, seed 4242), the two-phase real CTs `tace1720` and `tace2022` of
../shared/data/real-train (the labelled phase as reference, as the benchmarks of real cases score them), and two
200-slice cases made from tace1720's two phases by repeating their first and last slices: `cap`, resliced to 2.5 mm
first (500 mm, a chest-abdomen-pelvis length, like the 207 x 2.5 mm arterial series of tace1211), and `big`, at their
own 5 mm (1000 mm, twice that).
Each run is a fresh process, so its peak memory is its own; every case runs `--repeats` times in one call.
Prints a table (load, reference alone, align, infer, postprocess, write, total, peak memory) and writes JSON. Not a
test.
Usage: python Testing/benchmarks/bench_pipeline.py [--cases phantom tace1720 tace2022 cap big] [--repeats 2]
[--align rigid|deformable] [--device auto|cpu|cuda] [--model NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk
from benchlib import REAL_TRAIN, json_argument, write_json

from liverfusion.inference.device import device_report
from liverfusion.inference.pipeline import segment
from liverfusion.registration.align import resample_to
from liverfusion.synthesis.phantom import make_case
from liverfusion.training.dataset import case_reference, case_roles

CASES = ("phantom", "tace1720", "tace2022", "cap", "big")
STAGES = ("load", "reference_alone", "align", "infer", "postprocess", "write")
BIG_SLICES = 200
CAP_SLICE_MM = 2.5


def real_case(folder: Path) -> tuple[dict[str, str], str]:
    """The phases of a real-train case and its labelled phase (the reference)."""
    return {role: str(folder / f"{role}.nii.gz") for role in case_roles(folder)}, case_reference(folder)


def resliced(image: sitk.Image, thickness: float) -> sitk.Image:
    """The image with slices `thickness` mm apart (linear interpolation), its in-plane grid unchanged."""
    size, spacing = list(image.GetSize()), list(image.GetSpacing())
    grid = sitk.Image([*size[:2], round(size[2] * spacing[2] / thickness)], image.GetPixelID())
    grid.SetSpacing([*spacing[:2], thickness])
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    return resample_to(image, grid, sitk.Transform())


def padded(path: str, slices: int, out: Path, thickness: float | None = None) -> str:
    """The image (resliced to `thickness` mm first, if given) with its first and last slices repeated to `slices`
    slices, half above and half below."""
    image = sitk.ReadImage(path)
    image = image if thickness is None else resliced(image, thickness)
    extra = max(0, slices - image.GetSize()[2])
    result = sitk.ZeroFluxNeumannPad(image, (0, 0, extra // 2), (0, 0, extra - extra // 2))
    sitk.WriteImage(result, str(out))
    return str(out)


def prepare(name: str, tmp: Path) -> tuple[dict[str, str], str | None]:
    """The inputs (files under `tmp` for generated cases) and the reference role of a benchmark case."""
    if name == "phantom":
        make_case(tmp / "phantom", 4242, "ct-mri", shapes={"ct": (512, 512, 120), "mri": (320, 260, 40)})
        return {"ct": str(tmp / "phantom" / "ct.nii.gz"), "mri": str(tmp / "phantom" / "mri.nii.gz")}, None
    if name == "big":
        inputs, reference = real_case(REAL_TRAIN / "tace1720")
        return {r: padded(p, BIG_SLICES, tmp / f"big_{r}.nii.gz") for r, p in inputs.items()}, reference
    if name == "cap":
        inputs, reference = real_case(REAL_TRAIN / "tace1720")
        return {r: padded(p, BIG_SLICES, tmp / f"cap_{r}.nii.gz", CAP_SLICE_MM) for r, p in inputs.items()}, reference
    return real_case(REAL_TRAIN / name)


def size_of(path: str) -> list[int]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return list(reader.GetSize())


def one_run(args: argparse.Namespace) -> None:
    """Child process: one `segment` of one case; prints its figures as one JSON line."""
    inputs = json.loads(args.one)
    t = time.perf_counter()
    summary = segment(inputs, args.out, args.align, args.device, args.model, reference=args.reference)
    total = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    sizes = {role: size_of(path) for role, path in inputs.items()}
    print(json.dumps({"timings_s": summary["timings_s"], "total_s": total, "peak_rss_gb": peak_gb,
                      "device": summary["device"], "sizes": sizes}))


def measure(name: str, inputs: dict, reference: str | None, run: int, tmp: Path, args) -> dict:
    """One run of a case in a fresh process."""
    command = [sys.executable, __file__, "--one", json.dumps(inputs), "--out", str(tmp / f"{name}_{run}"),
               "--align", args.align, "--device", args.device]
    command += ["--model", args.model] if args.model else []
    command += ["--reference", reference] if reference else []
    done = subprocess.run(command, capture_output=True, encoding="utf-8", check=True)
    return {"case": name, "run": run, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--device", default="auto")
    p.add_argument("--align", default="deformable")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", default=None, help="model bundle name or folder (default: the shipped one)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--reference", help=argparse.SUPPRESS)
    json_argument(p, __file__)
    args = p.parse_args()
    if args.one:
        return one_run(args)
    print(f"{device_report()}; align {args.align}")
    print(f"{'case':>9} {'run':>3} " + " ".join(f"{k[:11]:>11}" for k in (*STAGES, "total")) + "   peak GB")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            inputs, reference = prepare(name, Path(tmp))
            for run in range(args.repeats):
                row = measure(name, inputs, reference, run, Path(tmp), args)
                s = row["timings_s"]
                print(f"{name:>9} {run:>3} " + " ".join(f"{s.get(k, 0):>11.2f}" for k in STAGES)
                      + f" {row['total_s']:>11.2f}   {row['peak_rss_gb']:.2f}")
                rows.append(row)
    write_json(args.json, {"rows": rows, "device": device_report()}, args)


if __name__ == "__main__":
    main()
