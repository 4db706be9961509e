"""semantic_remap: a model carried over to a refitted codebook 0 reads the new codes as it read the old ones.

The strongest check is behavioural: when the new codebook is the old one with its codes permuted, the
remapped model fed the permuted codes must give exactly the old model's text logits and the old codebook-0
logits in the permuted order, and leave every other weight untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from testkit import random_codes, tiny_model

from moshivis.config import tiny
from moshivis.tinyworld.semantic_remap import (
    code_weights,
    cooccurrence_weights,
    main,
    remap_semantic_rows,
    semantic_keys,
)

K = 16  # codes of the fake semantic codebook (the tiny config's audio_card is larger)


def _centroids(seed: int = 0, k: int = K, d: int = 384) -> torch.Tensor:
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed)) * 3


def test_permuted_codebook_gives_a_permutation_and_identical_outputs() -> None:
    cfg = tiny()
    model = tiny_model(cfg)
    old = _centroids()
    perm = torch.randperm(K, generator=torch.Generator().manual_seed(1))  # new code j == old code perm[j]
    new = old[perm]
    w = code_weights(old, new, temperature=0)
    assert torch.equal(w.argmax(1), perm) and torch.equal(w.sum(1), torch.ones(K, dtype=w.dtype))

    state = {"lm." + k: v for k, v in model.lm.state_dict().items()}
    remapped = remap_semantic_rows(state, w)
    changed = {k for k in state if not torch.equal(state[k], remapped[k])}
    assert changed == set(semantic_keys(state)) and len(changed) == 4
    for key in changed:
        assert torch.equal(remapped[key][:K], state[key][perm])  # row j is old row perm[j]
        assert torch.equal(remapped[key][K:], state[key][K:])  # other codes and the padding row kept

    # Codes that only use the semantic codes 0..K-1 on both codebook-0 streams.
    dep_q = cfg.lm.dep_q
    codes = random_codes(cfg, 2, 12, seed=3)
    for s in (1, 1 + dep_q):
        codes[:, s] = codes[:, s] % K
    inverse = torch.argsort(perm)  # old code i is new code inverse[i]
    new_codes = codes.clone()
    for s in (1, 1 + dep_q):
        new_codes[:, s] = inverse[codes[:, s]]

    other = tiny_model(cfg)
    other.lm.load_state_dict({k[3:]: v for k, v in remapped.items()}, strict=True)
    with torch.no_grad():
        a, b = model.lm(codes), other.lm(new_codes)
    valid = a.text_mask[:, 0]
    assert valid.any()
    torch.testing.assert_close(b.text_logits[:, 0][valid], a.text_logits[:, 0][valid], rtol=1e-5, atol=1e-5)
    m0 = a.audio_mask[:, 0]
    assert m0.any()
    torch.testing.assert_close(b.audio_logits[:, 0][m0][:, :K], a.audio_logits[:, 0][m0][:, perm],
                               rtol=1e-5, atol=1e-5)
    # Codebook 1 reads codebook 0 through depformer_emb.0: same logits too.
    m1 = a.audio_mask[:, 1]
    torch.testing.assert_close(b.audio_logits[:, 1][m1], a.audio_logits[:, 1][m1], rtol=1e-5, atol=1e-5)


def test_soft_weights_are_a_distribution_that_favours_the_nearest() -> None:
    old = _centroids()
    new = old[:8] + 0.01 * torch.randn(8, 384, generator=torch.Generator().manual_seed(2))
    w = code_weights(old, new)  # default temperature
    assert w.shape == (8, K)
    torch.testing.assert_close(w.sum(1), torch.ones(8, dtype=w.dtype))
    assert torch.equal(w.argmax(1), torch.arange(8))
    # Between two old centroids: a mix of both, nearly equal.
    mid = ((old[0] + old[1]) / 2)[None]
    wm = code_weights(old, mid, temperature=float(((old[0] - old[1]) / 2).pow(2).sum()))
    assert abs(float(wm[0, 0] - wm[0, 1])) < 1e-6 and float(wm[0, 2:].max()) < 0.5 * float(wm[0, 0])


def test_cooccurrence_follows_the_frames_and_falls_back_for_unused_codes() -> None:
    g = torch.Generator().manual_seed(4)
    old = _centroids(5, k=4)
    # New codebook: code 0 sits between old 0 and old 1, code 1 on old 2, code 2 far from every frame.
    new = torch.stack([(old[0] + old[1]) / 2, old[2], old[3] + 100.0])
    frames = torch.cat([old[0] + 0.3 * (old[1] - old[0]) + 0.01 * torch.randn(30, 384, generator=g),   # old 0
                        old[1] - 0.3 * (old[1] - old[0]) + 0.01 * torch.randn(10, 384, generator=g),   # old 1
                        old[2] + 0.01 * torch.randn(5, 384, generator=g)])
    fallback = code_weights(old, new, temperature=0)
    w = cooccurrence_weights(frames, old, new, fallback=fallback)
    torch.testing.assert_close(w[0], torch.tensor([0.75, 0.25, 0.0, 0.0], dtype=w.dtype))
    torch.testing.assert_close(w[1], torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=w.dtype))
    assert torch.equal(w[2], fallback[2])


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="same D"):
        code_weights(torch.zeros(4, 384), torch.zeros(4, 100))
    with pytest.raises(ValueError, match=r"states must be \[N, 384\]"):
        cooccurrence_weights(torch.zeros(5, 10), _centroids(), _centroids(1))
    with pytest.raises(KeyError, match="audio_linears"):
        semantic_keys({"foo.weight": torch.zeros(1)})
    state = {"lm.audio_linears.0.weight": torch.zeros(8, 4), "lm.audio_linears.1.weight": torch.zeros(8, 4),
             "lm.audio_emb.0.weight": torch.zeros(9, 4)}
    with pytest.raises(KeyError, match=r"lm.audio_emb.2.weight"):
        semantic_keys(state)
    full = {**state, "lm.audio_emb.2.weight": torch.zeros(9, 4), "lm.depformer_emb.0.weight": torch.zeros(9, 4)}
    with pytest.raises(ValueError, match="lm.audio_emb.0.weight has 9 rows"):
        remap_semantic_rows(full, torch.eye(12, dtype=torch.float64))


def test_cli_writes_a_checkpoint_with_provenance(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tiny()
    model = tiny_model(cfg)
    state = {"lm." + k: v.contiguous() for k, v in model.lm.state_dict().items()}
    state["adapters.dummy"] = torch.ones(3)
    ckpt = tmp_path / "model.safetensors"
    save_file(state, str(ckpt), metadata={"note": "kept"})
    old, new = _centroids(0), _centroids(0)[torch.arange(K).flip(0)]
    for name, c in (("old", old), ("new", new)):
        (tmp_path / name).mkdir()
        save_file({"semantic.centroids": c.half()}, str(tmp_path / name / "tiny_codec.safetensors"))
    torch.save(old[:5].clone(), tmp_path / "states.pt")
    out = tmp_path / "out" / "model.safetensors"
    assert main(["--checkpoint", str(ckpt), "--old-codec", str(tmp_path / "old"), "--new-codec",
                 str(tmp_path / "new"), "--out", str(out), "--states", str(tmp_path / "states.pt")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["codes"] == [K, K] and summary["states"].endswith("states.pt")
    got = load_file(str(out))
    assert set(got) == set(state) and torch.equal(got["adapters.dummy"], state["adapters.dummy"])
    # The fp16 centroids of the files, reversed: every row reversed, whether or not a frame took it.
    assert torch.equal(got["lm.audio_emb.0.weight"][:K], state["lm.audio_emb.0.weight"][:K].flip(0))
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["note"] == "kept" and json.loads(meta["semantic_remap"])["new_codec"].endswith("new")
    with pytest.raises(FileNotFoundError, match="not a tiny codec folder"):
        main(["--checkpoint", str(ckpt), "--old-codec", str(tmp_path), "--new-codec", str(tmp_path / "new"),
              "--out", str(out)])


def test_a_centroid_input_is_carried_over_with_the_new_centroids() -> None:
    """A model that also reads codebook 0 by its centroids: after the remap its centroid buffer holds the new
    codec's centroids, so with a permuted codebook it still gives the old model's text logits."""
    from moshivis.models.centroid_input import attach_centroid_input
    from moshivis.tinyworld.semantic_remap import CENTROID_KEY, remap_centroid_input

    cfg = tiny()
    old = _centroids()
    model = attach_centroid_input(tiny_model(cfg), old)
    with torch.no_grad():
        model.lm.centroid_input.proj.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(2))
    perm = torch.randperm(K, generator=torch.Generator().manual_seed(1))
    new = old[perm]
    state = {"lm." + k: v for k, v in model.lm.state_dict().items()}
    remapped = remap_centroid_input(remap_semantic_rows(state, code_weights(old, new, temperature=0)), new)
    assert not torch.equal(remapped[CENTROID_KEY], state[CENTROID_KEY])
    codes = random_codes(cfg, 2, 12, seed=3)
    for s in (1, 1 + cfg.lm.dep_q):
        codes[:, s] = codes[:, s] % K
    new_codes = codes.clone()
    for s in (1, 1 + cfg.lm.dep_q):
        new_codes[:, s] = torch.argsort(perm)[codes[:, s]]
    other = attach_centroid_input(tiny_model(cfg), new)
    other.lm.load_state_dict({k[3:]: v for k, v in remapped.items()}, strict=True)
    with torch.no_grad():
        a, b = model.lm(codes), other.lm(new_codes)
    valid = a.text_mask[:, 0]
    torch.testing.assert_close(b.text_logits[:, 0][valid], a.text_logits[:, 0][valid], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="cannot change size"):
        remap_centroid_input(state, _centroids(k=K - 1))
    assert remap_centroid_input({"x": torch.ones(1)}, new).keys() == {"x"}
