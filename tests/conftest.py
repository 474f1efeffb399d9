"""Shared fixtures and helpers for the gridfuse tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GRIDFUSE_SHARED", ROOT.parent / "shared"))
REALDATA = SHARED / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real-data folder; tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data not available ({REALDATA} absent)")
    return REALDATA
