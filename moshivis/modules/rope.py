"""Rotary position embedding with interleaved pairs, as in Moshi.

Channel pairs (x[2i], x[2i+1]) form one complex number rotated by angle pos * max_period^(-2i/head_dim).
"""

from __future__ import annotations

import math

import torch


def apply_rope(x: torch.Tensor, positions: torch.Tensor, max_period: float = 10000.0) -> torch.Tensor:
    """Rotate queries or keys.

    x: [B, H, T, D] (D even); positions: [B, T] integer steps (per batch item, so that batched
    sessions with different lengths each keep their own clock). Returns [B, H, T, D] in x's dtype.
    Computed in float32 because bf16 angles lose the position after a few hundred steps.
    """
    B, H, T, D = x.shape
    half = D // 2
    freqs = torch.exp(torch.arange(half, device=x.device, dtype=torch.float32) * (-math.log(max_period) * 2 / D))
    angles = positions.to(torch.float32)[:, None, :, None] * freqs  # [B, 1, T, half]
    cos, sin = torch.cos(angles), torch.sin(angles)
    xf = x.to(torch.float32).reshape(B, H, T, half, 2)
    re, im = xf[..., 0], xf[..., 1]
    out = torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1)
    return out.reshape(B, H, T, D).to(x.dtype)
