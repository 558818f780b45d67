"""`liverfusion`: the command line for machines without Slicer.

Each command group is a module of this package that adds its parser and runs its command (`segment`: segment and
batch; `register`; `synthesis`: synth-tumor and phantom; `evaluate`; `train`; `ct2mri`: ct2mri and train-ct2mri;
`import_weights`; `dataset`; `view`); `common` holds the options they share. This module joins them.
Errors a user can cause print one line, `error: ...`, and exit 2; outputs appear only when complete.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import LiverFusionError
from . import ct2mri, dataset, evaluate, import_weights, register, segment, synthesis, train, view

# In the order `liverfusion --help` lists them.
COMMANDS = (
    segment.add_segment,
    register.add_register,
    synthesis.add_synth_tumor,
    synthesis.add_phantom,
    evaluate.add_evaluate,
    train.add_train,
    ct2mri.add_ct2mri,
    ct2mri.add_train_ct2mri,
    segment.add_batch,
    import_weights.add_import_weights,
    dataset.add_dataset,
    view.add_view,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="liverfusion", description="Multimodal liver tumour segmentation.")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def _tolerate_ascii_terminals() -> None:
    """Messages carry "·", "—" and "≥"; a terminal in the C locale must get "?" rather than a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    _tolerate_ascii_terminals()
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except LiverFusionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output was written", file=sys.stderr)
        return 130
