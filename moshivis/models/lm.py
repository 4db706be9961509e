"""Moshi: the temporal transformer (Helium) and the depth transformer (depformer) over 17 token streams.

Streams of one 80 ms frame, laid out [B, 17, T]: 0 = text (inner monologue), 1..8 = the model's audio
codebooks, 9..16 = the user's. The input of a step is the SUM of the 17 embeddings (id -1 embeds to zero;
`LMConfig.user_input_codebooks` / `model_input_codebooks` can leave acoustic codebooks out).
The temporal transformer maps it to `transformer_out`, which gives the text logits and, through the
depformer (one position per codebook, separate weights per position), the model's 8 audio codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..config import LMConfig
from ..modules.norms import RMSNorm
from .centroid_input import CentroidInput
from ..modules.transformer import Fusion, Transformer, TransformerState

ZERO_TOKEN = -1  # embeds to a zero vector (contributes nothing to the sum)
UNGENERATED_TOKEN = -2  # a cache slot not written yet; must never reach the model


class TokenEmbedding(nn.Embedding):
    """nn.Embedding where id -1 gives a zero vector. tokens: [...] -> [..., dim]."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        emb = super().forward(tokens.clamp(min=0))
        # masked_fill with a Python scalar: no CPU tensor, so it can be captured in a CUDA graph
        return emb.masked_fill((tokens == ZERO_TOKEN)[..., None], 0.0)


@dataclass
class LMOutput:
    """Teacher-forced outputs aligned with the input codes (moshi's `LMModel.forward` convention).

    text_logits: [B, 1, T, text_card]; audio_logits: [B, dep_q, T, audio_card]; masks [B, 1|dep_q, T] are
    False where a position has no valid prediction (delays) or the target is -1. Invalid logits are NaN.
    """

    text_logits: torch.Tensor
    text_mask: torch.Tensor
    audio_logits: torch.Tensor
    audio_mask: torch.Tensor


class MoshiLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        t, d = cfg.temporal, cfg.depformer
        if len(cfg.delays) != cfg.num_streams:
            raise ValueError(f"lm.delays has {len(cfg.delays)} entries, expected {cfg.num_streams}")
        self._audio_inputs = cfg.audio_inputs  # validated here rather than at the first forward
        if (cfg.centroid_codes > 0) != (cfg.centroid_dim > 0) or not 0 <= cfg.centroid_codes <= cfg.audio_card:
            raise ValueError(f"lm.centroid_codes={cfg.centroid_codes}, lm.centroid_dim={cfg.centroid_dim}: both 0, "
                             f"or both > 0 with centroid_codes <= audio_card {cfg.audio_card}")
        self.text_emb = TokenEmbedding(cfg.text_card + 1, t.dim)
        self.audio_emb = nn.ModuleList(TokenEmbedding(cfg.audio_card + 1, t.dim) for _ in range(cfg.n_q))
        self.transformer = Transformer(t)
        self.out_norm = RMSNorm(t.dim, t.norm, t.norm_eps)
        self.text_linear = nn.Linear(t.dim, cfg.text_card, bias=False)
        self.depformer_in = nn.ModuleList(nn.Linear(t.dim, d.dim, bias=False) for _ in range(cfg.dep_q))
        self.depformer_text_emb = TokenEmbedding(cfg.text_card + 1, d.dim)
        # The last codebook is never an input of the depformer.
        self.depformer_emb = nn.ModuleList(TokenEmbedding(cfg.audio_card + 1, d.dim) for _ in range(cfg.dep_q - 1))
        self.depformer = Transformer(d)
        self.audio_linears = nn.ModuleList(nn.Linear(d.dim, cfg.audio_card, bias=False) for _ in range(cfg.dep_q))
        # Codebook 0 (the model's and the user's) also as a map of its codes' centroids (`centroid_input.py`).
        self.centroid_input: CentroidInput | None = (
            CentroidInput(cfg.centroid_codes, cfg.centroid_dim, t.dim) if cfg.centroid_codes else None)

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        return self.text_linear.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.text_linear.weight.dtype

    def initial_tokens(self, batch_size: int = 1) -> torch.Tensor:
        """[B, 17, 1] the tokens fed before anything exists: text_card for text, audio_card for audio."""
        init = torch.full((batch_size, self.cfg.num_streams, 1), self.cfg.audio_initial_id, dtype=torch.long,
                          device=self.device)
        init[:, 0] = self.cfg.text_initial_id
        return init

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: [B, 17, T] -> summed embedding [B, T, dim]."""
        # The moshi package sums audio 0..15 then text; the same order keeps float32 sums bit-identical.
        # Streams the config leaves out (`LMConfig.audio_inputs`) are not embedded at all.
        x: torch.Tensor | None = None
        for k in self._audio_inputs:
            e = self.audio_emb[k](tokens[:, 1 + k])
            if self.centroid_input is not None and k in (0, self.cfg.dep_q):  # semantic codebook of either side
                e = e + self.centroid_input(tokens[:, 1 + k])
            x = e if x is None else x + e
        text = self.text_emb(tokens[:, 0])
        return text if x is None else x + text

    # ------------------------------------------------------------------------------------------ temporal
    def new_state(self, batch_size: int, dtype: torch.dtype | None = None) -> TransformerState:
        """Streaming state of the temporal transformer (one ring KV cache per layer)."""
        return self.transformer.new_state(batch_size, self.device, dtype or self.dtype)

    def forward_temporal(self, tokens: torch.Tensor, state: TransformerState | None = None,
                         fusions: Sequence[Fusion | None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens: [B, 17, T] step inputs (already delayed/shifted) -> (transformer_out [B, T, dim],
        text_logits [B, T, text_card]). With `state`, the T steps continue a stream."""
        x = self.transformer(self.embed(tokens), state, fusions=fusions)
        out = self.out_norm(x)
        return out, self.text_linear(out)

    # ------------------------------------------------------------------------------------------ depformer
    def depformer_inputs(self, transformer_out: torch.Tensor, prev_tokens: torch.Tensor,
                         start: int = 0) -> torch.Tensor:
        """Inputs of depformer positions start..start+K-1.

        transformer_out: [B, T, dim]; prev_tokens: [B, K, T] where row j is the token preceding
        position start+j (the text token for position 0, audio codebook c-1 for position c).
        Returns [B * T, K, dep_dim].
        """
        B, K, T = prev_tokens.shape
        rows = []
        for j in range(K):
            c = start + j
            emb = self.depformer_text_emb if c == 0 else self.depformer_emb[c - 1]
            rows.append(self.depformer_in[c](transformer_out) + emb(prev_tokens[:, j]))
        x = torch.stack(rows, dim=2)  # [B, T, K, dep_dim]
        return x.reshape(B * T, K, -1)

    def forward_depformer(self, transformer_out: torch.Tensor, prev_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced depformer over all codebooks.

        transformer_out: [B, T, dim]; prev_tokens: [B, dep_q, T] (text token, then audio codebooks 0..dep_q-2).
        Returns audio logits [B, dep_q, T, audio_card].
        """
        B, K, T = prev_tokens.shape
        y = self.depformer(self.depformer_inputs(transformer_out, prev_tokens))  # [B*T, K, dep_dim]
        logits = torch.stack([self.audio_linears[c](y[:, c]) for c in range(K)], dim=1)  # [B*T, K, card]
        return logits.view(B, T, K, -1).transpose(1, 2)

    def new_depformer_cache(self, batch_size: int, dtype: torch.dtype | None = None) -> TransformerState:
        return self.depformer.new_state(batch_size, self.device, dtype or self.dtype, capacity=self.cfg.dep_q)

    def depformer_step(self, c: int, transformer_out: torch.Tensor, prev_token: torch.Tensor,
                       state: TransformerState) -> torch.Tensor:
        """Logits of codebook c given the previous one. transformer_out: [B, 1, dim]; prev_token: [B].
        Returns [B, audio_card]. `state` must be fresh for c = 0 (the depformer restarts every frame)."""
        x = self.depformer_inputs(transformer_out, prev_token[:, None, None], start=c)  # [B, 1, dep_dim]
        y = self.depformer(x, state, step=c)
        return self.audio_linears[c](y[:, 0])

    # ------------------------------------------------------------------------------------------ training
    def delay_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: [B, 17, T] aligned frames -> step inputs [B, 17, T + 1]: stream k shifted right by
        delays[k] (initial tokens fill the gap) and one initial step prepended."""
        B, K, T = codes.shape
        init = self.initial_tokens(B)
        out = init.expand(B, K, T + 1).clone()
        for k, d in enumerate(self.cfg.delays):
            out[:, k, 1 + d:] = codes[:, k, :T - d]
        return out

    def forward(self, codes: torch.Tensor, fusions: Sequence[Fusion | None] | None = None,
                inputs: torch.Tensor | None = None) -> LMOutput:
        """Teacher-forced forward over aligned codes [B, 17, T]; logits aligned with `codes`.

        inputs: [B, 17, T] what the temporal transformer reads instead of `codes` (e.g. some streams set
        to ZERO_TOKEN, unseen); targets and the depformer's teacher forcing still come from `codes`."""
        B, K, T = codes.shape
        if K != self.cfg.num_streams:
            raise ValueError(f"codes have {K} streams, expected {self.cfg.num_streams}")
        if inputs is not None and inputs.shape != codes.shape:
            raise ValueError(f"inputs have shape {tuple(inputs.shape)}, codes {tuple(codes.shape)}: must match")
        delayed = self.delay_codes(codes)
        seen = delayed if inputs is None else self.delay_codes(inputs)
        transformer_out, text_logits = self.forward_temporal(seen[:, :, :-1], fusions=fusions)
        targets = delayed[:, :, 1:]  # what step t predicts, in the delayed layout
        audio_logits = self.forward_depformer(transformer_out, targets[:, :self.cfg.dep_q])
        text_logits, text_mask = self._undelay(text_logits[:, None], self.cfg.delays[:1], codes[:, :1])
        dq = self.cfg.dep_q
        audio_logits, audio_mask = self._undelay(audio_logits, self.cfg.delays[1:1 + dq], codes[:, 1:1 + dq])
        return LMOutput(text_logits, text_mask, audio_logits, audio_mask)

    @staticmethod
    def _undelay(logits: torch.Tensor, delays: Sequence[int], codes: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """logits [B, K, T, V] in the delayed layout -> aligned with codes [B, K, T]; NaN + False mask
        where no prediction exists (the last `delay` frames) or the target is -1."""
        B, K, T, V = logits.shape
        out = torch.full_like(logits, float("nan"))
        mask = torch.zeros(B, K, T, dtype=torch.bool, device=logits.device)
        for k, d in enumerate(delays):
            out[:, k, :T - d] = logits[:, k, d:]
            mask[:, k, :T - d] = True
        return out, mask & (codes != ZERO_TOKEN)
