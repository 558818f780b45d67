"""report.html as a radiologist sees it: a two-phase phantom segmented, the page laid out and drawn by headless
Chromium, and every figure checked where it lands on the screen. The case is conftest's, shared with
test_viewer.py."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
import SimpleITK as sitk

from liverfusion.reports.figures import LIVER_RGB, TUMOUR_RGB, Frame
from liverfusion.reports.page import MAX_FIGURES

ROLES = ("arterial", "portal")  # conftest's two_phase_result
WIDTH = 1200  # a reading-room browser window
# Appended to a copy of the page: the layout Chromium gave every tile, written where --dump-dom prints it.
PROBE = """<script>
const tiles = [...document.querySelectorAll('.tile img')].map(img => {
  const r = img.getBoundingClientRect(), tile = img.parentElement;
  return {figure: tile.closest('figure').id, kind: tile.classList[1], role: tile.dataset.role,
          x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height};
});
document.body.dataset.layout = JSON.stringify({tiles, height: document.documentElement.scrollHeight});
</script></body>"""


@pytest.fixture(scope="module")
def rendered(two_phase_result, chromium, tmp_path_factory) -> dict:
    """The two-phase case's report: the tiles' layout and a screenshot of the whole page."""
    page = (two_phase_result / "report.html").read_text(encoding="utf-8")
    probe = tmp_path_factory.mktemp("report") / "probe.html"
    probe.write_text(page.replace("</body>", PROBE), encoding="utf-8")
    dom = chromium("--window-size=1200,900", "--dump-dom", probe.as_uri()).stdout
    layout = json.loads(html.unescape(re.search(r'data-layout="([^"]*)"', dom).group(1)))
    shot = probe.parent / "shot.png"
    page_uri = (two_phase_result / "report.html").as_uri()
    chromium(f"--window-size={WIDTH},{layout['height']}", f"--screenshot={shot}", page_uri)
    pixels = sitk.GetArrayFromImage(sitk.ReadImage(str(shot)))[..., :3].astype(int)
    result = json.loads((two_phase_result / "result.json").read_text(encoding="utf-8"))
    return {"page": page, "tiles": layout["tiles"], "pixels": pixels, "result": result}


def coloured(pixels: np.ndarray, tile: dict, colour: tuple[int, int, int], centre_only: bool = False) -> int:
    """How many screen pixels of a tile are `colour` (within rounding); with `centre_only`, in its central half."""
    x, y, w, h = (int(round(tile[k])) for k in ("x", "y", "w", "h"))
    if centre_only:
        x, y, w, h = x + w // 4, y + h // 4, w // 2, h // 2
    box = pixels[y : y + h, x : x + w]
    return int((np.abs(box - np.array(colour)).max(-1) <= 8).sum())


def test_one_figure_per_lesion_with_a_tile_per_input_at_reading_size(rendered):
    lesions = rendered["result"]["lesions"]
    assert lesions, "the phantom's tumours were not found: nothing to show"
    figures = {t["figure"] for t in rendered["tiles"] if t["kind"] != "overview"}
    assert figures == {f"lesion-{les['id']}" for les in lesions[:MAX_FIGURES]}
    for figure in figures:
        inputs = [t for t in rendered["tiles"] if t["figure"] == figure and t["kind"] == "input"]
        assert sorted(t["role"] for t in inputs) == sorted(ROLES)
        maps = [t for t in rendered["tiles"] if t["figure"] == figure and t["kind"] == "map"]
        assert len(maps) == 1 + len(ROLES)  # the attention, then each input's fusion weight
    assert all(t["w"] >= 256 and t["h"] >= 256 for t in rendered["tiles"])
    assert max(t["x"] + t["w"] for t in rendered["tiles"]) <= WIDTH  # nothing off the side of the window


def test_each_lesion_is_outlined_at_the_centre_of_its_tiles(rendered):
    for tile in (t for t in rendered["tiles"] if t["kind"] in ("input", "map")):
        assert coloured(rendered["pixels"], tile, TUMOUR_RGB, centre_only=True) >= 20, tile


def test_the_overview_shows_the_liver_axial_and_coronal_with_every_lesion_marked(rendered):
    over = [t for t in rendered["tiles"] if t["figure"] == "overview"]
    assert len(over) == 2 and all(t["w"] >= 256 for t in over)
    for tile in over:
        assert coloured(rendered["pixels"], tile, LIVER_RGB) >= 100
        assert coloured(rendered["pixels"], tile, TUMOUR_RGB) >= 30 * len(rendered["result"]["lesions"])


def test_the_page_reads_from_warnings_to_figures_and_the_table_links_to_them(rendered):
    page, result = rendered["page"], rendered["result"]
    order = [page.index(s) for s in ("Malignancy probability", 'id="overview"', 'id="table"', 'id="lesion-')]
    assert order == sorted(order)
    if result["warnings"]:
        assert page.index("Check before reading") < order[0]
    volumes = [les["volume_ml"] for les in result["lesions"]]
    assert volumes == sorted(volumes, reverse=True)
    assert all(f'href="#lesion-{les["id"]}"' in page for les in result["lesions"][:MAX_FIGURES])
    assert re.search(r'driven by <a href="#lesion-\d+">lesion \d+</a>', page)  # which lesion makes the probability
    assert all(s.startswith("data:image/png;base64,") for s in re.findall(r'src="([^"]+)"', page))


def test_pictures_show_the_patient_as_a_radiologist_expects_whatever_the_image_direction():
    """A NIfTI stored in RAS reads into ITK with x and y flipped: the view must still put the patient's left (LPS +x)
    at growing columns and the back (+y) at growing rows, so axial pictures show anterior up and the patient's right
    on the left."""
    image = sitk.Image([20, 30, 10], sitk.sitkUInt8)
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    point = (-5.0, -3.0, 7.0)  # LPS mm: the patient's right, front and head of the origin; index (5, 3, 7)
    image[image.TransformPhysicalPointToIndex(point)] = 1
    frame = Frame.of(image)
    z, y, x = (int(v[0]) for v in np.nonzero(frame.view(image)))
    assert (z, y, x) == tuple(np.round(frame.point(point)).astype(int))
    assert (z, y, x) == (7, 30 - 1 - 3, 20 - 1 - 5)  # flipped axes count from their other end
    assert frame.spacing == (1.0, 1.0, 1.0)
