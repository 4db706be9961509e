"""The embedded model's recipe at toy sizes (what CI can afford): every stage runs for real (codec
training, SigLIP pre-training, tokenizer, spoken data synthesis with the new codec, base pre-training,
adapter training, bundle), the bundle answers through `ask`, and a rerun skips finished stages."""

from __future__ import annotations

import shutil

import easy_vqa
import pytest

from moshivis.inference.ask import AskConfig, ask
from moshivis.inference.bundle import load_bundle
from moshivis.models.vision import preprocess_images
from moshivis.tinyworld.recipe import STAGES, RecipeConfig, build

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                reason="the recipe's user voices need flite and espeak-ng (Debian packages)")


def test_smoke_build_end_to_end(tmp_path):
    logs: list[str] = []
    cfg = RecipeConfig(work=str(tmp_path / "work"), smoke=True)
    result = build(cfg, log=logs.append)
    assert list(result) == list(STAGES)
    bundle = load_bundle(result["bundle"]["result"]["bundle"])
    assert bundle.model.cfg.name == "tinyworld"
    image = easy_vqa.get_test_image_paths()[0]
    embeds = bundle.model.encode_image(preprocess_images(image, bundle.model.cfg.vision.image_size))
    out = ask(bundle.model, bundle.tokenizer, bundle.codec, embeds, question_text="what shape is in the image",
              cfg=AskConfig(max_answer_frames=10))
    assert out.frames > 0 and isinstance(out.answer, str)
    # `moshivis demo` on that bundle: a spoken question by piper, an answer streamed and written to WAV.
    from moshivis.cli import main

    wav = tmp_path / "answer.wav"
    assert main(["demo", "--bundle", result["bundle"]["result"]["bundle"], "--out", str(wav), "--json"]) == 0
    assert wav.stat().st_size > 44
    # A second build finds every stage done with the same settings.
    again: list[str] = []
    build(cfg, log=again.append)
    assert all("skipped" in line for line in again) and len(again) == len(STAGES)
