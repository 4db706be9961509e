"""The verdict probe: which pieces open a verdict (with the shipped tokenizer), where it looks, how it
counts (a stub model with known preferences), and a real tiny model end to end (no image / own image)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from moshivis.data.tokenizer import TextTokenizer
from moshivis.data.types import ImageRef, Sample
from moshivis.eval.verdict_probe import verdict_openings, verdict_probe

SHIPPED_TOKENIZER = Path(__file__).resolve().parents[2] / "tinyworld" / "bundle" / "tokenizer.model"


@pytest.fixture(scope="module")
def tok() -> TextTokenizer:
    return TextTokenizer(SHIPPED_TOKENIZER)


def test_openings_of_the_shipped_tokenizer(tok):
    cue, openings = verdict_openings(tok)
    assert tok.piece(cue) == " so"
    by_class = {c: sorted(tok.piece(i) for i, k in openings.items() if k == c) for c in ("present", "absent")}
    # "yes" is split as " " + "y" + "es" by this tokenizer: the lone space opens it.
    assert by_class == {"present": [" ", " a"], "absent": [" no", " t"]}


def test_openings_shared_across_classes_are_refused(tok):
    with pytest.raises(ValueError, match="same piece"):
        verdict_openings(tok, verdicts={"present": ("no doubt, there is",), "absent": ("no, there isn't",)})
    with pytest.raises(ValueError, match="one token"):
        verdict_openings(tok, cue="therefore")


def _sample(tok, i: int, answer: str, kind: str = "speechless") -> Sample:
    """A speechless-like sample: one text piece per frame (question, then the answer)."""
    ids = tok.encode("Is there a red shape?") + tok.encode(answer)
    codes = np.full((17, len(ids)), -1, dtype=np.int64)
    codes[0] = ids
    mask = np.zeros_like(codes, dtype=bool)
    mask[0] = True
    return Sample(f"s{i}", kind, codes, mask, ImageRef(f"img{i}", f"{i}.png"))  # type: ignore[arg-type]


class _Prefers:
    """A stub model whose text logits put all mass on one piece at every frame."""

    def __init__(self, token: int, vocab: int) -> None:
        self.token, self.vocab = token, vocab

    def __call__(self, codes: torch.Tensor, **kw) -> SimpleNamespace:
        logits = torch.full((1, 1, codes.shape[-1], self.vocab), -20.0)
        logits[..., self.token] = 20.0
        return SimpleNamespace(text_logits=logits)


def test_counts_against_a_model_that_always_says_absent(tok):
    samples = [_sample(tok, 0, "The shape is red, so yes, there is a red shape."),
               _sample(tok, 1, "The shape is blue, so no, there isn't a red shape."),
               _sample(tok, 2, "The shape is red, so yes, there is a red shape.", kind="image_speech"),  # skipped
               _sample(tok, 3, "There is only one shape, so there's no triangle."),  # no verdict after "so"
               _sample(tok, 4, "The shape is green, so that's right, there is no red shape."),
               _sample(tok, 5, "The shape is a circle, so actually there is a circle.")]
    no = tok.encode("so no")[1]
    res = verdict_probe(_Prefers(no, tok.vocab_size), samples, tok, limit=10).to_dict()
    assert res["samples"] == 4
    assert res["none"]["present"] == {"n": 2, "argmax": 0.0, "restricted": 0.0}
    assert res["none"]["absent"] == {"n": 2, "argmax": 1.0, "restricted": 1.0}
    assert res["none"]["all"] == {"n": 4, "argmax": 0.5, "restricted": 0.5}
    # a top piece that opens no verdict is wrong by argmax; "restricted" then has no mass to compare either
    other = tok.encode("shape")[0]
    res = verdict_probe(_Prefers(other, tok.vocab_size), samples, tok, limit=1).to_dict()
    assert res["samples"] == 1 and res["none"]["all"]["argmax"] == 0.0


def test_image_condition_needs_features(tok):
    with pytest.raises(ValueError, match="image_features"):
        verdict_probe(_Prefers(0, tok.vocab_size), [], tok, conditions=("none", "image"))


def test_real_tiny_model_with_and_without_the_image(tok):
    import dataclasses

    from moshivis.config import tiny
    from testkit import tiny_model

    cfg = tiny()
    model = tiny_model(dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, text_card=tok.vocab_size)))
    samples = [_sample(tok, 0, "The shape is red, so yes, there is a red shape."),
               _sample(tok, 1, "The shape is blue, so no, there isn't a red shape.")]
    pixels = torch.rand(1, 3, cfg.vision.image_size, cfg.vision.image_size) * 2 - 1

    def feats(s: Sample) -> torch.Tensor:
        return model.vision.encode_tower(pixels)[0]

    res = verdict_probe(model, samples, tok, conditions=("none", "image"), image_features=feats).to_dict()
    assert res["samples"] == 2
    for cond in ("none", "image"):
        assert res[cond]["all"]["n"] == 2 and 0.0 <= res[cond]["all"]["restricted"] <= 1.0
