"""Parity with the `moshi` package: a base Moshi checkpoint loads into MoshiVis and behaves as Moshi.

The reference is the `moshi` package's own `LMModel` / `LMGen`, built at the size of `moshivis.config.tiny()`
with a fixed seed, so the checks need no downloaded weights. They cover:
- teacher-forced logits of `model.lm(codes)` vs `LMModel.forward(codes)`, for both spellings of the
  attention weights a Moshi file can carry (`in_projs.{c}.weight` and the older stacked `in_proj_weight`);
- greedy streaming with our `Generator` vs `LMGen(use_sampling=False)`: the same tokens, step by step;
- `save_moshi` writes a file that `LMModel.load_state_dict(strict=True)` takes back bit for bit;
- a fresh MoshiVis on a base Moshi file is Moshi without an image, and with an image its dynamic gates
  start at sigmoid(-4);
- a damaged Moshi file is refused with the offending key (and shapes) named in the file's own spelling.

Run with `-s` to see the measured differences and margins.
"""

from __future__ import annotations

import os

# Must be set before the first `moshi` import: torch.compile would otherwise wrap moshi's modules.
os.environ.setdefault("NO_TORCH_COMPILE", "1")

import dataclasses
import re
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors.torch import load_file, save_file

moshi_lm = pytest.importorskip("moshi.models.lm", reason="the `moshi` package (reference LMModel/LMGen) "
                                                          "is not installed")

from moshivis.config import ModelConfig, tiny  # noqa: E402
from moshivis.inference.generator import Generator, SamplingConfig  # noqa: E402
from moshivis.models.loaders import CheckpointError, load_model, save_moshi  # noqa: E402
from moshivis.models.moshivis import GateTrace, MoshiVis  # noqa: E402

# `moshi.models.loaders` kwargs of a Moshi the size of `tiny()` (hidden_scale 4.125 -> FFN hidden 176,
# depformer_dim_feedforward 132 -> 88, as `gated_ffn_hidden` computes).
MOSHI_TINY_KWARGS: dict[str, object] = dict(
    delays=[0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1], n_q=16, dep_q=8, card=32, text_card=100,
    dim=64, num_heads=4, num_layers=2, hidden_scale=4.125, causal=True, context=3000, max_period=10000,
    gating="silu", norm="rms_norm_f32", positional_embedding="rope", depformer_dim=32,
    depformer_dim_feedforward=132, depformer_num_heads=2, depformer_num_layers=2, depformer_multi_linear=True,
    depformer_context=8, depformer_gating="silu", depformer_pos_emb="none", depformer_weights_per_step=True,
)
SEED = 1234
# moshi's init gives logits of std ~1; doubling the output heads keeps the greedy top1-top2 margins well
# above the ~1e-6 float32 noise between two correct implementations, so token equality is meaningful.
HEAD_SCALE = 2.0
ATOL = 1e-5
MIN_MARGIN = 1e-4
BATCH = 2
T = 12
STEPS = 30


# ----------------------------------------------------------------------------------------------- helpers
def _report(label: str, value: object) -> None:
    """Measured numbers, visible with `pytest -s`."""
    print(f"[parity] {label}: {value}")


def _max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest |a - b| over the positions where both are finite (NaN positions are compared apart)."""
    both = a.isfinite() & b.isfinite()
    return float((a[both] - b[both]).abs().max()) if bool(both.any()) else 0.0


def _assert_logits_match(ours: torch.Tensor, theirs: torch.Tensor, name: str, atol: float = ATOL) -> float:
    assert ours.shape == theirs.shape, f"{name}: shapes {list(ours.shape)} vs {list(theirs.shape)}"
    assert torch.equal(ours.isnan(), theirs.isnan()), f"{name}: NaN (invalid) positions differ"
    diff = _max_abs_diff(ours, theirs)
    assert diff <= atol, f"{name}: max |diff| {diff:.3g} > {atol}"
    return diff


def _top2_margin(logits: torch.Tensor) -> float:
    """Smallest top1 - top2 gap over all rows of logits [..., V]: how far greedy is from a tie."""
    top = logits.float().topk(2, dim=-1).values
    return float((top[..., 0] - top[..., 1]).min())


def _stacked_spelling(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The older moshi spelling: per-step `self_attn.in_projs.{c}.weight` / `out_projs.{c}.weight`
    concatenated (in step order) into `self_attn.in_proj_weight` / `self_attn.out_proj.weight`.
    Written here independently of `moshivis.models.loaders` so the loader is not checked against itself."""
    pattern = re.compile(r"^(.*\.self_attn)\.(in|out)_projs\.(\d+)\.weight$")
    groups: dict[str, dict[int, torch.Tensor]] = {}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = pattern.match(key)
        if m is None:
            out[key] = value
            continue
        stacked = f"{m[1]}.in_proj_weight" if m[2] == "in" else f"{m[1]}.out_proj.weight"
        groups.setdefault(stacked, {})[int(m[3])] = value
    for stacked, chunks in groups.items():
        out[stacked] = torch.cat([chunks[c] for c in range(len(chunks))], dim=0)
    return out


