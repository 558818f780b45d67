"""Errors a user can cause. Each carries a one-line message naming the file and the problem.

The CLI prints these as `error: <message>` and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LiverFusionError(Exception):
    """Base class of every error caused by input, not by a bug."""


class InputError(LiverFusionError):
    """An input file is missing, unreadable, or not a 3-D image."""


class RoleError(LiverFusionError):
    """An image role is unknown or given twice."""


class OverlapError(LiverFusionError):
    """Two images do not overlap in physical space, so they cannot be aligned or fused."""


class ModelError(LiverFusionError):
    """A model bundle is missing, incomplete, or fails its checksum."""


class Cancelled(LiverFusionError):
    """The user cancelled a long run."""
