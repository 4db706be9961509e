"""The resume markers the recipe's stages and the chain's steps share (`tinyworld.markers`)."""

from __future__ import annotations

import json

import pytest

from moshivis.tinyworld.markers import StepMarkers


def test_done_skips_and_changed_or_forced_clears(tmp_path):
    folder = tmp_path / "step"
    m = StepMarkers(folder, {"n": 3, "shape": (1, 2)})
    assert not m.is_done()
    assert m.start() is None and json.loads(m.started_file.read_text()) == {"n": 3, "shape": [1, 2]}
    (folder / "part.bin").write_bytes(b"x")
    # interrupted with the same settings: what it wrote is kept, to resume from
    assert StepMarkers(folder, {"n": 3, "shape": (1, 2)}).start() is None and (folder / "part.bin").exists()
    m.finish(1.26, {"out": "part.bin"})
    again = StepMarkers(folder, {"n": 3, "shape": (1, 2)})  # tuples compare as the JSON lists they become
    assert again.is_done() and again.record() == {"settings": {"n": 3, "shape": [1, 2]}, "seconds": 1.3,
                                                 "result": {"out": "part.bin"}}
    assert again.start(force=True) == "forced" and not (folder / "part.bin").exists() and not again.is_done()
    again.finish(1.0, {})
    changed = StepMarkers(folder, {"n": 4, "shape": (1, 2)})
    assert not changed.is_done() and changed.start() == "settings changed" and not changed.done_file.exists()


def test_interrupted_with_other_settings_is_cleared(tmp_path):
    folder = tmp_path / "step"
    StepMarkers(folder, {"n": 1}).start()
    (folder / "part.bin").write_bytes(b"x")
    assert StepMarkers(folder, {"n": 2}).start() == "settings changed" and not (folder / "part.bin").exists()


def test_record_of_an_unfinished_step_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        StepMarkers(tmp_path / "never", {}).record()
