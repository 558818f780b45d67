"""Segment one case without the GUI, through the same Logic as the module panel.

    Slicer --no-main-window --python-script .../batch.py -- --input ct=ct.nii.gz --input mri=t2/ --out DIR

Writes DIR/segmentation.seg.nrrd (Liver, Tumor), DIR/attention.nrrd, DIR/lesions.tsv (plus Slicer's column
schema, lesions.schema.tsv) and DIR/result.json, all at once when the run succeeds (nothing on failure).
A user error prints one `error:` line and exits 2.
Also runs under plain Python with slicer-core (a fresh MRML scene instead of Slicer's).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

import slicer

MODULE_DIR = Path(__file__).resolve().parents[2]  # LiverFusionSeg/ (source) or qt-scripted-modules/ (installed)
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from LiverFusionSegLib import mrmlio  # noqa: E402
from LiverFusionSegLib.logic import DISCLAIMER, SegLogic  # noqa: E402

from liverfusion.errors import LiverFusionError  # noqa: E402 (needs the path above)
from liverfusion.imageio import read_image, staged_output, write_text  # noqa: E402
from liverfusion.roles import parse_inputs  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.splitlines()[0])
    parser.add_argument("--input", action="append", required=True, metavar="ROLE=PATH",
                        help="image file or DICOM folder; ROLE is ct, mri, nc, arterial, portal or delayed")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--align", default="deformable", choices=["none", "rigid", "deformable"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default=None, help="model name under Resources/Models or a bundle folder")
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


def run(args: argparse.Namespace, scene: slicer.vtkMRMLScene) -> dict:
    """Load, segment, save; returns the result.json content."""
    inputs = parse_inputs(args.input)
    volumes = {role: mrmlio.add_volume(scene, read_image(path), Path(path).name.split(".")[0], output=False)
               for role, path in inputs.items()}
    outputs = SegLogic(scene).process(volumes, args.align, args.device, args.model)
    summary = {**outputs["summary"], "inputs": {role: str(Path(p).resolve()) for role, p in inputs.items()}}
    with staged_output(args.out) as stage:
        save_node(scene, outputs["segmentation"], "vtkMRMLSegmentationStorageNode", stage / "segmentation.seg.nrrd")
        save_node(scene, outputs["attention"], "vtkMRMLVolumeArchetypeStorageNode", stage / "attention.nrrd")
        save_node(scene, outputs["lesionTable"], "vtkMRMLTableStorageNode", stage / "lesions.tsv")
        write_text(json.dumps(summary, indent=2) + "\n", stage / "result.json")
    return summary


def main(argv: list[str]) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage or the help
        return int(exc.code or 0)
    scene = getattr(slicer, "mrmlScene", None) or slicer.vtkMRMLScene()
    try:
        summary = run(args, scene)
    except LiverFusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"malignancy probability {summary['malignancy_probability']:.2f}, {len(summary['lesions'])} lesion(s); "
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
