"""How well the spoken answer says what the text stream wrote: WER and agreement.

A MoshiVis answer exists twice: as the text stream (inner monologue) and as speech. An ASR transcript of
the speech (`asr` in the predictions file) is compared with the text answer:
- WER: word-level Levenshtein distance (substitutions + deletions + insertions, each cost 1) between the
  two after `normalize_spoken` on both, divided by the number of words of the reference. The text answer
  is the reference (what the model meant to say), the transcript the hypothesis. The corpus WER is total
  edits / total reference words (not a mean of per-answer rates, which would overweight short answers).
- Agreement: the share of answers whose normalised transcript equals the normalised text answer exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from moshivis.eval.text_norm import normalize_spoken, spoken_tokens

__all__ = ["WordErrors", "edit_distance", "word_errors", "wer", "agreement", "asr_scores"]


@dataclass
class WordErrors:
    """Edit counts of one alignment (or a sum of them)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """errors / reference words; with an empty reference 0.0 if nothing was inserted, else inf."""
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return self.errors / self.reference_words

    def __add__(self, other: WordErrors) -> WordErrors:
        return WordErrors(self.substitutions + other.substitutions, self.deletions + other.deletions,
                          self.insertions + other.insertions, self.reference_words + other.reference_words)


def _align(ref: list[str], hyp: list[str]) -> WordErrors:
    """Minimum-edit alignment by dynamic programming; the backtrace splits the total into S/D/I,
    preferring a substitution, then a deletion, then an insertion where several paths tie."""
    n, m = len(ref), len(hyp)
    # cost[i][j]: edits turning ref[:i] into hyp[:j].
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        cost[i][0] = i
    for j in range(1, m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            diag = cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            cost[i][j] = min(diag, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    out = WordErrors(reference_words=n)
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            out.substitutions += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            out.deletions += 1
            i -= 1
        else:
            out.insertions += 1
            j -= 1
    return out


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Word-level Levenshtein distance between two token lists (substitution, deletion, insertion: 1 each)."""
    return _align(list(a), list(b)).errors


def word_errors(reference: str, hypothesis: str, normalize: bool = True) -> WordErrors:
    """S/D/I counts between two texts, after `normalize_spoken` (or plain whitespace split if not)."""
    if normalize:
        return _align(spoken_tokens(reference), spoken_tokens(hypothesis))
    return _align(reference.split(), hypothesis.split())


def wer(reference: str, hypothesis: str, normalize: bool = True) -> float:
    """Word error rate of one pair (see `WordErrors.wer` for an empty reference)."""
    return word_errors(reference, hypothesis, normalize).wer


def agreement(text_answer: str, transcript: str) -> bool:
    """Normalised exact match between the text answer and the transcript of the spoken one."""
    return normalize_spoken(text_answer) == normalize_spoken(transcript)


def asr_scores(pairs: Iterable[tuple[str, str, str]]) -> dict[str, Any]:
    """Corpus WER (%) and agreement (%) over (id, text answer, ASR transcript) triples."""
    total = WordErrors()
    agree = n = 0
    per_item: dict[str, dict[str, Any]] = {}
    for item_id, text_answer, transcript in pairs:
        errs = word_errors(text_answer, transcript)
        same = agreement(text_answer, transcript)
        total = total + errs
        agree += same
        n += 1
        per_item[item_id] = {"errors": errs.errors, "reference_words": errs.reference_words, "agree": same}
    return {
        "wer": 100.0 * total.wer if n else 0.0,
        "agreement": 100.0 * agree / n if n else 0.0,
        "substitutions": total.substitutions,
        "deletions": total.deletions,
        "insertions": total.insertions,
        "reference_words": total.reference_words,
        "n": n,
        "per_item": per_item,
    }
