"""The resume markers of one step of a long build (the recipe's stages, the chain's steps).

A step works in its own folder and is keyed by its settings (a JSON-able dict: its own fields and those of
everything it reads):

    started.json   the settings it was begun with (written before any work)
    done.json      {"settings", "seconds", "result"} once it finished

A step is done when done.json holds the current settings. Otherwise it is (re)started: a folder finished or
begun with other settings is stale and removed; one interrupted with the same settings is kept, so the step
resumes from what it wrote (the synth stages do).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

DONE, STARTED = "done.json", "started.json"


def as_json(settings: dict[str, Any]) -> Any:
    """Settings as they read back from JSON (tuples become lists): the form markers compare."""
    return json.loads(json.dumps(settings, default=str))


class StepMarkers:
    """done.json / started.json of the step working in `folder` with `settings`."""

    def __init__(self, folder: str | Path, settings: dict[str, Any]) -> None:
        self.dir = Path(folder)
        self.done_file, self.started_file = self.dir / DONE, self.dir / STARTED
        self.settings = as_json(settings)

    def is_done(self) -> bool:
        return self.done_file.is_file() and json.loads(self.done_file.read_text()).get("settings") == self.settings

    def record(self) -> dict[str, Any]:
        """done.json's content (FileNotFoundError when the step never finished)."""
        return json.loads(self.done_file.read_text())

    def start(self, force: bool = False) -> str | None:
        """Make the folder ready for the step's work. -> why it was cleared ("forced", "settings changed"), or
        None when kept (new, or interrupted with the same settings)."""
        begun_other = (self.started_file.is_file() and not self.done_file.is_file()
                       and json.loads(self.started_file.read_text()) != self.settings)
        why = "forced" if force else ("settings changed" if self.done_file.is_file() or begun_other else None)
        if why is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.started_file.write_text(json.dumps(self.settings))
        return why

    def finish(self, seconds: float, result: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.done_file.write_text(json.dumps({"settings": self.settings, "seconds": round(seconds, 1),
                                              "result": result}, indent=2, default=str))
