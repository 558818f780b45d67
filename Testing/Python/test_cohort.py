"""`liverfusion batch`: cohorts from a CSV, failures recorded, resume, and a Dask cluster giving the serial result."""

import csv
import hashlib

import pytest

from liverfusion.cli import main
from liverfusion.errors import LiverFusionError
from liverfusion.inference.cohort import read_cases


def _csv(tmp_path, small_ctmri, small_multiphase):
    path = tmp_path / "cases.csv"
    path.write_text(
        "case_id,ct,mri,nc,arterial,portal,delayed\n"
        f"pair,{small_ctmri / 'ct.nii.gz'},{small_ctmri / 'mri.nii.gz'},,,,\n"
        "broken,missing.nii.gz,,,,,\n"
        f"phases,,,{small_multiphase / 'nc.nii.gz'},{small_multiphase / 'arterial.nii.gz'},"
        f"{small_multiphase / 'portal.nii.gz'},{small_multiphase / 'delayed.nii.gz'}\n"
    , encoding="utf-8")
    return path


def _summary(out):
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_csvs_are_one_line_errors_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,ct\na,x.nii.gz\n", encoding="utf-8")
    with pytest.raises(LiverFusionError, match="bad.csv: expected a header with case_id"):
        read_cases(bad)
    bad.write_text("case_id,liver\na,x.nii.gz\n", encoding="utf-8")
    with pytest.raises(LiverFusionError, match="bad.csv: line 2: liver: unknown image role"):
        read_cases(bad)
    bad.write_text("case_id,ct\na,x.nii.gz\na,y.nii.gz\n", encoding="utf-8")
    with pytest.raises(LiverFusionError, match="line 3: case_id missing, repeated"):
        read_cases(bad)


def test_a_csv_saved_by_excel_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("case_id,ct\na,x.nii.gz\n", encoding="utf-8-sig")
    assert read_cases(path) == {"a": {"ct": str((tmp_path / "x.nii.gz").resolve())}}


@pytest.mark.slow
def test_serial_run_records_failures_resumes_and_a_dask_cluster_gives_the_same_result(
    tmp_path, small_ctmri, small_multiphase, capsys
):
    cases = _csv(tmp_path, small_ctmri, small_multiphase)
    common = ["--cases", str(cases), "--align", "none", "--device", "cpu", "--threads", "1"]
    assert main(["batch", *common, "--out", str(tmp_path / "serial")]) == 1  # one case fails, the run goes on
    rows = _summary(tmp_path / "serial")
    assert [(r["case_id"], r["status"]) for r in rows] == [("pair", "done"), ("broken", "error"), ("phases", "done")]
    assert "missing.nii.gz" in rows[1]["error"] and not (tmp_path / "serial" / "broken").exists()
    assert "error: case broken:" in capsys.readouterr().err

    first = _digest(tmp_path / "serial" / "pair" / "segmentation.nii.gz")
    mtime = (tmp_path / "serial" / "pair" / "result.json").stat().st_mtime_ns
    assert main(["batch", *common, "--out", str(tmp_path / "serial")]) == 1
    assert (tmp_path / "serial" / "pair" / "result.json").stat().st_mtime_ns == mtime  # finished: skipped
    assert [r["status"] for r in _summary(tmp_path / "serial")] == ["done", "error", "done"]

    assert main(["batch", *common, "--out", str(tmp_path / "dask"), "--workers", "2"]) == 1
    for case in ("pair", "phases"):
        serial, parallel = tmp_path / "serial" / case, tmp_path / "dask" / case
        for name in ("segmentation.nii.gz", "attention.nii.gz"):
            assert _digest(serial / name) == _digest(parallel / name), (case, name)
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _summary(tmp_path / "dask")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert first == _digest(tmp_path / "serial" / "pair" / "segmentation.nii.gz")
