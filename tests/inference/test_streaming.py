"""Streaming equals the teacher-forced forward; causality; batching, resets and images per item."""

from __future__ import annotations


import pytest
import torch

from testkit import random_codes, random_pixels, rel_err, tiny_model
from moshivis.config import AdapterConfig, tiny
from moshivis.inference.generator import Generator, SamplingConfig
from moshivis.models.moshivis import GateTrace

GREEDY = SamplingConfig(0, 0, 0, 0, median_start=False)  # pure argmax, as the references decode


def stream_lm(model, tokens, fusions):
    """Feed step inputs [B, 17, T] one step at a time; return (transformer_out, text_logits) stacked."""
    state = model.lm.new_state(tokens.shape[0])
    outs, logits = [], []
    for t in range(tokens.shape[2]):
        o, lg = model.lm.forward_temporal(tokens[:, :, t:t + 1], state, fusions)
        outs.append(o)
        logits.append(lg)
    return torch.cat(outs, 1), torch.cat(logits, 1)


@pytest.mark.parametrize("with_image", [False, True])
def test_streaming_equals_full_forward(model, with_image):
    codes = random_codes(model.cfg, 2, 20)
    tokens = model.lm.delay_codes(codes)[:, :, :-1]
    ctx = model.image_context(model.encode_image(random_pixels(2))) if with_image else None
    with torch.no_grad():
        full_out, full_logits = model.lm.forward_temporal(tokens, fusions=model.fusions(ctx))
        step_out, step_logits = stream_lm(model, tokens, model.fusions(ctx))
    assert rel_err(step_out, full_out) < 1e-5
    assert rel_err(step_logits, full_logits) < 1e-5

    # Depformer: teacher-forced over the 8 codebooks vs one codebook at a time with a fresh cache.
    prev = model.lm.delay_codes(codes)[:, :, 1:][:, :8]
    with torch.no_grad():
        full_audio = model.lm.forward_depformer(full_out, prev)  # [B, 8, T, card]
        for t in [0, 7, 19]:
            cache = model.lm.new_depformer_cache(2)
            for c in range(8):
                lg = model.lm.depformer_step(c, full_out[:, t:t + 1], prev[:, c, t], cache)
                assert rel_err(lg, full_audio[:, c, t]) < 1e-5


def test_generator_matches_teacher_forced_forward(model):
    """What the generator fed and sampled, replayed through the full forward, gives the same logits."""
    gen = Generator(model, GREEDY)
    user = random_codes(model.cfg, 1, 16, seed=3)[:, 9:]
    emb = model.encode_image(random_pixels(1))
    inputs, text_logits, audio_logits, text_tok, audio_tok = [], [], [], [], []
    with gen.streaming(1):
        gen.set_image(emb)
        for t in range(16):
            gen.step(user[:, :, t:t + 1])
            inputs.append(gen.last.model_input)
            text_logits.append(gen.last.text_logits)
            audio_logits.append(gen.last.audio_logits)
            text_tok.append(gen.last.text_token)
            audio_tok.append(gen.last.audio_tokens)
    tokens = torch.stack(inputs, -1)  # [1, 17, T]
    ctx = model.image_context(emb)
    with torch.no_grad():
        out, lg = model.lm.forward_temporal(tokens, fusions=model.fusions(ctx))
        prev = torch.cat([torch.stack(text_tok, -1)[:, None], torch.stack(audio_tok, -1)[:, :7]], 1)
        audio = model.lm.forward_depformer(out, prev)
    assert rel_err(torch.stack(text_logits, 1), lg) < 1e-5
    assert rel_err(torch.stack(audio_logits, 2), audio) < 1e-5


def test_causality_values_and_gradients(model):
    codes = random_codes(model.cfg, 1, 12)
    tokens = model.lm.delay_codes(codes)[:, :, :-1]
    ctx = model.image_context(model.encode_image(random_pixels(1)))
    t0 = 5
    with torch.no_grad():
        _, a = model.lm.forward_temporal(tokens, fusions=model.fusions(ctx))
        changed = tokens.clone()
        changed[:, :, t0 + 1:] = random_codes(model.cfg, 1, 12, seed=9)[:, :, t0 + 1:]
        _, b = model.lm.forward_temporal(changed, fusions=model.fusions(ctx))
    assert torch.equal(a[:, :t0 + 1], b[:, :t0 + 1])
    assert not torch.allclose(a[:, t0 + 1:], b[:, t0 + 1:])

    x = model.lm.embed(tokens).detach().requires_grad_(True)
    y = model.lm.transformer(x, fusions=model.fusions(ctx))
    y[:, t0].sum().backward()
    assert x.grad[:, t0 + 1:].abs().max().item() == 0.0
    assert x.grad[:, :t0 + 1].abs().max().item() > 0.0

    # The full training forward (delays, depformer) is causal too: future frames leave past logits alone.
    with torch.no_grad():
        out_a = model(codes, image=ctx)
        codes_b = codes.clone()
        codes_b[:, :, t0 + 1:] = 0
        out_b = model(codes_b, image=ctx)
    assert torch.equal(out_a.text_logits[:, :, :t0 + 1], out_b.text_logits[:, :, :t0 + 1])


