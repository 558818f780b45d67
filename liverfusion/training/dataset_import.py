"""`liverfusion dataset import`: a hospital's DICOM export becomes a training case folder in `dataset.py`'s layout.

Which series is which phase is written nowhere but in free-text SeriesDescriptions and acquisition times, and a SEG
points at its series only by UIDs; so every decision is recorded in `case.json`, and the whole export is read and
checked before anything is written. A bad export (a SEG of another series, masks off the grid, two series claiming
one phase, no labels, a segment of unknown meaning) gives one error line and no folder that could pass for a case.
"""

from __future__ import annotations

import datetime
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..constants import BACKGROUND, CT_ROLES, LIVER, MM3_PER_ML, ROLE_TO_CHANNEL, ROLES, TUMOR
from ..errors import InputError, RoleError
from ..io.images import (
    READ_NOTE,
    SERIES_SELECTOR,
    Series,
    dicom_series,
    read_image,
    staged_output,
    write_image,
    write_text,
)
from ..io.roles import role_from_text, words

PHASE_ORDER = ("nc", "arterial", "portal", "delayed")  # contrast phases in the order they are acquired
# Where time order leaves a choice and no series names its phase: the phases a protocol with that many series
# usually has (biphasic liver CT: late arterial + portal venous; triphasic: with the unenhanced scan first).
USUAL_PHASES = {2: ("arterial", "portal"), 3: ("nc", "arterial", "portal")}
LEFT_OUT = "none"  # --role SERIES=none, --segment-map N=none
CLASSES = {"liver": LIVER, "tumor": TUMOR, "tumour": TUMOR, LEFT_OUT: BACKGROUND}
MASK_KINDS = ("liver", "tumor", "tumour", "labels")  # binary masks, or one 0/1/2 label map
# SEG segment meaning by SegmentedPropertyType code: SNOMED CT, and SNOMED RT as older SEGs (dcmqi's) write it.
CODE_CLASSES = {
    "10200004": LIVER,  # liver
    "T-62000": LIVER,
    "108369006": TUMOR,  # neoplasm
    "M-80003": TUMOR,
    "4147007": TUMOR,  # mass
    "52988006": TUMOR,  # lesion
}
TUMOR_WORDS = {"tumor", "tumour", "tumors", "tumours", "lesion", "lesions", "mass", "neoplasm", "hcc", "carcinoma"}
TUMOR_WORDS |= {"metastasis", "metastases", "cancer", "nodule", "nodules"}
GRID_TOLERANCE = 1e-3  # masks' spacing and direction (relative) and origin (in voxels): float rounding, not a shift
CASE_FILES = ("*.nii.gz", "case.json")  # what an earlier import into the same folder wrote


@dataclass
class ImportOptions:
    """What the user gave: the export's folders and labels, and the overrides of what the export says."""

    dicom: list[Path]
    seg: list[Path] = field(default_factory=list)
    masks: dict[str, Path] = field(default_factory=dict)  # liver/tumor/labels -> file
    labelled: str | None = None  # the role the masks lie on
    roles: dict[str, str] = field(default_factory=dict)  # series number or UID -> role or "none"
    segment_map: dict[int, str] = field(default_factory=dict)  # SEG segment number -> liver/tumor/none
    diagnosis: str | None = None
    malignant: bool | None = None
    source: str | None = None


@dataclass
class Phase:
    """A scan series of the export and the role it plays in the case."""

    folder: Path
    series: Series
    role: str
    decided: str  # how the role was decided, for case.json

    @property
    def path(self) -> str:
        """FOLDER@UID, as `read_image` reads one series of a study folder."""
        return f"{self.folder}{SERIES_SELECTOR}{self.series.uid}"

    def __str__(self) -> str:
        return f"series {self.series} in {self.folder}"


