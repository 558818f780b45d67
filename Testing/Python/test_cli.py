"""The command-line contract, end to end, as a user runs it (a subprocess each)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio

from liverfusion.cli import main
from liverfusion.reports.figures import TUMOUR_RGB
from liverfusion.reports.page import MAX_FIGURES


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liverfusion.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def segmented(small_ctmri, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seg") / "out"
    done = run(
        "segment",
        "--input",
        f"ct={small_ctmri / 'ct.nii.gz'}",
        "--input",
        f"mri={small_ctmri / 'mri.nii.gz'}",
        "--out",
        str(out),
        "--align",
        "rigid",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    assert "malignancy probability" in done.stdout and str(out.resolve()) in done.stdout
    return out


def test_segment_writes_every_output_of_the_contract(segmented):
    names = {p.name for p in segmented.iterdir()}
    assert names == {
        "segmentation.nii.gz",
        "segmentation.seg.nrrd",
        "attention.nii.gz",
        "tumor_probability.nii.gz",
        "attention_ct.nii.gz",
        "attention_mri.nii.gz",
        "aligned_mri.nii.gz",
        "transform_mri.h5",
        "result.json",
        "report.html",
    }
    result = json.loads((segmented / "result.json").read_text(encoding="utf-8"))
    assert result["reference"] == "ct" and result["device"] == "cpu"
    assert 0 <= result["malignancy_probability"] <= 1
    assert {"name", "version", "sha256"} == set(result["model"])
    assert set(result["inputs"]) == {"ct", "mri"}
    assert set(result["timings_s"]) >= {"load", "align", "infer", "postprocess", "write"}
    for lesion in result["lesions"]:
        assert set(lesion) == {"id", "volume_ml", "max_diameter_mm", "centroid_lps_mm", "malignancy_probability"}
    sitk.ReadTransform(str(segmented / "transform_mri.h5"))


def test_a_liver_inside_the_scan_gets_no_warning_that_it_is_cut(segmented):
    warnings = json.loads((segmented / "result.json").read_text(encoding="utf-8"))["warnings"]
    assert not [w for w in warnings if "liver reaches" in w]


def test_report_is_one_self_contained_page_with_a_figure_per_lesion(segmented):
    result = json.loads((segmented / "result.json").read_text(encoding="utf-8"))
    page = (segmented / "report.html").read_text(encoding="utf-8")
    assert f"Malignancy probability {result['malignancy_probability']:.2f}" in page
    assert "holds a malignant lesion" in page  # what the case's probability means
    assert result["model"]["name"] in page and "not for" in page  # the intended-use warning
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)  # nothing outside the file
    assert all(link.startswith("#") for link in re.findall(r'href="([^"]+)"', page))
    assert page.count('<figure class="lesion"') == min(len(result["lesions"]), MAX_FIGURES)
    assert page.count("<tr><td") == max(1, len(result["lesions"]))  # or the one "no lesion found" row
    assert page.count('class="tile input"') == 2 * page.count('<figure class="lesion"')  # CT and MRI


def test_report_shows_its_images_in_headless_chromium(segmented, tmp_path):
    """Debian's chromium renders the page; the screenshot must hold the figures (dark image tiles and the
    tumour's orange outlines), not only text on white. test_report.py checks each figure where it lands."""
    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed (Debian: apt-get install chromium; .ci/run installs it)"
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,1400",
            f"--screenshot={shot}",
            (segmented / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file(), done.stderr[-500:]
    rgb = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))[..., :3].astype(int)
    dark = (rgb.max(-1) < 40).mean()
    orange = (np.abs(rgb - np.array(TUMOUR_RGB)).max(-1) <= 8).sum()
    assert dark > 0.03 and orange > 200, (dark, orange)


def test_outputs_are_on_the_reference_grid(segmented, small_ctmri):
    ct = sitk.ReadImage(str(small_ctmri / "ct.nii.gz"))
    for name in ("segmentation.nii.gz", "attention.nii.gz", "tumor_probability.nii.gz", "attention_mri.nii.gz",
                 "aligned_mri.nii.gz"):
        image = sitk.ReadImage(str(segmented / name))
        assert image.GetSize() == ct.GetSize()
        np.testing.assert_allclose(image.GetDirection(), ct.GetDirection(), atol=1e-5)
        np.testing.assert_allclose(image.GetOrigin(), ct.GetOrigin(), atol=1e-3)
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented / "segmentation.nii.gz")))
    assert set(np.unique(seg)) <= {0, 1, 2} and (seg >= 1).any()
    attention = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented / "attention.nii.gz")))
    assert attention.min() >= 0 and attention.max() <= 1


