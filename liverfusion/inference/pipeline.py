"""The main job: align the inputs, run the network, post-process, and write the outputs.

`run_case` works on SimpleITK images in memory (the Slicer Logic calls it); `segment` adds reading
and writing for the command line and batch runs. Both report progress and honour cancellation.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..apps.ct2mri import translate as ct2mri
from ..constants import CHANNELS, ROLE_TO_CHANNEL, TUMOR
from ..errors import InputError, LiverFusionError, OverlapError, RoleError
from ..io import intensity_checks
from ..io.dicomseg import write_dicom_seg
from ..io.images import (
    STORED_INTEGERS,
    dicom_source,
    read_image,
    require_writable,
    staged_output,
    write_image,
    write_text,
    write_transform,
)
from ..io.roles import check_roles, choose_reference
from ..io.segnrrd import write_seg_nrrd
from ..models import store as model_store
from ..models.interface import Prediction, SegmentationModel, guarded
from ..preprocessing import bounding_box, covering_box
from ..progress import Reporter, silent
from ..registration import align as registration
from ..reports.page import write_report
from . import postprocess
from .device import pick_device


@dataclass
class CaseResult:
    """Everything one run produces, on the reference grid."""

    reference: str
    labels: sitk.Image
    attention: sitk.Image
    tumor_probability: sitk.Image  # the network's, before post-processing: where it hesitated, not only what it called
    fusion: dict[str, sitk.Image]
    malignancy_logits: sitk.Image | None  # None: the model does not rate malignancy
    aligned: dict[str, sitk.Image]
    registrations: dict[str, registration.Registration]
    lesions: list[postprocess.Lesion]
    probability: float | None
    liver_volume_ml: float
    device: str
    model: model_store.Bundle
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    translated: dict[str, sitk.Image] = field(default_factory=dict)  # channels filled by translation, by role
    translator: model_store.Bundle | None = None
    inputs: dict[str, sitk.Image] = field(default_factory=dict)  # as the network read them: non-finite voxels filled

    def summary(self, inputs: dict[str, str] | None = None) -> dict:
        """The `result.json` contract."""
        return {
            "reference": self.reference,
            "malignancy_probability": postprocess.rounded(self.probability),
            "liver_volume_ml": round(self.liver_volume_ml, 1),
            "lesions": [les.as_dict() for les in self.lesions],
            "timings_s": {k: round(v, 2) for k, v in self.timings.items()},
            "device": self.device,
            "model": {"name": self.model.name, "version": self.model.version, "sha256": self.model.sha256},
            "inputs": inputs or {},
            "alignment": {
                role: {
                    "mode": r.mode,
                    "metric_before": round(r.metric_before, 4),
                    "metric_after": round(r.metric_after, 4),
                    "jacobian_range": [round(v, 3) for v in r.jacobian_range],
                }
                for role, r in self.registrations.items()
            },
            "filled_by_translation": {
                role: {"from": self.reference, "model": f"{self.translator.name} {self.translator.version}"}
                for role in self.translated
            },
            "warnings": self.warnings,
        }


FOCUS_MARGIN_MM = 20.0


def liver_focus(
    image: sitk.Image, role: str, model: SegmentationModel, device, alone: tuple | None = None
) -> sitk.Image | None:
    """The liver found by the model on the reference image alone (`alone`, when already run), dilated by 20 mm;
    None if none found.

    The network works with any subset of inputs, so it can find the liver before alignment; the
    deformable stage then fits the organ we care about rather than the whole abdomen.
    """
    liver = model.liver(image, role, device, alone)
    if liver is None:
        return None
    radius = [int(np.ceil(FOCUS_MARGIN_MM / s)) for s in liver.GetSpacing()]
    return sitk.BinaryDilate(liver, radius)


def align_all(
    images: dict[str, sitk.Image],
    reference: str,
    mode: str,
    report: Reporter,
    names: dict[str, str] | None = None,
    focus: sitk.Image | None = None,
) -> dict[str, registration.Registration]:
    """Register every non-reference input to the reference."""
    moving = [r for r in images if r != reference]
    out = {}
    for i, role in enumerate(moving):
        report(0.05 + 0.4 * i / max(len(moving), 1), f"align {role}")
        try:
            out[role] = registration.register(images[reference], images[role], mode, reference, role, focus)
        except (OverlapError, InputError) as exc:
            raise type(exc)(f"{(names or {}).get(role, role)}: {exc}") from None
    return out


def run_case(
    images: dict[str, sitk.Image],
    align: str = "deformable",
    device: str = "auto",
    model: str | None = None,
    report: Reporter = silent,
    names: dict[str, str] | None = None,
    fill_mri: bool = False,
    reference: str | None = None,
) -> CaseResult:
    """Segment one case held in memory and return everything the run made (nothing is written).

    images: SimpleITK images by role (`ct`, `mri`, `nc`, `arterial`, `portal`, `delayed`), each on its own grid;
        one image or several of the same patient.
    align: `none`, `rigid` or `deformable` (rigid, then a B-spline focused on the liver the model finds on the
        reference alone): how each other input is registered to the reference.
    device: `auto` (CUDA when PyTorch sees a GPU), `cpu` or `cuda`.
    model: a bundle name under `Resources/Models` or a bundle folder; default `liverfusion_attention`.
    report: called as `report(fraction, stage)` as the run goes; it may raise `errors.Cancelled` to stop the run.
    names: file names by role, for error messages.
    fill_mri: with no MRI given, the reference CT translated to an MRI-like image fills the MRI channel; it lies
        on the CT's grid, so it needs no alignment.
    reference: the input whose grid the outputs take (default: `choose_reference`: portal or ct, else the first),
        such as the phase a radiologist drew on.

    Returns a `CaseResult` on the reference grid: `labels` (0 background, 1 liver, 2 tumour), `lesions` (volume,
    diameter, malignancy probability each), `probability` (the case's, None for a model that does not rate
    malignancy), the attention and fusion maps, the aligned inputs with their transforms, `timings` and `warnings`.
    Errors a user can cause (a bad input, a missing model) are `errors.LiverFusionError` with a one-line message.

    >>> result = run_case({"ct": read_image("ct.nii.gz"), "mri": read_image("t2/")}, align="rigid")
    >>> result.probability, [lesion.volume_ml for lesion in result.lesions]"""
    check_roles(images)
    images, warnings = intensity_checks.checked(images, names)
    if align not in registration.MODES:
        raise LiverFusionError(f"--align {align}: expected one of {', '.join(registration.MODES)}")
    timings, start = {}, time.perf_counter()
    dev = pick_device(device)
    segmenter = model_store.load_model(model, dev)
    if reference is not None and reference not in images:
        raise RoleError(f"--reference {reference}: not among the inputs ({', '.join(images)})")
    reference = reference or choose_reference(images)
    warnings += segmenter.notes(images, reference)
    focus, alone, fills_mri = None, None, fill_mri and "mri" not in images
    if len(images) > 1 or fills_mri:
        report(0.02, "reference alone")
        alone = segmenter.alone(images[reference], reference, dev)
        timings["reference_alone"], start = time.perf_counter() - start, time.perf_counter()
    if align == "deformable" and len(images) > 1:
        focus = liver_focus(images[reference], reference, segmenter, dev, alone)
        if focus is None:
            warnings.append("no liver found on the reference alone: deformable alignment of the whole image")
    regs = align_all(images, reference, align, report, names, focus)
    timings["align"] = time.perf_counter() - start
    translated, translator = {}, None
    if fills_mri:
        report(0.45, "translate CT to MRI")
        t = time.perf_counter()
        translator = ct2mri.load_translator(None, dev)
        translated = {"mri": ct2mri.translate(images[reference], translator, dev)}
        timings["translate"] = time.perf_counter() - t
    report(0.5, "infer")
    network_inputs = {**images, **translated}
    guard = alone[1] if alone else None
    result = segment_aligned(network_inputs, reference, regs, segmenter, dev, report, timings, guard=guard)
    warnings += [w for r in regs.values() for w in r.warnings] + result.pop("notes")
    return CaseResult(
        reference=reference,
        device=str(dev),
        model=segmenter.bundle,
        registrations=regs,
        timings=timings,
        warnings=warnings,
        translated=translated,
        translator=translator,
        inputs=images,
        **result,
    )


def segment_aligned(
    images: dict[str, sitk.Image],
    reference: str,
    regs: dict[str, registration.Registration],
    model: SegmentationModel,
    device,
    report: Reporter = silent,
    timings: dict[str, float] | None = None,
    use: Collection[str] | None = None,
    guard: Prediction | None = None,
) -> dict:
    """Network and post-processing on inputs already aligned by `regs`: the fields of a CaseResult that they
    make, and `notes` for its warnings. Benchmarks call it to compare models, and subsets of inputs (`use`), on one
    alignment. `guard`, the prediction on the reference alone, guards a fused one (`interface.guarded`)."""
    timings = {} if timings is None else timings
    t = time.perf_counter()
    transforms = {role: r.transform for role, r in regs.items()}
    grid, pred = model.predict(images, reference, transforms, device, report, use, alone=guard)
    if guard is not None and len(use or images) > 1:
        pred = guarded(pred, guard, grid.GetSpacing()[::-1])
    timings["infer"] = time.perf_counter() - t
    report(0.8, "postprocess")
    t = time.perf_counter()
    used = {role: r for role, r in regs.items() if use is None or role in use}
    result = _postprocess(pred, grid, images, reference, used)
    timings["postprocess"] = time.perf_counter() - t
    cut = postprocess.cut_liver_notes(result["labels"], result["liver_volume_ml"])
    return {**result, "notes": pred.notes + cut}


MAP_LEVELS = 255


def _display_map(array: np.ndarray) -> np.ndarray:
    """A float32 [0, 1] map rounded to 1/255 steps: an overlay shows no more, and dense float noise made writing
    the maps of a 512x512x120 case take 3 s each (gzip cannot shrink it). (The division once turned it into
    float64, and each map took 2.8 s to write.)"""
    array = array.astype(np.float32)  # a copy, then in place: 3x faster than array arithmetic
    np.clip(array, 0.0, 1.0, out=array)
    array *= MAP_LEVELS
    np.round(array, out=array)
    array /= MAP_LEVELS
    return array


def _like_source(resampled: sitk.Image, source: sitk.Image) -> sitk.Image:
    """The resampled image in 16-bit integers when its source held integers that fit (CT in HU; MRI stored
    with a scale factor stays float): inputs are read as float32, and a 512x512x120 float32 copy takes 3 s to
    write."""
    values = sitk.GetArrayViewFromImage(source)
    lo, hi = float(values.min()), float(values.max())
    if not source.HasMetaDataKey(STORED_INTEGERS) and not np.array_equal(values, np.round(values)):
        return resampled  # (the check took 0.25 s on a 200-slice phase, hence the reader's mark)
    for pixel, (low, high) in ((sitk.sitkInt16, (-32768, 32767)), (sitk.sitkUInt16, (0, 65535))):
        if low <= lo and hi <= high:
            return sitk.Cast(sitk.Round(resampled), pixel)
    return resampled


def _on_reference(array: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(grid)
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _argmax_labels(liver: np.ndarray, tumor: np.ndarray) -> np.ndarray:
    """The argmax of (background, liver, tumour) from the two foreground maps (background is the rest, as the
    three sum to one): a third less resampling, and no stacked copy of three 512x512x120 maps."""
    background = 1.0 - liver - tumor
    labels = (liver > background).astype(np.uint8)  # ties go to the lower class, as np.argmax does
    labels[(tumor > liver) & (tumor > background)] = TUMOR
    return labels


def foreground_box(mask: np.ndarray, grid: sitk.Image, reference: sitk.Image) -> tuple[list[int], list[int]]:
    """Index and size of the box of the reference grid that covers `mask` of the model grid, with a model voxel
    of margin for the interpolation. Post-processing the liver's box (a sixth of a clinical CT), and the fusion
    maps in the body's box, took a third of the time of the whole grid."""
    if not mask.any():
        return [0, 0, 0], [1, 1, 1]
    box = bounding_box(mask, (0, 0, 0))[::-1]  # x, y, z
    corners = [[float(b) for b in c] for c in itertools.product(*[(s.start, s.stop - 1) for s in box])]
    lo, hi = covering_box([grid.TransformContinuousIndexToPhysicalPoint(c) for c in corners], reference)
    return lo.tolist(), np.maximum(hi - lo, 1).tolist()


