"""COCO caption metrics: the wrapper agrees with pycocoevalcap called directly; Java missing is clear."""

from __future__ import annotations

import shutil

import pytest

from moshivis.eval import caption_metric
from moshivis.eval.caption_metric import JavaNotFoundError, caption_scores

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's tokenizer needs Java")

REFS = {
    "1": ["A brown dog runs across the green grass.", "A dog running on a lawn.", "The dog is playing outside.",
          "A puppy sprints over grass.", "Brown dog running in a park."],
    "2": ["A man rides a red bicycle down the street.", "A cyclist on a city road.",
          "Someone riding a bike in traffic.", "A person on a red bike.", "A man cycling on the road."],
    "3": ["Two cats sleep on a couch.", "A pair of cats napping on a sofa.", "Cats lying on the couch.",
          "Two kittens asleep on furniture.", "Two cats curled up on a sofa."],
}
PREDS = {"1": "A brown dog running on the grass.", "2": "A man riding a bike on the street.",
         "3": "A cat on a table."}


@needs_java
def test_cider_equals_pycocoevalcap_direct() -> None:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFS.items()})
    res = tok.tokenize({k: [{"caption": v}] for k, v in PREDS.items()})
    direct, direct_per_image = Cider().compute_score(gts, res)

    out = caption_scores(PREDS, REFS)
    assert out["cider"] == pytest.approx(100 * direct, abs=1e-9)
    assert [out["per_item"][k] for k in REFS] == pytest.approx([100 * s for s in direct_per_image], abs=1e-9)
    assert 0.0 <= out["bleu4"] <= 100.0 and 0.0 <= out["rougeL"] <= 100.0
    assert out["bleu4"] > 0 and out["rougeL"] > 0
    assert out["n"] == 3 and out["missing"] == 0
    # The good captions of 1 and 2 score above the wrong one of 3.
    assert min(out["per_item"]["1"], out["per_item"]["2"]) > out["per_item"]["3"]


@needs_java
def test_missing_prediction_scores_zero_and_is_counted() -> None:
    out = caption_scores({"1": PREDS["1"], "2": PREDS["2"]}, REFS)
    assert out["missing"] == 1 and out["per_item"]["3"] == 0.0 and out["n"] == 3


def test_clear_error_without_java(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caption_metric.shutil, "which", lambda name: None)
    with pytest.raises(JavaNotFoundError, match="need Java"):
        caption_scores(PREDS, REFS)
