"""`liverfusion batch`: a cohort from a CSV, one case per task, serially or on a Dask cluster, resumable.

Dask distributed rather than Ray: pure-Python wheels that install anywhere pip does (hospital networks included),
a LocalCluster for one machine, and the same client for an existing scheduler (or dask-jobqueue on an HPC
queue); a case asking for a GPU requests the worker resource `GPU`. Each case is written by `segment`, whose
output folder appears at once, result.json last: a folder with result.json is a finished case, and a rerun skips
it. A failed case is recorded with its error and the run goes on.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..constants import ROLES
from ..errors import LiverFusionError
from ..io.images import require_writable, write_text
from ..io.roles import check_roles

SUMMARY_COLUMNS = ("case_id", "status", "error", "malignancy_probability", "lesions", "liver_volume_ml", "seconds")


@dataclass(frozen=True)
class Options:
    align: str = "deformable"
    device: str = "auto"
    model: str | None = None
    threads: int = 0  # torch threads per case (0: PyTorch's default)
    fill_mri: bool = False  # cases without MRI: the CT translated to MRI fills the MRI channel


def read_cases(path: str | Path) -> dict[str, dict[str, str]]:
    """case_id -> {role: path} from the CSV (a case_id column, one column per role; empty cells: not given).
    Relative paths are relative to the CSV."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: the byte-order mark Excel writes
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise LiverFusionError(f"{path}: {exc.strerror}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LiverFusionError(f"{path}: not a CSV text file ({exc})") from None
    if not rows or "case_id" not in rows[0]:
        raise LiverFusionError(f"{path}: expected a header with case_id and role columns ({', '.join(ROLES)})")
    cases: dict[str, dict[str, str]] = {}
    for line, row in enumerate(rows, 2):
        if None in row:  # csv.DictReader's key for the fields beyond the header's
            raise LiverFusionError(f"{path}: line {line}: more fields than the header's {len(row) - 1}")
        case_id = (row.pop("case_id") or "").strip()
        if not case_id or case_id in cases or case_id in (".", "..") or "/" in case_id or "\\" in case_id:
            raise LiverFusionError(
                f"{path}: line {line}: case_id missing, repeated, '.' or '..', or containing '/' or '\\' "
                "(it names the case's folder under --out)"
            )
        inputs = {role: str((path.parent / value).resolve()) for role, value in row.items() if value}
        try:
            check_roles(inputs)
        except LiverFusionError as exc:
            raise LiverFusionError(f"{path}: line {line}: {exc}") from None
        cases[case_id] = inputs
    return cases


def finished(out: Path, case_id: str) -> bool:
    return (out / case_id / "result.json").is_file()


def run_case_task(case_id: str, inputs: dict[str, str], out: str, options: Options) -> dict:
    """One case, in whatever process runs it; never raises for a case's own failure (it is a row)."""
    import torch

    from .pipeline import segment

    if options.threads:
        torch.set_num_threads(options.threads)
    start = time.perf_counter()
    try:
        summary = segment(
            inputs, Path(out) / case_id, options.align, options.device, options.model, fill_mri=options.fill_mri
        )
    except LiverFusionError as exc:
        return {"case_id": case_id, "status": "error", "error": str(exc), "seconds": time.perf_counter() - start}
    return done_row(case_id, summary, time.perf_counter() - start)


def done_row(case_id: str, summary: dict, seconds: float | str) -> dict:
    """A finished case's summary.csv row, from its result.json content."""
    return {
        "case_id": case_id,
        "status": "done",
        "error": "",
        "malignancy_probability": summary["malignancy_probability"],
        "lesions": len(summary["lesions"]),
        "liver_volume_ml": summary["liver_volume_ml"],
        "seconds": seconds,
    }


def previous_row(out: Path, case_id: str) -> dict:
    """The row of a case finished by an earlier run (its time is not known)."""
    return done_row(case_id, json.loads((out / case_id / "result.json").read_text(encoding="utf-8")), "")


def run_cohort(
    cases_csv: str | Path, out: str | Path, options: Options, workers: int = 1, scheduler: str | None = None
) -> list[dict]:
    """Segment every unfinished case; write `out/summary.csv` (all cases, in CSV order) last; return its rows."""
    cases, out = read_cases(cases_csv), require_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = {case_id: inputs for case_id, inputs in cases.items() if not finished(out, case_id)}
    rows = {case_id: previous_row(out, case_id) for case_id in cases if case_id not in todo}
    made = (
        _on_cluster(todo, out, options, workers, scheduler)
        if workers > 1 or scheduler
        else (run_case_task(case_id, inputs, str(out), options) for case_id, inputs in todo.items())
    )
    for row in tqdm(made, total=len(todo), desc="cases", unit="case"):
        rows[row["case_id"]] = row
    ordered = [rows[case_id] for case_id in cases]
    write_summary_csv(ordered, out / "summary.csv")
    return ordered


def _on_cluster(todo: dict, out: Path, options: Options, workers: int, scheduler: str | None):
    """One Dask task per case, on a local cluster of `workers` processes or on the scheduler given; rows as
    cases finish. Cases on CUDA ask for the worker resource GPU=1 (start GPU workers with --resources GPU=1)."""
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = (
        None
        if scheduler
        else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    )
    try:
        with Client(scheduler or cluster) as client:
            resources = {"GPU": 1} if options.device == "cuda" else None
            futures = [
                client.submit(
                    run_case_task,
                    case_id,
                    inputs,
                    str(out),
                    options,
                    key=f"liverfusion-{case_id}",
                    resources=resources,
                    pure=False,
                )
                for case_id, inputs in todo.items()
            ]
            for future in as_completed(futures):
                yield future.result()
    finally:
        if cluster is not None:
            cluster.close()


def write_summary_csv(rows: list[dict], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    write_text(text.getvalue(), path)  # atomic, and a full disk is one line
