"""Shared pytest fixtures; the helpers they use live in `testkit.py`."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import FIXTURE_DIR, tiny_model
from moshivis.models.moshivis import MoshiVis


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not (FIXTURE_DIR / "model.safetensors").exists():
        pytest.skip(f"golden fixture not found at {FIXTURE_DIR} (it lives in the workplace's shared/ folder)")
    return FIXTURE_DIR


@pytest.fixture
def model() -> MoshiVis:
    return tiny_model()


