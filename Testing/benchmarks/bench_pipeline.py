"""Per-stage times of `liverfusion segment` on a clinical-size case: CT 512x512x120 + MRI 320x260x40.

Prints a table (load, align, infer, postprocess, write, total) and peak memory. Not a test.
Usage: python Testing/benchmarks/bench_pipeline.py [--device auto|cpu|cuda] [--align rigid|deformable] [--repeats N]
[--model NAME_OR_DIR]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from benchlib import json_argument, write_json

from liverfusion.inference.device import device_report
from liverfusion.inference.pipeline import segment
from liverfusion.synthesis.phantom import make_case


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--align", default="deformable")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--model", default=None, help="model bundle name or folder (default: the shipped one)")
    json_argument(p, __file__)
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        case = Path(tmp) / "case"
        t = time.perf_counter()
        make_case(case, 4242, "ct-mri", shapes={"ct": (512, 512, 120), "mri": (320, 260, 40)})
        print(
            f"phantom generated in {time.perf_counter() - t:.1f} s; {device_report()}; "
            f"torch threads {torch.get_num_threads()}"
        )
        inputs = {"ct": str(case / "ct.nii.gz"), "mri": str(case / "mri.nii.gz")}
        print(
            f"{'run':>4} " + " ".join(f"{k:>11}" for k in ("load", "align", "infer", "postprocess", "write", "total"))
        )
        for run in range(args.repeats):
            t = time.perf_counter()
            summary = segment(inputs, Path(tmp) / f"out{run}", args.align, args.device, args.model)
            total = time.perf_counter() - t
            s = summary["timings_s"]
            print(
                f"{run:>4} "
                + " ".join(f"{s.get(k, 0):>11.2f}" for k in ("load", "align", "infer", "postprocess", "write"))
                + f" {total:>11.2f}   device {summary['device']}, align {args.align}"
            )
            runs.append({"timings_s": s, "total_s": total, "device": summary["device"]})
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS {peak_gb:.2f} GB")
    write_json(args.json, {"runs": runs, "peak_rss_gb": peak_gb, "device": device_report()}, args)


if __name__ == "__main__":
    main()