def import_case(options: ImportOptions, out: str | Path) -> dict:
    """Read and check the whole export, then write `<role>.nii.gz`, `label_<role>.nii.gz` and `case.json` into `out`
    at once; returns case.json's content."""
    scans, others = _folder_series(options.dicom)
    phases, warnings = assign_roles(scans, options.roles)
    segs = [] if options.masks else _seg_files(options, others)  # no labels: refused before the scans are read
    images = {p.role: read_image(p.path) for p in phases}
    warnings += [image.GetMetaData(READ_NOTE) for image in images.values() if image.HasMetaDataKey(READ_NOTE)]
    if options.masks:
        labelled = _labelled_phase(options.labelled, phases, list(options.masks.values()))
        label, label_info = _mask_labels(options.masks, labelled, images[labelled.role])
    else:
        label, labelled, label_info = _seg_labels(segs, phases, images, options.segment_map)
    info = _case_info(options, phases, labelled, label_info, _volumes_ml(label), warnings)
    with staged_output(out, replaces=CASE_FILES) as stage:
        for phase in phases:
            write_image(_stored(images[phase.role], phase.role), stage / f"{phase.role}.nii.gz")
        write_image(label, stage / f"label_{labelled.role}.nii.gz")
        write_text(json.dumps(info, indent=1) + "\n", stage / "case.json")
    return info


def _folder_series(folders: list[Path]) -> tuple[list[tuple[Path, Series]], list[tuple[Path, Series]]]:
    """Every series of the given folders: the scans, and the rest (SEGs, structure sets, reports)."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
        found += [(folder, series) for series in dicom_series(folder)]
    scans = [(f, s) for f, s in found if s.is_scan]
    if not scans:
        raise InputError(f"{', '.join(map(str, folders))}: no scan series, only {'; '.join(str(s) for _, s in found)}")
    return scans, [(f, s) for f, s in found if not s.is_scan]


def assign_roles(scans: list[tuple[Path, Series]], overrides: dict[str, str]) -> tuple[list[Phase], list[str]]:
    """Each scan's role, and warnings: from `--role`, else MR for MR series, else the SeriesDescription; CT series
    whose description names no phase take theirs from acquisition time order. `none` leaves a series out."""
    _check_overrides(overrides, scans)
    named, silent = [], []
    for folder, series in scans:
        chosen = overrides.get(series.uid) or overrides.get(series.number)
        described = role_from_text(series.description)
        if chosen:
            named.append(Phase(folder, series, chosen, f"--role {series.number or series.uid}={chosen}"))
        elif series.modality == "MR":
            named.append(Phase(folder, series, "mri", "modality MR"))
        elif described:
            named.append(Phase(folder, series, described, f"SeriesDescription '{series.description}'"))
        else:
            silent.append(Phase(folder, series, "", ""))
    timed, warnings = _roles_by_time(silent, named)
    phases = [p for p in named + timed if p.role != LEFT_OUT]
    _check_one_series_per_channel(phases)
    return sorted(phases, key=lambda p: ROLES.index(p.role)), warnings


def _check_overrides(overrides: dict[str, str], scans: list[tuple[Path, Series]]) -> None:
    """Every `--role` names one scan series and a known role; a typo would silently leave the export's guess."""
    for key, role in overrides.items():
        if role not in (*ROLES, LEFT_OUT):
            raise RoleError(f"--role {key}={role}: unknown role (expected one of {', '.join(ROLES)}, or {LEFT_OUT})")
        hits = [s for _, s in scans if key in (s.number, s.uid)]
        if len(hits) != 1:
            problem = "no scan series has that number or UID" if not hits else f"{len(hits)} series; name it by UID"
            raise RoleError(f"--role {key}={role}: {problem} (scans: {'; '.join(str(s) for _, s in scans)})")


