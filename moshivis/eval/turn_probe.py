"""Teacher-forced probe of a speech model's content decisions: does it predict the first word of its turn?

In a spoken dialogue, Moshi's later words can be read off its own audio; the first word piece of a turn
(after a long run of padding) is where the model must have understood the user. On dialogues it was
trained on a small model scores high by memorising; on fresh dialogues from the same generator the score
says whether it generalises. Stop 9 measured 0.90 vs 0.48 this way and traced it to data volume.

The text stream of a sample: PAD (`text_padding_id`) between words, EPAD (`end_of_text_padding_id`)
just before each word's first piece. A "word start" is a text token right after EPAD; it is a "turn
start" when at least `min_gap` frames of padding come before that EPAD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from ..models.lm import MoshiLM, ZERO_TOKEN


@dataclass
class ProbeResult:
    turn_starts: int
    turn_starts_right: int
    word_starts: int
    word_starts_right: int
    samples: int

    @property
    def turn_accuracy(self) -> float:
        return self.turn_starts_right / max(1, self.turn_starts)

    @property
    def word_accuracy(self) -> float:
        return self.word_starts_right / max(1, self.word_starts)

    def to_dict(self) -> dict[str, float | int]:
        return {"turn_accuracy": round(self.turn_accuracy, 4), "word_accuracy": round(self.word_accuracy, 4),
                "turn_starts": self.turn_starts, "word_starts": self.word_starts, "samples": self.samples}


def start_positions(text: torch.Tensor, pad: int, epad: int, min_gap: int = 8) -> tuple[list[int], list[int]]:
    """text: [T] one sample's text stream -> (word-start frames, turn-start frames)."""
    words: list[int] = []
    turns: list[int] = []
    gap = 0  # PAD frames since the last word piece
    for t in range(1, int(text.shape[0])):
        tok = int(text[t])
        if tok == pad:
            gap += 1
            continue
        if tok == epad:
            continue
        if int(text[t - 1]) == epad:
            words.append(t)
            if gap >= min_gap:
                turns.append(t)
        gap = 0
    return words, turns


@torch.no_grad()
def probe(lm: MoshiLM, samples: Iterable[torch.Tensor], hide_user_acoustic: bool = False,
          min_gap: int = 8) -> ProbeResult:
    """samples: codes [17, T] each (a shard's `codes`). hide_user_acoustic: the user's codebooks 1..7 set to
    -1 (the test stop 9 used to show a model keyed on speaker-specific codes)."""
    cfg = lm.cfg
    res = ProbeResult(0, 0, 0, 0, 0)
    for codes in samples:
        codes = torch.as_tensor(codes, dtype=torch.long)
        if codes.dim() != 2 or codes.shape[0] != cfg.num_streams:
            raise ValueError(f"probe: a sample's codes have shape {tuple(codes.shape)}, expected "
                             f"[{cfg.num_streams}, T]")
        x = codes[None].clone().to(lm.device)
        if hide_user_acoustic:
            x[:, 1 + cfg.dep_q + 1:] = ZERO_TOKEN
        pred = lm(x).text_logits[0, 0].argmax(-1).cpu()  # [T] (NaN rows argmax to 0; never a start)
        words, turns = start_positions(codes[0], cfg.text_padding_id, cfg.end_of_text_padding_id, min_gap)
        res.samples += 1
        res.word_starts += len(words)
        res.word_starts_right += sum(int(pred[t]) == int(codes[0, t]) for t in words)
        res.turn_starts += len(turns)
        res.turn_starts_right += sum(int(pred[t]) == int(codes[0, t]) for t in turns)
    return res
