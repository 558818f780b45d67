"""A long computation in a worker thread, so Slicer's window stays responsive and Cancel can be pressed.

The worker never touches MRML or Qt (neither is thread-safe): it only puts progress into a queue, which
the GUI drains from a QTimer, and hands back its result or exception. Cancel sets a flag; the next
progress report raises `Cancelled`, which the core lets through between steps.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from liverfusion.errors import Cancelled

CANCEL_MESSAGE = "cancelled by the user"


@dataclass(frozen=True)
class Progress:
    fraction: float
    stage: str


class BackgroundJob:
    """Runs `work(report)` in a daemon thread; `report(fraction, stage)` is the core's progress callback."""

    def __init__(self, work: Callable[[Callable[[float, str], None]], Any]):
        self._work = work
        self._queue: queue.Queue[Progress] = queue.Queue()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="LiverFusionJob", daemon=True)

    def start(self) -> BackgroundJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def report(self, fraction: float, stage: str) -> None:
        """The callback given to the work: queue the progress, or stop if Cancel was pressed."""
        if self._cancel.is_set():
            raise Cancelled(CANCEL_MESSAGE)
        self._queue.put(Progress(fraction, stage))

    def poll(self) -> list[Progress]:
        """Every progress report queued since the last poll, oldest first (never blocks)."""
        reports = []
        while True:
            try:
                reports.append(self._queue.get_nowait())
            except queue.Empty:
                return reports

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work ends (batch use and tests); True if it did within `timeout`."""
        return self._done.wait(timeout)

    def result(self) -> Any:
        """The work's return value; re-raises its exception (Cancelled included) in the caller's thread."""
        if not self.done:
            raise RuntimeError("the job is still running")
        if self._error is not None:
            raise self._error
        return self._result

    def _run(self) -> None:
        try:
            value = self._work(self.report)
            if self._cancel.is_set():  # pressed after the last report: the user still expects nothing to change
                raise Cancelled(CANCEL_MESSAGE)
            self._result = value
        except Exception as exc:  # handed to the GUI thread, which shows it
            self._error = exc
        finally:
            self._done.set()
