"""`report.html`: one self-contained page a radiologist reads instead of result.json.

From the top: what to check before reading (the run's warnings), the case probability with the lesion that drives
it, the model and its intended use, a whole-liver overview (axial and coronal) with every lesion numbered, the
lesion table (largest first, each row linking to its figure), then per lesion a figure at reading size (pictures
in `report_figures`). Images are embedded as data URIs: the page opens offline, alone, on any PC.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from ..constants import ROLES
from ..inference.postprocess import shown
from . import figures as rf

MAX_FIGURES = 8  # lesion figures; the table lists every lesion


@dataclass
class Tile:
    """One picture of the page, with the label drawn on it and the input it shows."""

    image: Image.Image
    caption: str
    role: str


@dataclass
class LesionFigure:
    """A lesion's tiles: the first row shows what it looks like, the second what the network made of it."""

    spot: rf.Spot
    inputs: list[Tile]  # one per input, in its own window
    maps: list[Tile]  # the attention, then each input's fusion weight


def on_grid(result) -> dict[str, sitk.Image]:
    """Every image the network read, on the reference grid, in the order a reader expects (phases in time)."""
    images = {result.reference: result.inputs[result.reference], **result.aligned, **result.translated}
    return {role: images[role] for role in sorted(images, key=ROLES.index)}


class Views:
    """The case's volumes seen in patient axes (views, no copies), and each input's window."""

    def __init__(self, result):
        self.frame = rf.Frame.of(result.labels)
        images = on_grid(result)
        self.images = {role: self.frame.view(image) for role, image in images.items()}
        self.limits = {role: rf.window(image, role) for role, image in images.items()}
        self.labels = self.frame.view(result.labels)
        self.attention = self.frame.view(result.attention)
        self.fusion = {role: self.frame.view(result.fusion[role]) for role in self.images if role in result.fusion}

    def tile(
        self, field: rf.Field, role: str, caption: str, heat: np.ndarray | None = None, opaque: bool = False
    ) -> Tile:
        layers = rf.Layers(self.images[role], self.limits[role], self.labels, heat, opaque)
        image = rf.annotate(rf.picture(field, layers), field, self.frame.spacing, caption)
        return Tile(image, caption, role)


def lesion_figure(views: Views, spot: rf.Spot, reference: str) -> LesionFigure:
    field = rf.lesion_field(spot, views.frame, views.labels.shape)
    inputs = [views.tile(field, r, f"{r} {rf.window_name(r, views.limits[r])}") for r in views.images]
    maps = [views.tile(field, reference, "attention", views.attention)]
    if len(views.fusion) > 1:  # one input's weight is 1 everywhere: nothing to see
        maps += [views.tile(field, r, f"fusion weight {r}", w, opaque=True) for r, w in views.fusion.items()]
    return LesionFigure(spot, inputs, maps)


def overview(views: Views, found: list[rf.Spot], reference: str) -> list[Tile]:
    """The reference image through the liver, axial and coronal, every lesion numbered."""
    tiles = []
    for field, name in zip(rf.liver_fields(views.labels, views.frame), ("axial", "coronal")):
        tile = views.tile(field, reference, f"{reference} {name}")
        rf.numbered(tile.image, field, found, views.frame, views.labels.shape[0])
        tiles.append(tile)
    return tiles


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)  # the default 6 took 3 times as long for a sixth less
    return buffer.getvalue()


def write_report(result, out: Path) -> Path:
    """`report.html` in `out` (a staging folder), showing the inputs as the network read them. Its pictures live in
    the page only: saving each figure as a PNG too doubled the report's time, most of it PNG encoding."""
    views = Views(result)
    found = rf.spots(result, views.frame)
    over = overview(views, found, result.reference)
    figures = [lesion_figure(views, spot, result.reference) for spot in found[:MAX_FIGURES]]
    path = out / "report.html"
    path.write_text(page(result, over, figures, found), encoding="utf-8")
    return path


STYLE = """body{font-family:sans-serif;margin:16px;max-width:1500px}h1{margin:0 0 8px}
.p{font-size:30px;font-weight:bold;margin:12px 0 2px}.why{font-size:17px;margin-bottom:8px}
.warn{background:#fff3cd;border:2px solid #e0b000;padding:6px 12px;font-size:17px}.warn ul{margin:4px 0}
.use{background:#eee;padding:6px 12px}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}
figure{margin:18px 0}figcaption{font-weight:bold;font-size:17px;margin-bottom:6px}.muted{color:#555}
.row{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:6px}.tile img{display:block}
.key{display:inline-block;width:22px;height:4px;vertical-align:middle;margin:0 4px}
.bar{vertical-align:middle;margin:0 4px}"""


def _point(p) -> str:
    return ", ".join(f"{v:.1f}" for v in p)


def _data_uri(image: Image.Image) -> str:
    return f"data:image/png;base64,{base64.b64encode(_png(image)).decode()}"


def _tile_html(tile: Tile, alt: str, kind: str) -> str:
    e = html.escape
    return (
        f'<div class="tile {kind}" data-role="{e(tile.role)}"><img src="{_data_uri(tile.image)}" '
        f'width="{tile.image.width}" height="{tile.image.height}" alt="{e(alt)}"></div>'
    )


