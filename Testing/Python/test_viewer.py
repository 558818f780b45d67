"""`liverfusion view`: the two-phase phantom's result served on this machine and drawn by headless Chromium."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.cli import main
from liverfusion.reports.figures import LIVER_RGB, TUMOUR_RGB
from liverfusion.reports.viewer import prepare, server


@pytest.fixture(scope="module")
def served(two_phase_result, chromium, tmp_path_factory) -> dict:
    """The viewer's page after its script ran: a screenshot and the DOM."""
    folder = tmp_path_factory.mktemp("view")
    meta = prepare(two_phase_result, folder)
    with server(folder) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        wait = ["--window-size=1400,900", "--virtual-time-budget=20000"]  # until the volumes are fetched and drawn
        shot = folder / "shot.png"
        chromium(*wait, f"--screenshot={shot}", url)
        dom = chromium(*wait, "--dump-dom", url).stdout
        httpd.shutdown()
    pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))[..., :3].astype(int)
    return {"meta": meta, "pixels": pixels, "dom": dom}


def count(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int((np.abs(pixels - np.array(colour)).max(-1) <= 8).sum())


def test_opens_on_the_largest_lesion_in_three_views(served):
    meta = served["meta"]
    assert meta["images"] == ["image_arterial", "image_portal"]  # a view of each input
    assert meta["lesions"] and meta["start"] == meta["lesions"][0]["centre"]
    assert 'data-ready="1"' in served["dom"]
    cursor = re.search(r'data-cursor="([^"]+)"', served["dom"]).group(1)
    assert [int(v) for v in cursor.split(",")] == meta["start"]
    assert all(f'id="{view}"' in served["dom"] for view in ("axial", "coronal", "sagittal"))
    assert "lesion 1:" in served["dom"]


def test_the_screenshot_shows_the_segmentation(served):
    """The views hold the tumour's and the liver's outlines over the images."""
    assert count(served["pixels"], TUMOUR_RGB) >= 60
    assert count(served["pixels"], LIVER_RGB) >= 300
    assert (served["pixels"].max(-1) > 100).mean() > 0.05  # images, not an empty dark page


def test_a_folder_without_a_result_is_one_line_error(tmp_path, capsys):
    assert main(["view", str(tmp_path), "--no-browser"]) == 2
    assert "no result.json" in capsys.readouterr().err
