"""AdamW with a linear warm-up then cosine decay."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimSection


def build_optimizer(named_params: list[tuple[str, nn.Parameter]], cfg: OptimSection) -> torch.optim.AdamW:
    """Weight decay on matrices only: norms' gains, biases and scalar gates are not pulled toward zero."""
    decay = [p for n, p in named_params if p.dim() >= 2]
    no_decay = [p for n, p in named_params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=tuple(cfg.betas))


def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimSection, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, cfg.warmup_steps, cfg.min_lr_ratio))
