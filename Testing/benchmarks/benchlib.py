"""What the benchmarks share: the held-out phantoms and the one alignment every model is scored on, the options of a
benchmark that runs one model, gaps with their intervals, and where figures go.

Every benchmark prints its figures and writes them as JSON, with the run's setup (command, date, machine, commit),
to `results/<script>.json` by default (`--json` elsewhere); montages and other files go to `output/` (not
committed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from liverfusion.evaluation.held_out import case_images, paired_difference, truth_of
from liverfusion.inference.pipeline import align_all, liver_focus
from liverfusion.io.roles import choose_reference
from liverfusion.models import store as model_store
from liverfusion.models.interface import SegmentationModel
from liverfusion.synthesis.phantom import make_case

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUTPUT = HERE / "output"
REPO = HERE.parents[1]
REAL_TRAIN = REPO.parent / "shared" / "data" / "real-train"  # real labelled CTs beside the repository
REAL = REPO.parent / "shared" / "data" / "real"  # the real scans beside the repository

# Held-out phantoms: (protocol, first seed). Training uses seeds 1000+ and 5000+, tuning 8000+ and 8500+.
PROTOCOLS = (("ct-mri", 9000), ("multiphase", 9500))
SEEDS = tuple(base for _, base in PROTOCOLS)


def generated_cases(tmp: Path, cases: int, seeds: tuple[int, int] = SEEDS):
    """(protocol, case folder) for `cases` phantoms of each protocol from its first seed in `seeds` (ct-mri,
    multiphase), made one at a time."""
    for (protocol, _), base in zip(PROTOCOLS, seeds):
        for i in range(cases):
            case = tmp / f"{protocol}_{base + i}"
            make_case(case, base + i, protocol)
            yield protocol, case


def aligned_case(case: Path, model: SegmentationModel, align: str, device):
    """A case folder's images, reference role, registrations (the liver found by `model` focuses the deformable
    stage), truth and `case.json`."""
    images = case_images(case)
    reference = choose_reference(images)
    focus = liver_focus(images[reference], reference, model, device) if align == "deformable" else None
    regs = align_all(images, reference, align, lambda *_: None, focus=focus)
    return images, reference, regs, *truth_of(case)


def one_model_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a benchmark that runs one model on the phantoms of `generated_cases`."""
    p.add_argument("--cases", type=int, default=20, help="per protocol")
    p.add_argument("--seeds", type=int, nargs=2, default=list(SEEDS), help="first seed of ct-mri and multiphase")
    p.add_argument("--model", default=model_store.DEFAULT_MODEL)
    p.add_argument("--device", default="auto")


def gap_text(a: list[dict], b: list[dict], key: str) -> str:
    """Model a minus model b on figure `key`, with its 95% interval (paired case resamples), as printed."""
    found = paired_difference(a, b, key)
    return "n/a" if found is None else "{:+.3f} [{:+.3f}, {:+.3f}]".format(*found)


def json_argument(p: argparse.ArgumentParser, script: str, name: str | None = None) -> None:
    """`--json FILE`, by default `results/<script name>.json` (`name` instead, where docs cite another)."""
    default = RESULTS / f"{name or Path(script).stem}.json"
    p.add_argument("--json", default=str(default), help=f"write the figures here as JSON too (default {default.name})")


def setup(args: argparse.Namespace | None = None) -> dict:
    """How a run was made: the command, date, machine, commit and arguments."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(HERE), "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(REPO) if script.is_relative_to(REPO) else script
    return {
        "command": " ".join(["python", str(shown), *sys.argv[1:]]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()}, {platform.machine()}, {os.cpu_count()} cores",
        "commit": commit,
        "arguments": vars(args) if args is not None else {},
    }


def write_json(path: str | Path, payload: dict, args: argparse.Namespace | None = None) -> Path:
    """Write `payload` with the run's `setup` first; says where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"setup": setup(args), **payload}, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"figures written to {path}")
    return path


def saved_rows(path: str | Path, key: str = "rows"):
    """The rows a benchmark's `--json` holds: under `key` in files written through `write_json`, the whole file in
    files of earlier runs (before the setup was recorded)."""
    saved = json.loads(Path(path).read_text(encoding="utf-8"))
    return saved[key] if isinstance(saved, dict) and "setup" in saved else saved
