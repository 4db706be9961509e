"""`RecipeConfig.centroid_input` / `tinyworld build --centroid-input` / `tinyworld chain --recipe-set`: a base
that reads codebook 0 through the codec's centroids from its first step (stop 31's untested lead)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from moshivis.audio.tiny.codec import read_semantic_centroids
from moshivis.models.centroid_input import standardize_centroids
from moshivis.models.loaders import load_model
from moshivis.tinyworld.chain import Chain, ChainConfig, ChainError, parse_recipe_set
from moshivis.tinyworld.recipe import RecipeConfig, build, stage_result, stage_settings


@pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                    reason="the recipe's smoke build needs flite and espeak-ng (Debian packages) for its voices")
def test_init_holds_the_recipe_codecs_centroids(tmp_path: Path, smoke) -> None:
    """On a copy of the session's smoke build, `centroid_input` redoes `init` only (its settings changed;
    builds recorded before the field existed stay done) and the new model carries the codec's centroids."""
    cfg, _, _ = smoke
    assert stage_settings(cfg, "init") == stage_settings(dataclasses.replace(cfg, centroid_input=False), "init")
    work = tmp_path / "work"
    shutil.copytree(cfg.work, work)
    on = dataclasses.replace(cfg, work=str(work), centroid_input=True)
    moved = dataclasses.replace(cfg, work=str(work))
    assert stage_settings(on, "init") != stage_settings(moved, "init")
    assert stage_settings(on, "codec") == stage_settings(moved, "codec")
    logs: list[str] = []
    build(on, stages=("init",), log=logs.append)
    model = load_model(stage_result(str(work), "init")["checkpoint"])
    codec = stage_result(str(work), "codec")["codec"]
    want = standardize_centroids(read_semantic_centroids(codec))
    assert model.cfg.lm.centroid_codes == want.shape[0]
    torch.testing.assert_close(model.lm.centroid_input.centroids, want)


def test_chain_recipe_set(tmp_path: Path) -> None:
    assert parse_recipe_set(["centroid_input=true", "listen_steps=300"]) == {"centroid_input": True,
                                                                            "listen_steps": 300}
    for bad in ("centroid_input", "=1", "x=[1,"):
        with pytest.raises(ValueError, match="expected FIELD=VALUE|not YAML"):
            parse_recipe_set([bad])
    base = Chain(ChainConfig(work=str(tmp_path / "a"), smoke=True))
    chain = Chain(ChainConfig(work=str(tmp_path / "a"), smoke=True, recipe_set={"centroid_input": True}))
    assert chain.recipe_cfg.centroid_input and not base.recipe_cfg.centroid_input
    # The variant is part of the recipe step's settings, so every step downstream of it is redone.
    assert chain.settings("recipe") != base.settings("recipe")
    assert chain.settings("bundle_c") != base.settings("bundle_c")
    with pytest.raises(ChainError, match="--recipe-set.*RecipeConfig"):
        Chain(ChainConfig(work=str(tmp_path / "b"), smoke=True, recipe_set={"centroid_inputs": True}))
    assert isinstance(RecipeConfig().centroid_input, bool)
