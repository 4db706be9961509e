"""Moshi's training loss: masked cross-entropy on the text stream and the model's 8 audio codebooks.

Moshi's recipe: text padding tokens (3, and end-of-padding 0) weigh less than words, and the semantic
codebook (0) weighs more than the acoustic ones. Losses are also returned per stream and per sample, so the
trainer can report them per sample kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.lm import LMOutput

PADDING_IDS = (0, 3)


@dataclass
class LossWeights:
    text: float = 1.0
    audio: float = 1.0
    text_padding: float = 0.5  # weight of a padding target relative to a word piece
    semantic: float = 100.0  # weight of codebook 0 relative to each acoustic codebook
    # Key pieces: a text target in `key_ids` whose previous word piece (padding skipped) is `key_after`
    # weighs `key` (e.g. a yes/no verdict right after " so": one piece per answer, whose signal the rest of
    # the answer drowns; README, stop 15). Off while key_ids is empty.
    key: float = 1.0
    key_after: int = -1
    key_ids: tuple[int, ...] = ()


@dataclass
class LossResult:
    """Weighted sums and their weights, so that callers can normalise over a whole optimizer step (all
    micro-batches, all ranks) and get exactly the loss of one big batch."""

    text_sum: torch.Tensor  # scalar: sum of weighted text CE
    text_weight: torch.Tensor  # scalar: sum of text weights
    audio_sum: torch.Tensor
    audio_weight: torch.Tensor
    per_codebook: torch.Tensor  # [8] unweighted mean CE per audio codebook (NaN where no target)
    per_sample_text: torch.Tensor  # [B] unweighted mean text CE per sample (NaN where none)
    per_sample_audio: torch.Tensor  # [B] unweighted mean audio CE per sample (NaN where none)

    def total(self, weights: "LossWeights", text_norm: torch.Tensor | float | None = None,
              audio_norm: torch.Tensor | float | None = None) -> torch.Tensor:
        """text_sum / text_norm + audio_sum / audio_norm (norms default to this batch's own weights)."""
        tn = self.text_weight if text_norm is None else text_norm
        an = self.audio_weight if audio_norm is None else audio_norm
        tn = torch.as_tensor(tn, dtype=self.text_sum.dtype).clamp(min=1e-9)
        an = torch.as_tensor(an, dtype=self.audio_sum.dtype).clamp(min=1e-9)
        return weights.text * self.text_sum / tn + weights.audio * self.audio_sum / an

    @property
    def text(self) -> torch.Tensor:
        return self.text_sum / self.text_weight.clamp(min=1e-9)

    @property
    def audio(self) -> torch.Tensor:
        return self.audio_sum / self.audio_weight.clamp(min=1e-9)


def _ce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """logits [..., V], targets [...] (any id where mask is False) -> CE [...] (0 where masked)."""
    safe = torch.where(mask, targets, torch.zeros_like(targets))
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), safe.reshape(-1), reduction="none")
    return torch.where(mask.reshape(-1), ce, torch.zeros_like(ce)).view(targets.shape)


def key_pieces(text: torch.Tensor, after: int, ids: tuple[int, ...]) -> torch.Tensor:
    """text [B, T] -> [B, T] bool: pieces in `ids` whose previous word piece is `after` (-1: any piece, e.g.
    every colour or shape word of an answer, the pieces an image decides). Padding (0, 3) and -1 between
    them are skipped, since spoken samples lay a word's pieces on its audio frames."""
    B, T = text.shape
    word = (text != PADDING_IDS[0]) & (text != PADDING_IDS[1]) & (text >= 0)
    wanted = torch.isin(text, torch.tensor(ids, device=text.device, dtype=text.dtype))
    if after < 0:
        return word & wanted
    t = torch.arange(T, device=text.device).expand(B, T)
    last = torch.where(word, t, torch.full_like(t, -1)).cummax(dim=1).values  # last word piece at or before t
    prev = torch.cat([torch.full_like(last[:, :1], -1), last[:, :-1]], dim=1)  # ... strictly before t
    prev_tok = text.gather(1, prev.clamp(min=0))
    return word & wanted & (prev >= 0) & (prev_tok == after)


