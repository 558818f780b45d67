"""Peak memory and time of `liverfusion segment` on a CT the size of a thin-slice whole-body scan.

The clinical-size phantom CT of bench_pipeline.py, resampled to 0.78 x 0.78 x 1 mm and stacked along z to --slices
slices (its abdomen repeated: the network finds liver in every copy, so post-processing works on nearly the whole
grid, a worst case). The run is a child process, so the peak is the run's own. Not a test.
Usage: python Testing/benchmarks/bench_large_volume.py [--slices 600] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from benchlib import json_argument, write_json

from liverfusion.synthesis.phantom import make_case

SPACING = (0.78, 0.78, 1.0)


def stacked_ct(case: Path, slices: int, out: Path) -> tuple[int, ...]:
    """The phantom CT on the thin-slice grid, its slices repeated up to `slices`."""
    ct = sitk.ReadImage(str(case / "ct.nii.gz"))
    size = [round(n * s / t) for n, s, t in zip(ct.GetSize(), ct.GetSpacing(), SPACING)]
    fine = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(), SPACING, ct.GetDirection(),
                         -1024.0, sitk.sitkInt16)
    array = sitk.GetArrayFromImage(fine)
    array = np.concatenate([array] * -(-slices // array.shape[0]))[:slices]
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ct.GetOrigin())
    sitk.WriteImage(image, str(out))
    return image.GetSize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slices", type=int, default=600)
    p.add_argument("--device", default="cpu")
    json_argument(p, __file__)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        case = Path(tmp) / "case"
        make_case(case, 4242, "ct-mri", shapes={"ct": (512, 512, 120), "mri": (320, 260, 40)})
        size = stacked_ct(case, args.slices, Path(tmp) / "big.nrrd")
        command = [sys.executable, "-m", "liverfusion.cli", "segment", "--input", f"ct={Path(tmp) / 'big.nrrd'}",
                   "--out", str(Path(tmp) / "out"), "--align", "none", "--device", args.device]
        t = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        seconds = time.perf_counter() - t
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
        timings = json.loads((Path(tmp) / "out" / "result.json").read_text(encoding="utf-8"))["timings_s"]
    voxels = int(np.prod(size)) / 1e6
    print(f"CT {size[0]}x{size[1]}x{size[2]} ({voxels:.0f} M voxels), {args.device}: {seconds:.1f} s in all, "
          f"peak RSS {peak_gb:.2f} GB; stages (s): {timings}")
    figures = {"size": list(size), "device": args.device, "seconds": seconds, "peak_rss_gb": peak_gb}
    figures["timings_s"] = timings
    write_json(args.json, figures, args)


if __name__ == "__main__":
    main()
