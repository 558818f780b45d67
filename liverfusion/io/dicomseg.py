"""The segmentation as a DICOM Segmentation object (highdicom) that references the source CT or MR series.

PACS viewers and reporting tools read DICOM SEG, not NIfTI. Patient and study identifiers come from the source
series (highdicom copies them from the source images, and nothing else sets them); segments carry SNOMED CT codes
(liver; neoplasm) and name the algorithm, as the reference SEG made by dcmqi does.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..constants import LIVER, TUMOR
from ..errors import InputError
from .images import dicom_series_files

if TYPE_CHECKING:  # imported where used: the SEG is written for DICOM inputs only
    import highdicom as hd

MANUFACTURER = "LiverFusion"
# A SEG points at its source by these; anonymisers sometimes blank them (TotalSegmentator's example CT has none).
REFERENCED_UIDS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")


def segment_descriptions(model_name: str, model_version: str) -> list:
    """Liver (SCT 10200004, an anatomical structure) and tumour (SCT 108369006 neoplasm, a morphologically
    abnormal structure), both made automatically by the named model."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"LiverFusion {model_name}", version=model_version, family=codes.cid7162.ArtificialIntelligence
    )
    code = hd.sr.CodedConcept
    segments = [
        (LIVER, "Liver", code("91723000", "SCT", "Anatomical Structure"), code("10200004", "SCT", "Liver")),
        (
            TUMOR,
            "Tumor",
            code("49755003", "SCT", "Morphologically Altered Structure"),
            code("108369006", "SCT", "Neoplasm"),
        ),
    ]
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for number, label, category, kind in segments
    ]


def _readable(source):
    """An empty SpecificCharacterSet (seen in GE files) means the default repertoire; highdicom refuses the empty
    value, so the in-memory copy drops it (the file is not touched)."""
    if "SpecificCharacterSet" in source and not source.SpecificCharacterSet:
        del source.SpecificCharacterSet
    return source


def write_dicom_seg(labels: sitk.Image, series_folder: str | Path, path: Path, model: dict) -> list[str]:
    """Write `labels` (0/1/2 on the series' own grid, as SimpleITK read it) as a binary DICOM SEG; `series_folder`
    is the DICOM input, `FOLDER` or `FOLDER@SERIES`. Returns what highdicom warned of (a patient name out of
    format, say) as one-line notes for the run's warnings: its multi-line text is not for the terminal."""
    import pydicom

    files = dicom_series_files(series_folder)
    sources = [_readable(pydicom.dcmread(f)) for f in files]
    missing = [key for key in REFERENCED_UIDS if not all(str(getattr(s, key, "") or "").strip() for s in sources)]
    if missing:
        raise InputError(f"{series_folder}: no {', '.join(missing)} (anonymised?), which a SEG must reference")
    array = sitk.GetArrayFromImage(labels).astype(np.uint8)
    if array.shape != (len(sources), int(sources[0].Rows), int(sources[0].Columns)):
        raise InputError(f"{series_folder}: the segmentation is not on this series' grid")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            seg = _segmentation(sources, array, model)
        except (ValueError, AttributeError) as exc:  # highdicom's checks of the files; a missing attribute (no
            # SliceThickness, say) ends in an AttributeError: no SEG, and the other outputs stand
            raise InputError(f"{series_folder}: not usable as the source of a SEG ({exc})") from None
    tmp = path.with_name(path.name + ".tmp")
    seg.save_as(tmp)
    tmp.replace(path)
    sentences = (str(w.message).split(". ")[0] for w in caught)
    return [f"{path.name}: highdicom: {s}" for s in dict.fromkeys(sentences)]


def _segmentation(sources: list, array: np.ndarray, model: dict) -> hd.seg.Segmentation:
    """highdicom's binary SEG of `array` (one frame per source file), described as our model's output."""
    import highdicom as hd

    return hd.seg.Segmentation(
        source_images=sources,
        pixel_array=array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(model["name"], model["version"]),
        series_instance_uid=hd.UID(),
        series_number=int(getattr(sources[0], "SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"{model['name']} {model['version']}",
        software_versions=__version__,
        device_serial_number="none",
        series_description="LiverFusion liver and tumor",
        content_label="LIVERFUSION",
        omit_empty_frames=False,
    )
