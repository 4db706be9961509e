"""Parity with the public PyTorch MoshiVis (`kyuteye`) through the golden fixture `kyuteye_tiny`.

The fixture README says how its outputs were produced: 24 greedy `MoshiVisGen.step` calls with the image's
(K, V) from step 0 (and a second run with no image); output j is returned by step j + 1.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from moshivis.inference.generator import Generator, SamplingConfig
from moshivis.models.loaders import load_model

ATOL = 1e-4  # the fixture README's suggested tolerance for a float32 re-implementation


@pytest.fixture(scope="module")
def golden(request):
    fixture_dir = request.getfixturevalue("fixture_dir")
    model = load_model(fixture_dir / "model.safetensors", "tiny")
    return model, load_file(fixture_dir / "inputs.safetensors"), load_file(fixture_dir / "outputs.safetensors")


def test_image_embeddings_and_kv(golden):
    model, inputs, outputs = golden
    with torch.no_grad():
        siglip = model.vision.encode_tower(inputs["pixels"])
        embeds = model.encode_image(inputs["pixels"])
        kv = model.image_context(embeds).kvs[0]
    torch.testing.assert_close(siglip, outputs["siglip_last_hidden_state"], atol=ATOL, rtol=0)
    torch.testing.assert_close(embeds, outputs["image_embeds"], atol=ATOL, rtol=0)
    B, H, N, D = kv.keys.shape
    torch.testing.assert_close(kv.keys.transpose(1, 2).reshape(B, N, H * D), outputs["ca_k"], atol=ATOL, rtol=0)
    torch.testing.assert_close(kv.values.transpose(1, 2).reshape(B, N, H * D), outputs["ca_v"], atol=ATOL, rtol=0)


def drive(model, inputs, with_image: bool) -> dict[str, torch.Tensor]:
    """Run the generator as the fixture README says and collect everything the fixture recorded."""
    layer_outs: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, a, out: layer_outs.append(out[0, 0].clone()))
             for layer in model.lm.transformer.layers]
    gen = Generator(model, SamplingConfig(0, 0, 0, 0, median_start=False), xa_start=0)
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in (
        "model_input_tokens", "transformer_out", "text_logits", "audio_logits", "step_text_token",
        "step_audio_tokens", "gate_values", "gate_means", "step_gate_weight", "gen_text", "gen_audio")}
    try:
        with gen.streaming(1):
            if with_image:
                gen.set_image(model.encode_image(inputs["pixels"]))
            user = inputs["user_codes"]
            for t in range(user.shape[2]):
                out = gen.step(user[:, :, t:t + 1])
                last = gen.last
                rec["model_input_tokens"].append(last.model_input[0])
                rec["transformer_out"].append(last.transformer_out[0])
                rec["text_logits"].append(last.text_logits[0])
                rec["audio_logits"].append(last.audio_logits[0])
                rec["step_text_token"].append(last.text_token[0])
                rec["step_audio_tokens"].append(last.audio_tokens[0])
                if with_image:
                    rec["gate_values"].append(torch.stack([last.gates.values[i][0, 0] for i in sorted(last.gates.values)]))
                    rec["gate_means"].append(gen.gate_means()[0])
                # The reference returns a gate weight of 0.0 with its None output at step 0.
                rec["step_gate_weight"].append(gen.gate_weight()[0] if out is not None else torch.tensor(0.0))
                if out is not None:
                    rec["gen_text"].append(out[0, 0, 0])
                    rec["gen_audio"].append(out[0, 1:, 0])
    finally:
        for h in hooks:
            h.remove()
    got = {k: torch.stack(v) for k, v in rec.items() if v}
    got["gen_text"] = got["gen_text"][None]
    got["gen_audio"] = got["gen_audio"].T[None]
    got["layer_outputs"] = torch.stack(layer_outs).view(-1, len(model.lm.transformer.layers), layer_outs[0].shape[-1])
    return got


@pytest.mark.parametrize("with_image", [True, False], ids=["image", "no_image"])
def test_greedy_generation_matches_fixture(golden, with_image):
    model, inputs, outputs = golden
    got = drive(model, inputs, with_image)
    suffix = "" if with_image else "_noimage"
    assert got["gen_text"].shape == (1, 23) and got["gen_audio"].shape == (1, 8, 23)
    for key in ("model_input_tokens", "step_text_token", "step_audio_tokens", "gen_text", "gen_audio"):
        assert torch.equal(got[key], outputs[key + suffix]), key  # tokens: EXACT
    floats = ["transformer_out", "layer_outputs", "text_logits", "audio_logits"]
    if with_image:
        floats += ["gate_values", "gate_means", "step_gate_weight"]
    for key in floats:
        torch.testing.assert_close(got[key], outputs[key + suffix].to(got[key].dtype), atol=ATOL, rtol=0,
                                   msg=lambda m, key=key: f"{key}: {m}")


def test_image_changes_the_outputs(golden):
    """Guards against a parity test that passes because the image is ignored."""
    model, inputs, _ = golden
    a, b = drive(model, inputs, True), drive(model, inputs, False)
    assert (a["text_logits"] - b["text_logits"]).abs().max() > 0.5
    assert not torch.equal(a["gen_text"], b["gen_text"])


def test_preprocessing_matches_fixture(golden):
    from moshivis.models.vision import preprocess_images

    _, inputs, _ = golden
    torch.testing.assert_close(preprocess_images(inputs["image_uint8"], 56), inputs["pixels"], atol=1e-6, rtol=0)
