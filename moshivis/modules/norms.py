"""RMSNorm in the two forms found in MoshiVis checkpoints.

The public PyTorch MoshiVis code uses a true RMS in the temporal transformer but the "variance form"
(unbiased variance, x itself not centred) in the depformer and `norm_xa`; the `moshi` package, Rust and
MLX use true RMS everywhere. Which form a norm uses is therefore configuration, not code.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import NormKind


class RMSNorm(nn.Module):
    """y = x * alpha / sqrt(stat(x) + eps), stat = mean(x^2) (`rms`) or var_unbiased(x) (`var`).

    `alpha` is stored as [1, 1, dim], the layout of every released checkpoint.
    `compute_dtype` float32 computes in float32 and casts back (Moshi's `*_f32` norms);
    None computes in the input dtype (`norm_xa`).
    """

    def __init__(self, dim: int, kind: NormKind = "rms", eps: float = 1e-8,
                 compute_dtype: torch.dtype | None = torch.float32) -> None:
        super().__init__()
        if kind not in ("rms", "var"):
            raise ValueError(f"unknown norm kind {kind!r} (expected 'rms' or 'var')")
        self.kind = kind
        self.eps = eps
        self.compute_dtype = compute_dtype
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., dim] -> [..., dim], same dtype."""
        in_dtype = x.dtype
        if self.compute_dtype is not None:
            x = x.to(self.compute_dtype)
        if self.kind == "rms":
            stat = torch.mean(x * x, dim=-1, keepdim=True)
        else:
            stat = torch.var(x, dim=-1, keepdim=True, unbiased=True)
        alpha = self.alpha.to(x.dtype).reshape(-1)
        return (x * (alpha * torch.rsqrt(stat + self.eps))).to(in_dtype)

    def extra_repr(self) -> str:
        return f"{self.alpha.shape[-1]}, kind={self.kind}, eps={self.eps}"