def _image_tokens(model: MoshiVis) -> int:
    assert model.cfg.vision is not None
    return model.cfg.vision.num_tokens


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})
    return path


def _build_reference() -> "moshi_lm.LMModel":
    """moshi's LMModel at the tiny size, seeded, float32, eval mode, with non-trivial norms and heads."""
    with torch.random.fork_rng():  # leave the global RNG of other tests alone
        torch.manual_seed(SEED)
        lm = moshi_lm.LMModel(**MOSHI_TINY_KWARGS).to(torch.float32).eval()
        with torch.no_grad():
            for name, p in lm.named_parameters():
                if name.endswith(".alpha"):  # RMSNorm gains start at 1: identity gains would hide a wrong norm
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                elif name.startswith(("text_linear.", "linears.")):
                    p.mul_(HEAD_SCALE)
    return lm


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """These tensors are tiny: extra intra-op threads only spin, and on a loaded 2-core machine they made
    this module 10x slower (8 s instead of 0.7 s). Restored afterwards for the other modules."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cfg() -> ModelConfig:
    """`tiny()` with the depformer's norm switched to true RMS, the only form the `moshi` package has."""
    c = tiny()
    c.lm.depformer = dataclasses.replace(c.lm.depformer, norm="rms")
    return c


@pytest.fixture(scope="module")
def reference() -> "moshi_lm.LMModel":
    return _build_reference()


@pytest.fixture(scope="module")
def reference_state(reference: "moshi_lm.LMModel") -> dict[str, torch.Tensor]:
    """A private copy of the reference weights (native `in_projs.{c}` spelling)."""
    return {k: v.detach().clone() for k, v in reference.state_dict().items()}


@pytest.fixture(scope="module")
def moshi_files(tmp_path_factory: pytest.TempPathFactory,
                reference_state: dict[str, torch.Tensor]) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("moshi_ckpt")
    return {"native": _save(reference_state, folder / "native.safetensors"),
            "stacked": _save(_stacked_spelling(reference_state), folder / "stacked.safetensors")}


@pytest.fixture(scope="module")
def ours(moshi_files: dict[str, Path], cfg: ModelConfig) -> MoshiVis:
    with torch.random.fork_rng():  # the fresh adapters and vision tower: the same every run
        torch.manual_seed(SEED + 6)
        return load_model(moshi_files["native"], cfg)


@pytest.fixture(scope="module")
def codes() -> torch.Tensor:
    """Random aligned codes [2, 17, 12] with a few -1 (zero) tokens in text, model and user streams."""
    g = torch.Generator().manual_seed(SEED + 1)
    c = torch.randint(0, MOSHI_TINY_KWARGS["card"], (BATCH, 17, T), generator=g)  # type: ignore[arg-type]
    c[:, 0] = torch.randint(0, MOSHI_TINY_KWARGS["text_card"], (BATCH, T), generator=g)  # type: ignore[arg-type]
    c[0, 0, 4] = -1
    c[0, 3, 5] = -1
    c[1, 1, 0] = -1
    c[1, 8, 9] = -1
    c[1, 12, 7] = -1
    return c


@pytest.fixture(scope="module")
def reference_out(reference: "moshi_lm.LMModel", codes: torch.Tensor) -> "moshi_lm.LMOutput":
    with torch.no_grad():
        return reference(codes)


# ----------------------------------------------------------------------------------------------- tests
def test_reference_is_not_degenerate(reference: "moshi_lm.LMModel", reference_out: "moshi_lm.LMOutput") -> None:
    """Guards the other tests: perturbed norms, logits of a useful scale, and well separated argmaxes."""
    alphas = [p for n, p in reference.named_parameters() if n.endswith(".alpha")]
    assert alphas and all(not torch.all(a == 1) for a in alphas)
    text, audio = reference_out.text_logits, reference_out.logits
    for name, logits in (("text", text), ("audio", audio)):
        valid = logits[logits.isfinite().all(-1)]
        std, margin = float(valid.std()), _top2_margin(valid)
        _report(f"teacher-forced {name} logits std", f"{std:.3f}; min top1-top2 margin {margin:.3g}")
        assert std > 0.5 and margin > MIN_MARGIN


