"""`liverfusion view RESULT_DIR`: a result in the browser, without Slicer: linked axial, coronal and sagittal views of
every input on the reference grid, the segmentation outlined and the attention as a heat map, opening on the largest
lesion.

The standard library's HTTP server serves, on this machine only, one page and the volumes as raw bytes, already in
patient axes and each input in its report window (`report_figures`), so that a hundred lines of plain JavaScript
draw them: no CDN, no network, nothing to install, where trame-slicer would bring VTK and a rendering server.
"""

from __future__ import annotations

import functools
import http.server
import json
import tempfile
import webbrowser
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..constants import ROLES
from ..errors import LiverFusionError
from ..io.images import read_image, write_text
from .figures import LIVER_RGB, TUMOUR_RGB, VIRIDIS, Frame, window


def images_on_grid(result_dir: Path, summary: dict) -> dict[str, sitk.Image]:
    """Every input on the reference grid: the reference as given, the others as aligned, a translated channel as
    made; in the order a reader expects."""
    reference = summary["reference"]
    source = Path(summary["inputs"][reference])
    if not source.exists():
        raise LiverFusionError(f"{source}: the reference input is no longer there (result.json names it)")
    images = {reference: read_image(source)}
    for role in summary["inputs"]:
        if role != reference:
            images[role] = read_image(result_dir / f"aligned_{role}.nii.gz")
    for role in summary.get("filled_by_translation", {}):
        images[role] = read_image(result_dir / f"{role}_from_{reference}.nii.gz")
    return {role: images[role] for role in sorted(images, key=ROLES.index)}


def to_bytes(view: np.ndarray, limits: tuple[float, float]) -> bytes:
    lo, hi = limits
    return (np.clip((view - lo) / (hi - lo), 0, 1) * 255).round().astype(np.uint8).tobytes()


