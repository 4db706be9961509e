"""The recipe's listening options (stops 20-22): `text_lead` reaches base_listen and adapters,
`hide_moshi_audio`, `listen_key_weight` and `listen_user_dropout` reach base_listen only, `adapter_lend_images`
adapters only; at their defaults they are left out of
the stage settings (finished builds stay done); bad values are refused by name before any stage runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from moshivis.data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES
from moshivis.data.tokenizer import TextTokenizer
from moshivis.inference.bundle import EMBEDDED_BUNDLE
from moshivis.tinyworld import stages as S
from moshivis.tinyworld.recipe import STAGES, RecipeConfig, Stage, stage_settings
from moshivis.train.config import load_config

TOKENIZER = EMBEDDED_BUNDLE / "tokenizer.model"


def _record(work: Path, name: str, result: dict[str, Any]) -> None:
    (work / name).mkdir(parents=True, exist_ok=True)
    (work / name / "done.json").write_text(json.dumps({"result": result}))


def _captured_overrides(monkeypatch: pytest.MonkeyPatch, cfg: RecipeConfig) -> dict[str, list[str]]:
    """The trainer overrides base_listen and adapters would run with (the trainer itself replaced)."""
    work = Path(cfg.work)
    _record(work, "tokenizer", {"tokenizer": str(TOKENIZER)})
    for name in ("base", "base_listen"):
        _record(work, name, {"checkpoint": f"{name}.safetensors"})
    for name in ("base_data", "image_data", "adapter_data"):
        _record(work, name, {"shards": str(work / name / "shards")})
    got: dict[str, list[str]] = {}

    def fake_train(stage: Stage, overrides: list[str]) -> dict[str, Any]:
        got[stage.name] = overrides
        return {"checkpoint": "x"}

    monkeypatch.setattr(S, "_train", fake_train)
    monkeypatch.setattr(S, "base_probe", lambda stage, ckpt: {})
    monkeypatch.setattr("moshivis.data.shards.read_manifest", lambda folder: {"kinds": {}})
    S.stage_base_listen(Stage(cfg, "base_listen"))
    S.stage_adapters(Stage(cfg, "adapters"))
    return got


def test_listening_options_reach_their_stages(monkeypatch, tmp_path):
    cfg = RecipeConfig(work=str(tmp_path), text_lead=2, hide_moshi_audio=0.5, listen_key_weight=30.0,
                       listen_user_dropout=0.2, adapter_lend_images=1.0)
    got = _captured_overrides(monkeypatch, cfg)
    listen, adapters = got["base_listen"], got["adapters"]
    assert "data.text_lead=2" in listen and "data.hide_moshi_audio=0.5" in listen
    assert "data.user_frame_dropout=0.2" in listen and not any("lend_images" in o for o in listen)
    assert "data.text_lead=2" in adapters and "data.lend_images=1.0" in adapters
    assert not any(o.startswith(("data.hide_moshi_audio", "optim.key_", "data.user_frame")) for o in adapters)
    # the key pieces: the first piece of every colour/shape word and of the openings "A" / "Not"
    tok = TextTokenizer(TOKENIZER)
    ids = {tok.encode(f" {w}")[0] for w in (*EASY_COLORS, *EASY_SHAPES)} | {tok.encode("A")[0], tok.encode("Not")[0]}
    tc = load_config(None, listen)
    assert tc.optim.key_weight == 30.0 and tc.optim.key_tokens[0] == -1 and set(tc.optim.key_tokens[1:]) == ids
    assert tc.data.text_lead == 2 and tc.data.hide_moshi_audio == 0.5
    assert load_config(None, adapters).data.text_lead == 2 and load_config(None, adapters).data.lend_images == 1.0
    assert tc.data.user_frame_dropout == 0.2


def test_listening_options_off_add_nothing(monkeypatch, tmp_path):
    got = _captured_overrides(monkeypatch, RecipeConfig(work=str(tmp_path)))
    for overrides in got.values():
        assert not any(o.startswith(("data.text_lead", "data.hide_moshi_audio", "optim.key_", "data.user_frame",
                                     "data.lend_images")) for o in overrides)


def test_listening_options_in_stage_settings():
    a = RecipeConfig(work="w")
    for field, value, expected in (("text_lead", 2, {"base_listen", "adapters", "bundle"}),
                                   ("hide_moshi_audio", 0.5, {"base_listen", "adapters", "bundle"}),
                                   ("listen_key_weight", 30.0, {"base_listen", "adapters", "bundle"}),
                                   ("listen_user_dropout", 0.2, {"base_listen", "adapters", "bundle"}),
                                   ("adapter_lend_images", 1.0, {"adapters", "bundle"})):
        b = dataclasses.replace(a, **{field: value})
        assert {n for n in STAGES if stage_settings(a, n) != stage_settings(b, n)} == expected, field
        assert all(field not in stage_settings(a, n)["fields"] for n in STAGES), field


@pytest.mark.parametrize("kwargs, match", [({"text_lead": -1}, "text_lead"),
                                           ({"hide_moshi_audio": 1.5}, "hide_moshi_audio"),
                                           ({"listen_user_dropout": 1.0}, "listen_user_dropout"),
                                           ({"adapter_lend_images": -0.1}, "adapter_lend_images"),
                                           ({"listen_key_weight": 30.0, "verdict_weight": 8.0}, "one set of key")])
def test_bad_listening_options_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecipeConfig(work="w", **kwargs)


def test_build_command_takes_the_listening_flags(monkeypatch):
    """`moshivis tinyworld build --text-lead 2 --hide-moshi-audio 0.5 --listen-key-weight 30` builds with them."""
    import moshivis.tinyworld.recipe as recipe
    from moshivis import cli

    seen: list[RecipeConfig] = []
    monkeypatch.setattr(recipe, "build", lambda cfg, stages, force: seen.append(cfg) or {})
    assert cli.main(["tinyworld", "build", "--work", "w", "--text-lead", "2", "--hide-moshi-audio", "0.5",
                     "--listen-key-weight", "30", "--listen-user-dropout", "0.2", "--adapter-lend-images", "1"]) == 0
    assert (seen[0].text_lead, seen[0].hide_moshi_audio, seen[0].listen_key_weight) == (2, 0.5, 30.0)
    assert (seen[0].listen_user_dropout, seen[0].adapter_lend_images) == (0.2, 1.0)
