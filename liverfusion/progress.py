"""Progress reporting that every front end can drive: a terminal bar, a Slicer progress bar, or nothing.

The core calls `report(fraction, stage)`; a callback may raise `Cancelled`, which is how Cancel in
Slicer stops a run between steps.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from tqdm import tqdm

Reporter = Callable[[float, str], None]


def silent(fraction: float, stage: str) -> None:
    """A reporter that reports nothing (tests, batch jobs)."""


@contextlib.contextmanager
def terminal_bar(enabled: bool | None = None) -> Iterator[Reporter]:
    """A tqdm bar on stderr when it is a terminal; always closed, so an error line starts clean."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        yield silent
        return
    bar = tqdm(total=100, unit="%", file=sys.stderr, leave=False, bar_format="{desc:<12} {bar} {percentage:3.0f}%")

    def report(fraction: float, stage: str) -> None:
        bar.set_description_str(stage)
        bar.update(round(100 * fraction) - bar.n)

    try:
        yield report
    finally:
        bar.close()
