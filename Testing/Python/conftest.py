"""Shared fixtures: small phantom cases made once per session, and the real data beside the repo."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from liverfusion.synthesis.phantom import make_case

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def small_ctmri(tmp_path_factory) -> Path:
    """A small CT+MRI phantom (seed 777: never used for training)."""
    out = tmp_path_factory.mktemp("ctmri") / "case"
    make_case(out, 777, "ct-mri", small=True)
    return out


@pytest.fixture(scope="session")
def small_multiphase(tmp_path_factory) -> Path:
    """A small four-phase CT phantom (seed 778: never used for training)."""
    out = tmp_path_factory.mktemp("multiphase") / "case"
    make_case(out, 778, "multiphase", small=True)
    return out


TWO_PHASES = ("arterial", "portal")


@pytest.fixture(scope="session")
def two_phase_result(tmp_path_factory) -> Path:
    """A small arterial + portal phantom (seed 779: never used for training) through `segment`: its output folder."""
    from liverfusion.inference.pipeline import segment

    work = tmp_path_factory.mktemp("twophase")
    make_case(work / "case", 779, "multiphase", small=True, roles=TWO_PHASES)
    segment({role: str(work / "case" / f"{role}.nii.gz") for role in TWO_PHASES}, work / "out", "rigid", "cpu")
    return work / "out"


@pytest.fixture(scope="session")
def chromium() -> Callable[..., subprocess.CompletedProcess]:
    """Debian's headless Chromium, run with the given arguments."""
    exe = shutil.which("chromium")
    assert exe, "headless Chromium is needed (Debian: apt-get install chromium; .ci/run installs it)"

    def run(*args: str) -> subprocess.CompletedProcess:
        common = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
        return subprocess.run([exe, *common, *args], capture_output=True, encoding="utf-8", errors="replace",
                              timeout=120)

    return run


@pytest.fixture(scope="session")
def real_data() -> Path:
    assert SHARED.is_dir(), f"{SHARED}: the shared real data must sit beside the repository"
    return SHARED


@pytest.fixture(scope="session")
def two_series_dicom(real_data, tmp_path_factory) -> Path:
    """A study folder as PACS exports them: the real 20-slice CT as series 2, and a copy as series 7 'Arterial'
    whose rescale intercept reads every voxel 100 HU brighter; with the UIDs its anonymiser blanked."""
    import pydicom
    from pydicom.uid import generate_uid

    out, study = tmp_path_factory.mktemp("study"), generate_uid()
    for number, description, shift in ((2, "Portal", 0), (7, "Arterial", 100)):
        uid = generate_uid()
        for i, f in enumerate(sorted((real_data / "totalsegmentator_examples" / "example_ct_dicom").iterdir())):
            ds = pydicom.dcmread(f)
            ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = uid, number, description
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.SOPClassUID, ds.StudyInstanceUID = ds.file_meta.MediaStorageSOPClassUID, study  # blank in the example
            ds.RescaleIntercept = float(ds.RescaleIntercept) + shift
            ds.save_as(out / f"s{number}_{i:03d}.dcm")
    return out