def loss_weights_of(codes: torch.Tensor, valid_text: torch.Tensor, valid_audio: torch.Tensor,
                    weights: LossWeights) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-target weights: text [B, T] (padding lighter), audio [B, 8, T] (semantic heavier)."""
    text_t = codes[:, 0]
    is_pad = (text_t == PADDING_IDS[0]) | (text_t == PADDING_IDS[1])
    text_w = torch.where(is_pad, weights.text_padding, 1.0) * valid_text
    if weights.key_ids and weights.key != 1.0:
        text_w = text_w * torch.where(key_pieces(text_t, weights.key_after, weights.key_ids), weights.key, 1.0)
    cb_w = torch.ones(valid_audio.shape[1], device=codes.device)
    cb_w[0] = weights.semantic
    return text_w, cb_w[None, :, None] * valid_audio


def moshi_loss(out: LMOutput, codes: torch.Tensor, loss_mask: torch.Tensor,
               weights: LossWeights | None = None) -> LossResult:
    """out: the model's teacher-forced outputs for codes [B, 17, T]; loss_mask [B, 17, T] (sample masks).

    A target counts where the model has a prediction (out.*_mask: delays, -1 targets) AND loss_mask is True.
    """
    w = weights or LossWeights()
    dq = out.audio_logits.shape[1]
    text_m = out.text_mask[:, 0] & loss_mask[:, 0]
    audio_m = out.audio_mask & loss_mask[:, 1:1 + dq]
    text_ce = _ce(out.text_logits[:, 0], codes[:, 0], text_m)  # [B, T]
    audio_ce = _ce(out.audio_logits, codes[:, 1:1 + dq], audio_m)  # [B, 8, T]
    text_w, audio_w = loss_weights_of(codes, text_m, audio_m, w)

    m_text, m_audio = text_m.float(), audio_m.float()
    nan = torch.tensor(float("nan"), device=codes.device)
    with torch.no_grad():
        per_cb = torch.where(m_audio.sum((0, 2)) > 0, audio_ce.sum((0, 2)) / m_audio.sum((0, 2)).clamp(min=1), nan)
        ps_text = torch.where(m_text.sum(1) > 0, text_ce.sum(1) / m_text.sum(1).clamp(min=1), nan)
        ps_audio = torch.where(m_audio.sum((1, 2)) > 0, audio_ce.sum((1, 2)) / m_audio.sum((1, 2)).clamp(min=1), nan)
    return LossResult(text_sum=(text_ce * text_w).sum(), text_weight=text_w.sum(),
                      audio_sum=(audio_ce * audio_w).sum(), audio_weight=audio_w.sum(), per_codebook=per_cb,
                      per_sample_text=ps_text, per_sample_audio=ps_audio)


def target_weight_sums(codes: torch.Tensor, loss_mask: torch.Tensor, delays: tuple[int, ...],
                       weights: LossWeights, dep_q: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """(text, audio) sums of target weights of a batch WITHOUT running the model: the same validity rule
    as `LMModel.forward` (no prediction for the last `delay` frames of a stream, none for -1 targets).
    Lets a trainer normalise every micro-batch by the whole step's totals before any backward."""
    B, K, T = codes.shape
    t = torch.arange(T, device=codes.device)
    valid = torch.stack([t < T - d for d in delays[:1 + dq]], 0) if (dq := dep_q) else None
    valid = valid[None] & (codes[:, :1 + dq] != -1) & loss_mask[:, :1 + dq]
    text_w, audio_w = loss_weights_of(codes, valid[:, 0], valid[:, 1:], weights)
    return text_w.sum(), audio_w.sum()