def test_tumour_probability_map_is_where_tumour_was_called(segmented):
    """Tumour wins the argmax of three classes only above 1/3; the map is the network's, so it may also show
    tumour that the post-processing removed, but never less than what was called."""
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented / "segmentation.nii.gz")))
    probability = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented / "tumor_probability.nii.gz")))
    assert probability.min() >= 0 and probability.max() <= 1
    assert (seg == 2).any() and probability[seg == 2].min() >= 1 / 3 - 1 / 255
    assert np.median(probability[seg == 0]) < 0.01


def test_seg_nrrd_opens_as_a_slicer_segmentation(segmented):
    seg = slicerio.read_segmentation(str(segmented / "segmentation.seg.nrrd"))
    names = [s["name"] for s in seg["segments"]]
    assert names == ["Liver", "Tumor"]
    assert [s["labelValue"] for s in seg["segments"]] == [1, 2]
    assert seg["segments"][0]["terminology"]["type"] == ["SCT", "10200004", "Liver"]
    assert seg["segments"][1]["terminology"]["type"] == ["SCT", "108369006", "Neoplasm"]


def test_evaluate_against_the_truth(segmented, small_ctmri, capsys):
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(segmented / "segmentation.nii.gz"),
                "--truth",
                str(small_ctmri / "label_ct.nii.gz"),
            ]
        )
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["liver"]["dice"] > 0.5  # a trained model finds the liver on an unseen phantom


def test_register_focused_deformable_writes_aligned_image_label_transform_and_quality(small_ctmri, tmp_path):
    out = tmp_path / "reg"
    done = run(
        "register",
        "--fixed",
        str(small_ctmri / "ct.nii.gz"),
        "--moving",
        str(small_ctmri / "mri.nii.gz"),
        "--moving-label",
        str(small_ctmri / "label_mri.nii.gz"),
        "--focus",
        str(small_ctmri / "label_ct.nii.gz"),
        "--mode",
        "deformable",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"aligned.nii.gz", "aligned_label.nii.gz", "transform.h5", "result.json"}
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["metric_after"] < result["metric_before"]
    assert result["mode"] in ("rigid", "deformable") and (result["mode"] == "deformable" or result["warnings"])
    assert result["jacobian_range"][0] > 0
    assert isinstance(sitk.ReadTransform(str(out / "transform.h5")), sitk.Transform)


def test_phantom_command_writes_cases(tmp_path):
    done = run(
        "phantom", "--out", str(tmp_path / "ph"), "--cases", "2", "--seed", "9", "--protocol", "multiphase", "--small"
    )
    assert done.returncode == 0, done.stderr
    for case in ("case_000", "case_001"):
        names = {p.name for p in (tmp_path / "ph" / case).iterdir()}
        assert {
            "nc.nii.gz",
            "arterial.nii.gz",
            "portal.nii.gz",
            "delayed.nii.gz",
            "label_portal.nii.gz",
            "case.json",
        } <= names


def _flat_2d(tmp_path):
    path = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.Image(16, 16, sitk.sitkFloat32), str(path))
    return path


def _constant_3d(tmp_path):
    path = tmp_path / "flat_mri.nii.gz"
    sitk.WriteImage(sitk.Image(20, 20, 10, sitk.sitkFloat32) + 5.0, str(path))
    return path


@pytest.mark.parametrize(
    "inputs, message",
    [
        (lambda d, t: [f"ct={t / 'missing.nii.gz'}"], "no such file"),
        (lambda d, t: [f"pet={d / 'ct.nii.gz'}"], "unknown image role"),
        (lambda d, t: [f"ct={_flat_2d(t)}"], "3-D"),
        (lambda d, t: [f"ct={d / 'case.json'}"], "not a readable image"),
        (lambda d, t: [f"ct={d / 'ct.nii.gz'}", f"mri={_constant_3d(t)}"], "flat_mri.nii.gz: mri: no usable intensity"),
        (lambda d, t: [f"ct={d / 'label_ct.nii.gz'}"], "label_ct.nii.gz: ct: holds only 3 whole values (0, 1, 2)"),
    ],
)
def test_user_errors_are_one_line_exit_2_and_leave_no_output(small_ctmri, tmp_path, inputs, message):
    out = tmp_path / "out"
    args = ["segment", "--out", str(out), "--align", "rigid"]
    for spec in inputs(small_ctmri, tmp_path):
        args += ["--input", spec]
    done = run(*args)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]