def test_no_image_is_exactly_moshi(model):
    codes = random_codes(model.cfg, 2, 10)
    ctx = model.image_context(model.encode_image(random_pixels(2)))
    with torch.no_grad():
        base = model.lm(codes)
        none = model(codes)
        masked = model(codes, image=ctx, image_mask=torch.zeros(2, dtype=torch.bool))
        seen = model(codes, image=ctx)
    for out in (none, masked):
        assert torch.equal(out.text_logits.nan_to_num(), base.text_logits.nan_to_num())
        assert torch.equal(out.audio_logits.nan_to_num(), base.audio_logits.nan_to_num())
    assert (seen.text_logits - base.text_logits).nan_to_num().abs().max() > 1e-2


def run(model, user, image=None, steps=None, xa_start=0, batch_items=None):
    gen = Generator(model, GREEDY, xa_start=xa_start)
    outs, gates = [], []
    with gen.streaming(user.shape[0]):
        if image is not None:
            gen.set_image(image)
        for t in range(steps or user.shape[2]):
            o = gen.step(user[:, :, t:t + 1])
            gates.append(gen.gate_weight())
            if o is not None:
                outs.append(o)
    return torch.cat(outs, -1), torch.stack(gates, -1)


def test_xa_start_delays_the_image(model):
    user = random_codes(model.cfg, 1, 14, seed=1)[:, 9:]
    emb = model.encode_image(random_pixels(1))
    blind, _ = run(model, user)
    late, gates = run(model, user, emb, xa_start=6)
    early, _ = run(model, user, emb)
    # Output j holds tokens sampled at steps j and j + 1, so outputs 0..4 come from steps 0..5, before the
    # image appears at step 6.
    assert torch.equal(late[..., :5], blind[..., :5])
    assert not torch.equal(late, blind)
    assert not torch.equal(early[..., :5], blind[..., :5])
    assert (gates[:, :6] == 0).all() and (gates[:, 6:] > 0).all()


def test_image_replaced_mid_conversation_per_item(model):
    """Two identical conversations in one batch; item 1's image is replaced at step 8: item 0 is
    unaffected (equal to a run alone), item 1 agrees with it up to the swap and diverges after."""
    user = random_codes(model.cfg, 1, 16, seed=2)[:, 9:].expand(2, -1, -1)
    img_a = model.encode_image(random_pixels(1, seed=1))
    img_b = model.encode_image(random_pixels(1, seed=2))
    gen = Generator(model, GREEDY)
    outs = []
    with gen.streaming(2):
        gen.set_image(torch.cat([img_a, img_a]))
        for t in range(16):
            if t == 8:
                kv_before = gen.state.image.kvs[0].keys.clone()
                gen.set_image(img_b, items=torch.tensor([False, True]))
                kv_after = gen.state.image.kvs[0].keys
                assert torch.equal(kv_before[0], kv_after[0]) and not torch.equal(kv_before[1], kv_after[1])
            o = gen.step(user[:, :, t:t + 1])
            if o is not None:
                outs.append(o)
    out = torch.cat(outs, -1)
    single, _ = run(model, user[:1], img_a)
    assert torch.equal(out[0], single[0])
    assert torch.equal(out[1, :, :7], single[0, :, :7])
    assert not torch.equal(out[1], single[0])


def test_shared_kv_computed_once(model):
    ctx = model.image_context(model.encode_image(random_pixels(1)))
    assert len({id(kv) for kv in ctx.kvs}) == 1  # one K/V object reused by every layer
    cfg = tiny()
    cfg.adapters = AdapterConfig(shared_xa=False)
    unshared = tiny_model(cfg)
    ctx2 = unshared.image_context(unshared.encode_image(random_pixels(1)))
    assert len({id(kv) for kv in ctx2.kvs}) == cfg.lm.temporal.num_layers


def test_batched_reset_item_restarts_alone(model):
    user = random_codes(model.cfg, 2, 20, seed=4)[:, 9:]
    emb = model.encode_image(random_pixels(2))
    gen = Generator(model, GREEDY)
    got = []
    with gen.streaming(2):
        gen.set_image(emb)
        for t in range(20):
            if t == 7:
                gen.reset(torch.tensor([False, True]))
                gen.set_image(emb[1:], items=torch.tensor([False, True]))
            o = gen.step(user[:, :, t:t + 1])
            got.append(None if o is None else o.clone())
    ref0, _ = run(model, user[:1], emb[:1])
    ref1, _ = run(model, user[1:, :, 7:], emb[1:])
    item0 = torch.cat([o[:1] for o in got if o is not None], -1)
    assert torch.equal(item0, ref0)
    # After its reset, item 1 is in its initial delay for one step (rows of -2), then restarts.
    assert (got[7][1] == -2).all()
    item1 = torch.cat([o[1:] for o in got[8:]], -1)
    assert torch.equal(item1, ref1)


