"""COCO caption metrics through `pycocoevalcap` (the COCO caption evaluation code): CIDEr-D (headline),
BLEU-4 and ROUGE-L.

Pipeline, as the COCO evaluation server runs it:
1. Every caption (predictions and all references) goes through pycocoevalcap's `PTBTokenizer`: Stanford
   CoreNLP's PTB tokenizer (run with `java`), lower-cased, with the punctuation tokens
   '' ' `` ` -LRB- -RRB- -LCB- -RCB- . ? ! , : - -- ... ; removed.
2. `Cider().compute_score` on {id: [references]} vs {id: [prediction]}: pycocoevalcap's `Cider` is
   CIDEr-D (n = 1..4, TF-IDF n-gram vectors with document frequencies taken from the references of the
   evaluated set, Gaussian length penalty sigma = 6, candidate counts clipped to the reference counts,
   x 10). Because the IDF comes from the evaluated set, scores on a subset (`limit`) are not comparable
   with full-test-set numbers.
3. `Bleu(4)` (corpus BLEU with the closest reference length) -> BLEU-4; `Rouge()` (ROUGE-L, LCS
   F-measure with beta = 1.2, best over references, averaged over images).
All three are reported x 100, the scale of the paper's tables (PaliGemma 224: 141.9 CIDEr).

An item without a prediction is scored with an empty caption (it gets 0 and stays in the average);
`missing` counts them.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["JavaNotFoundError", "require_java", "tokenize_captions", "caption_scores"]


class JavaNotFoundError(RuntimeError):
    """The PTB tokenizer needs a Java runtime and there is none on PATH."""


def require_java() -> str:
    """Path of the `java` executable, or `JavaNotFoundError` saying what to install."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "COCO caption metrics need Java: pycocoevalcap's PTBTokenizer runs Stanford CoreNLP with the "
            "`java` command, and none is on PATH. Install a Java runtime (e.g. `apt-get install "
            "openjdk-17-jre-headless`) or put its bin/ folder on PATH, then score again."
        )
    return java


def tokenize_captions(captions: Mapping[Any, Sequence[str]]) -> dict[Any, list[str]]:
    """PTB-tokenise {key: [caption, ...]} in one Java call. Checks that every caption came back (the
    wrapper in pycocoevalcap silently returns fewer lines when java fails)."""
    require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    # The tokenizer joins captions with newlines, one per line: a newline inside a caption would shift
    # every later caption onto the wrong key.
    prepared = {k: [{"caption": " ".join(c.split())} for c in v] for k, v in captions.items()}
    out = PTBTokenizer().tokenize(prepared)
    expected = sum(len(v) for v in captions.values())
    got = sum(len(v) for v in out.values())
    if got != expected or set(out) != {k for k, v in captions.items() if v}:
        raise RuntimeError(f"PTB tokenizer returned {got} of {expected} captions; is `java` working?")
    return out


def caption_scores(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """CIDEr-D, BLEU-4, ROUGE-L (x 100) of `predictions` against `references` (all of each image's
    reference captions), over every id of `references` (module docstring)."""
    if not references:
        raise ValueError("caption_scores: no reference captions")
    empty = [k for k, v in references.items() if not v]
    if empty:
        raise ValueError(f"caption_scores: {len(empty)} ids without reference captions, e.g. {empty[:3]}")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = list(references)
    missing = [i for i in ids if i not in predictions]
    # One tokenizer call for both sides: one JVM start instead of two. Keys are tagged by side.
    tokens = tokenize_captions({**{("ref", i): list(references[i]) for i in ids},
                                **{("pred", i): [predictions.get(i, "")] for i in ids}})
    gts = {i: tokens[("ref", i)] for i in ids}
    res = {i: tokens[("pred", i)] for i in ids}
    cider, cider_per_item = Cider().compute_score(gts, res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    return {
        "metric": "cider",
        "cider": 100.0 * float(cider),
        "bleu4": 100.0 * float(bleu[3]),
        "rougeL": 100.0 * float(rouge),
        "n": len(ids),
        "missing": len(missing),
        "per_item": {i: 100.0 * float(s) for i, s in zip(ids, cider_per_item)},
    }
