"""How a recipe stage decides between skipping, resuming and rebuilding (no real stage runs here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from moshivis.tinyworld.recipe import RecipeConfig, Stage, run_stage


def _fn(calls: list[str], fail: bool = False):
    def fn(stage: Stage) -> dict:
        calls.append(sorted(p.name for p in stage.dir.iterdir()).__repr__())
        (stage.dir / "partial.bin").write_bytes(b"x")
        if fail:
            raise KeyboardInterrupt  # an interrupted stage: no done.json
        return {"ok": True}
    return fn


def test_interrupted_stage_resumes_with_same_settings_and_restarts_with_new(tmp_path: Path) -> None:
    cfg = RecipeConfig(work=str(tmp_path))
    calls: list[str] = []
    try:
        run_stage(cfg, "base", _fn(calls, fail=True), log=lambda _: None)
    except KeyboardInterrupt:
        pass
    # Same settings: the partial output is still there for the stage to resume from.
    run_stage(cfg, "base", _fn(calls), log=lambda _: None)
    assert "partial.bin" in calls[-1]
    # Interrupted again, then the settings change (longer base): the partial output is stale and removed.
    (tmp_path / "base" / "done.json").unlink()
    logs: list[str] = []
    run_stage(dataclasses.replace(cfg, base_steps=cfg.base_steps + 1), "base", _fn(calls), log=logs.append)
    assert "partial.bin" not in calls[-1]
    assert any("settings changed" in line for line in logs)
    # Done with these settings: skipped.
    n = len(calls)
    run_stage(dataclasses.replace(cfg, base_steps=cfg.base_steps + 1), "base", _fn(calls), log=lambda _: None)
    assert len(calls) == n
