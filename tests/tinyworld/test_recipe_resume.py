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


def test_stage_workers_exit_when_the_build_is_killed(tmp_path):
    """`die_with_parent` (the side-by-side synth workers' initializer): a worker whose build process is
    killed exits, instead of running on and holding its shard folder's lock."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing as mp, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from moshivis.tinyworld.recipe import die_with_parent\n"
        "def child():\n"
        "    return os.getpid()\n"
        "if __name__ == '__main__':\n"
        "    pool = ProcessPoolExecutor(1, mp_context=mp.get_context('spawn'), initializer=die_with_parent,\n"
        "                               initargs=(os.getpid(),))\n"
        "    print(pool.submit(child).result(), flush=True)\n"
        "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    os.kill(child, 0)  # alive while the parent is
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it is ours (it is not: its parent was the killed process)
            os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    raise AssertionError(f"worker {child} still running 20 s after its build process was killed")
