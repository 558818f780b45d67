"""Segment cases without the GUI, through the same Logic as the module panel.

    Slicer --no-main-window --python-script .../batch.py -- --input ct=ct.nii.gz --input mri=t2/ --out DIR
    Slicer --no-main-window --python-script .../batch.py -- --cases cases.csv --out DIR

Writes what `liverfusion segment` writes (segmentation.nii.gz and .seg.nrrd, attention maps, aligned images,
transforms, result.json last), plus lesions.tsv (with Slicer's column schema, lesions.schema.tsv) and
scene.mrb, a Slicer scene with the inputs, the segmentation, the heat maps, the lesion table and the alignment,
for review. All at once when a case succeeds (nothing on failure). A user error prints one `error:` line and
exits 2. With --cases (a CSV with a `case_id` column and one column per role), each case goes to
DIR/<case_id>/; finished cases (result.json present) are skipped, a failed case is reported and the run goes
on, and the exit status is 1 if any case failed.
Also runs under plain Python with slicer-core (a fresh MRML scene instead of Slicer's).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import slicer

MODULE_DIR = Path(__file__).resolve().parents[2]  # LiverFusionSeg/ (source) or qt-scripted-modules/ (installed)
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from LiverFusionSegLib import mrmlio, scenefile  # noqa: E402
from LiverFusionSegLib.logic import DISCLAIMER, SegLogic  # noqa: E402

from liverfusion.errors import LiverFusionError  # noqa: E402
from liverfusion.inference import cohort  # noqa: E402 (needs the path above)
from liverfusion.inference.pipeline import OUTPUTS, write_outputs, write_summary  # noqa: E402
from liverfusion.inference.postprocess import shown  # noqa: E402
from liverfusion.io.images import read_image, staged_output  # noqa: E402
from liverfusion.io.roles import parse_inputs  # noqa: E402
from liverfusion.reports.page import write_report  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.splitlines()[0])
    cases = parser.add_mutually_exclusive_group(required=True)
    cases.add_argument("--input", action="append", metavar="ROLE=PATH",
                       help="image file or DICOM folder; ROLE is ct, mri, nc, arterial, portal or delayed")
    cases.add_argument("--cases", help="CSV: a case_id column and one column per role (empty: not given)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--align", default="deformable", choices=["none", "rigid", "deformable"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="model name under Resources/Models or a bundle folder")
    parser.add_argument("--fill-mri", action="store_true", help="without an MRI, use the CT translated to MRI")
    return parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)


def save_node(scene: slicer.vtkMRMLScene, node: slicer.vtkMRMLNode, storage_class: str, path: Path) -> None:
    """Write a node with the storage node Slicer itself would use (so Slicer reads the file back as is)."""
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    try:
        if not storage.WriteData(node):
            raise LiverFusionError(f"{path}: could not be written")
    finally:
        scene.RemoveNode(storage)


def run(inputs: dict[str, str], out: Path, args: argparse.Namespace, scene: slicer.vtkMRMLScene) -> dict:
    """Load one case into the scene, segment, save; returns the result.json content."""
    volumes = {role: mrmlio.add_volume(scene, read_image(path), Path(path).name.split(".")[0], output=False)
               for role, path in inputs.items()}
    logic = SegLogic(scene)
    images = logic.readInputs(volumes)
    result = logic.compute(images, args.align, args.device, args.model, names=inputs, fillMri=args.fill_mri)
    outputs = logic.publish(result, volumes)
    with staged_output(out, replaces=(*OUTPUTS, "lesions.tsv", "scene.mrb")) as stage:
        write_outputs(result, stage, inputs)
        write_report(result, stage)
        save_node(scene, outputs["lesionTable"], "vtkMRMLTableStorageNode", stage / "lesions.tsv")
        scenefile.write_mrb(scene, stage / "scene.mrb")
        return write_summary(result, stage, inputs)


def run_cohort(args: argparse.Namespace) -> int:
    """Every case of the CSV into DIR/<case_id>/, skipping finished ones; 1 if any case failed."""
    cases, failed = cohort.read_cases(args.cases), []
    for i, (case_id, inputs) in enumerate(cases.items(), 1):
        out = Path(args.out) / case_id
        if cohort.finished(Path(args.out), case_id):  # the marker `liverfusion batch` uses
            print(f"[{i}/{len(cases)}] {case_id}: done before, skipped", flush=True)
            continue
        try:
            summary = run(inputs, out, args, slicer.vtkMRMLScene())
        except LiverFusionError as exc:
            failed.append(case_id)
            print(f"[{i}/{len(cases)}] {case_id}: error: {exc}", file=sys.stderr, flush=True)
            continue
        print(f"[{i}/{len(cases)}] {case_id}: malignancy probability {shown(summary['malignancy_probability'])}, "
              f"{len(summary['lesions'])} lesion(s)", flush=True)
    print(f"{len(cases) - len(failed)} of {len(cases)} case(s) done; outputs: {Path(args.out).resolve()}"
          f"{'; failed: ' + ', '.join(failed) if failed else ''}\n{DISCLAIMER}")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage or the help
        return int(exc.code or 0)
    try:
        if args.cases:
            return run_cohort(args)
        scene = getattr(slicer, "mrmlScene", None) or slicer.vtkMRMLScene()
        summary = run(parse_inputs(args.input), Path(args.out), args, scene)
    except LiverFusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"malignancy probability {shown(summary['malignancy_probability'])}, {len(summary['lesions'])} lesion(s); "
          f"outputs: {Path(args.out).resolve()}\n{DISCLAIMER}")
    return 0


def exit_with(status: int) -> None:
    """Slicer keeps running after a --python-script unless told to exit; plain Python just exits."""
    if getattr(slicer, "app", None) is not None:
        slicer.util.exit(status)
    else:
        sys.exit(status)


def script_status(argv: list[str]) -> int:
    """`main`, with a bug's traceback printed instead of raised: Slicer must still be told to exit."""
    try:
        return main(argv)
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    exit_with(script_status(sys.argv[1:]))
