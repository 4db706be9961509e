"""scripts/centroid_only_base.py: code identity leaves the rows and enters through the centroids only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from testkit import load_script, random_codes, tiny_model

from moshivis.models.loaders import load_model, save_checkpoint

K = 16


def load():
    return load_script("scripts/centroid_only_base.py")


def test_rows_are_constant_and_the_fit_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    m = load()
    model = tiny_model()
    save_checkpoint(model, tmp_path / "base.safetensors")
    (tmp_path / "codec").mkdir()
    save_file({"semantic.centroids": torch.randn(K, 384, generator=torch.Generator().manual_seed(0)).half()},
              str(tmp_path / "codec" / "tiny_codec.safetensors"))
    assert m.main(["--checkpoint", str(tmp_path / "base.safetensors"), "--codec", str(tmp_path / "codec"),
                   "--out", str(tmp_path / "out.safetensors"), "--ridge", "1"]) == 0
    r2 = json.loads(capsys.readouterr().out)["fit_r2"]
    # One projection for both sides, fitted to their mean: it explains part of each side's rows.
    assert set(r2) == {"model", "user"} and all(0 < v <= 1 for v in r2.values())
    out = load_model(tmp_path / "out.safetensors")
    lm = out.lm
    for i in (0, lm.cfg.dep_q):
        rows = lm.audio_emb[i].weight[:K]
        assert torch.allclose(rows, rows[:1].expand_as(rows))  # one constant row: no identity left there
        assert torch.equal(lm.audio_emb[i].weight[K:], model.lm.audio_emb[i].weight[K:])  # other codes kept
    # Identity now enters through the centroids: two semantic codes give different inputs.
    tokens = lm.delay_codes(random_codes(out.cfg, 1, 6))[:, :, :-1]
    a, b = tokens.clone(), tokens.clone()
    a[:, 9, 3], b[:, 9, 3] = 2, 5
    with torch.no_grad():
        assert not torch.allclose(lm.embed(a)[:, 3], lm.embed(b)[:, 3])
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        m.centroid_only(tiny_model(), torch.randn(K, 384), ridge=-1)