def _sub_grid(reference: sitk.Image, start: list[int], size: list[int]) -> sitk.Image:
    sub = sitk.Image(size, sitk.sitkUInt8)
    sub.SetSpacing(reference.GetSpacing())
    sub.SetDirection(reference.GetDirection())
    sub.SetOrigin(reference.TransformIndexToPhysicalPoint(start))
    return sub


def _pasted(box: sitk.Image | np.ndarray, start: list[int], reference: sitk.Image) -> sitk.Image:
    """A box (an image on a sub-grid of the reference, or its array) padded with zeros to the whole reference grid:
    one allocation of the whole grid, where a NumPy canvas and its copy into ITK took two."""
    if isinstance(box, np.ndarray):
        box = sitk.GetImageFromArray(box)
    upper = [n - b - s for n, b, s in zip(reference.GetSize(), start, box.GetSize())]
    full = sitk.ConstantPad(box, start, upper, 0.0)
    full.CopyInformation(reference)
    return full


def _postprocess(pred, grid, images, reference, regs) -> dict:
    ref = images[reference]
    start, size = foreground_box(pred.probabilities[1:].sum(0) > 0.01, grid, ref)
    box = _sub_grid(ref, start, size)
    liver_prob, tumor_prob = (sitk.GetArrayFromImage(_on_reference(p, grid, box)) for p in pred.probabilities[1:])
    labels = sitk.GetImageFromArray(_argmax_labels(liver_prob, tumor_prob))
    del liver_prob  # a whole-body CT's box holds hundreds of megabytes per map
    labels.CopyInformation(box)
    labels = postprocess.clean_labels(postprocess.drop_lesions_outside_liver(labels))
    logits = None if pred.malignancy_logits is None else _on_reference(pred.malignancy_logits, grid, box)
    lesions, lesion_map = postprocess.find_lesions(labels, logits)
    labels = postprocess.drop_small_lesions(labels, lesion_map)
    logit_arr = None if logits is None else sitk.GetArrayViewFromImage(logits)
    attention = tumor_prob.copy() if logit_arr is None else postprocess.sigmoid(logit_arr)
    if logit_arr is not None:
        attention *= tumor_prob  # in place, as below: no temporary the size of the box
    attention /= max(float(attention.max()), 1e-6)
    aligned = {
        role: _like_source(registration.resample_to(images[role], ref, r.transform), images[role])
        for role, r in regs.items()
    }
    return {
        "labels": _pasted(labels, start, ref),
        "attention": _pasted(_display_map(attention), start, ref),
        "tumor_probability": _pasted(_display_map(tumor_prob), start, ref),
        "fusion": _fusion_maps(pred, grid, images, ref),
        "malignancy_logits": None if logits is None else _pasted(logits, start, ref),
        "aligned": aligned,
        "lesions": lesions,
        "probability": postprocess.case_probability(lesions, lesion_map, tumor_prob, logit_arr),
        "liver_volume_ml": postprocess.liver_volume_ml(labels),
    }


