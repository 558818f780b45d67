"""Slicer's segmentation file (`.seg.nrrd`): a labelmap NRRD whose header names each segment.

Written with SimpleITK plus the `SegmentN_*` keys that Slicer's reader (and `slicerio`) understand,
with standard terminology so Slicer shows Liver and Tumor in their usual colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..constants import LABEL_COLORS, LABEL_NAMES
from .images import write_image

# DICOM/SNOMED CT terminology, as Slicer's "SegmentationCategoryTypeContextName" entries spell them.
TERMINOLOGY = {
    1: "Segmentation category and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure~"
    "SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^",
    2: "Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^Morphologically Altered "
    "Structure~SCT^108369006^Neoplasm~^^~Anatomic codes - DICOM master list~SCT^10200004^Liver~^^",
}


def write_seg_nrrd(labels: sitk.Image, path: str | Path) -> Path:
    """Write a 0/1/2 label map as a two-segment Slicer segmentation."""
    image = sitk.Cast(labels, sitk.sitkUInt8)
    arr = sitk.GetArrayViewFromImage(image)
    extent = " ".join(f"0 {s - 1}" for s in image.GetSize())
    for index, (value, name) in enumerate(sorted(LABEL_NAMES.items())):
        prefix = f"Segment{index}_"
        color = " ".join(f"{c:.4f}" for c in LABEL_COLORS[value])
        image.SetMetaData(prefix + "ID", name)
        image.SetMetaData(prefix + "Name", name)
        image.SetMetaData(prefix + "LabelValue", str(value))
        image.SetMetaData(prefix + "Layer", "0")
        image.SetMetaData(prefix + "Color", color)
        image.SetMetaData(prefix + "Extent", extent if np.any(arr == value) else "0 -1 0 -1 0 -1")
        image.SetMetaData(prefix + "Tags", f"TerminologyEntry:{TERMINOLOGY[value]}|")
    image.SetMetaData("Segmentation_MasterRepresentation", "Binary labelmap")
    image.SetMetaData("Segmentation_ContainedRepresentationNames", "Binary labelmap|")
    image.SetMetaData("Segmentation_ReferenceImageExtentOffset", "0 0 0")
    return write_image(image, path)
