"""Teacher-forced probe: how much do a model's answer words depend on the image?

For each image sample of a shard folder, Moshi's text tokens that carry an answer (colour, shape, yes/no
words: `KEY_WORDS`, or any list) are scored three times: with the sample's own image, with no image, and
with another sample's image. Accuracy is the share of those tokens the model's argmax gets right.

Why: stop 12 found that a frozen base trained on the spoken image dialogues (images dropped) had memorised
them: with NO image it still said 88% of their answer words, against 44% on fresh dialogues of the same
generator. Adapters trained on such dialogues get no signal to look at the image. A large gap between
"image" and "none" on training data, and the same gap on fresh data, is what adapters should produce.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES
from ..data.shards import Sample
from ..models.moshivis import MoshiVis
from ..train.images import ImageFeatureStore
from ..train.loss import PADDING_IDS

__all__ = ["KEY_WORDS", "RelianceResult", "image_reliance", "key_token_mask"]

KEY_WORDS: tuple[str, ...] = (*EASY_COLORS, *EASY_SHAPES, "yes", "no")  # easy-vqa's 13 answers
CONDITIONS = ("image", "none", "wrong")


@dataclass
class RelianceResult:
    """Right / total answer tokens per kind and condition ("image" | "none" | "wrong")."""

    right: dict[str, dict[str, int]] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)

    def accuracy(self, kind: str, condition: str) -> float:
        return self.right[kind][condition] / max(1, self.total[kind])

    def to_dict(self) -> dict[str, dict[str, float | int]]:
        return {k: {**{c: round(self.accuracy(k, c), 4) for c in CONDITIONS}, "tokens": self.total[k],
                    "samples": self.samples[k]} for k in self.total}


def key_token_mask(piece: Callable[[int], str], vocab_size: int, words: Sequence[str] = KEY_WORDS) -> torch.Tensor:
    """[vocab] bool: the text pieces that are one of `words` (case, leading space and , . ignored)."""
    wanted = {w.lower() for w in words}
    return torch.tensor([piece(i).strip().strip(",.!?").lower() in wanted for i in range(vocab_size)])


@torch.no_grad()
def _right(model: MoshiVis, codes: torch.Tensor, loss_mask: torch.Tensor, keys: torch.Tensor,
           features: torch.Tensor | None) -> tuple[int, int]:
    """codes / loss_mask [17, T]; features [N, hidden] (tower output) or None -> (right, total) key tokens."""
    image = None
    if features is not None:
        image = model.image_context(model.vision.project(features[None]))  # type: ignore[union-attr]
    out = model(codes[None], image=image, image_mask=torch.ones(1, dtype=torch.bool) if image is not None else None)
    text = codes[0]
    m = (out.text_mask[0, 0] & loss_mask[0] & (text != PADDING_IDS[0]) & (text != PADDING_IDS[1])
         & keys[text.clamp(min=0)])
    hit = out.text_logits[0, 0].argmax(-1) == text
    return int(hit[m].sum()), int(m.sum())


def image_reliance(model: MoshiVis, samples: Iterable[Sample], piece: Callable[[int], str], per_kind: int = 24,
                   kinds: Sequence[str] = ("image_speech", "speechless"), wrong_offset: int = 7) -> RelianceResult:
    """The first `per_kind` samples of each kind; "wrong" uses the image of the sample `wrong_offset` later
    (cyclically) in the same kind. piece: token id -> text piece (the model's tokenizer)."""
    if model.vision is None or model.adapters is None:
        raise ValueError("image_reliance needs a model with a vision encoder and adapters")
    store = ImageFeatureStore(model)
    keys = key_token_mask(piece, model.cfg.lm.text_card)
    picked: dict[str, list[Sample]] = {k: [] for k in kinds}
    for s in samples:
        if s.kind in picked and len(picked[s.kind]) < per_kind and s.image is not None:
            picked[s.kind].append(s)
        if all(len(v) >= per_kind for v in picked.values()):
            break
    res = RelianceResult()
    for kind, ss in picked.items():
        if not ss:
            continue
        res.right[kind], res.total[kind], res.samples[kind] = {c: 0 for c in CONDITIONS}, 0, len(ss)
        for i, s in enumerate(ss):
            codes = torch.as_tensor(np.asarray(s.codes)).long()
            mask = torch.as_tensor(np.asarray(s.loss_mask)).bool()
            feats = {"image": store.features(s.image), "none": None,
                     "wrong": store.features(ss[(i + wrong_offset) % len(ss)].image)}
            for c in CONDITIONS:
                right, total = _right(model, codes, mask, keys, feats[c])
                res.right[kind][c] += right
            res.total[kind] += total
    return res