@pytest.mark.parametrize("spelling", ["native", "stacked"])
def test_teacher_forced_logits_match(spelling: str, moshi_files: dict[str, Path], cfg: ModelConfig,
                                     codes: torch.Tensor, reference_out: "moshi_lm.LMOutput") -> None:
    model = load_model(moshi_files[spelling], cfg)
    assert not model.training, "load_model must return an eval-mode model for every format"
    with torch.no_grad():
        out = model.lm(codes)
    d_text = _assert_logits_match(out.text_logits, reference_out.text_logits, "text logits")
    d_audio = _assert_logits_match(out.audio_logits, reference_out.logits, "audio logits")
    assert torch.equal(out.text_mask, reference_out.text_mask)
    assert torch.equal(out.audio_mask, reference_out.mask)
    assert not bool(out.text_mask[0, 0, 4]) and not bool(out.audio_mask[0, 2, 5])  # -1 targets are masked
    _report(f"teacher-forced max |diff| ({spelling})", f"text {d_text:.3g}, audio {d_audio:.3g}")


def test_greedy_streaming_matches_lmgen(reference: "moshi_lm.LMModel", ours: MoshiVis) -> None:
    g = torch.Generator().manual_seed(SEED + 2)
    user = torch.randint(0, MOSHI_TINY_KWARGS["card"], (STEPS, BATCH, 8, 1), generator=g)  # type: ignore[arg-type]

    their_text_logits: list[torch.Tensor] = []
    lm_gen = moshi_lm.LMGen(reference, use_sampling=False, check=True,
                            on_text_logits_hook=lambda x: their_text_logits.append(x[:, 0, 0].clone()))
    theirs: list[torch.Tensor | None] = []
    with lm_gen.streaming(BATCH):
        for t in range(STEPS):
            theirs.append(lm_gen.step(user[t]))

    gen = Generator(ours, SamplingConfig(0, 0, 0, 0, median_start=False))
    mine: list[torch.Tensor | None] = []
    margins: list[float] = []
    text_diff = 0.0
    with gen.streaming(BATCH):
        for t in range(STEPS):
            mine.append(gen.step(user[t]))
            assert gen.last is not None
            margins.append(min(_top2_margin(gen.last.text_logits), _top2_margin(gen.last.audio_logits)))
            text_diff = max(text_diff, _max_abs_diff(gen.last.text_logits, their_text_logits[t]))

    _report("streaming min top1-top2 margin (text and audio, all steps)", f"{min(margins):.3g}")
    _report("streaming text logits max |diff|", f"{text_diff:.3g}")
    # A margin near the float32 noise would make token equality a coin flip rather than a check.
    assert min(margins) > MIN_MARGIN
    assert text_diff <= ATOL
    assert theirs[0] is None and mine[0] is None
    for t, (a, b) in enumerate(zip(theirs, mine)):
        assert (a is None) == (b is None), f"step {t}: moshi returned {a}, ours {b}"
        if a is not None and b is not None:
            assert a.shape == b.shape == (BATCH, 9, 1)
            assert torch.equal(a, b), f"step {t}: moshi {a[..., 0].tolist()} vs ours {b[..., 0].tolist()}"