def _legend(with_heat: bool) -> str:
    bar = f'heat 0<img class="bar" src="{_data_uri(rf.colour_bar())}" alt="heat colour bar">1 · ' if with_heat else ""
    return (
        f'<div class="muted">{bar}outlines: <span class="key" style="background:rgb{rf.LIVER_RGB}"></span>liver '
        f'<span class="key" style="background:rgb{rf.TUMOUR_RGB}"></span>tumour · '
        f"scale bar {rf.SCALE_BAR_MM:.0f} mm</div>"
    )


def _figure_html(fig: LesionFigure) -> str:
    les = fig.spot.lesion
    title = (f"Lesion {les.id}: {les.max_diameter_mm:.0f} mm, {les.volume_ml:.1f} ml, "
             f"p(malignant) {shown(les.malignancy_probability)}")
    inputs = "".join(_tile_html(t, f"lesion {les.id}, {t.caption}", "input") for t in fig.inputs)
    maps = "".join(_tile_html(t, f"lesion {les.id}, {t.caption}", "map") for t in fig.maps)
    return (
        f'<figure class="lesion" id="lesion-{les.id}"><figcaption>{html.escape(title)} '
        f'<a href="#table">table</a></figcaption><div class="row">{inputs}</div>'
        f'<div class="row">{maps}</div>{_legend(True)}</figure>'
    )


def _link(lesion_id: int, shown_ids: set[int]) -> str:
    return f'<a href="#lesion-{lesion_id}">{lesion_id}</a>' if lesion_id in shown_ids else str(lesion_id)


def _table(found: list[rf.Spot], shown_ids: set[int]) -> str:
    rows = "".join(
        f"<tr><td>{_link(s.lesion.id, shown_ids)}</td><td>{s.lesion.volume_ml:.2f}</td>"
        f"<td>{s.lesion.max_diameter_mm:.1f}</td>"
        f"<td>{shown(s.lesion.malignancy_probability)}</td><td>{s.certainty:.2f}</td>"
        f"<td>{_point(s.lesion.centroid_lps_mm)}</td></tr>"
        for s in found
    )
    return (
        '<table id="table"><tr><th>lesion</th><th>volume (ml)</th><th>longest diameter (mm)</th>'
        "<th>p(malignant)</th><th>mean p(tumour)</th><th>centroid (LPS, mm)</th></tr>"
        f'{rows or "<tr><td colspan=6 style=text-align:left>no lesion found</td></tr>"}</table>'
    )


def why(result, found: list[rf.Spot]) -> str:
    """One line under the case probability: what it is, and which lesion drives it."""
    if result.probability is None:
        return ""
    if not found:
        return ("That the liver holds a malignant lesion. No lesion was found: it is the highest, voxel by voxel, "
                "of tumour probability times malignancy, low wherever the network called no tumour.")
    top = max(found, key=lambda s: s.lesion.malignancy_probability * s.certainty)
    return (
        f'That the liver holds a malignant lesion, driven by <a href="#lesion-{top.lesion.id}">lesion '
        f"{top.lesion.id}</a>: its p(malignant) {top.lesion.malignancy_probability:.2f} times "
        f"{top.certainty:.2f}, how sure the network is that it is tumour at all."
    )


def _warnings(result) -> str:
    items = "".join(f"<li>{html.escape(w[:1].upper() + w[1:].rstrip('.'))}.</li>" for w in result.warnings)
    return f'<div class="warn" id="warnings"><b>Check before reading</b><ul>{items}</ul></div>' if items else ""


FIGURES_NOTE = f"""<p class="muted">Each lesion on its widest axial slice, {rf.FIELD_MM:.0f} mm field (wider for a
lesion over {rf.FIELD_MM / rf.FIELD_PER_DIAMETER:.0f} mm). First row: every input on the reference grid, each in its
own window. Second row: where the network looked for its malignancy call (attention, 1 at its maximum in the case)
and, with several inputs, how much it weighed each there (fusion weights, summing to 1).</p>"""


def page(result, over: list[Tile], figures: list[LesionFigure], found: list[rf.Spot]) -> str:
    """The self-contained HTML page (figures embedded as data URIs)."""
    e = html.escape
    meta = result.model.metadata
    more = (f"<p class='muted'>Figures of the {MAX_FIGURES} largest of {len(found)} lesions.</p>"
            if len(found) > MAX_FIGURES else "")
    timings = ", ".join(f"{e(k)} {v:.1f} s" for k, v in result.timings.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LiverFusion report</title><style>{STYLE}</style></head><body>
<h1>LiverFusion report</h1>{_warnings(result)}
<div class="p">Malignancy probability {shown(result.probability)}</div><div class="why">{why(result, found)}</div>
<div class="muted">Model {e(meta["name"])} {e(meta["version"])}, liver volume {result.liver_volume_ml:.0f} ml,
reference image {e(result.reference)}, device {e(result.device)}</div>
<p class="use">{e(meta.get("intended_use", ""))}</p>
<h2>Overview</h2><figure id="overview"><figcaption>The liver through its largest axial slice and coronal section;
circles: every lesion, projected onto the plane, numbered as in the table</figcaption>
<div class="row">{"".join(_tile_html(t, t.caption, "overview") for t in over)}</div>{_legend(False)}</figure>
<h2>Lesions</h2>{_table(found, {f.spot.lesion.id for f in figures})}{more}
{FIGURES_NOTE if figures else ""}{"".join(_figure_html(f) for f in figures)}
<h2>Run</h2><p class="muted">Timings: {timings}</p>
</body></html>
"""