def _fusion_maps(pred: Prediction, grid: sitk.Image, images: dict, ref: sitk.Image) -> dict[str, sitk.Image]:
    """Each input's fusion weight on the reference grid, resampled in the box where the network ran (zero
    outside: the air around the patient)."""
    start, size = foreground_box(pred.fusion_weights.sum(0) > 0, grid, ref)
    box = _sub_grid(ref, start, size)
    maps = {}
    for role in images:
        weights = _on_reference(pred.fusion_weights[CHANNELS.index(ROLE_TO_CHANNEL[role])], grid, box)
        maps[role] = _pasted(_display_map(sitk.GetArrayViewFromImage(weights)), start, ref)
    return maps


def read_inputs(inputs: dict[str, str]) -> dict[str, sitk.Image]:
    check_roles(inputs)
    return {role: read_image(path) for role, path in inputs.items()}


WRITERS = 2  # threads writing the output images

# What `segment` writes into its folder; a rerun there removes those of them it does not write again.
OUTPUTS = (
    "segmentation.nii.gz",
    "segmentation.seg.nrrd",
    "segmentation.dcm",
    "attention.nii.gz",
    "attention_*.nii.gz",
    "tumor_probability.nii.gz",
    "aligned_*.nii.gz",
    "transform_*.h5",
    "mri_from_*.nii.gz",
    "report.html",
    "report_*.png",  # no longer written (the figures are in report.html): a rerun removes old ones
    "result.json",
)