def _roles_by_time(silent: list[Phase], named: list[Phase]) -> tuple[list[Phase], list[str]]:
    """Roles for the CT series whose description names no phase, from their place in acquisition time order among
    the named phases (nc, arterial, portal, delayed). A lone CT is `ct`: a contrast CT, phase unknown. Where time
    leaves a choice and nothing is named, the usual protocol's phases are taken, with a warning to check them."""
    if not silent:
        return [], []
    if len(silent) == 1 and not any(p.role in CT_ROLES for p in named):
        return [_decided(silent[0], "ct", "the only CT series; its description names no phase")], []
    untimed = [p for p in silent if _moment(p.series) is None]
    if untimed:
        raise RoleError(f"{untimed[0]}: no phase in its description and no acquisition time; {_ask(untimed)}")
    silent.sort(key=lambda p: _moment(p.series))
    anchors = [(_moment(p.series), p.role) for p in named if p.role in PHASE_ORDER and _moment(p.series)]
    free = [r for r in PHASE_ORDER if r not in {p.role for p in named}]
    fits = [c for c in itertools.combinations(free, len(silent)) if _in_time_order(silent, c, anchors)]
    if len(fits) == 1:
        return [_decided(p, r, "acquisition time order") for p, r in zip(silent, fits[0])], []
    if fits and not anchors and len(silent) in USUAL_PHASES:
        usual = USUAL_PHASES[len(silent)]
        warning = (
            f"{', '.join(f'series {p.series}' for p in silent)}: no phase in the descriptions; taken as "
            f"{', '.join(usual)} by acquisition time and the usual protocol: check, and give --role NUMBER=ROLE"
        )
        return [_decided(p, r, "acquisition time order, usual protocol") for p, r in zip(silent, usual)], [warning]
    choice = f"time order allows {len(fits)} choices of phase" if fits else "there are more series than phases left"
    raise RoleError(f"{silent[0]}: its description names no phase and {choice}; {_ask(silent)}")


def _moment(series: Series) -> tuple[str, float] | None:
    """(date, HHMMSS) of a series' acquisition, comparable across the series of one study; None if unknown."""
    date, _, time = series.acquired.partition(" ")
    try:
        return date, float(time.replace(":", ""))
    except ValueError:
        return None


def _in_time_order(silent: list[Phase], roles: tuple[str, ...], anchors: list[tuple]) -> bool:
    """Whether giving `roles` to the silent series (in time order) keeps every phase in its place in time."""
    events = sorted(anchors + [(_moment(p.series), r) for p, r in zip(silent, roles)])
    order = [PHASE_ORDER.index(r) for _, r in events]
    return order == sorted(order)


def _decided(phase: Phase, role: str, how: str) -> Phase:
    return Phase(phase.folder, phase.series, role, how)


def _ask(phases: list[Phase]) -> str:
    numbers = ", ".join(p.series.number or p.series.uid for p in phases)
    return f"give --role NUMBER=ROLE (or =none) for series {numbers}"


def _check_one_series_per_channel(phases: list[Phase]) -> None:
    """Two series in one network channel (two arterial series, or portal beside ct) cannot both be the case's."""
    if not phases:
        raise RoleError("every scan series is left out (--role ...=none)")
    for channel in dict.fromkeys(ROLE_TO_CHANNEL[p.role] for p in phases):
        claims = [p for p in phases if ROLE_TO_CHANNEL[p.role] == channel]
        if len(claims) > 1:
            raise RoleError(
                f"{claims[0].folder}: {len(claims)} series claim the {channel} phase: "
                + "; ".join(f"{p.series} as {p.role} ({p.decided})" for p in claims)
                + "; leave all but one out with --role NUMBER=none"
            )


def _labelled_phase(labelled: str | None, phases: list[Phase], masks: list[Path]) -> Phase:
    """The phase the masks lie on: `--labelled`, or the only phase."""
    if labelled is None and len(phases) == 1:
        return phases[0]
    hits = [p for p in phases if p.role == labelled]
    if not hits:
        given = f"--labelled {labelled}: no series has that role" if labelled else "no --labelled"
        files = ", ".join(map(str, masks))
        raise RoleError(f"{files}: {given}; the phase the masks lie on is one of {', '.join(p.role for p in phases)}")
    return hits[0]


