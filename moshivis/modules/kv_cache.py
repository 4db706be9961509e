"""Preallocated ring KV cache with a clock per batch item.

Each batch item keeps its own position counter, so one batched streaming step can serve sessions that
started at different times, and one item can be reset without touching the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def window_mask(key_positions: torch.Tensor, query_positions: torch.Tensor, context: int | None) -> torch.Tensor:
    """[B, 1, T, S] boolean: key (position kpos, -1 = empty) is visible from query q when
    q - context < kpos <= q. key_positions: [B, S]; query_positions: [B, T]."""
    kpos = key_positions[:, None, None, :]
    qpos = query_positions[:, None, :, None]
    mask = (kpos >= 0) & (kpos <= qpos)
    if context is not None:
        mask &= (qpos - kpos) < context
    return mask


@dataclass
class KVCache:
    """keys/values: [B, H, capacity, D]; positions: [B, capacity] step index held by each slot (-1 empty);
    offset: [B] the position the next written step gets."""

    keys: torch.Tensor
    values: torch.Tensor
    positions: torch.Tensor
    offset: torch.Tensor
    filled: int = 0  # slots ever written (a Python int: lets attention skip the never-used tail, no sync)
    # Static: attention always reads all `capacity` slots (empty ones are masked by position -1), so every
    # step has the same shapes: what a CUDA graph needs. Same result as the sliced cache up to float
    # rounding of the softmax over a longer (masked) row.
    static: bool = False

    @staticmethod
    def empty(batch_size: int, num_heads: int, capacity: int, head_dim: int, device: torch.device | str,
              dtype: torch.dtype) -> "KVCache":
        return KVCache(
            keys=torch.zeros(batch_size, num_heads, capacity, head_dim, device=device, dtype=dtype),
            values=torch.zeros(batch_size, num_heads, capacity, head_dim, device=device, dtype=dtype),
            positions=torch.full((batch_size, capacity), -1, device=device, dtype=torch.long),
            offset=torch.zeros(batch_size, device=device, dtype=torch.long),
        )

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    def query_positions(self, num_steps: int) -> torch.Tensor:
        """[B, T] positions of the next `num_steps` steps."""
        return self.offset[:, None] + torch.arange(num_steps, device=self.offset.device)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write k, v [B, H, T, D] at the next T slots of every item and advance the clocks."""
        B, H, T, D = k.shape
        if T > self.capacity:
            raise ValueError(f"cannot append {T} steps to a KV cache of capacity {self.capacity}")
        pos = self.query_positions(T)  # [B, T]
        slots = pos % self.capacity
        index = slots[:, None, :, None].expand(B, H, T, D)
        self.keys.scatter_(2, index, k.to(self.keys.dtype))
        self.values.scatter_(2, index, v.to(self.values.dtype))
        self.positions.scatter_(1, slots, pos)
        self.offset += T
        self.filled = min(self.capacity, self.filled + T)

    @property
    def width(self) -> int:
        """S, the slots attention reads: those written so far, or all of them when static."""
        return self.capacity if self.static else self.filled

    def active(self) -> tuple[torch.Tensor, torch.Tensor]:
        """keys, values [B, H, S, D] over the `width` slots attention reads (S <= capacity)."""
        return self.keys[:, :, :self.width], self.values[:, :, :self.width]

    def active_positions(self) -> torch.Tensor:
        """[B, S] the step held by each slot of `active()` (-1 = empty)."""
        return self.positions[:, :self.width]

    def attention_mask(self, query_positions: torch.Tensor, context: int | None) -> torch.Tensor:
        """[B, 1, T, S] boolean over the active slots: slot holds a step in [q - context + 1, q]."""
        return window_mask(self.active_positions(), query_positions, context)

    def reset(self, mask: torch.Tensor) -> None:
        """Forget everything of the items where mask [B] is True."""
        self.positions[mask] = -1
        self.offset[mask] = 0
        if bool(mask.all()):
            self.filled = 0

    def clear(self) -> None:
        """Forget everything of every item, without reading the device (no host sync: graph-safe)."""
        self.positions.fill_(-1)
        self.offset.zero_()
        self.filled = 0
