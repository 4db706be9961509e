"""`models/centroid_input.py`: codebook 0 also entering the LM as a linear map of its codes' centroids.

Attached to a loaded base it must change nothing until it trains (zero projection), read only codebook 0 of
each side, round-trip through our checkpoint format strictly, stream like the full forward, refuse the
`moshi` layout (which has no name for it), and be attached by the trainer from a codec folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from testkit import random_codes, rel_err, tiny_model

from moshivis.config import ModelConfig
from moshivis.models.centroid_input import CentroidInput, attach_centroid_input, standardize_centroids
from moshivis.models.loaders import CheckpointError, load_model, save_checkpoint, save_kyuteye, save_moshi

K, C = 24, 20


def _centroids(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(K, C, generator=g) * torch.linspace(0.1, 20.0, C)  # dims on very different scales


def _trained(model, seed: int = 1):
    """The model with a centroid input whose projection has learned something (random, non-zero)."""
    attach_centroid_input(model, _centroids())
    with torch.no_grad():
        model.lm.centroid_input.proj.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed))
    return model


def test_standardize_centroids() -> None:
    s = standardize_centroids(_centroids())
    torch.testing.assert_close(s.mean(0), torch.zeros(C), atol=1e-5, rtol=0)
    torch.testing.assert_close(s.std(0), torch.ones(C), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\[K >= 2, C\]"):
        standardize_centroids(torch.zeros(5))


def test_ids_outside_the_codebook_embed_to_zero() -> None:
    mod = CentroidInput(K, C, 16)
    mod.set_centroids(standardize_centroids(_centroids()))
    torch.nn.init.normal_(mod.proj.weight)
    out = mod(torch.tensor([-1, K, K + 5, 3]))
    assert torch.equal(out[:3], torch.zeros(3, 16))
    torch.testing.assert_close(out[3], mod.proj(mod.centroids[3]))
    with pytest.raises(ValueError, match=r"shape \(3, 20\).*\(24, 20\)"):
        mod.set_centroids(torch.zeros(3, C))


def test_attaching_changes_nothing_until_it_trains() -> None:
    model = tiny_model()
    codes = random_codes(model.cfg, 2, 16)
    tokens = model.lm.delay_codes(codes)[:, :, :-1]
    with torch.no_grad():
        before = model.lm.forward_temporal(tokens)[1]
        attach_centroid_input(model, _centroids())
        after = model.lm.forward_temporal(tokens)[1]
    assert torch.equal(before, after)
    assert (model.cfg.lm.centroid_codes, model.cfg.lm.centroid_dim) == (K, C)
    assert model.lm.cfg is model.cfg.lm
    with pytest.raises(ValueError, match="already has a centroid input"):
        attach_centroid_input(model, _centroids())


def test_only_codebook_zero_of_each_side_is_read() -> None:
    """Two codes with the same centroid enter the same through the centroid path: with their learned rows
    made equal too, swapping one for the other changes nothing; a code with another centroid does."""
    model = _trained(tiny_model())
    lm = model.lm
    with torch.no_grad():
        lm.centroid_input.centroids[5] = lm.centroid_input.centroids[7]
        for k in (0, lm.cfg.dep_q):
            lm.audio_emb[k].weight[5] = lm.audio_emb[k].weight[7]
    tokens = lm.delay_codes(random_codes(model.cfg, 1, 12))[:, :, :-1]
    for stream in (1, 1 + lm.cfg.dep_q):  # the model's codebook 0, the user's codebook 0
        a, b = tokens.clone(), tokens.clone()
        a[:, stream, 4], b[:, stream, 4] = 5, 7
        c = a.clone()
        c[:, stream, 4] = 9
        with torch.no_grad():
            la, lb, lc = (lm.forward_temporal(x)[1] for x in (a, b, c))
        torch.testing.assert_close(la, lb)
        assert not torch.allclose(la[:, 4:], lc[:, 4:])
    # Codebook 1's embedding is untouched: the centroid path does not add to it.
    a, b = tokens.clone(), tokens.clone()
    a[:, 2, 4], b[:, 2, 4] = 5, 7
    with torch.no_grad():
        no_centroid = tiny_model()
        ref_a, ref_b = no_centroid.lm.embed(a), no_centroid.lm.embed(b)
        diff_ref = (ref_a - ref_b)[:, 4]
        diff = (lm.embed(a) - lm.embed(b))[:, 4]
    torch.testing.assert_close(diff, diff_ref)


def test_streaming_equals_full_forward_with_centroids() -> None:
    model = _trained(tiny_model())
    tokens = model.lm.delay_codes(random_codes(model.cfg, 2, 20))[:, :, :-1]
    with torch.no_grad():
        full = model.lm.forward_temporal(tokens)[1]
        state = model.lm.new_state(2)
        steps = torch.cat([model.lm.forward_temporal(tokens[:, :, t:t + 1], state)[1] for t in range(20)], 1)
    assert rel_err(steps, full) < 1e-5


def test_checkpoint_round_trip_is_strict(tmp_path: Path) -> None:
    model = _trained(tiny_model())
    path = tmp_path / "m.safetensors"
    save_checkpoint(model, path)
    back = load_model(path)
    assert (back.cfg.lm.centroid_codes, back.cfg.lm.centroid_dim) == (K, C)
    for key in ("lm.centroid_input.centroids", "lm.centroid_input.proj.weight"):
        assert torch.equal(back.state_dict()[key], model.state_dict()[key])
    tokens = model.lm.delay_codes(random_codes(model.cfg, 1, 10))[:, :, :-1]
    with torch.no_grad():
        torch.testing.assert_close(back.lm.forward_temporal(tokens)[1], model.lm.forward_temporal(tokens)[1])
    # A file that lost the centroid keys but keeps the config is refused, naming them.
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    del tensors["lm.centroid_input.proj.weight"]
    save_file(tensors, str(tmp_path / "cut.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="lm.centroid_input.proj.weight"):
        load_model(tmp_path / "cut.safetensors")
    # Older configs (no such fields) read as "off".
    assert ModelConfig.from_json(tiny_model().cfg.to_json()).lm.centroid_codes == 0


def test_released_layouts_refuse_a_centroid_input(tmp_path: Path) -> None:
    """Neither the moshi package nor the released MoshiVis code has this input: exporting must not drop it."""
    model = _trained(tiny_model())
    with pytest.raises(CheckpointError, match="centroid input"):
        save_moshi(model, tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="lm.centroid_input"):
        save_kyuteye(model, tmp_path / "k.safetensors")


def test_config_fields_must_agree() -> None:
    import dataclasses

    from moshivis.config import tiny
    from moshivis.models.lm import MoshiLM
    lm = tiny().lm
    with pytest.raises(ValueError, match="centroid_codes=4, lm.centroid_dim=0"):
        MoshiLM(dataclasses.replace(lm, centroid_codes=4))
    with pytest.raises(ValueError, match="audio_card"):
        MoshiLM(dataclasses.replace(lm, centroid_codes=lm.audio_card + 1, centroid_dim=3))
