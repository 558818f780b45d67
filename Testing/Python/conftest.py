"""Shared fixtures: small phantom cases made once per session, and the real data beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

from liverfusion.phantom import make_case

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def small_ctmri(tmp_path_factory) -> Path:
    """A small CT+MRI phantom (seed 777: never used for training)."""
    out = tmp_path_factory.mktemp("ctmri") / "case"
    make_case(out, 777, "ct-mri", small=True)
    return out


@pytest.fixture(scope="session")
def small_multiphase(tmp_path_factory) -> Path:
    """A small four-phase CT phantom (seed 778: never used for training)."""
    out = tmp_path_factory.mktemp("multiphase") / "case"
    make_case(out, 778, "multiphase", small=True)
    return out


@pytest.fixture(scope="session")
def real_data() -> Path:
    assert SHARED.is_dir(), f"{SHARED}: the shared real data must sit beside the repository"
    return SHARED
