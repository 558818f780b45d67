"""BackgroundJob, the worker behind Apply/Cancel, tested without Qt: order, cancel, errors."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from liverfusion.errors import Cancelled

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "LiverFusionSeg"))
from LiverFusionSegLib.job import BackgroundJob, Progress  # noqa: E402

TIMEOUT = 10


def test_reports_arrive_in_order_and_the_result_comes_back():
    def work(report):
        for i in range(10):
            report(i / 10, f"step {i}")
        return "segmented"

    job = BackgroundJob(work).start()
    assert job.wait(TIMEOUT)
    assert job.poll() == [Progress(i / 10, f"step {i}") for i in range(10)]
    assert job.poll() == []
    assert job.result() == "segmented"


def test_poll_drains_what_has_arrived_so_far_without_blocking():
    halfway, resume = threading.Event(), threading.Event()

    def work(report):
        report(0.25, "align")
        halfway.set()
        resume.wait(TIMEOUT)
        report(0.75, "infer")

    job = BackgroundJob(work).start()
    assert halfway.wait(TIMEOUT)
    assert job.poll() == [Progress(0.25, "align")]
    assert not job.done
    with pytest.raises(RuntimeError, match="still running"):
        job.result()
    resume.set()
    assert job.wait(TIMEOUT)
    assert job.poll() == [Progress(0.75, "infer")]


def test_cancel_stops_the_work_at_its_next_report():
    started, resume = threading.Event(), threading.Event()
    reached = []

    def work(report):
        report(0.1, "align")
        started.set()
        resume.wait(TIMEOUT)
        report(0.5, "infer")
        reached.append("after infer")

    job = BackgroundJob(work).start()
    assert started.wait(TIMEOUT)
    job.cancel()
    resume.set()
    assert job.wait(TIMEOUT)
    with pytest.raises(Cancelled):
        job.result()
    assert reached == []
    assert job.poll() == [Progress(0.1, "align")]


def test_cancel_after_the_last_report_still_discards_the_result():
    finishing, resume = threading.Event(), threading.Event()

    def work(report):
        report(0.9, "postprocess")
        finishing.set()
        resume.wait(TIMEOUT)
        return "late result"

    job = BackgroundJob(work).start()
    assert finishing.wait(TIMEOUT)
    job.cancel()
    assert job.cancel_requested
    resume.set()
    assert job.wait(TIMEOUT)
    with pytest.raises(Cancelled):
        job.result()


def test_exceptions_are_handed_back_to_the_caller():
    error = ValueError("images do not overlap")

    def work(report):
        report(0.05, "align mri")
        raise error

    job = BackgroundJob(work).start()
    assert job.wait(TIMEOUT)
    with pytest.raises(ValueError) as caught:
        job.result()
    assert caught.value is error
    assert job.poll() == [Progress(0.05, "align mri")]