def test_sampling_seeded_and_top1_is_greedy(model):
    user = random_codes(model.cfg, 1, 12, seed=5)[:, 9:]

    def sample(sampling, seed):
        gen = Generator(model, sampling, seed=seed)
        with gen.streaming(1):
            return torch.cat([o for t in range(12) if (o := gen.step(user[:, :, t:t + 1])) is not None], -1)

    hot = SamplingConfig(1.5, 0, 1.5, 0)
    assert torch.equal(sample(hot, 1), sample(hot, 1))
    assert not torch.equal(sample(hot, 1), sample(hot, 2))
    assert torch.equal(sample(SamplingConfig(0.9, 1, 0.9, 1), 3), sample(GREEDY, None))


def test_gate_trace_exposed_per_layer(model):
    codes = random_codes(model.cfg, 1, 6)
    ctx = model.image_context(model.encode_image(random_pixels(1)))
    trace = GateTrace()
    with torch.no_grad():
        model(codes, image=ctx, gates=trace)
    means = trace.means()
    assert means.shape == (1, 6, model.cfg.lm.temporal.num_layers)
    assert ((means > 0) & (means < 1)).all()


def test_bad_step_input_is_named(model):
    gen = Generator(model, GREEDY)
    with pytest.raises(RuntimeError, match="streaming"):
        gen.step(torch.zeros(1, 8, 1, dtype=torch.long))
    with gen.streaming(2):
        with pytest.raises(ValueError, match=r"user_codes must be \[2, 8, 1\]"):
            gen.step(torch.zeros(1, 8, 1, dtype=torch.long))


def test_per_item_sampling(model):
    """A server session's own settings: item 0 greedy while item 1 samples hot; item 0's tokens equal a
    greedy run's, item 1's differ; a reset item goes back to the generator's settings."""
    user = random_codes(model.cfg, 2, 14, seed=8)[:, 9:]
    greedy, _ = run(model, user)
    gen = Generator(model, SamplingConfig(1.5, 0, 1.5, 0), seed=0)
    outs = []
    with gen.streaming(2):
        gen.set_sampling(0, GREEDY)
        for t in range(14):
            if (o := gen.step(user[:, :, t:t + 1])) is not None:
                outs.append(o)
        mixed = torch.cat(outs, -1)
        gen.reset(torch.tensor([True, False]))
        assert gen.state.sampling == [None, None]
    assert torch.equal(mixed[0], greedy[0])
    assert not torch.equal(mixed[1], greedy[1])


def test_replacing_images_builds_no_autograd_graph(model):
    """A server replaces images many times in one long-lived state: the K/V must not carry a graph (each
    in-place copy would chain onto the last one, a memory leak that grows with every image)."""
    gen = Generator(model, GREEDY)
    with gen.streaming(2):
        for k in range(3):
            gen.set_image(model.encode_image(random_pixels(1, seed=k)), items=torch.tensor([k % 2 == 0, k % 2 == 1]))
        for kv in gen.state.image.kvs:
            assert kv.keys.grad_fn is None and not kv.keys.requires_grad


def test_median_start_emits_epad_where_the_survival_halves(model):
    """Greedy text with `median_start`: while argmax says PAD with P(EPAD) = 0.1 each step, EPAD comes on
    the 7th step (0.9^7 = 0.48 <= 1/2, 0.9^6 = 0.53 > 1/2), then the count restarts; a confident word is
    left alone; items without the rule are pure argmax; a reset item restarts its count."""
    cfg = model.cfg.lm
    pad, epad, word = cfg.text_padding_id, cfg.end_of_text_padding_id, 7
    probs = torch.full((cfg.text_card,), 0.05 / (cfg.text_card - 2))
    probs[pad], probs[epad] = 0.85, 0.10
    logits = probs.log()[None].repeat(2, 1)
    gen = Generator(model, SamplingConfig(0, 0, 0, 0, median_start=True))
    with gen.streaming(2):
        gen.set_sampling(1, SamplingConfig(0, 0, 0, 0, median_start=False))
        out = [gen._median_start(logits, logits.argmax(-1)).tolist() for _ in range(14)]
        assert [o[0] for o in out] == [pad] * 6 + [epad] + [pad] * 6 + [epad]
        assert all(o[1] == pad for o in out)
        for _ in range(3):
            gen._median_start(logits, logits.argmax(-1))
        gen._median_start(logits, torch.tensor([word, word]))  # a word: the run of padding ends
        assert [gen._median_start(logits, logits.argmax(-1))[0].item() for _ in range(7)][-1] == epad
        for _ in range(5):
            gen._median_start(logits, logits.argmax(-1))
        gen.reset(torch.tensor([True, False]))
        assert [gen._median_start(logits, logits.argmax(-1))[0].item() for _ in range(7)] == [pad] * 6 + [epad]
