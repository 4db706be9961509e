"""Gated cross-attention adapters: how MoshiVis lets the temporal transformer look at an image.

The paper's design (all selectable by `AdapterConfig`, to reproduce its ablations):
- ONE cross-attention (fused Q|K|V in-projection, out-projection, no biases) shared by every layer, so the
  image keys/values are computed once per image and reused by all layers and all steps
  (`shared_xa=False`: one per layer, the "no sharing" ablation);
- per layer a true-RMS `norm_cross` on the query side and a gate on the output:
  `dynamic`: g = sigmoid(W2 relu(W1 u) - 4) per token and channel; `tanh`: g = tanh(alpha), one scalar per
  layer; `none`: g = 1; `shared_gate=True` uses one gate module in every layer.
Inside layer i: u = XA(norm_cross_i(x), image); x = x + u * g_i(u).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AdapterConfig
from .attention import attend
from .norms import RMSNorm


@dataclass
class ImageKV:
    """Keys and values of one image batch for one cross-attention module: each [B, H, N, head_dim]."""

    keys: torch.Tensor
    values: torch.Tensor


class CrossAttention(nn.Module):
    """Non-causal multi-head attention from the LM stream to image tokens (no RoPE, no mask)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.in_proj = nn.Linear(dim, 3 * dim, bias=False)  # rows Wq | Wk | Wv
        self.out_proj = nn.Linear(dim, dim, bias=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        return x.view(B, N, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def image_kv(self, image_embeds: torch.Tensor) -> ImageKV:
        """image_embeds: [B, N, dim] (projected, normalised image tokens) -> K/V [B, H, N, head_dim]."""
        w = self.in_proj.weight
        k = F.linear(image_embeds, w[self.dim:2 * self.dim])
        v = F.linear(image_embeds, w[2 * self.dim:])
        return ImageKV(self._split_heads(k), self._split_heads(v))

    def forward(self, x: torch.Tensor, kv: ImageKV) -> torch.Tensor:
        """x: [B, T, dim] (already normalised) -> [B, T, dim]."""
        B, T, _ = x.shape
        q = self._split_heads(F.linear(x, self.in_proj.weight[:self.dim]))
        out = attend(q, kv.keys.to(q.dtype), kv.values.to(q.dtype))
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.dim))


class DynamicGate(nn.Module):
    """g = sigmoid(w2(relu(w1(u))) + shift), per token and channel; u: [B, T, dim] -> g: [B, T, dim]."""

    def __init__(self, dim: int, hidden: int, shift: float) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.shift = shift
        # A zero W2 makes every gate exactly sigmoid(shift) at start (~0.018): the adapted model starts as
        # Moshi up to a 1.8% image contribution, and W2 still receives gradients.
        nn.init.zeros_(self.w2.weight)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.w2(F.relu(self.w1(u))) + self.shift)


class TanhGate(nn.Module):
    """g = tanh(alpha), one learnable scalar, starting at 0 (the image is ignored at start)."""

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.alpha).to(u.dtype).expand_as(u)


GateRecorder = Callable[[int, torch.Tensor], None]
"""Receives (layer index, gate values [B, T, dim]) each time a gate is computed."""


class VisionAdapters(nn.Module):
    """Every parameter MoshiVis adds to the temporal transformer (cross-attention, norms, gates).

    `xa` is a single CrossAttention when shared, else a ModuleList (one per adapted layer);
    `norms[j]` and `gates[j]` belong to the j-th adapted layer `layer_ids[j]`.
    """

    def __init__(self, cfg: AdapterConfig, dim: int, num_heads: int, num_layers: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_layers = num_layers
        self.layer_ids: tuple[int, ...] = tuple(range(num_layers)) if cfg.layers is None else tuple(cfg.layers)
        bad = [i for i in self.layer_ids if not 0 <= i < num_layers]
        if bad:
            raise ValueError(f"adapters.layers {bad} out of range for {num_layers} layers")
        n = len(self.layer_ids)
        self.xa: nn.Module = (CrossAttention(dim, num_heads) if cfg.shared_xa
                              else nn.ModuleList(CrossAttention(dim, num_heads) for _ in range(n)))
        self.norms = nn.ModuleList(RMSNorm(dim, "rms", cfg.norm_eps) for _ in range(n))
        hidden = cfg.gate_hidden or dim // 8

        def make_gate() -> nn.Module:
            if cfg.gate == "dynamic":
                return DynamicGate(dim, hidden, cfg.gate_shift)
            if cfg.gate == "tanh":
                return TanhGate()
            if cfg.gate == "none":
                return nn.Identity()
            raise ValueError(f"unknown adapters.gate {cfg.gate!r} (expected dynamic, tanh or none)")

        self.has_gate = cfg.gate != "none"
        num_gates = 1 if cfg.shared_gate else n
        self.gates = nn.ModuleList(make_gate() for _ in range(num_gates)) if self.has_gate else nn.ModuleList()

    def _xa(self, j: int) -> CrossAttention:
        return self.xa if isinstance(self.xa, CrossAttention) else self.xa[j]  # type: ignore[index]

    def image_kv(self, image_embeds: torch.Tensor) -> list[ImageKV]:
        """K/V for every adapted layer, computed once per distinct cross-attention module.

        image_embeds: [B, N, dim]. With a shared cross-attention the list holds the same object n times.
        """
        if isinstance(self.xa, CrossAttention):
            kv = self.xa.image_kv(image_embeds)
            return [kv] * len(self.layer_ids)
        return [self._xa(j).image_kv(image_embeds) for j in range(len(self.layer_ids))]

    def fusions(self, kvs: list[ImageKV], image_mask: torch.Tensor | None = None,
                record: GateRecorder | None = None) -> list[Callable[[torch.Tensor], torch.Tensor] | None]:
        """One fusion callable per base layer (None where a layer has no adapter).

        image_mask: [B] or [B, T] bool, True where the image is visible; where False the layer output is
        exactly the base model's (the update is not added at all, not multiplied by zero).
        """
        out: list[Callable[[torch.Tensor], torch.Tensor] | None] = [None] * self.num_layers
        for j, layer in enumerate(self.layer_ids):
            out[layer] = self._make_fusion(j, layer, kvs[j], image_mask, record)
        return out

    def _make_fusion(self, j: int, layer: int, kv: ImageKV, image_mask: torch.Tensor | None,
                     record: GateRecorder | None) -> Callable[[torch.Tensor], torch.Tensor]:
        def fuse(x: torch.Tensor) -> torch.Tensor:
            u = self._xa(j)(self.norms[j](x), kv)
            if self.has_gate:
                g = self.gates[0 if self.cfg.shared_gate else j](u)
                if record is not None:
                    record(layer, g)
                update = u * g
            else:
                update = u
            if image_mask is None:
                return x + update
            mask = image_mask if image_mask.dim() == 2 else image_mask[:, None]
            return torch.where(mask[..., None], x + update, x)

        return fuse