def test_nan_voxels_are_segmented_as_the_lowest_value_with_a_warning(small_ctmri, tmp_path):
    ct = sitk.ReadImage(str(small_ctmri / "ct.nii.gz"), sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(ct)
    array[:, :4] = np.nan  # as some tools write the outside of the field of view
    holed = sitk.GetImageFromArray(array)
    holed.CopyInformation(ct)
    sitk.WriteImage(holed, str(tmp_path / "holed.nrrd"))  # NRRD keeps NaN; ITK reads a NIfTI's as 0
    out = tmp_path / "out"
    done = run("segment", "--input", f"ct={tmp_path / 'holed.nrrd'}", "--out", str(out), "--align", "none")
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr  # nor does the report meet a NaN
    warnings = json.loads((out / "result.json").read_text(encoding="utf-8"))["warnings"]
    assert [w for w in warnings if "holed.nrrd: ct:" in w and "not numbers (NaN or infinite)" in w]
    plain = tmp_path / "plain"
    done = run("segment", "--input", f"ct={small_ctmri / 'ct.nii.gz'}", "--out", str(plain), "--align", "none")
    assert done.returncode == 0, done.stderr
    liver = [json.loads((d / "result.json").read_text(encoding="utf-8"))["liver_volume_ml"] for d in (out, plain)]
    assert abs(liver[0] - liver[1]) < 0.01 * liver[1]  # the band was air: the same liver as without it


def test_images_that_do_not_overlap_name_the_moving_file(small_ctmri, tmp_path):
    far = sitk.ReadImage(str(small_ctmri / "mri.nii.gz"))
    far.SetOrigin((9000.0, 9000.0, 9000.0))
    sitk.WriteImage(far, str(tmp_path / "far.nii.gz"))
    done = run(
        "segment",
        "--input",
        f"ct={small_ctmri / 'ct.nii.gz'}",
        "--input",
        f"mri={tmp_path / 'far.nii.gz'}",
        "--out",
        str(tmp_path / "out"),
        "--align",
        "rigid",
    )
    assert done.returncode == 2 and "far.nii.gz" in done.stderr and "overlap" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_evaluate_a_dataset_writes_per_case_and_summary_tables(small_ctmri, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["evaluate", "--dataset", str(small_ctmri.parent), "--out", str(out), "--align", "rigid"]
    assert main([*args, "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["cases"] == 1 and summary["liver_dice"] > 0.5
    assert summary["liver_dice_ci95"] == [round(summary["liver_dice"], 4)] * 2  # one case: nothing to resample
    lines = (out / "cases.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and lines[0].startswith("case,roles,liver_dice") and ",ct+mri," in lines[1]
    (row,) = json.loads((out / "cases.json").read_text(encoding="utf-8"))
    assert row["case"] == "case" and 0 <= row["lesions_found"] <= row["lesions_true"]
    assert "cases.csv" in capsys.readouterr().out


def test_evaluate_a_dataset_needs_an_output_folder(small_ctmri):
    done = run("evaluate", "--dataset", str(small_ctmri.parent))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: --dataset {small_ctmri.parent}: --out is required (where the tables go)"


def test_the_python_api_is_documented_at_the_package_top_and_imports_torch_only_when_used():
    code = ("import sys, liverfusion; light = 'torch' not in sys.modules; doc = liverfusion.segment.__doc__; "
            "print(light, 'inputs:' in doc, 'Returns' in liverfusion.run_case.__doc__, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["True", "True", "True", "True"], done.stderr


def test_the_console_module_and_the_package_run_the_same_command_line():
    for module in ("liverfusion", "liverfusion.cli"):
        done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "{segment,register,synth-tumor,phantom,evaluate,train," in done.stdout


def test_the_shared_align_option_offers_the_registration_modes():
    from liverfusion.cli.common import ALIGN_MODES
    from liverfusion.registration.align import MODES

    assert tuple(ALIGN_MODES) == MODES
