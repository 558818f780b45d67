"""`liverfusion dataset import` on real DICOM: dcmqi's CT slices with their real SEG, and a two-phase study with a
highdicom SEG written at run time from a real HCC case (HCC-TACE-Seg, cropped and downsampled to stay fast); and
every bad export refused with one error line and nothing written."""

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from liverfusion.cli import main
from liverfusion.io.dicomseg import write_dicom_seg
from liverfusion.io.images import Series
from liverfusion.training.dataset_import import assign_roles

SERIES = {"arterial": (4, "AP", "100035"), "delayed": (6, "EQP", "100400")}  # number, description, time
SLICES = slice(23, 30)  # the tumour lies on slices 26 to 28 of tace2022's 50
SHRINK = 8  # in-plane: 512 -> 64 columns


def _small(image: sitk.Image, label: bool = False) -> sitk.Image:
    """A few slices of the image at 1/SHRINK in-plane resolution, with its physical position kept."""
    image = image[:, :, SLICES.start : SLICES.stop]
    size = [image.GetSize()[0] // SHRINK, image.GetSize()[1] // SHRINK, image.GetSize()[2]]
    spacing = [image.GetSpacing()[0] * SHRINK, image.GetSpacing()[1] * SHRINK, image.GetSpacing()[2]]
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    return sitk.Resample(
        image, size, sitk.Transform(), interpolator, image.GetOrigin(), spacing, image.GetDirection(), 0,
        image.GetPixelID(),
    )


def _write_series(image: sitk.Image, folder: Path, template: Path, study: tuple, number: int, text: str, time: str):
    """The image as a CT series with a real scanner's header (TotalSegmentator's example CT), new UIDs and pixels."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    pixels, uid, (study, frame) = sitk.GetArrayFromImage(image).astype(np.int16), generate_uid(), study
    for k in range(image.GetDepth()):
        ds = pydicom.dcmread(template)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, uid, frame
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = number, text, k + 1
        ds.AcquisitionTime = ds.ContentTime = ds.SeriesTime = time
        ds.Rows, ds.Columns = pixels.shape[1:]
        ds.PixelSpacing = [round(image.GetSpacing()[1], 6), round(image.GetSpacing()[0], 6)]
        ds.ImageOrientationPatient = [round(v, 6) for v in direction[:, :2].T.ravel()]
        ds.ImagePositionPatient = [round(v, 4) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
        ds.SliceThickness = image.GetSpacing()[2]
        ds.PixelRepresentation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
        ds.RescaleIntercept, ds.RescaleSlope = 0, 1
        ds.PixelData = pixels[k].tobytes()
        ds.save_as(folder / f"s{number}_{k:03d}.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def tace(real_data, tmp_path_factory) -> dict:
    """Study folders of tace2022's arterial and delayed phases (one with descriptions AP and EQP, one without), a
    SEG of liver and tumour on the arterial series, the same labels as NIfTI masks, and the images written."""
    case, root = real_data.parent / "real-train" / "tace2022", tmp_path_factory.mktemp("tace")
    template = sorted((real_data / "totalsegmentator_examples" / "example_ct_dicom").iterdir())[0]
    images = {role: _small(sitk.ReadImage(str(case / f"{role}.nii.gz"))) for role in SERIES}
    label = _small(sitk.ReadImage(str(case / "label_arterial.nii.gz")), label=True)
    for folder, described in (("study", True), ("silent", False)):
        (root / folder).mkdir()
        study = generate_uid(), generate_uid()  # study and frame of reference
        for role, (number, text, time) in SERIES.items():
            _write_series(images[role], root / folder, template, study, number, text if described else "", time)
    (root / "seg").mkdir()
    write_dicom_seg(label, f"{root / 'study'}@4", root / "seg" / "arterial.dcm", {"name": "reader", "version": "1"})
    for name, mask in (("liver", label == 1), ("tumor", label == 2), ("labels", label)):
        sitk.WriteImage(mask, str(root / f"{name}.nii.gz"))
    return {"root": root, "images": images, "label": label}


def _import(tmp_path, capsys, *args: str) -> tuple[int, str, str, Path]:
    out = tmp_path / "case"
    rc = main(["dataset", "import", "--out", str(out), *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err, out


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_dcmqi_ct_and_its_seg_import_to_a_case_with_the_reference_liver(real_data, tmp_path, capsys):
    series = real_data / "dcmqi_ct3slice_liver"
    rc, out, err, case = _import(tmp_path, capsys, "--dicom", str(series), "--diagnosis", "none")
    assert rc == 0, err
    assert sorted(p.name for p in case.iterdir()) == ["case.json", "ct.nii.gz", "label_ct.nii.gz"]
    reference = sitk.ReadImage(str(series / "liver_seg.nrrd"))
    label = sitk.ReadImage(str(case / "label_ct.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(reference))
    np.testing.assert_allclose(label.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    ct = sitk.ReadImage(str(case / "ct.nii.gz"))
    assert ct.GetPixelID() == sitk.sitkInt16 and label.GetPixelID() == sitk.sitkUInt8
    info = json.loads((case / "case.json").read_text(encoding="utf-8"))
    assert info["labelled"] == "ct" and info["diagnosis"] == "none" and info["malignant"] is None
    assert info["provenance"]["labels"]["segments"][0]["taken_as"] == "liver"  # by dcmqi's code T-62000 'Liver'
    assert info["provenance"]["series"]["ct"]["files"] == ["03.dcm", "02.dcm", "01.dcm"]  # along the slice normal


def test_two_phase_study_with_a_highdicom_seg_imports_roles_labels_and_geometry(tace, tmp_path, capsys):
    root = tace["root"]
    rc, out, err, case = _import(
        tmp_path, capsys, "--dicom", str(root / "study"), "--seg", str(root / "seg" / "arterial.dcm"),
        "--diagnosis", "HCC", "--malignant", "yes", "--source", "HCC-TACE-Seg 2022, cropped",
    )
    assert rc == 0, err
    assert "arterial: series 4 'AP' (SeriesDescription 'AP')" in out and "delayed: series 6 'EQP'" in out
    assert sorted(p.name for p in case.iterdir()) == [
        "arterial.nii.gz", "case.json", "delayed.nii.gz", "label_arterial.nii.gz"]
    for role, source in tace["images"].items():
        written = sitk.ReadImage(str(case / f"{role}.nii.gz"))
        assert written.GetPixelID() == sitk.sitkInt16
        np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(source))
    label = _array(case / "label_arterial.nii.gz")
    np.testing.assert_array_equal(label, sitk.GetArrayFromImage(tace["label"]))
    assert set(np.unique(label)) == {0, 1, 2}
    info = json.loads((case / "case.json").read_text(encoding="utf-8"))
    assert (info["labelled"], info["diagnosis"], info["malignant"]) == ("arterial", "HCC", True)
    assert info["source"] == "HCC-TACE-Seg 2022, cropped" and info["phases"]["delayed"] == "'EQP' (series 6)"
    series = info["provenance"]["series"]
    assert series["arterial"]["series_uid"] == info["provenance"]["labels"]["referenced_series_uid"]
    assert len(series["delayed"]["files"]) == SLICES.stop - SLICES.start
    assert [s["taken_as"] for s in info["provenance"]["labels"]["segments"]] == ["liver", "tumor"]
    assert info["provenance"]["tool"].startswith("liverfusion ") and info["provenance"]["date"]


def test_masks_import_like_the_seg(tace, tmp_path, capsys):
    root = tace["root"]
    masks = ["--mask", f"liver={root / 'liver.nii.gz'}", "--mask", f"tumor={root / 'tumor.nii.gz'}"]
    rc, _, err, case = _import(tmp_path, capsys, "--dicom", str(root / "study"), "--labelled", "arterial", *masks)
    assert rc == 0, err
    np.testing.assert_array_equal(_array(case / "label_arterial.nii.gz"), sitk.GetArrayFromImage(tace["label"]))
    rc, _, err, case = _import(
        tmp_path, capsys, "--dicom", str(root / "study"), "--labelled", "arterial", "--mask",
        f"labels={root / 'labels.nii.gz'}",
    )
    assert rc == 0, err
    np.testing.assert_array_equal(_array(case / "label_arterial.nii.gz"), sitk.GetArrayFromImage(tace["label"]))


def test_silent_descriptions_take_roles_from_time_with_a_warning_and_role_overrides_them(tace, tmp_path, capsys):
    root = tace["root"]
    seg = ["--mask", f"labels={root / 'labels.nii.gz'}", "--labelled", "arterial"]
    rc, out, err, case = _import(tmp_path, capsys, "--dicom", str(root / "silent"), *seg)
    assert rc == 0, err
    assert sorted(p.name for p in case.iterdir()) == [
        "arterial.nii.gz", "case.json", "label_arterial.nii.gz", "portal.nii.gz"]  # a biphasic protocol's guess
    assert "warning: " in out and "check, and give --role" in out
    rc, out, err, case = _import(tmp_path, capsys, "--dicom", str(root / "silent"), "--role", "6=delayed",
                                 "--role", "4=arterial", *seg)
    assert rc == 0, err
    info = json.loads((case / "case.json").read_text(encoding="utf-8"))
    assert sorted(info["phases"]) == ["arterial", "delayed"] and not (case / "portal.nii.gz").exists()
    assert info["provenance"]["series"]["delayed"]["role_from"] == "--role 6=delayed"


def _series(number: str, description: str = "", time: str = "", modality: str = "CT") -> tuple[Path, Series]:
    return Path("study"), Series(f"1.2.{number}", [], number, description, True, modality, f"20200101 {time}")


@pytest.mark.parametrize("scans, roles", [
    ([("2", "", "100000"), ("3", "Arterial", "100030"), ("4", "Portal", "100110"), ("5", "Delayed", "100400")],
     ["nc", "arterial", "portal", "delayed"]),  # the one phase left goes before the arterial
    ([("2", "", "100000"), ("3", "", "100030"), ("4", "", "100110"), ("5", "", "100400")],
     ["nc", "arterial", "portal", "delayed"]),  # four series, four phases, in time order
    ([("2", "PV", "100110"), ("3", "", "100400")], ["portal", "delayed"]),  # only delayed comes after portal
    ([("7", "T2 HASTE", "", "MR"), ("3", "", "")], ["ct", "mri"]),  # a lone CT whose phase nobody says
])
def test_roles_come_from_descriptions_and_from_time_where_it_decides(scans, roles):
    phases, warnings = assign_roles([_series(*s) for s in scans], {})
    assert sorted(p.role for p in phases) == sorted(roles) and not warnings


@pytest.mark.parametrize("scans, message", [
    ([("3", "AP", "100030"), ("4", "", "100110")], "time order allows 2 choices"),  # portal or delayed
    ([("3", "", "100030"), ("4", "", "")], "no acquisition time"),
    ([("3", "Arterial", "100030"), ("4", "Arterial 1 mm", "100030")], "2 series claim the arterial phase"),
    ([("3", "Portal", "100030"), ("4", "CT", "100030")], "2 series claim the portal phase"),  # ct is portal's channel
])
def test_undecidable_roles_are_errors_that_ask_for_role(scans, message):
    with pytest.raises(Exception, match=message):
        assign_roles([_series(*s) for s in scans], {})


@pytest.fixture(scope="module")
def unknown_segment_seg(tace) -> Path:
    """A SEG whose one segment says nothing about what it is: label 'Segment_1', property type 'Tissue'."""
    import highdicom as hd

    files = sorted((tace["root"] / "study").glob("s4_*.dcm"))
    sources = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    liver = (sitk.GetArrayFromImage(tace["label"]) > 0).astype(np.uint8)
    code = hd.sr.CodedConcept
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="Segment_1", segmented_property_category=code("85756007", "SCT", "Tissue"),
        segmented_property_type=code("85756007", "SCT", "Tissue"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=liver, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=generate_uid(), series_number=99,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="test", manufacturer_model_name="test",
        software_versions="1", device_serial_number="1",
    )
    path = tace["root"] / "seg" / "unknown.dcm"
    seg.save_as(path)
    return path


def test_segment_map_names_a_segment_whose_label_does_not_say(tace, unknown_segment_seg, tmp_path, capsys):
    rc, _, err, case = _import(tmp_path, capsys, "--dicom", str(tace["root"] / "study"), "--seg",
                               str(unknown_segment_seg), "--segment-map", "1=liver")
    assert rc == 0, err
    np.testing.assert_array_equal(_array(case / "label_arterial.nii.gz"), sitk.GetArrayFromImage(tace["label"]) > 0)


def test_every_bad_export_is_one_error_line_exit_2_and_nothing_written(
    tace, unknown_segment_seg, real_data, tmp_path, capsys
):
    root, study = tace["root"], ["--dicom", str(tace["root"] / "study")]
    seg = ["--seg", str(root / "seg" / "arterial.dcm")]
    off_grid = sitk.ReadImage(str(root / "liver.nii.gz"))[:, :, 1:]  # one slice short of the series
    sitk.WriteImage(off_grid, str(tmp_path / "off_grid.nii.gz"))
    cases = {  # the problem -> the arguments, and the file or folder the error line must name
        "none of the series imported": ([*study, "--seg", str(real_data / "dcmqi_ct3slice_liver" / "liver.dcm")],
                                        "liver.dcm"),
        "not on the grid": (
            [*study, "--labelled", "arterial", "--mask", f"liver={tmp_path / 'off_grid.nii.gz'}"],
            "off_grid.nii.gz",
        ),
        "2 series claim the arterial phase": ([*study, *seg, "--role", "6=arterial"], "study"),
        "no labelled phase": (study, "study"),
        "neither liver nor tumour": ([*study, "--seg", str(unknown_segment_seg)], "unknown.dcm"),
        "no --labelled": ([*study, "--mask", f"liver={root / 'liver.nii.gz'}"], "liver.nii.gz"),
        "no scan series has that number": ([*study, *seg, "--role", "9=portal"], "--role 9=portal"),
    }
    for message, (args, named) in cases.items():
        rc, out, err, case = _import(tmp_path, capsys, *args)
        assert rc == 2 and out == "", message
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err and named in err, err
        assert not case.exists() and not list(tmp_path.glob(".case*")), message
