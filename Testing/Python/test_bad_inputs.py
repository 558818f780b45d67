"""Hostile and careless inputs across the commands, as a fuzz found them (issue 32): each is refused in one line,
`error: <file>: <problem>`, with exit status 2, no traceback, no third-party warning text and nothing written.

Inputs are tiny generated images (16x16x8) so that the suite runs in seconds: every refusal here comes before the
network would run. The table names each input once; a few cases that need more than one command follow it.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from liverfusion.cli import main
from liverfusion.io.images import read_image

SIZE = (16, 16, 8)  # x, y, z


def _write(array: np.ndarray, path: Path, spacing=(2.0, 2.0, 3.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def _ct_array(seed: int = 0) -> np.ndarray:
    """Air around a noisy block of soft tissue, in Hounsfield units: passes every intensity check."""
    rng = np.random.default_rng(seed)
    array = rng.normal(40, 30, SIZE[::-1]).astype(np.int16)
    array[:, :3] = -1000
    return array


def _label_array() -> np.ndarray:
    label = np.zeros(SIZE[::-1], np.uint8)
    label[1:7, 2:14, 2:14] = 1
    label[2:6, 5:10, 5:10] = 2
    return label


def _dicom_series(folder: Path, array: np.ndarray, uid: str | None, number: str | None) -> list[Path]:
    """One axial series of `array`'s slices; without `uid` (or `number`) the files lack that tag."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k, plane in enumerate(array):
        path = folder / f"{uid or 'none'}_{k:02d}.dcm"
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        image = sitk.GetImageFromArray(plane[None])
        image.SetSpacing((2.0, 2.0, 3.0))
        for tag, value in (("0008|0060", "CT"), ("0020|000d", "1.2.3"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0020|0032", f"0\\0\\{3 * k}"), ("0020|0013", str(k + 1)),
                           ("0008|0018", generate_uid()), ("0020|000e", uid or generate_uid())):
            image.SetMetaData(tag, value)
        if number:
            image.SetMetaData("0020|0011", number)
        writer.SetFileName(str(path))
        writer.Execute(image)
        if uid is None:  # ITK's writer makes one up: take it away again
            ds = pydicom.dcmread(path)
            del ds.SeriesInstanceUID
            ds.save_as(path)
        files.append(path)
    return files


def _sheared_nifti(ct: Path, out: Path) -> Path:
    """The CT with a sheared sform (its second voxel axis tilted 17 degrees towards the first), qform untouched."""
    raw = bytearray(ct.read_bytes())
    srow = np.frombuffer(bytes(raw[280:328]), "<f4").reshape(3, 4).copy()
    srow[:, 1] = [-2 * np.sin(0.3), -2 * np.cos(0.3), 0]
    raw[280:328] = srow.astype("<f4").tobytes()
    raw[254:256] = np.int16(1).tobytes()  # sform_code: scanner
    out.write_bytes(raw)
    return out


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> dict[str, Path]:
    """Every input file of the table, made once."""
    root = tmp_path_factory.mktemp("inputs")
    f = {"root": root}
    f["ct"] = _write(_ct_array(), root / "ct.nii.gz")
    f["mri"] = _write(np.abs(_ct_array(1)).astype(np.float32) + 100, root / "mri.nii.gz")
    f["label"] = _write(_label_array(), root / "label.nii.gz")
    f["empty_mask"] = _write(np.zeros(SIZE[::-1], np.uint8), root / "empty_mask.nii.gz")
    far = sitk.ReadImage(str(f["mri"]))
    far.SetOrigin((3000.0, 0.0, 0.0))  # 3 m away
    sitk.WriteImage(far, str(root / "far.nii.gz"))
    f["far"] = root / "far.nii.gz"
    far_label = sitk.ReadImage(str(f["label"]))
    far_label.SetOrigin((3000.0, 0.0, 0.0))
    sitk.WriteImage(far_label, str(root / "far_label.nii.gz"))
    f["far_label"] = root / "far_label.nii.gz"
    raw = f["ct"].read_bytes()
    (root / "cut.nii.gz").write_bytes(raw[: len(raw) // 3])
    f["cut"] = root / "cut.nii.gz"
    plain = _write(_ct_array(), root / "plain.nii")
    (root / "cut.nii").write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    f["cut_nii"] = root / "cut.nii"
    f["sheared"] = _sheared_nifti(plain, root / "sheared.nii")
    mha = _write(_ct_array(), root / "cut.mha")
    mha.write_bytes(mha.read_bytes()[: mha.stat().st_size // 2])
    f["cut_mha"] = mha
    sheared = sitk.ReadImage(str(f["ct"]))
    sheared.SetDirection((1, 0.3, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(sheared, str(root / "sheared.nrrd"))
    f["sheared_nrrd"] = root / "sheared.nrrd"
    f["flat"] = _write(np.full(SIZE[::-1], 5.0, np.float32), root / "flat.nii.gz")
    f["nan"] = _write(np.full(SIZE[::-1], np.nan, np.float32), root / "nan.nrrd")
    f["slice"] = _write(_ct_array()[:1], root / "slice.nii.gz")
    f["rgb"] = root / "rgb.nrrd"
    sitk.WriteImage(sitk.Image(list(SIZE), sitk.sitkVectorUInt8, 3), str(f["rgb"]))
    f["4d"] = root / "4d.nii.gz"
    sitk.WriteImage(sitk.Image([*SIZE, 3], sitk.sitkFloat32), str(f["4d"]))
    f["text"] = root / "notes.nii.gz"
    f["text"].write_text("not an image\n", encoding="utf-8")
    f["noise"] = root / "noise.nii.gz"
    f["noise"].write_bytes(np.random.default_rng(3).bytes(3000))
    f["empty_dir"] = root / "empty_dir"
    f["empty_dir"].mkdir()
    f["not_dicom"] = root / "not_dicom"
    f["not_dicom"].mkdir()
    (f["not_dicom"] / "readme.txt").write_text("scan notes", encoding="utf-8")
    (f["not_dicom"] / "image.dcm").write_bytes(np.random.default_rng(4).bytes(2000))
    f["mixed"] = root / "mixed"
    _dicom_series(f["mixed"], _ct_array(5), generate_uid(), "3")
    _dicom_series(f["mixed"], _ct_array(6), None, None)
    f["cut_dicom"] = root / "cut_dicom"
    files = _dicom_series(f["cut_dicom"], _ct_array(7), generate_uid(), "4")
    files[4].write_bytes(files[4].read_bytes()[:-100])  # a copy that stopped 100 bytes short
    f["cut_slice"] = files[4]
    f["existing_file"] = root / "existing_file"
    f["existing_file"].write_text("the user's own", encoding="utf-8")
    f["empty_dataset"] = root / "empty_dataset"
    f["empty_dataset"].mkdir()
    f["image_dir"] = root / "folder.nii.gz"
    f["image_dir"].mkdir()
    return f


def _csv(d: dict, name: str, text: str) -> Path:
    path = d["root"] / name
    path.write_text(text.format(ct=d["ct"], mri=d["mri"]), encoding="utf-8")
    return path


def _random_csv(d: dict) -> Path:
    path = d["root"] / "random.csv"
    path.write_bytes(np.random.default_rng(5).bytes(500))
    return path


OUT = "OUT"  # the argument replaced by the test's own output path
Case = tuple[str, Callable[[dict], list[str]], Callable[[dict], str]]

# (id, arguments, text the error line must hold: the file and the problem)
CASES: list[Case] = [
    # segment: files
    ("missing", lambda d: ["segment", "--input", f"ct={d['root'] / 'nope.nii.gz'}"], lambda d: "nope.nii.gz: no such"),
    ("unknown_role", lambda d: ["segment", "--input", f"pet={d['ct']}"], lambda d: "pet: unknown image role"),
    ("no_equals", lambda d: ["segment", "--input", str(d["ct"])], lambda d: "expected ROLE=PATH"),
    ("role_twice", lambda d: ["segment", "--input", f"ct={d['ct']}", "--input", f"ct={d['mri']}"],
     lambda d: f"ct={d['mri']}: ct given twice (also {d['ct']})"),
    ("same_channel", lambda d: ["segment", "--input", f"ct={d['ct']}", "--input", f"portal={d['ct']}"],
     lambda d: "portal: same channel as 'ct'"),
    ("text_file", lambda d: ["segment", "--input", f"ct={d['text']}"], lambda d: "notes.nii.gz: not a readable image"),
    ("random_bytes", lambda d: ["segment", "--input", f"ct={d['noise']}"], lambda d: "noise.nii.gz: not a readable"),
    ("truncated_gz", lambda d: ["segment", "--input", f"ct={d['cut']}"],
     lambda d: "cut.nii.gz: truncated or damaged gzip stream"),
    ("truncated_nii", lambda d: ["segment", "--input", f"ct={d['cut_nii']}"],
     lambda d: "cut.nii: truncated: 2224 of the 4448 bytes its header announces"),
    ("truncated_mha", lambda d: ["segment", "--input", f"ct={d['cut_mha']}"],
     lambda d: "cut.mha: not a readable image (MetaImage: M_ReadElementsData: data not read completely"),
    ("sheared_sform", lambda d: ["segment", "--input", f"ct={d['sheared']}"],
     lambda d: "sheared.nii: sheared voxel grid (axes 17.2 degrees from perpendicular)"),
    ("sheared_nrrd", lambda d: ["segment", "--input", f"ct={d['sheared_nrrd']}"],
     lambda d: "sheared.nrrd: sheared voxel grid"),
    ("single_slice", lambda d: ["segment", "--input", f"ct={d['slice']}"], lambda d: "slice.nii.gz: expected a 3-D"),
    ("rgb", lambda d: ["segment", "--input", f"ct={d['rgb']}"], lambda d: "rgb.nrrd: expected a 3-D scalar image"),
    ("4d", lambda d: ["segment", "--input", f"ct={d['4d']}"], lambda d: "4d.nii.gz: expected a 3-D scalar image"),
    ("constant", lambda d: ["segment", "--input", f"ct={d['flat']}"], lambda d: "flat.nii.gz: ct: no usable intens"),
    ("all_nan", lambda d: ["segment", "--input", f"ct={d['nan']}"], lambda d: "nan.nrrd: ct: no voxel holds a num"),
    ("label_as_ct", lambda d: ["segment", "--input", f"ct={d['label']}"], lambda d: "label.nii.gz: ct: holds only 3"),
    ("empty_folder", lambda d: ["segment", "--input", f"ct={d['empty_dir']}"],
     lambda d: "empty_dir: folder holds no DICOM series"),
    ("not_dicom_folder", lambda d: ["segment", "--input", f"ct={d['not_dicom']}"],
     lambda d: "not_dicom: folder holds no DICOM series"),
    ("unnamed_series", lambda d: ["segment", "--input", f"ct={d['mixed']}"],
     lambda d: "mixed: holds 2 series, name one as FOLDER@NUMBER: 3 '' (8 files); unnamed '' (8 files)"),
    ("no_such_series", lambda d: ["segment", "--input", f"ct={d['mixed']}@?"], lambda d: "mixed@?: no such series"),
    ("truncated_dicom", lambda d: ["segment", "--input", f"ct={d['cut_dicom']}"],
     lambda d: f"{d['cut_slice']}: DICOM file that cannot be read (truncated or damaged)"),
    ("no_model", lambda d: ["segment", "--input", f"ct={d['ct']}", "--model", str(d["root"] / "nomodel")],
     lambda d: "nomodel: no such model"),
    # segment: outputs
    ("out_empty", lambda d: ["segment", "--input", f"ct={d['ct']}", "--out", ""], lambda d: "--out '': an empty path"),
    ("out_is_file", lambda d: ["segment", "--input", f"ct={d['ct']}", "--out", str(d["existing_file"])],
     lambda d: "existing_file: exists and is not a folder"),
    ("out_in_proc", lambda d: ["segment", "--input", f"ct={d['ct']}", "--out", "/proc/liverfusion/out"],
     lambda d: "/proc/liverfusion/out: cannot write in /proc"),
    ("out_under_file", lambda d: ["segment", "--input", f"ct={d['ct']}", "--out", f"{d['existing_file']}/out"],
     lambda d: "existing_file/out: cannot write in"),
    # register
    ("focus_empty", lambda d: ["register", "--fixed", str(d["ct"]), "--moving", str(d["mri"]),
                               "--focus", str(d["empty_mask"])],
     lambda d: "empty_mask.nii.gz: the focus mask is empty"),
    ("focus_elsewhere", lambda d: ["register", "--fixed", str(d["ct"]), "--moving", str(d["mri"]),
                                   "--focus", str(d["far_label"])],
     lambda d: "mri.nii.gz onto " + str(d["ct"]) + ": the focus mask has no voxel inside the fixed image"),
    ("register_apart", lambda d: ["register", "--fixed", str(d["ct"]), "--moving", str(d["far"])],
     lambda d: "far.nii.gz onto " + str(d["ct"]) + ": images do not overlap in space (ITK: All samples map outside"),
    ("register_label", lambda d: ["register", "--fixed", str(d["ct"]), "--moving", str(d["label"])],
     lambda d: "label.nii.gz: mri: holds only 3 whole values"),
    ("register_missing", lambda d: ["register", "--fixed", str(d["root"] / "x.nrrd"), "--moving", str(d["mri"])],
     lambda d: "x.nrrd: no such file"),
    ("register_out_file", lambda d: ["register", "--fixed", str(d["ct"]), "--moving", str(d["mri"]),
                                     "--out", str(d["existing_file"])], lambda d: "existing_file: exists and is not a"),
    # batch
    ("case_dotdot", lambda d: ["batch", "--cases", str(_csv(d, "up.csv", "case_id,ct\n..,{ct}\n"))],
     lambda d: "up.csv: line 2: case_id missing, repeated, '.' or '..'"),
    ("case_dot", lambda d: ["batch", "--cases", str(_csv(d, "dot.csv", "case_id,ct\n.,{ct}\n"))],
     lambda d: "dot.csv: line 2: case_id missing, repeated, '.' or '..'"),
    ("case_slash", lambda d: ["batch", "--cases", str(_csv(d, "slash.csv", "case_id,ct\na/b,{ct}\n"))],
     lambda d: "slash.csv: line 2: case_id"),
    ("case_twice", lambda d: ["batch", "--cases", str(_csv(d, "twice.csv", "case_id,ct\na,{ct}\na,{ct}\n"))],
     lambda d: "twice.csv: line 3: case_id missing, repeated"),
    ("extra_fields", lambda d: ["batch", "--cases", str(_csv(d, "wide.csv", "case_id,ct\na,{ct},{mri}\n"))],
     lambda d: "wide.csv: line 2: more fields than the header's 2"),
    ("random_csv", lambda d: ["batch", "--cases", str(_random_csv(d))], lambda d: "random.csv: not a CSV text file"),
    ("no_case_id", lambda d: ["batch", "--cases", str(_csv(d, "noid.csv", "id,ct\na,{ct}\n"))],
     lambda d: "noid.csv: expected a header with case_id"),
    ("csv_role", lambda d: ["batch", "--cases", str(_csv(d, "role.csv", "case_id,liver\na,{ct}\n"))],
     lambda d: "role.csv: line 2: liver: unknown image role"),
    ("csv_missing", lambda d: ["batch", "--cases", str(d["root"] / "none.csv")], lambda d: "none.csv: No such file"),
    ("workers_negative", lambda d: ["batch", "--cases", str(d["root"] / "none.csv"), "--workers", "-3"],
     lambda d: "--workers -3: expected 1 or more processes"),
    ("threads_negative", lambda d: ["batch", "--cases", str(d["root"] / "none.csv"), "--threads", "-1"],
     lambda d: "--threads -1: expected 0"),
    ("batch_out_file", lambda d: ["batch", "--cases", str(_csv(d, "ok.csv", "case_id,ct\na,{ct}\n")),
                                  "--out", str(d["existing_file"])], lambda d: "existing_file: exists and is not a"),
    # evaluate
    ("ct_as_prediction", lambda d: ["evaluate", "--pred", str(d["ct"]), "--truth", str(d["label"])],
     lambda d: f"{d['ct']}: not a label map (a scan?)"),
    ("ct_as_truth", lambda d: ["evaluate", "--pred", str(d["label"]), "--truth", str(d["mri"])],
     lambda d: f"{d['mri']}: not a label map"),
    ("pred_missing", lambda d: ["evaluate", "--pred", str(d["root"] / "p.nii.gz"), "--truth", str(d["label"])],
     lambda d: "p.nii.gz: no such file"),
    ("pred_alone", lambda d: ["evaluate", "--pred", str(d["label"])], lambda d: "give --pred and --truth"),
    ("empty_dataset", lambda d: ["evaluate", "--dataset", str(d["empty_dataset"]), "--out", OUT],
     lambda d: "empty_dataset: no case folders"),
    ("dataset_missing", lambda d: ["evaluate", "--dataset", str(d["root"] / "nodata"), "--out", OUT],
     lambda d: "nodata: no such folder"),
    ("dataset_no_out", lambda d: ["evaluate", "--dataset", str(d["empty_dataset"])], lambda d: "--out is required"),
    # synth-tumor
    ("liver_empty", lambda d: ["synth-tumor", "--input", f"ct={d['ct']}", "--liver", str(d["empty_mask"])],
     lambda d: "empty_mask.nii.gz: the liver mask is empty"),
    ("center_text", lambda d: ["synth-tumor", "--input", f"ct={d['ct']}", "--liver", str(d["label"]),
                               "--center-lps", "a,b"], lambda d: "--center-lps a,b: expected three numbers"),
    ("lesion_type", lambda d: ["synth-tumor", "--input", f"ct={d['ct']}", "--liver", str(d["label"]),
                               "--type", "wart"], lambda d: "wart: unknown lesion type"),
    ("lesion_size", lambda d: ["synth-tumor", "--input", f"ct={d['ct']}", "--liver", str(d["label"]),
                               "--diameter-mm", "900"], lambda d: "900 mm: lesion diameter must be between"),
    ("synth_label", lambda d: ["synth-tumor", "--input", f"ct={d['label']}", "--liver", str(d["label"])],
     lambda d: "label.nii.gz: ct: holds only 3"),
    ("synth_out_empty", lambda d: ["synth-tumor", "--input", f"ct={d['ct']}", "--out", ""],
     lambda d: "--out '': an empty path"),
    # ct2mri
    ("ct2mri_out_empty", lambda d: ["ct2mri", "--input", str(d["ct"]), "--out", ""],
     lambda d: "--out '': an empty path"),
    ("ct2mri_suffix", lambda d: ["ct2mri", "--input", str(d["ct"]), "--out", OUT], lambda d: "out: output must end"),
    ("ct2mri_out_dir", lambda d: ["ct2mri", "--input", str(d["ct"]), "--out", str(d["image_dir"])],
     lambda d: "folder.nii.gz: is a folder; name an image file"),
    ("ct2mri_proc", lambda d: ["ct2mri", "--input", str(d["ct"]), "--out", "/proc/x/mri.nii.gz"],
     lambda d: "/proc/x/mri.nii.gz: cannot write in /proc"),
    ("ct2mri_label", lambda d: ["ct2mri", "--input", str(d["label"]), "--out", OUT + ".nii.gz"],
     lambda d: "label.nii.gz: ct: holds only 3"),
    ("ct2mri_truncated", lambda d: ["ct2mri", "--input", str(d["cut"]), "--out", OUT + ".nii.gz"],
     lambda d: "cut.nii.gz: truncated"),
]


def _with_out(args: list[str], out: Path) -> list[str]:
    """The arguments with OUT replaced by `out`, and `--out out` added where the case names none."""
    args = [a.replace(OUT, str(out)) if OUT in a else a for a in args]
    return args if "--out" in args or args[0] == "evaluate" else [*args, "--out", str(out)]


def _one_error_line(capfd) -> str:
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out and "WARNING" not in captured.err + captured.out
    assert "(0x" not in lines[0]  # no memory address from ITK's text
    return lines[0]


@pytest.mark.parametrize("name, args, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(d, tmp_path, capfd, name, args, message):
    out = tmp_path / "out"
    before = d["existing_file"].read_text(encoding="utf-8")
    assert main(_with_out(args(d), out)) == 2
    line = _one_error_line(capfd)
    assert message(d) in line, line
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder
    assert d["existing_file"].read_text(encoding="utf-8") == before  # a file given as --out is left alone


def test_the_table_holds_more_than_40_distinct_inputs_across_the_commands(d):
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 40
    commands = {args(d)[0] for _, args, _ in CASES}
    assert commands == {"segment", "register", "batch", "evaluate", "synth-tumor", "ct2mri"}


def test_a_series_without_number_or_uid_is_listed_by_a_name_that_picks_it(d):
    unnamed = read_image(f"{d['mixed']}@unnamed")
    numbered = read_image(f"{d['mixed']}@3")
    expected = _ct_array(6).astype(np.float32)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(unnamed), expected)
    assert not np.array_equal(sitk.GetArrayViewFromImage(numbered), expected)


def test_a_prediction_away_from_its_truth_is_scored_with_a_warning(d, capfd):
    assert main(["evaluate", "--pred", str(d["far_label"]), "--truth", str(d["label"])]) == 0
    captured = capfd.readouterr()
    result = json.loads(captured.out)
    warning = f"{d['far_label']}: does not overlap {d['label']} in space (2968 mm apart): check the files"
    assert result["warnings"] == [warning] and result["liver"]["dice"] == 0.0
    assert captured.err.strip() == f"warning: {warning}"


def test_a_prediction_on_its_truth_is_scored_without_warning(d, capfd):
    assert main(["evaluate", "--pred", str(d["label"]), "--truth", str(d["label"])]) == 0
    result = json.loads(capfd.readouterr().out)
    assert result["warnings"] == [] and result["liver"]["dice"] == result["tumor"]["dice"] == 1.0


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run_and_a_users_folder_kept(d, tmp_path, capfd):
    out = tmp_path / "reg"
    killed = tmp_path / ".reg.partial-k1ll3d_x"  # mkdtemp's pattern, as a SIGKILL leaves it
    killed.mkdir()
    (killed / "aligned.nii.gz").write_bytes(b"half")
    own = tmp_path / ".reg.partial-notes"
    own.mkdir()
    args = ["register", "--fixed", str(d["ct"]), "--moving", str(d["mri"]), "--mode", "none", "--out", str(out)]
    assert main(args) == 0, capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == [".reg.partial-notes", "reg"]
    assert {p.name for p in out.iterdir()} == {"aligned.nii.gz", "transform.h5", "result.json"}


def test_an_itk_warning_on_reading_is_one_line_in_the_results_not_on_the_terminal(d, tmp_path, capfd):
    """A sform whose scales disagree with the voxel size: ITK uses the qform and says so on four lines."""
    scaled = bytearray((d["root"] / "plain.nii").read_bytes())
    raw = np.frombuffer(bytes(scaled[280:328]), "<f4").reshape(3, 4).copy()
    raw[0, 0] *= 2
    scaled[280:328] = raw.astype("<f4").tobytes()
    scaled[254:256] = np.int16(1).tobytes()
    (tmp_path / "scaled.nii").write_bytes(scaled)
    out = tmp_path / "out"
    args = ["register", "--fixed", str(tmp_path / "scaled.nii"), "--moving", str(d["mri"]), "--mode", "none"]
    assert main([*args, "--out", str(out)]) == 0
    assert capfd.readouterr().err == ""
    note = f"{tmp_path / 'scaled.nii'}: ITK: {tmp_path / 'scaled.nii'} has unexpected scales in sform"
    assert note in json.loads((out / "result.json").read_text(encoding="utf-8"))["warnings"]


def _quick_segment(series: Path, out: Path) -> list[str]:
    return ["segment", "--input", f"ct={series}", "--align", "none", "--device", "cpu", "--out", str(out)]


@pytest.mark.parametrize("tags, problem", [
    ({}, "no FrameOfReferenceUID (anonymised?), which a SEG must reference"),
    ({"FrameOfReferenceUID": "1.2.3.9"},
     "not usable as the source of a SEG ('FileDataset' object has no attribute 'SliceThickness')"),
])
def test_a_series_that_a_seg_cannot_reference_gets_the_other_outputs_and_a_warning(tmp_path, capfd, tags, problem):
    """highdicom ended such runs in a traceback (ValueError, AttributeError): the SEG alone is given up."""
    series = tmp_path / "series"
    for path in _dicom_series(series, _ct_array(8), generate_uid(), "5"):
        ds = pydicom.dcmread(path)
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(path)
    out = tmp_path / "out"
    assert main(_quick_segment(series, out)) == 0
    captured = capfd.readouterr()
    warning = f"segmentation.dcm not written: {series}: {problem}"
    assert warning in json.loads((out / "result.json").read_text(encoding="utf-8"))["warnings"]
    assert f"warning: {warning}" in captured.out and captured.err == ""
    assert (out / "segmentation.nii.gz").is_file() and not (out / "segmentation.dcm").exists()


def test_highdicom_warnings_are_one_line_in_the_results_not_on_the_terminal(tmp_path, capfd):
    series = tmp_path / "series"
    for path in _dicom_series(series, _ct_array(9), generate_uid(), "6"):
        ds = pydicom.dcmread(path)
        ds.FrameOfReferenceUID, ds.SliceThickness, ds.PatientName = "1.2.3.9", "3", "JANCT000"
        ds.save_as(path)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert main(_quick_segment(series, out)) == 0
    assert not [w for w in shown if "highdicom" in w.filename], [str(w.message) for w in shown]
    note = ('segmentation.dcm: highdicom: The string "JANCT000" is unlikely to represent the intended person name '
            "since it contains only a single component")
    assert note in json.loads((out / "result.json").read_text(encoding="utf-8"))["warnings"]
    assert f"warning: {note}" in capfd.readouterr().out and (out / "segmentation.dcm").is_file()


def _on_a_full_disk(args: list[str]) -> subprocess.CompletedProcess:
    """The command in a child process whose files may hold 1 kB, as a nearly full disk allows: writes beyond fail
    (EFBIG; Python ignores SIGXFSZ). A child, so that pytest's own capture files keep their room."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    command = [sys.executable, "-m", "liverfusion", *args]
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=limit, timeout=300)


@pytest.mark.parametrize("command", ["segment", "register"])
def test_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(d, tmp_path, command):
    out = tmp_path / "out"
    args = ["--fixed", str(d["ct"]), "--moving", str(d["mri"]), "--mode", "none"]
    args = ["--input", f"ct={d['ct']}", "--align", "none", "--device", "cpu"] if command == "segment" else args
    done = _on_a_full_disk([command, *args, "--out", str(out)])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert errors[0].startswith(f"error: {out}/") and "could not be written (short write: disk full?)" in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_in_ct2mri_is_one_line_and_leaves_nothing(d, tmp_path):
    out = tmp_path / "mri.nrrd"
    done = _on_a_full_disk(["ct2mri", "--input", str(d["ct"]), "--out", str(out), "--device", "cpu"])
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{out}: could not be written" in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_the_checks_refuse_the_damage_not_the_format(d, tmp_path):
    """The table's cut and sheared files come from good ones, which read; so does an oblique (rotated) grid."""
    oblique = sitk.ReadImage(str(d["ct"]))
    oblique.SetDirection((np.cos(0.3), -np.sin(0.3), 0, np.sin(0.3), np.cos(0.3), 0, 0, 0, 1))
    for name in ("oblique.nii.gz", "oblique.nrrd"):
        sitk.WriteImage(oblique, str(tmp_path / name))
    for good in (d["ct"], d["root"] / "plain.nii", tmp_path / "oblique.nii.gz", tmp_path / "oblique.nrrd"):
        image = read_image(good)
        assert image.GetSize() == SIZE
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), _ct_array())
