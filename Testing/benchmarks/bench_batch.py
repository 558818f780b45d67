"""Cases per minute of `liverfusion batch` on small phantom cases, serially and on a local Dask cluster.

Makes N small CT+MRI phantoms (seeds 8000+, never used for training), then runs the cohort twice, serial (one
process, torch on every core) and with 2 workers (one thread each). Not a test: prints figures.
Usage: python Testing/benchmarks/bench_batch.py [--cases 20] [--align rigid]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchlib import json_argument, write_json

from liverfusion.inference.cohort import Options, run_cohort
from liverfusion.synthesis.phantom import make_case


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=20)
    p.add_argument("--align", default="rigid")
    json_argument(p, __file__)
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = [root / "cases" / f"case_{i:03d}" for i in range(args.cases)]
        with ProcessPoolExecutor() as pool:
            list(pool.map(make_case, folders, [8000 + i for i in range(args.cases)], ["ct-mri"] * args.cases,
                          [True] * args.cases))
        table = root / "cases.csv"
        table.write_text("case_id,ct,mri\n" + "".join(f"{f.name},{f / 'ct.nii.gz'},{f / 'mri.nii.gz'}\n"
                                                       for f in folders), encoding="utf-8")
        cores = os.cpu_count() or 1
        for label, workers, threads in (("serial", 1, 0), ("2 workers", 2, max(1, cores // 2))):
            start = time.perf_counter()
            rows = run_cohort(table, root / label.replace(" ", "_"), Options(args.align, "cpu", None, threads), workers)
            minutes = (time.perf_counter() - start) / 60
            done = sum(r["status"] == "done" for r in rows)
            print(f"{label:>10}: {done}/{len(rows)} cases in {minutes * 60:.0f} s, {done / minutes:.1f} cases/min "
                  f"({cores} cores, align {args.align})", flush=True)
            runs.append({"run": label, "workers": workers, "threads": threads, "cases": len(rows), "done": done,
                         "seconds": minutes * 60, "cases_per_minute": done / minutes, "cores": cores})
    write_json(args.json, {"runs": runs}, args)


if __name__ == "__main__":
    main()