def _mask_labels(masks: dict[str, Path], phase: Phase, image: sitk.Image) -> tuple[sitk.Image, dict]:
    """Liver and tumour masks (or a 0/1/2 label map) as one label image on the labelled phase's grid."""
    label = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    for kind, path in sorted(masks.items(), key=lambda item: MASK_KINDS.index(item[0])):
        mask = sitk.GetArrayFromImage(_on_grid(read_image(path, label=True), image, path, phase))
        if kind == "labels":
            extra = sorted(set(np.unique(mask).tolist()) - {BACKGROUND, LIVER, TUMOR})
            if extra:
                raise InputError(
                    f"{path}: values {extra} in a label map that may hold only 0, {LIVER} liver, "
                    f"{TUMOR} tumour; give binary masks with --mask liver=... --mask tumor=..."
                )
        label = np.maximum(label, mask if kind == "labels" else np.where(mask > 0, CLASSES[kind], 0).astype(np.uint8))
    info = {"kind": "masks", "files": {kind: str(Path(path).resolve()) for kind, path in masks.items()}}
    return _label_image(label, image, ", ".join(map(str, masks.values()))), info


def _on_grid(mask: sitk.Image, image: sitk.Image, path: Path, phase: Phase) -> sitk.Image:
    """The mask with exactly the image's geometry, if it lies on the image's voxels (headers written by other tools
    round differently); on any other grid the labels would be shifted or scaled, so that is refused."""
    spacing = np.array(image.GetSpacing())
    off = [
        mask.GetSize() != image.GetSize(),
        np.abs(np.array(mask.GetSpacing()) / spacing - 1).max() > GRID_TOLERANCE,
        np.abs(np.subtract(mask.GetDirection(), image.GetDirection())).max() > GRID_TOLERANCE,
        (np.abs(np.subtract(mask.GetOrigin(), image.GetOrigin())) / spacing).max() > GRID_TOLERANCE,
    ]
    if any(off):
        raise InputError(
            f"{path}: not on the grid of {phase.role} {phase} (size {mask.GetSize()} vs {image.GetSize()}, spacing "
            f"{_mm(mask.GetSpacing())} vs {_mm(image.GetSpacing())}, origin {_mm(mask.GetOrigin())} vs "
            f"{_mm(image.GetOrigin())}); masks must lie on the labelled series' voxels"
        )
    mask.CopyInformation(image)
    return mask


def _mm(values: Iterable[float]) -> str:
    return ",".join(f"{v:.3g}" for v in values)


def _seg_files(options: ImportOptions, others: list[tuple[Path, Series]]) -> list[Path]:
    """`--seg`, else every SEG in the folders; none at all is a case without labels, which cannot train."""
    found = options.seg or [Path(f) for _, s in others if s.modality == "SEG" for f in s.files]
    if not found:
        rtstruct = (
            " (an RTSTRUCT is there, but is not read: export DICOM SEG or masks)"
            if any(s.modality == "RTSTRUCT" for _, s in others)
            else ""
        )
        raise InputError(
            f"{', '.join(map(str, options.dicom))}: no labelled phase: no DICOM SEG in the "
            f"folder{rtstruct}, and no --seg or --mask given"
        )
    return found


def _seg_labels(
    paths: list[Path], phases: list[Phase], images: dict, segment_map: dict[int, str]
) -> tuple[sitk.Image, Phase, dict]:
    """The segments of every SEG as liver or tumour on the one phase they all reference."""
    label, labelled, segments = None, None, []
    for path in paths:
        array, phase, described = _one_seg(path, phases, images, segment_map)
        if labelled is not None and phase is not labelled:
            raise InputError(
                f"{path}: labels {phase.role} {phase}, but {paths[0]} labels {labelled.role}; "
                "a case has one labelled phase: give one --seg"
            )
        label = array if label is None else np.maximum(label, array)
        labelled, segments = phase, segments + described
    info = {
        "kind": "DICOM SEG",
        "files": [str(Path(p).resolve()) for p in paths],
        "referenced_series_uid": labelled.series.uid,
        "segments": segments,
    }
    return _label_image(label, images[labelled.role], ", ".join(map(str, paths))), labelled, info


