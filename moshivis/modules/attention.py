"""Multi-head self-attention with a fused Q|K|V projection, optional RoPE, optional per-step weights.

The temporal transformer uses one set of weights and RoPE; the depformer uses one set of weights per
codebook step (`weights_per_step`) and no positional encoding. Both are causal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .kv_cache import KVCache, window_mask
from .rope import apply_rope


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v. q: [B, H, T, D]; k, v: [B, H, S, D]; mask: broadcastable to
    [B, H, T, S], True = attend. Returns [B, H, T, D].

    One query per step on CPU (streaming) goes through two plain matmuls: PyTorch's CPU SDPA kernel is
    tuned for long query blocks and was measured 3x slower here for a single query over 1024 image tokens.
    """
    if q.shape[2] == 1 and q.device.type == "cpu":
        scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
        if mask is not None and not bool(mask.all()):
            scores = scores.masked_fill(~mask, float("-inf"))
        return torch.matmul(torch.softmax(scores, dim=-1), v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class SelfAttention(nn.Module):
    """Causal self-attention.

    in_proj.weight: [n * 3 * dim, dim] (chunk c = [Wq; Wk; Wv] of step c); out_proj.weight: [n * dim, dim],
    with n = max(1, weights_per_step). No biases.
    """

    def __init__(self, dim: int, num_heads: int, context: int | None, rope: bool = True,
                 rope_max_period: float = 10000.0, weights_per_step: int = 0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.context = context
        self.rope = rope
        self.rope_max_period = rope_max_period
        self.weights_per_step = weights_per_step
        n = max(1, weights_per_step)
        self.in_proj = nn.Linear(dim, n * 3 * dim, bias=False)
        self.out_proj = nn.Linear(dim, n * dim, bias=False)

    def _project(self, linear: nn.Linear, x: torch.Tensor, step: int | None) -> torch.Tensor:
        """x: [B, T, dim]. Per-step weights: position t of the sequence uses chunk (step or 0) + t."""
        if not self.weights_per_step:
            return linear(x)
        n = self.weights_per_step
        w = linear.weight.view(n, -1, self.dim)
        start = 0 if step is None else step
        T = x.shape[1]
        if start + T > n:
            raise ValueError(f"step {start}+{T} exceeds the {n} per-step weights")
        if T == 1:
            return F.linear(x, w[start])
        return torch.einsum("btd,ted->bte", x, w[start:start + T])

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, step: int | None = None) -> torch.Tensor:
        """x: [B, T, dim] -> [B, T, dim].

        Without a cache: a causal (and context-windowed) attention over the T positions 0..T-1.
        With a cache: the T new steps attend to the cached steps and to themselves, then are cached.
        `step` selects the per-step weights of the first position (the depformer's codebook index).
        """
        B, T, _ = x.shape
        H, D = self.num_heads, self.dim // self.num_heads
        qkv = self._project(self.in_proj, x, step).view(B, T, 3, H, D)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [B, H, T, D]
        if cache is None:
            positions = torch.arange(T, device=x.device).expand(B, T)
        else:
            positions = cache.query_positions(T)
        if self.rope:
            q = apply_rope(q, positions, self.rope_max_period)
            k = apply_rope(k, positions, self.rope_max_period)
        if cache is None:
            out = attend(q, k, v, window_mask(positions[:1], positions[:1], self.context))
        elif T == 1:
            # Write first, then attend: the slot overwritten held step q - capacity, outside the window.
            cache.append(k, v)
            mask = cache.attention_mask(positions, self.context)
            keys, values = cache.active()
            out = attend(q, keys.to(q.dtype), values.to(q.dtype), mask)
        else:
            # Several steps at once: their own writes could evict steps an earlier query of the block still
            # needs, so attend over (cache before the block) + (the block), then write.
            keys, values = cache.active()
            keys = torch.cat([keys.to(q.dtype), k], dim=2)
            values = torch.cat([values.to(q.dtype), v], dim=2)
            kpos = torch.cat([cache.active_positions(), positions], dim=1)
            out = attend(q, keys, values, window_mask(kpos, positions, self.context))
            cache.append(k, v)
        out = out.transpose(1, 2).reshape(B, T, self.dim)
        return self._project(self.out_proj, out, step)

    def new_cache(self, batch_size: int, capacity: int, device: torch.device | str,
                  dtype: torch.dtype) -> KVCache:
        return KVCache.empty(batch_size, self.num_heads, capacity, self.dim // self.num_heads, device, dtype)
