"""Optional LoRA on the base Moshi's linear layers, added by forward hooks.

The low-rank factors live in `model.lora` (a ModuleDict), not inside the base modules, so base weights keep
their names and a base checkpoint still loads strictly; the update B(A x) is added to each wrapped layer's
output by a forward hook.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..models.moshivis import MoshiVis


class LoRA(nn.Module):
    """delta(x) = (alpha / rank) * B A x, with B = 0 at start (the model starts unchanged)."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.empty(rank, in_features))
        self.b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.scale = (alpha or rank) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.a.t().to(x.dtype)) @ self.b.t().to(x.dtype) * self.scale


def attach_lora(model: MoshiVis, rank: int, targets: tuple[str, ...] = ("in_proj", "out_proj", "linear_in",
                                                                         "linear_out")) -> nn.ModuleDict:
    """Add LoRA to every linear of the temporal transformer whose name ends with one of `targets`."""
    if rank <= 0:
        raise ValueError(f"model.lora_rank must be > 0, got {rank}")
    lora = nn.ModuleDict()
    for name, module in model.lm.transformer.named_modules():
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            key = name.replace(".", "__")
            adapter = LoRA(module.in_features, module.out_features, rank).to(module.weight.device)
            lora[key] = adapter
            module.register_forward_hook(lambda m, args, out, ad=adapter: out + ad(args[0]))
    model.lora = lora
    return lora