def _one_seg(
    path: Path, phases: list[Phase], images: dict, segment_map: dict[int, str]
) -> tuple[np.ndarray, Phase, list[dict]]:
    """One SEG's labels (0/1/2, on its series' voxels), the phase it references, and what each segment was taken for.
    Frames are placed by the source instances they reference, as the SEG standard intends."""
    import highdicom as hd
    import pydicom

    try:
        seg = hd.seg.segread(path)
    except (OSError, ValueError, AttributeError, KeyError, pydicom.errors.InvalidDicomError) as exc:
        raise InputError(f"{path}: not a readable DICOM SEG ({exc})") from None
    phase = _referenced_phase(seg, path, phases)
    if images[phase.role].HasMetaDataKey(READ_NOTE):
        raise InputError(
            f"{path}: its series {phase.series} has unevenly spaced slices, so its frames have no "
            "place on the even grid it was resampled to"
        )
    uids = [
        pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID
        for f in phase.series.files
    ]
    classes = [_segment_class(segment, path, segment_map) for segment in seg.SegmentSequence]
    numbers = [int(s.SegmentNumber) for s in seg.SegmentSequence]
    try:
        # SEGs often leave SpatialLocationsPreserved out (dcmqi's does); a frame goes where its source image is
        pixels = seg.get_pixels_by_source_instance(
            uids, numbers, ignore_spatial_locations=True, assert_missing_frames_are_empty=True
        )
    except (ValueError, KeyError, RuntimeError) as exc:
        raise InputError(f"{path}: its frames cannot be placed on {phase} ({exc})") from None
    label = np.zeros(pixels.shape[:3], np.uint8)
    for i, (value, _) in enumerate(classes):
        label = np.maximum(label, np.where(pixels[..., i] > 0, value, BACKGROUND).astype(np.uint8))
    described = [
        {"file": path.name, "number": n, "label": str(s.SegmentLabel), "taken_as": _class_name(v), "from": how}
        for n, s, (v, how) in zip(numbers, seg.SegmentSequence, classes)
    ]
    return label, phase, described


def _referenced_phase(seg, path: Path, phases: list[Phase]) -> Phase:
    """The imported phase whose series the SEG references: labels drawn on another series (another phase, or a
    reconstruction left out) would be placed on the wrong voxels."""
    referenced = sorted({series_uid for _, series_uid, _ in seg.get_source_image_uids()})
    hits = [p for p in phases if p.series.uid in referenced]
    if len(hits) != 1 or len(referenced) != 1:
        raise InputError(
            f"{path}: references series {', '.join(referenced) or '(none)'}, none of the series imported ("
            + "; ".join(f"{p.role}: {p.series.uid}" for p in phases)
            + ")"
        )
    return hits[0]


def _segment_class(segment, path: Path, segment_map: dict[int, str]) -> tuple[int, str]:
    """Liver, tumour or left out for one SEG segment, and why: `--segment-map`, else its property type code, else
    whole words of its label ("Liver", "Tumor 1"); a segment of unknown meaning must not become background."""
    number, label = int(segment.SegmentNumber), str(segment.SegmentLabel)
    code = segment.SegmentedPropertyTypeCodeSequence[0]
    if number in segment_map:
        return CLASSES[segment_map[number]], f"--segment-map {number}={segment_map[number]}"
    if str(code.CodeValue) in CODE_CLASSES:
        return CODE_CLASSES[str(code.CodeValue)], f"property type {code.CodeValue} '{code.CodeMeaning}'"
    said = set(words(label).split())
    if said & TUMOR_WORDS or said == {"liver"}:
        return (TUMOR if said & TUMOR_WORDS else LIVER), f"segment label '{label}'"
    raise InputError(
        f"{path}: segment {number} '{label}' (property type '{code.CodeMeaning}') is neither liver nor "
        f"tumour by its code or label; say which with --segment-map {number}=liver|tumor|none"
    )


