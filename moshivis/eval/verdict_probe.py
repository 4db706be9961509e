"""Teacher-forced probe: does a yes/no verdict follow the evidence the answer has just stated?

Evidence-first easy-vqa answers (`TemplateConfig.evidence_first`) say what the image shows, then " so ",
then the verdict: "The shape is blue, so no, there isn't a red shape." Fed the whole dialogue (question and
evidence included), the model only has to compare two words it can read to get the verdict right: no image
is needed. At every verdict position (the piece right after " so" that opens one of `VERDICTS`), the probe
asks which class, "present" or "absent", the model prefers:

    argmax      the model's top piece is a verdict opening of the right class (another piece: wrong)
    restricted  the probability mass of the right class's openings exceeds the other class's

Why: stops 14-15 found free-running verdicts agreeing with the answer's own evidence only 53% of the time.
This probe tells a language-model failure (the base never learned the comparison) from an exposure one
(it knows, teacher-forced, but drifts when free-running), before any adapter is trained on the base.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..data.shards import Sample
from ..models.moshivis import MoshiVis
from ..train.loss import key_pieces

__all__ = ["VERDICTS", "VerdictResult", "verdict_openings", "verdict_positions", "verdict_probe"]

# The verdict phrases of evidence-first answers (data/templates), by what the image has. "actually there
# is" corrects a not-question ("is there no circle?" on a circle); "that's right, there is no" agrees with one.
VERDICTS: dict[str, tuple[str, ...]] = {"present": ("yes, there is", "actually there is"),
                                        "absent": ("no, there isn't", "that's right, there is no")}
CUE = "so"


class _Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...

    def piece(self, token: int) -> str: ...


def verdict_openings(tokenizer: _Tokenizer, cue: str = CUE,
                     verdicts: dict[str, tuple[str, ...]] = VERDICTS) -> tuple[int, dict[int, str]]:
    """(the cue's token id, {first token of a verdict after the cue: its class}).

    Tokenised in context ("so yes, there is"), since a piece after a space differs from one at the start.
    Two classes sharing an opening token cannot be told apart from it: ValueError naming both phrases."""
    cue_ids = tokenizer.encode(cue)
    if len(cue_ids) != 1:
        raise ValueError(f"the verdict cue {cue!r} must be one token, got {[tokenizer.piece(i) for i in cue_ids]}")
    openings: dict[int, str] = {}
    seen: dict[int, str] = {}
    for cls, phrases in verdicts.items():
        for phrase in phrases:
            ids = tokenizer.encode(f"{cue} {phrase}")
            if len(ids) < 2 or ids[0] != cue_ids[0]:
                raise ValueError(f"{cue!r} + {phrase!r} does not tokenise as the cue then the verdict: "
                                 f"{[tokenizer.piece(i) for i in ids]}")
            first = ids[1]
            if openings.get(first, cls) != cls:
                raise ValueError(f"verdicts {seen[first]!r} and {phrase!r} of different classes open with the "
                                 f"same piece {tokenizer.piece(first)!r}")
            openings[first], seen[first] = cls, phrase
    return cue_ids[0], openings


@dataclass
class VerdictResult:
    """Counts per condition ("image" | "none") and gold class ("present" | "absent")."""

    n: dict[str, dict[str, int]] = field(default_factory=dict)
    argmax: dict[str, dict[str, int]] = field(default_factory=dict)
    restricted: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: int = 0

    def add(self, cond: str, gold: str, argmax_right: bool, restricted_right: bool) -> None:
        for table, inc in ((self.n, 1), (self.argmax, int(argmax_right)), (self.restricted, int(restricted_right))):
            row = table.setdefault(cond, {})
            row[gold] = row.get(gold, 0) + inc

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"samples": self.samples}
        for cond, per in self.n.items():
            block: dict[str, object] = {}
            for gold, n in sorted(per.items()):
                block[gold] = {"n": n, "argmax": round(self.argmax[cond][gold] / n, 4),
                               "restricted": round(self.restricted[cond][gold] / n, 4)}
            total = sum(per.values())
            block["all"] = {"n": total, "argmax": round(sum(self.argmax[cond].values()) / total, 4),
                            "restricted": round(sum(self.restricted[cond].values()) / total, 4)}
            out[cond] = block
        return out


def verdict_positions(text: torch.Tensor, cue: int, openings: dict[int, str]) -> list[int]:
    """text [T] -> frames t where text[t] opens a verdict and the word piece before it (padding skipped) is
    the cue: the same rule as the training loss's key pieces (`train.loss.key_pieces`), so the probe scores
    exactly the targets `optim.key_weight` weighs."""
    return key_pieces(text[None], cue, tuple(openings))[0].nonzero().flatten().tolist()


@torch.no_grad()
def verdict_probe(model: MoshiVis | Callable[..., object], samples: Iterable[Sample], tokenizer: _Tokenizer,
                  limit: int = 150, conditions: Sequence[str] = ("none",),
                  image_features: Callable[[Sample], torch.Tensor] | None = None) -> VerdictResult:
    """The first `limit` speechless samples holding a verdict, scored teacher-forced.

    conditions: "none" (no image: the base alone) and/or "image" (the sample's own image; needs
    `image_features`: sample -> [N, hidden] tower features, and a model with adapters)."""
    if "image" in conditions and image_features is None:
        raise ValueError("condition 'image' needs image_features (e.g. train.images.ImageFeatureStore.features)")
    cue, openings = verdict_openings(tokenizer)
    ids = {cls: torch.tensor([i for i, c in openings.items() if c == cls]) for cls in VERDICTS}
    res = VerdictResult()
    for s in samples:
        if res.samples >= limit:
            break
        if s.kind != "speechless":
            continue
        codes = torch.as_tensor(np.asarray(s.codes)).long()
        pos = verdict_positions(codes[0], cue, openings)
        if not pos:
            continue
        res.samples += 1
        for cond in conditions:
            kwargs: dict[str, object] = {}
            if cond == "image":
                feats = image_features(s)  # type: ignore[misc]
                kwargs = {"image": model.image_context(model.vision.project(feats[None])),  # type: ignore[union-attr]
                          "image_mask": torch.ones(1, dtype=torch.bool)}
            logits = model(codes[None], **kwargs).text_logits[0, 0]  # type: ignore[union-attr]  [T, text_card]
            for t in pos:
                gold = openings[int(codes[0, t])]
                other = "absent" if gold == "present" else "present"
                probs = logits[t].softmax(-1)
                top = int(logits[t].argmax())
                res.add(cond, gold, openings.get(top) == gold,
                        float(probs[ids[gold]].sum()) > float(probs[ids[other]].sum()))
    return res
