"""Errors a user can cause. Each carries a one-line message naming the file and the problem.

The CLI prints these as `error: <message>` and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class LiverFusionError(Exception):
    """Base class of every error caused by input, not by a bug."""


class InputError(LiverFusionError):
    """An input file is missing, unreadable, or not a 3-D image."""


class RoleError(LiverFusionError):
    """An image role is unknown or given twice."""


class OverlapError(LiverFusionError):
    """Two images do not overlap in physical space, so they cannot be aligned or fused."""


class OutputError(LiverFusionError):
    """An output cannot be written: an empty or unwritable path, a file where a folder goes, a full disk."""


class ModelError(LiverFusionError):
    """A model bundle is missing, incomplete, or fails its checksum."""


class Cancelled(LiverFusionError):
    """The user cancelled a long run."""


SHORT = 160  # characters of a third-party message kept in ours


def one_line(exc: Exception | str) -> str:
    """What a third-party exception (or ITK warning) says, in a few words for one of our lines: an OSError's
    reason, or the last line of ITK's multi-line text without its "ITK ERROR: Class(0x55d...):" prefix, cut at a
    word."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = re.sub(r"^(ITK ERROR: )?\w+ ?\(0x[0-9a-f]+\): ", "", lines[-1]) if lines else type(exc).__name__
    return text if len(text) <= SHORT else text[:SHORT].rsplit(" ", 1)[0] + " ..."
