"""Fixtures shared by the tinyworld tests."""

from __future__ import annotations

import pytest

from moshivis.tinyworld.recipe import RecipeConfig, build


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """One smoke build of the recipe for the session: (config, build result, log lines). The recipe's own
    tests check it; the chain's test starts from it."""
    logs: list[str] = []
    cfg = RecipeConfig(work=str(tmp_path_factory.mktemp("tinyworld") / "work"), smoke=True)
    return cfg, build(cfg, log=logs.append), logs