def write_outputs(result: CaseResult, out: Path, inputs: dict[str, str] | None = None) -> None:
    """Write every image and transform into `out` (a staging folder); with the input paths, also a DICOM SEG
    when the reference is a DICOM series (PACS viewers want the result as DICOM), or a warning why not."""
    reference_path = inputs[result.reference] if inputs else None
    if reference_path is not None and dicom_source(reference_path) is not None:
        model_info = {"name": result.model.name, "version": result.model.version}
        try:
            result.warnings += write_dicom_seg(result.labels, reference_path, out / "segmentation.dcm", model_info)
        except InputError as exc:  # the other outputs stand without it
            result.warnings.append(f"segmentation.dcm not written: {exc}")
    images = {
        "segmentation.nii.gz": result.labels,
        "attention.nii.gz": result.attention,
        "tumor_probability.nii.gz": result.tumor_probability,
        **{f"attention_{role}.nii.gz": image for role, image in result.fusion.items()},
        **{f"aligned_{role}.nii.gz": image for role, image in result.aligned.items()},
        **{f"{role}_from_{result.reference}.nii.gz": image for role, image in result.translated.items()},
    }
    # Two at a time: ISA-L compresses one while ITK writes the next (a 200-slice case's 2.0 s took 1.2 s).
    with ThreadPoolExecutor(WRITERS) as pool:
        written = [pool.submit(write_image, image, out / name) for name, image in images.items()]
        write_seg_nrrd(result.labels, out / "segmentation.seg.nrrd")
        for role in result.aligned:
            write_transform(result.registrations[role].transform, out / f"transform_{role}.h5")
        for future in written:
            future.result()  # the first error, as one line naming its file


