"""Fixed-shape streaming (static KV caches) equals the default, and CUDA graph replay equals both.

The static mode is what a CUDA graph captures, so it is checked on CPU here; the graph replay itself
needs a CUDA device (CI has none: `scripts/gpu_checks.sh` runs this file on a lent GPU).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from testkit import random_codes, random_pixels, rel_err, tiny_model
from moshivis.config import tiny
from moshivis.inference.generator import Generator, SamplingConfig

GREEDY = SamplingConfig(0, 0, 0, 0)  # with median_start, so its in-place survival update is covered too
SAMPLED = SamplingConfig(0.8, 20, 0.9, 50)


def short_context_model(device: str = "cpu"):
    """The tiny model with a 12-step attention window, so 40 steps wrap the ring cache three times."""
    cfg = tiny()
    cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, temporal=dataclasses.replace(cfg.lm.temporal,
                                                                                               context=12)))
    return tiny_model(cfg).to(device)


def run(gen: Generator, model, steps: int = 40, image_at: int = 10, force_at: int = 25) -> dict[str, torch.Tensor]:
    """Stream `steps` frames of random user audio; the image appears at `image_at`, a typed token is forced
    at `force_at`. Returns every step's tokens and text logits."""
    dev = model.lm.device
    user = random_codes(model.cfg, 2, steps, seed=5)[:, 9:].to(dev)
    emb = model.encode_image(random_pixels(2).to(dev))
    text, audio, logits = [], [], []
    with gen.streaming(2):
        for t in range(steps):
            if t == image_at:
                gen.set_image(emb)
            force = torch.tensor([7, -2], device=dev) if t == force_at else None
            gen.step(user[:, :, t:t + 1], force_text=force)
            text.append(gen.last.text_token.clone())
            audio.append(gen.last.audio_tokens.clone())
            logits.append(gen.last.text_logits.clone())
    return {"text": torch.stack(text, 1), "audio": torch.stack(audio, 1), "logits": torch.stack(logits, 1)}


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_static_cache_equals_default(sampling):
    model = short_context_model()
    ref = run(Generator(model, sampling, seed=1), model)
    static = run(Generator(model, sampling, seed=1, static_cache=True), model)
    assert rel_err(static["logits"], ref["logits"]) < 1e-5
    assert torch.equal(static["text"], ref["text"])
    assert torch.equal(static["audio"], ref["audio"])


def test_static_cache_reads_every_slot():
    """The point of the mode: attention shapes do not grow with the conversation."""
    model = short_context_model()
    gen = Generator(model, GREEDY, static_cache=True)
    with gen.streaming(1):
        cache = gen.state.lm.caches[0]
        widths = []
        for _ in range(3):
            gen.step(torch.zeros(1, 8, 1, dtype=torch.long))
            widths.append(cache.active()[0].shape[2])
    assert widths == [12, 12, 12]


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CUDA graphs need a CUDA device; CI has none (scripts/gpu_checks.sh runs this on a GPU)")
@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
def test_graph_replay_equals_eager(sampling):
    from moshivis.inference.cuda_graph import GraphGenerator

    torch.backends.cuda.matmul.allow_tf32 = False
    model = short_context_model("cuda")
    eager = run(Generator(model, sampling, seed=1, static_cache=True), model)
    gen = GraphGenerator(model, sampling, seed=1)
    graphed = run(gen, model)
    # Two graphs: before the image and after it; the forced step replays the image graph with its buffer.
    assert gen.captures == 2
    assert torch.equal(graphed["text"], eager["text"])
    assert torch.equal(graphed["audio"], eager["audio"])
    assert rel_err(graphed["logits"], eager["logits"]) < 1e-5


def server_like(gen: Generator, model, steps: int = 30) -> torch.Tensor:
    """What the server does to its one batched generator: an item reset mid-stream, an image shown to one
    item only, one item given its own sampling settings (then back). Returns text tokens [B, T]."""
    dev = model.lm.device
    user = random_codes(model.cfg, 3, steps, seed=9)[:, 9:].to(dev)
    emb = model.encode_image(random_pixels(1).to(dev))
    own = SamplingConfig(0.7, 10, 0.7, 10)
    out = []
    with gen.streaming(3):
        for t in range(steps):
            if t == 5:
                gen.set_image(emb, items=torch.tensor([False, True, False]))
            if t == 12:
                gen.reset(torch.tensor([True, False, False], device=dev))
            if t == 15:
                gen.set_sampling(2, own)
            if t == 22:
                gen.set_sampling(2, None)
            gen.step(user[:, :, t:t + 1])
            out.append(gen.last.text_token.clone())
    return torch.stack(out, 1)


def test_make_generator_is_eager_on_cpu():
    from moshivis.inference.cuda_graph import GraphGenerator, make_generator

    model = short_context_model()
    gen = make_generator(model, GREEDY)
    assert type(gen) is Generator
    with pytest.raises(ValueError, match="CUDA device"):
        GraphGenerator(model, GREEDY)


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CUDA graphs need a CUDA device; CI has none (scripts/gpu_checks.sh runs this on a GPU)")
def test_server_like_use_equals_eager():
    from moshivis.inference.cuda_graph import GraphGenerator, make_generator

    torch.backends.cuda.matmul.allow_tf32 = False
    model = short_context_model("cuda")
    gen = make_generator(model, GREEDY, seed=2)
    assert isinstance(gen, GraphGenerator)
    graphed = server_like(gen, model)
    eager = server_like(Generator(model, GREEDY, seed=2, static_cache=True), model)
    assert torch.equal(graphed, eager)
    assert gen.captures >= 2  # without and with the image; the mixed-sampling steps ran eagerly