def test_save_moshi_round_trip(ours: MoshiVis, reference_state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    path = tmp_path / "saved_moshi.safetensors"
    save_moshi(ours, path)
    saved = load_file(str(path))
    assert set(saved) == set(reference_state)
    with torch.random.fork_rng():
        torch.manual_seed(SEED + 3)  # a differently initialised LMModel: every weight must come from the file
        fresh = moshi_lm.LMModel(**MOSHI_TINY_KWARGS).to(torch.float32).eval()
    fresh.load_state_dict(saved, strict=True)
    reloaded = fresh.state_dict()
    for k, v in reference_state.items():
        assert reloaded[k].dtype == v.dtype and torch.equal(reloaded[k], v), f"{k} differs after the round trip"


def test_no_image_is_moshi(ours: MoshiVis, codes: torch.Tensor, reference_out: "moshi_lm.LMOutput") -> None:
    """Without an image (or with an image masked out everywhere) MoshiVis is its base LM, bit for bit."""
    with torch.no_grad():
        base = ours.lm(codes)
        plain = ours(codes)
        ctx = ours.image_context(torch.randn(BATCH, _image_tokens(ours), ours.cfg.lm.temporal.dim,
                                             generator=torch.Generator().manual_seed(SEED + 4)))
        hidden = ours(codes, image=ctx, image_mask=torch.zeros(BATCH, dtype=torch.bool))
    for out in (plain, hidden):
        assert torch.equal(out.text_logits.nan_to_num(), base.text_logits.nan_to_num())
        assert torch.equal(out.audio_logits.nan_to_num(), base.audio_logits.nan_to_num())
        assert torch.equal(out.text_logits.isnan(), base.text_logits.isnan())
    _assert_logits_match(plain.text_logits, reference_out.text_logits, "text logits")
    _assert_logits_match(plain.audio_logits, reference_out.logits, "audio logits")


def test_no_image_is_bit_exact_to_moshi(ours: MoshiVis, codes: torch.Tensor,
                                        reference_out: "moshi_lm.LMOutput") -> None:
    with torch.no_grad():
        out = ours(codes)
    assert torch.equal(out.text_logits.nan_to_num(), reference_out.text_logits.nan_to_num())
    assert torch.equal(out.audio_logits.nan_to_num(), reference_out.logits.nan_to_num())


def test_fresh_dynamic_gates_start_at_sigmoid_minus_4(ours: MoshiVis, codes: torch.Tensor) -> None:
    vision = ours.cfg.vision
    assert vision is not None and ours.cfg.adapters is not None and ours.cfg.adapters.gate == "dynamic"
    pixels = torch.randn(BATCH, 3, vision.image_size, vision.image_size,
                         generator=torch.Generator().manual_seed(SEED + 5))
    trace = GateTrace()
    with torch.no_grad():
        ctx = ours.image_context(ours.encode_image(pixels))
        with_image = ours(codes, image=ctx, gates=trace)
        without = ours(codes)
    means = trace.means()
    assert means is not None and means.shape == (BATCH, T, ours.cfg.lm.temporal.num_layers)
    start = torch.sigmoid(torch.tensor(ours.cfg.adapters.gate_shift))  # W2 = 0 -> exactly sigmoid(shift)
    for layer, g in trace.values.items():
        assert torch.equal(g, start.expand_as(g)), f"layer {layer}: gate values differ from sigmoid(-4)"
    assert torch.allclose(means, start.expand_as(means), rtol=0, atol=1e-7)
    assert abs(float(start) - 0.017986) < 1e-6
    # The image does reach the logits (1.8% of the cross-attention output), only a little.
    diff = _max_abs_diff(with_image.text_logits, without.text_logits)
    _report("gate mean at start", f"{float(means.mean()):.6f}; text logits moved by {diff:.3g} with the image")
    assert 0 < diff < 1.0


# ----------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("key", [
    "transformer.layers.1.norm2.alpha",
    "transformer.layers.1.self_attn.in_projs.0.weight",  # renamed and stacked on load: still named as in the file
    "depformer.layers.0.self_attn.in_projs.3.weight",  # one per-step chunk of eight
    "depformer.layers.1.gating.5.linear_out.weight",
])
def test_missing_layer_key_is_named(key: str, reference_state: dict[str, torch.Tensor], cfg: ModelConfig,
                                    tmp_path: Path) -> None:
    state = dict(reference_state)
    del state[key]
    path = _save(state, tmp_path / "missing.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_model(path, cfg)
    message = str(err.value)
    assert key in message and "missing" in message, message


def test_missing_key_in_stacked_spelling_is_named(reference_state: dict[str, torch.Tensor], cfg: ModelConfig,
                                                  tmp_path: Path) -> None:
    state = _stacked_spelling(reference_state)
    key = "depformer.layers.1.self_attn.in_proj_weight"
    del state[key]
    with pytest.raises(CheckpointError, match=re.escape(key)):
        load_model(_save(state, tmp_path / "missing_stacked.safetensors"), cfg)


@pytest.mark.parametrize("key, shape", [
    ("transformer.layers.0.gating.linear_in.weight", (350, 64)),
    ("depformer.layers.1.self_attn.in_projs.3.weight", (95, 32)),
    ("emb.2.weight", (34, 64)),
])
def test_wrong_shape_is_named_with_both_shapes(key: str, shape: tuple[int, ...],
                                               reference_state: dict[str, torch.Tensor], cfg: ModelConfig,
                                               tmp_path: Path) -> None:
    state = dict(reference_state)
    expected = list(state[key].shape)
    state[key] = torch.zeros(shape)
    path = _save(state, tmp_path / "bad_shape.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_model(path, cfg)
    message = str(err.value)
    assert key in message and str(list(shape)) in message and str(expected) in message, message
