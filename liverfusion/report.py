"""`report.html`: one self-contained page a radiologist reads instead of result.json, and its figures as PNGs.

For each lesion (or, with none, the axial slice with the most liver) a row of images, one per input on the
reference grid, with the tumour outlined and the attention heat map blended in, and a colour bar; then the
probability with the model and its intended use, the lesion table and the timings. Pillow only: the figures are
simple, and the page must open on a reading-room PC with nothing installed.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image, ImageDraw
from scipy import ndimage

from .constants import LIVER, ROLE_TO_CHANNEL, TUMOR
from .postprocess import shown

TILE = 256  # pixels per image tile
SOFT_TISSUE_HU = (-160.0, 240.0)  # window 400, level 40
HEAT_ALPHA = 0.45
MAX_LESION_ROWS = 6


def heat(t: np.ndarray) -> np.ndarray:
    """The 'hot' colour map (black, red, yellow, white) for t in [0, 1], as uint8 RGB."""
    t = np.clip(t, 0, 1)[..., None]
    return (np.clip(np.concatenate([3 * t, 3 * t - 1, 3 * t - 2], -1), 0, 1) * 255).astype(np.uint8)


def gray(slice_: np.ndarray, role: str) -> np.ndarray:
    """CT in a soft-tissue window; MRI between its 1st and 99.5th percentiles."""
    if ROLE_TO_CHANNEL[role] == "mri":
        lo, hi = np.percentile(slice_, (1, 99.5))
    else:
        lo, hi = SOFT_TISSUE_HU
    return (np.clip((slice_ - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def tile(image: np.ndarray, role: str, labels: np.ndarray, attention: np.ndarray, spacing: tuple) -> Image.Image:
    """One axial slice: the image, the heat map blended where it is high, liver (green) and tumour (red) outlines."""
    rgb = np.repeat(gray(image, role)[..., None], 3, -1).astype(np.float32)
    weight = HEAT_ALPHA * np.clip(attention, 0, 1)[..., None]
    rgb = rgb * (1 - weight) + heat(attention).astype(np.float32) * weight
    for value, colour in ((LIVER, (60, 220, 90)), (TUMOR, (255, 40, 40))):
        mask = labels >= value if value == LIVER else labels == value
        rgb[mask & ~ndimage.binary_erosion(mask)] = colour
    out = Image.fromarray(rgb.astype(np.uint8))
    aspect = (image.shape[0] * spacing[1]) / (image.shape[1] * spacing[0])
    out = out.resize((TILE, max(1, int(round(TILE * aspect)))))
    ImageDraw.Draw(out).text((6, 6), role, fill=(255, 255, 0))
    return out


def colour_bar(height: int) -> Image.Image:
    """A vertical bar of the heat map from 0 (bottom) to 1 (top), labelled."""
    ramp = np.linspace(1, 0, height)[:, None].repeat(16, 1)
    bar = Image.new("RGB", (70, height), (255, 255, 255))
    bar.paste(Image.fromarray(heat(ramp)), (4, 0))
    draw = ImageDraw.Draw(bar)
    draw.text((24, 2), "1 high", fill=(0, 0, 0))
    draw.text((24, height - 14), "0 low", fill=(0, 0, 0))
    return bar


def slices_to_show(result) -> list[tuple[str, int]]:
    """(title, axial index) per lesion, largest first; or the slice with the most liver when there is none."""
    labels = sitk.GetArrayFromImage(result.labels)
    if not result.lesions:
        return [("Liver (no lesion found)", int(np.argmax((labels >= LIVER).sum((1, 2)))))]
    lesions = sorted(result.lesions, key=lambda les: -les.volume_ml)[:MAX_LESION_ROWS]
    rows = []
    for les in lesions:
        k = result.labels.TransformPhysicalPointToIndex(les.centroid_lps_mm)[2]
        title = (
            f"Lesion {les.id}: {les.max_diameter_mm:.0f} mm, {les.volume_ml:.1f} ml, "
            f"p(malignant) {shown(les.malignancy_probability)}"
        )
        rows.append((title, int(np.clip(k, 0, labels.shape[0] - 1))))
    return rows


def figure(result, images: dict[str, sitk.Image], k: int) -> Image.Image:
    """One row: every input on the reference grid at axial slice k, then the colour bar."""
    labels = sitk.GetArrayViewFromImage(result.labels)[k]  # views: one slice each, not a copy of every volume
    attention_volume = sitk.GetArrayViewFromImage(result.attention)
    attention = attention_volume[k].astype(np.float32) / max(float(attention_volume.max()), 1e-6)
    on_grid = {result.reference: images[result.reference], **result.aligned}
    spacing = result.labels.GetSpacing()
    tiles = [
        tile(sitk.GetArrayViewFromImage(img)[k].astype(np.float32), role, labels, attention, spacing)
        for role, img in on_grid.items()
    ]
    height = max(t.height for t in tiles)
    row = Image.new("RGB", (sum(t.width for t in tiles) + 80, height), (255, 255, 255))
    x = 0
    for t in tiles:
        row.paste(t, (x, 0))
        x += t.width
    row.paste(colour_bar(height), (x + 6, 0))
    return row


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_report(result, out: Path) -> list[Path]:
    """`report.html` and its figures `report_<n>.png` in `out` (a staging folder), showing the inputs as the
    network read them; returns the PNG paths."""
    rows = [(title, _png(figure(result, result.inputs, k))) for title, k in slices_to_show(result)]
    pngs = []
    for n, (_, data) in enumerate(rows, 1):
        pngs.append(out / f"report_{n}.png")
        pngs[-1].write_bytes(data)
    (out / "report.html").write_text(page(result, rows), encoding="utf-8")
    return pngs


STYLE = """body{font-family:sans-serif;margin:24px;max-width:1400px}h1{margin-bottom:0}
.p{font-size:32px;font-weight:bold;margin:12px 0}.warn{background:#fff3cd;border:1px solid #e0b000;padding:8px}
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}
figure{margin:16px 0}figcaption{font-weight:bold;margin-bottom:4px}.muted{color:#555}"""


def _point(p) -> str:
    return ", ".join(f"{v:.1f}" for v in p)


MEANING = """<div class="muted">That the liver holds a malignant lesion: the highest, over lesions, of p(malignant)
times the network's mean tumour probability in the lesion, so a speck it hesitated over counts less.</div>"""


def page(result, rows: list[tuple[str, bytes]]) -> str:
    """The self-contained HTML page (figures embedded as data URIs)."""
    e = html.escape
    meta = result.model.metadata
    lesion_rows = (
        "".join(
            f"<tr><td>{les.id}</td><td>{les.volume_ml:.2f}</td><td>{les.max_diameter_mm:.1f}</td>"
            f"<td>{shown(les.malignancy_probability)}</td><td>{_point(les.centroid_lps_mm)}</td></tr>"
            for les in result.lesions
        )
        or '<tr><td colspan="5">no lesion found</td></tr>'
    )
    figures = "".join(
        f'<figure><figcaption>{e(title)}</figcaption><img alt="{e(title)}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode()}"></figure>'
        for title, data in rows
    )
    timings = ", ".join(f"{e(k)} {v:.1f} s" for k, v in result.timings.items())
    warnings = "".join(f"<li>{e(w)}</li>" for w in result.warnings)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LiverFusion report</title><style>{STYLE}</style></head><body>
<h1>LiverFusion report</h1>
<div class="p">Malignancy probability {shown(result.probability)}</div>
{'' if result.probability is None else MEANING}
<div class="muted">Model {e(meta["name"])} {e(meta["version"])}, liver volume {result.liver_volume_ml:.0f} ml,
reference image {e(result.reference)}, device {e(result.device)}</div>
<p class="warn">{e(meta.get("intended_use", ""))}</p>
<h2>Lesions</h2>
<table><tr><th>id</th><th>volume (ml)</th><th>longest axial diameter (mm)</th><th>p(malignant)</th>
<th>centroid (LPS, mm)</th></tr>{lesion_rows}</table>
<h2>Images</h2>
<p class="muted">Each input on the reference grid. Outlines: liver green, tumour red. Heat map: where the network
looked for its malignancy call (attention, scaled to its maximum; colour bar at the right).</p>
{figures}
<h2>Run</h2><p class="muted">Timings: {timings}</p>{f"<ul>{warnings}</ul>" if warnings else ""}
</body></html>
"""