def write_summary(result: CaseResult, out: Path, inputs: dict[str, str]) -> dict:
    """Write `result.json` last, once every timing is known."""
    summary = result.summary({r: str(Path(p).resolve()) for r, p in inputs.items()})
    write_text(json.dumps(summary, indent=2) + "\n", out / "result.json")
    return summary


def segment(
    inputs: dict[str, str],
    out_dir: str | Path,
    align: str = "deformable",
    device: str = "auto",
    model: str | None = None,
    report: Reporter = silent,
    fill_mri: bool = False,
    reference: str | None = None,
) -> dict:
    """Read, segment and write one case: what `liverfusion segment` does. On any error nothing is left in `out_dir`.

    inputs: image paths by role (`ct`, `mri`, `nc`, `arterial`, `portal`, `delayed`): a NIfTI, NRRD or MHA file,
        a DICOM folder, or FOLDER@NUMBER for one series of a folder that holds several.
    out_dir: the output folder; it receives `segmentation.nii.gz` and `.seg.nrrd` (0 background, 1 liver,
        2 tumour; also `segmentation.dcm` for a DICOM reference), `attention*.nii.gz`, `tumor_probability.nii.gz`,
        `aligned_<role>.nii.gz` with `transform_<role>.h5`, `report.html` and, last, `result.json`.
    align, device, model, report, fill_mri, reference: as for `run_case`.

    Returns the `result.json` content: the case's malignancy probability, liver volume, lesions, timings, device,
    model (name, version, SHA-256), inputs, alignment and warnings. Errors a user can cause are
    `errors.LiverFusionError` with a one-line message.

    >>> summary = segment({"ct": "ct.nii.gz", "mri": "t2.nii.gz"}, "out", align="rigid", device="cpu")
    >>> summary["malignancy_probability"], len(summary["lesions"])"""
    require_writable(out_dir)  # before minutes of work
    t = time.perf_counter()
    images = read_inputs(inputs)
    load_s = time.perf_counter() - t
    result = run_case(images, align, device, model, report, inputs, fill_mri, reference)
    result.timings = {"load": load_s, **result.timings}
    report(0.9, "write")
    with staged_output(out_dir, replaces=OUTPUTS) as stage:
        t = time.perf_counter()
        write_outputs(result, stage, inputs)
        result.timings["write"] = time.perf_counter() - t
        write_report(result, stage)
        summary = write_summary(result, stage, inputs)
    report(1.0, "done")
    return summary
