"""Pre-norm transformer layer and stack, with a fusion point between attention and FFN.

A layer computes `x += SA(norm1 x)`, then an optional `fuse(x)` supplied by the caller, then
`x += FFN(norm2 x)`. The base model never holds fusion parameters: MoshiVis passes its gated
cross-attention adapters in at call time, so a base Moshi checkpoint loads strictly into the base
modules and the adapters live (and are saved, frozen or sharded) on their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..config import TransformerConfig
from .attention import SelfAttention
from .ffn import GatedFFN
from .kv_cache import KVCache
from .norms import RMSNorm

Fusion = Callable[[torch.Tensor], torch.Tensor]
"""Called as `x = fuse(x)` between self-attention and FFN of one layer; x: [B, T, dim]."""


class TransformerLayer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm1 = RMSNorm(cfg.dim, cfg.norm, cfg.norm_eps)
        self.self_attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.context, cfg.rope, cfg.rope_max_period,
                                       cfg.weights_per_step)
        self.norm2 = RMSNorm(cfg.dim, cfg.norm, cfg.norm_eps)
        self.weights_per_step = cfg.weights_per_step
        if cfg.weights_per_step:
            self.gating: nn.Module = nn.ModuleList(GatedFFN(cfg.dim, cfg.ffn_hidden)
                                                   for _ in range(cfg.weights_per_step))
        else:
            self.gating = GatedFFN(cfg.dim, cfg.ffn_hidden)

    def _ffn(self, x: torch.Tensor, step: int | None) -> torch.Tensor:
        if not self.weights_per_step:
            return self.gating(x)
        start = 0 if step is None else step
        # One FFN per position: position t of the sequence is codebook step start + t.
        return torch.cat([self.gating[start + t](x[:, t:t + 1]) for t in range(x.shape[1])], dim=1)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, step: int | None = None,
                fuse: Fusion | None = None) -> torch.Tensor:
        """x: [B, T, dim] -> [B, T, dim]."""
        x = x + self.self_attn(self.norm1(x), cache, step)
        if fuse is not None:
            x = fuse(x)
        return x + self._ffn(self.norm2(x), step)


@dataclass
class TransformerState:
    """Streaming state of a stack: one KV cache per layer."""

    caches: list[KVCache]

    def reset(self, mask: torch.Tensor) -> None:
        for c in self.caches:
            c.reset(mask)

    def clear(self) -> None:
        """Forget every item's steps (no host sync)."""
        for c in self.caches:
            c.clear()

    def set_static(self, static: bool = True) -> None:
        """Fixed-shape attention over every slot (`KVCache.static`)."""
        for c in self.caches:
            c.static = static


class Transformer(nn.Module):
    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(TransformerLayer(cfg) for _ in range(cfg.num_layers))
        self.checkpointing = False  # activation checkpointing per layer, set by trainers

    def new_state(self, batch_size: int, device: torch.device | str, dtype: torch.dtype,
                  capacity: int | None = None) -> TransformerState:
        cap = capacity or self.cfg.context
        return TransformerState([layer.self_attn.new_cache(batch_size, cap, device, dtype) for layer in self.layers])

    def forward(self, x: torch.Tensor, state: TransformerState | None = None, step: int | None = None,
                fusions: Sequence[Fusion | None] | None = None) -> torch.Tensor:
        """x: [B, T, dim] -> [B, T, dim]; `fusions[i]` is applied in layer i (None: no fusion)."""
        for i, layer in enumerate(self.layers):
            cache = None if state is None else state.caches[i]
            fuse = None if fusions is None else fusions[i]
            if self.checkpointing and self.training and state is None:
                x = checkpoint(layer, x, None, step, fuse, use_reentrant=False)
            else:
                x = layer(x, cache, step, fuse)
        return x