def _class_name(value: int) -> str:
    return {LIVER: "liver", TUMOR: "tumor"}.get(value, LEFT_OUT)


def _label_image(label: np.ndarray, image: sitk.Image, source: str) -> sitk.Image:
    """The labels on the image's grid; no liver is refused, because the trainer would learn the liver as background."""
    if label.shape != sitk.GetArrayViewFromImage(image).shape:
        raise InputError(f"{source}: labels of shape {label.shape[::-1]} on an image of size {image.GetSize()}")
    if not (label == LIVER).any():
        raise InputError(f"{source}: no liver labelled; the trainer would take the liver for background")
    out = sitk.GetImageFromArray(label)
    out.CopyInformation(image)
    return out


def _volumes_ml(label: sitk.Image) -> dict[str, float]:
    """Liver and tumour volumes: a glance at case.json shows whether the labels are plausible."""
    voxel_ml = float(np.prod(label.GetSpacing())) / MM3_PER_ML
    counts = np.bincount(sitk.GetArrayViewFromImage(label).ravel(), minlength=TUMOR + 1)
    return {"liver": round(counts[LIVER] * voxel_ml, 1), "tumor": round(counts[TUMOR] * voxel_ml, 2)}


def _stored(image: sitk.Image, role: str) -> sitk.Image:
    """CT as int16 HU, as scanners store it (read_image gives float32); MR as read."""
    if role not in CT_ROLES:
        return image
    array = np.clip(np.rint(sitk.GetArrayViewFromImage(image)), -32768, 32767).astype(np.int16)
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


def _case_info(
    options: ImportOptions, phases: list[Phase], labelled: Phase, labels: dict, volumes: dict, warnings: list[str]
) -> dict:
    """case.json: the fields of ../shared/data/real-train's cases, and where every file and decision came from."""
    return {
        "diagnosis": options.diagnosis,
        "malignant": options.malignant,
        "labelled": labelled.role,
        "phases": {p.role: f"'{p.series.description}' (series {p.series.number or '?'})" for p in phases},
        "source": options.source,
        "label_volumes_ml": volumes,
        "provenance": {
            "tool": f"liverfusion {__version__} dataset import",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "series": {p.role: _series_info(p) for p in phases},
            "labels": labels,
        },
        "warnings": warnings,
    }


def _series_info(phase: Phase) -> dict:
    series = phase.series
    return {
        "folder": str(phase.folder.resolve()),
        "files": [Path(f).name for f in series.files],
        "series_uid": series.uid,
        "series_number": series.number,
        "description": series.description,
        "modality": series.modality,
        "acquired": series.acquired,
        "role_from": phase.decided,
    }


def parse_pairs(
    specs: Iterable[str], option: str, keys: tuple[str, ...] | None = None, values: tuple[str, ...] | None = None
) -> dict[str, str]:
    """`KEY=VALUE` items of a repeated option as a dict, keys and values checked against the allowed ones (if given,
    matched in lower case)."""
    pairs: dict[str, str] = {}
    for spec in specs:
        key, sep, value = (part.strip() for part in spec.partition("="))
        known = (not keys or key.lower() in keys) and (not values or value.lower() in values)
        if not (sep and key and value and known):
            expected = f"{'|'.join(keys) if keys else 'KEY'}={'|'.join(values) if values else 'VALUE'}"
            raise InputError(f"{option} {spec}: expected {expected}")
        pairs[key.lower() if keys else key] = value.lower() if values else value
    return pairs


def parse_segment_map(specs: Iterable[str]) -> dict[int, str]:
    """`--segment-map 1=liver,2=tumor` (also repeated) as segment number -> class."""
    items = [item for spec in specs for item in spec.split(",") if item.strip()]
    pairs = parse_pairs(items, "--segment-map", values=tuple(CLASSES))
    if not all(k.isdigit() for k in pairs):
        raise InputError(f"--segment-map {','.join(items)}: segment numbers are whole numbers (1=liver,2=tumor)")
    return {int(k): v for k, v in pairs.items()}
