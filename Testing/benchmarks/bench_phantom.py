"""Seconds per phantom case at clinical size for both protocols, and one PNG montage per protocol.

Full size: CT (every phase) 512x512x120, MRI 320x260x40. One process, so the figure is per core.
The montage shows, for each image of the case with the largest lesion, the axial slice with the most
tumour, outlined in red, to look at. Outputs go to Testing/benchmarks/output/ (git-ignored). Not a test.
Usage: python Testing/benchmarks/bench_phantom.py [--cases 2] [--seed 7000] [--profile]
(--profile: where the time of each protocol's first case goes, the costliest calls by their own time)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from benchlib import OUTPUT, json_argument, write_json
from PIL import Image, ImageDraw
from scipy import ndimage

from liverfusion.io.images import read_image
from liverfusion.synthesis.phantom import PROTOCOLS, make_case, single_threaded

CLINICAL = {"ct": (512, 512, 120), "mri": (320, 260, 40)}


def shapes(protocol: str) -> dict[str, tuple[int, int, int]]:
    return {role: CLINICAL["mri" if role == "mri" else "ct"] for role in PROTOCOLS[protocol]}


def tile(case: Path, role: str, size: int = 320) -> Image.Image:
    """The axial slice with the most tumour (else the most liver), windowed, tumour outlined in red."""
    # in LPS axis order, as a viewer shows it (anterior up, patient's right on the left), whatever the storage order
    image = sitk.GetArrayFromImage(sitk.DICOMOrient(read_image(case / f"{role}.nii.gz"), "LPS"))
    label = sitk.GetArrayFromImage(sitk.DICOMOrient(read_image(case / f"label_{role}.nii.gz", label=True), "LPS"))
    counts = (label == 2).sum((1, 2))
    z = int(np.argmax(counts if counts.any() else (label == 1).sum((1, 2))))
    lo, hi = (-120.0, 240.0) if role != "mri" else np.percentile(image, (1, 99.5))
    gray = (np.clip((image[z] - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, -1)
    tumor = label[z] == 2
    rgb[tumor & ~ndimage.binary_erosion(tumor)] = (255, 40, 40)
    out = Image.fromarray(rgb).resize((size, int(size * rgb.shape[0] / rgb.shape[1])))
    ImageDraw.Draw(out).text((6, 6), f"{role} (slice {z})", fill=(255, 255, 0))
    return out


def montage(case: Path, roles: tuple[str, ...], path: Path) -> None:
    tiles = [tile(case, role) for role in roles]
    sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)))
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width
    sheet.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=2)
    p.add_argument("--seed", type=int, default=7000)
    p.add_argument("--profile", action="store_true", help="profile each protocol's first case")
    json_argument(p, __file__)
    args = p.parse_args()
    figures = {}
    single_threaded()  # one core: ITK filters and torch would otherwise use them all
    OUTPUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in PROTOCOLS:
            seconds, infos = [], []
            for i in range(args.cases):
                case = Path(tmp) / f"{protocol}_{i}"
                profile = cProfile.Profile() if args.profile and i == 0 else None
                start = time.perf_counter()
                if profile:
                    profile.enable()
                info = make_case(case, args.seed + i, protocol, shapes=shapes(protocol))
                seconds.append(time.perf_counter() - start)
                if profile:
                    profile.disable()
                    pstats.Stats(profile).sort_stats("tottime").print_stats(12)
                infos.append(info)
                lesions = ", ".join(f"{les['type']} {les['diameter_mm']:.0f} mm" for les in info["lesions"])
                print(f"{protocol} seed {args.seed + i}: {seconds[-1]:.1f} s; lesions: {lesions or 'none'}", flush=True)
            best = int(np.argmax([max((les["diameter_mm"] for les in i["lesions"]), default=0) for i in infos]))
            path = OUTPUT / f"montage_{protocol}.png"
            montage(Path(tmp) / f"{protocol}_{best}", PROTOCOLS[protocol], path)  # the case with the largest lesion
            (OUTPUT / f"montage_{protocol}.json").write_text(json.dumps(infos[best], indent=2), encoding="utf-8")
            print(f"{protocol}: {np.mean(seconds):.1f} s per case (one core), montage {path}")
            figures[protocol] = {"seconds": seconds, "seconds_mean": float(np.mean(seconds)), "montage": str(path)}
    write_json(args.json, figures, args)


if __name__ == "__main__":
    main()
