"""What the commands share: the parent parsers of `--device`, `--model` and `--align`, and how they print."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from ..errors import LiverFusionError

if TYPE_CHECKING:  # for annotations; each command imports what it uses
    import SimpleITK as sitk

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd")
ALIGN_MODES = ["none", "rigid", "deformable"]  # registration.align.MODES, without importing SimpleITK
MODEL_HELP = "model name under Resources/Models or a bundle folder"


def device_option() -> argparse.ArgumentParser:
    """`--device`: where the networks run."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    return parent


def model_option(help: str | None = MODEL_HELP) -> argparse.ArgumentParser:
    """`--model`: a bundle by name or folder (default: the default model of its kind)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--model", default=None, help=help)
    return parent


def align_option() -> argparse.ArgumentParser:
    """`--align`: how the other inputs are registered to the reference."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--align", default="deformable", choices=ALIGN_MODES)
    return parent


def print_warnings(warnings: list[str], stream: TextIO | None = None) -> None:
    for warning in warnings:
        print(f"warning: {warning}", file=stream)


def read_mask(path: str, what: str, value: int | None = None) -> sitk.Image:
    """A mask file as a binary image (voxels equal to `value`, or any label); an empty one is an error naming it,
    not a failure further on that blames something else."""
    import SimpleITK as sitk

    from ..io.images import read_image

    labels = read_image(path, label=True)
    mask = labels == value if value is not None else labels > 0
    if not sitk.GetArrayViewFromImage(mask).any():
        raise LiverFusionError(f"{path}: the {what} mask is empty")
    return mask
