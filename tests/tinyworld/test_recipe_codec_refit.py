"""The recipe's codec stage with `codec_refit_utterances`: codebook 0 refitted into work/codec_refit, the
trained codec left as it was, and later stages pointed at the refitted one."""

from __future__ import annotations

import json

import pytest
import torch

from moshivis.audio.voice_pool import voice_available
from moshivis.tinyworld.recipe import DEPENDS, RecipeConfig, Stage, stage_settings
from moshivis.tinyworld.stages import stage_codec


@pytest.mark.skipif(not voice_available("flite:kal16"), reason="flite is not installed: the smoke codec trains on it")
def test_codec_stage_refits_codebook_0_into_the_work_folder(tmp_path):
    from moshivis.audio.tiny.codec import TinyCodec

    before = torch.get_num_threads()
    try:
        cfg = RecipeConfig(work=str(tmp_path), smoke=True, codec_refit_utterances=6).scaled()
        result = stage_codec(Stage(cfg, "codec"))
    finally:
        torch.set_num_threads(before)
    assert result["codec"] == str(tmp_path / "codec_refit") and result["refit_of"].endswith("artefacts/codec")
    trained, refit = TinyCodec.load(result["refit_of"]), TinyCodec.load(result["codec"])
    assert torch.equal(trained.acoustic.books, refit.acoustic.books)  # codebooks 1-7 kept
    assert not torch.equal(trained.semantic, refit.semantic)
    note = json.loads((tmp_path / "codec_refit" / "config.json").read_text())["training"]["semantic_refit"]
    assert note["utterances"] == 6 and note["k"] == trained.config.semantic_k


def test_refit_is_a_codec_setting_and_old_builds_stay_done():
    assert "codec_refit_utterances" in DEPENDS["codec"][0]
    plain = stage_settings(RecipeConfig(work="w"), "codec")["fields"]
    assert "codec_refit_utterances" not in plain  # its old value: recorded builds keep their codec stage
    refit = stage_settings(RecipeConfig(work="w", codec_refit_utterances=2400), "codec")["fields"]
    assert refit["codec_refit_utterances"] == 2400
    # every stage downstream of the codec (the base's data, hence the base) changes with it
    assert stage_settings(RecipeConfig(work="w", codec_refit_utterances=2400), "base") != \
        stage_settings(RecipeConfig(work="w"), "base")


def test_a_negative_refit_size_is_refused_before_any_stage():
    with pytest.raises(ValueError, match="codec_refit_utterances"):
        RecipeConfig(work="w", codec_refit_utterances=-1)