def prepare(result_dir: str | Path, folder: Path) -> dict:
    """Write the page, `meta.json` and one `<name>.u8` per volume ((z, y, x) in patient axes) into `folder`;
    returns the metadata."""
    result_dir = Path(result_dir)
    if not (result_dir / "result.json").is_file():
        raise LiverFusionError(f"{result_dir}: no result.json (not a finished `liverfusion segment` folder)")
    summary = json.loads((result_dir / "result.json").read_text(encoding="utf-8"))
    labels = read_image(result_dir / "segmentation.nii.gz", label=True)
    frame = Frame.of(labels)
    volumes = {f"image_{role}": to_bytes(frame.view(image), window(image, role))
               for role, image in images_on_grid(result_dir, summary).items()}
    volumes["labels"] = np.ascontiguousarray(frame.view(labels)).tobytes()
    attention = read_image(result_dir / "attention.nii.gz")  # kept: a view does not keep its image alive
    volumes["attention"] = to_bytes(frame.view(attention), (0.0, 1.0))
    for name, data in volumes.items():
        (folder / f"{name}.u8").write_bytes(data)
    lesions = lesion_buttons(summary, frame)
    shape = list(frame.view(labels).shape)
    meta = {
        "shape": shape,
        "spacing": list(frame.spacing),
        "images": [name for name in volumes if name.startswith("image_")],
        "lesions": lesions,
        "start": lesions[0]["centre"] if lesions else [n // 2 for n in shape],
        "colours": {"liver": LIVER_RGB, "tumour": TUMOUR_RGB, "heat": VIRIDIS.astype(int).tolist()},
    }
    write_text(json.dumps(meta), folder / "meta.json")
    write_text(PAGE, folder / "index.html")
    return meta


def lesion_buttons(summary: dict, frame: Frame) -> list[dict]:
    """Each lesion, largest first, with where its button takes the cursor (its centroid, in view voxels)."""
    return [
        {"id": les["id"], "centre": [int(round(v)) for v in frame.point(les["centroid_lps_mm"])],
         "text": f"lesion {les['id']}: {les['max_diameter_mm']:.0f} mm, {les['volume_ml']:.1f} ml"}
        for les in sorted(summary["lesions"], key=lambda les: -les["volume_ml"])
    ]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # one line per file fetched would bury the URL
        pass


def server(folder: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server of `folder` on this machine only (port 0: any free one); call `serve_forever`."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)


def view(result_dir: str | Path, port: int = 0, open_browser: bool = True) -> None:
    """Serve a result until Ctrl-C, from a scratch folder removed afterwards (the result folder is left as it is)."""
    with tempfile.TemporaryDirectory(prefix="liverfusion-view-") as folder:
        prepare(result_dir, Path(folder))
        with server(Path(folder), port) as httpd:
            url = f"http://127.0.0.1:{httpd.server_address[1]}/"
            print(f"{result_dir}: open {url} (Ctrl-C stops)", flush=True)
            if open_browser:
                webbrowser.open(url)
            try:
                httpd.serve_forever()
            except KeyboardInterrupt:
                pass


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LiverFusion view</title><style>
body{font-family:sans-serif;margin:12px;background:#111;color:#ddd}label,button{margin-right:10px}
#lesion{margin-top:6px;font-weight:bold}
#views{display:flex;flex-wrap:wrap;gap:8px;margin-top:8px}canvas{background:#000}
.v div{font-size:13px;color:#aaa}button{background:#333;color:#eee;border:1px solid #666;padding:3px 8px}
</style></head><body>
<div id="bar"><span id="images"></span><label><input type="checkbox" id="seg" checked>outlines</label>
<label><input type="checkbox" id="heat">attention</label><span id="lesions"></span></div>
<div id="lesion"></div><div id="views"></div><div id="info"></div>
<script>
(async () => {
const meta = await (await fetch('meta.json')).json();
const vols = {};
for (const name of [...meta.images, 'labels', 'attention'])
  vols[name] = new Uint8Array(await (await fetch(name + '.u8')).arrayBuffer());
const [Z, Y, X] = meta.shape, [sz, sy, sx] = meta.spacing, cur = meta.start.slice();
let image = meta.images[0];
const at = (z, y, x) => (z * Y + y) * X + x;
const views = {  // rows and columns of each view; head up, anterior up, the patient's right on the left
  axial: {w: X, h: Y, pw: sx, ph: sy, n: 0, pos: (r, c) => [cur[0], r, c], cross: () => [cur[2], cur[1]]},
  coronal: {w: X, h: Z, pw: sx, ph: sz, n: 1, pos: (r, c) => [Z - 1 - r, cur[1], c],
            cross: () => [cur[2], Z - 1 - cur[0]]},
  sagittal: {w: Y, h: Z, pw: sy, ph: sz, n: 2, pos: (r, c) => [Z - 1 - r, c, cur[2]],
             cross: () => [cur[1], Z - 1 - cur[0]]},
};
const scale = Math.min((innerWidth - 60) / (2 * X * sx + Y * sy), (innerHeight - 110) / Math.max(Y * sy, Z * sz));
const heatColour = t => {
  const s = meta.colours.heat, x = t * (s.length - 1), i = Math.min(Math.floor(x), s.length - 2), f = x - i;
  return [0, 1, 2].map(k => s[i][k] * (1 - f) + s[i + 1][k] * f);
};
function edge(v, r, c, inside) {  // a voxel inside whose 4-neighbour in the view is not
  for (const [dr, dc] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
    const rr = r + dr, cc = c + dc;
    if (rr >= 0 && cc >= 0 && rr < v.h && cc < v.w && !inside(vols.labels[at(...v.pos(rr, cc))])) return true;
  }
  return false;
}
function draw(name) {
  const v = views[name], canvas = document.getElementById(name), ctx = canvas.getContext('2d');
  const data = new ImageData(v.w, v.h), px = data.data, grey = vols[image];
  const seg = document.getElementById('seg').checked, heat = document.getElementById('heat').checked;
  for (let r = 0; r < v.h; r++) for (let c = 0; c < v.w; c++) {
    const i = at(...v.pos(r, c)), o = 4 * (r * v.w + c), g = grey[i], label = vols.labels[i];
    let rgb = [g, g, g];
    if (heat && vols.attention[i]) {
      const t = vols.attention[i] / 255, h = heatColour(t);
      rgb = rgb.map((x, k) => x + (h[k] - x) * 0.7 * t);
    }
    if (seg && label === 2 && edge(v, r, c, l => l === 2)) rgb = meta.colours.tumour;
    else if (seg && label >= 1 && edge(v, r, c, l => l >= 1)) rgb = meta.colours.liver;
    px[o] = rgb[0]; px[o + 1] = rgb[1]; px[o + 2] = rgb[2]; px[o + 3] = 255;
  }
  const slice = new OffscreenCanvas(v.w, v.h);  // drawn in voxels, shown stretched to millimetres
  slice.getContext('2d').putImageData(data, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(slice, 0, 0, canvas.width, canvas.height);
  const [cx, cy] = v.cross(), fx = canvas.width / v.w, fy = canvas.height / v.h;
  ctx.strokeStyle = 'rgba(255,255,0,0.7)'; ctx.lineWidth = 1; ctx.beginPath();
  ctx.moveTo((cx + 0.5) * fx, 0); ctx.lineTo((cx + 0.5) * fx, canvas.height);
  ctx.moveTo(0, (cy + 0.5) * fy); ctx.lineTo(canvas.width, (cy + 0.5) * fy); ctx.stroke();
}
function drawAll() {
  Object.keys(views).forEach(draw);
  const label = ['background', 'liver', 'tumour'][vols.labels[at(...cur)]];
  document.getElementById('info').textContent = `voxel (z, y, x) ${cur.join(', ')}: ${label}`;
  document.body.dataset.cursor = cur.join(',');
}
for (const [name, v] of Object.entries(views)) {
  const box = document.createElement('div'); box.className = 'v';
  const width = Math.round(v.w * v.pw * scale), height = Math.round(v.h * v.ph * scale);
  box.innerHTML = `<canvas id="${name}" width="${width}" height="${height}"></canvas><div>${name}</div>`;
  document.getElementById('views').appendChild(box);
  const canvas = box.firstChild;
  canvas.onclick = e => {
    const r = Math.floor(e.offsetY / canvas.clientHeight * v.h), c = Math.floor(e.offsetX / canvas.clientWidth * v.w);
    v.pos(r, c).forEach((x, k) => { cur[k] = x; }); drawAll();
  };
  canvas.onwheel = e => {
    e.preventDefault();
    cur[v.n] = Math.max(0, Math.min(meta.shape[v.n] - 1, cur[v.n] + (e.deltaY > 0 ? -1 : 1))); drawAll();
  };
}
for (const name of meta.images) {
  const l = document.createElement('label');
  l.innerHTML = `<input type="radio" name="image" ${name === image ? 'checked' : ''}>${name.slice(6)}`;
  l.firstChild.onchange = () => { image = name; drawAll(); };
  document.getElementById('images').appendChild(l);
}
for (const les of meta.lesions) {
  const b = document.createElement('button'); b.textContent = les.id; b.title = les.text;
  b.onclick = () => { les.centre.forEach((x, k) => { cur[k] = x; }); show(les); };
  document.getElementById('lesions').appendChild(b);
}
function show(les) { document.getElementById('lesion').textContent = les.text; drawAll(); }
document.getElementById('seg').onchange = drawAll; document.getElementById('heat').onchange = drawAll;
if (meta.lesions.length) show(meta.lesions[0]); else drawAll();
document.body.dataset.ready = '1';
})();
</script></body></html>
"""
