"""SiLU-gated feed-forward block (Moshi's `ActivationGating`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedFFN(nn.Module):
    """out = linear_out(silu(a) * b) where [a | b] = linear_in(x).

    x: [B, T, dim] -> [B, T, dim]; linear_in is [2 * hidden, dim], linear_out is [dim, hidden].
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear_in = nn.Linear(dim, 2 * hidden, bias=False)
        self.linear_out = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear_in(x)
        a, b = h.chunk(2, dim=-1)
        return self.linear_out(F.silu(a) * b)
