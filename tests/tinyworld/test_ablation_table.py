"""The ablation table keeps the rows of earlier runs of other variants (a run of `--variants p_audio_100`
must not erase the five measured before), but only when they were measured at the same sizes."""

from __future__ import annotations

import json

import pytest

from moshivis.tinyworld.ablations import AblationConfig, ablation_dir, markdown, previous_rows

ROW = {"text": 62.5, "audio": 43.3, "unrelated": 51.7, "gate_image": 0.02, "gate_unrelated": 0.019,
       "switch_q3": 26.67, "switch_gate_q3": 0.019}


def test_earlier_rows_are_kept_at_the_same_sizes(tmp_path):
    cfg = AblationConfig(work=str(tmp_path), data_stage="image_data", steps=200, questions=120, unrelated=60,
                         switching=30)
    out = ablation_dir(cfg)
    out.mkdir(parents=True)
    assert previous_rows(out, cfg) == {}
    # a file from before the sizes were recorded: steps only (the folder name fixes them)
    (out / "ablations.json").write_text(json.dumps({"steps": 200, "rows": {"reference": ROW}}))
    assert previous_rows(out, cfg) == {"reference": ROW}
    (out / "ablations.json").write_text(json.dumps({"steps": 200, "questions": 40, "rows": {"reference": ROW}}))
    assert previous_rows(out, cfg) == {}  # measured on another sample: not comparable
    (out / "ablations.json").write_text("{truncated")
    with pytest.raises(ValueError, match="ablations.json"):
        previous_rows(out, cfg)


def test_markdown_lists_every_row():
    cfg = AblationConfig(steps=200, questions=120, unrelated=60, switching=30)
    md = markdown({"reference": ROW, "p_audio_100": {**ROW, "text": 58.3}}, cfg)
    assert "| reference | 62.5 |" in md and "| p_audio_100 | 58.3 |" in md
