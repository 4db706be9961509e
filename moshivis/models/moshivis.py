"""MoshiVis: a frozen Moshi that looks at an image through gated cross-attention adapters.

The model users hold. It composes, without modifying any of them:
- `lm`: the base Moshi (`MoshiLM`), whose state dict is exactly a Moshi checkpoint's;
- `vision`: the frozen SigLIP tower + its projection to the LM width (`ImageEncoder`);
- `adapters`: the cross-attention, per-layer norms and gates (`VisionAdapters`), handed to the base
  transformer's fusion points at call time.
With no image, every path is exactly Moshi.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch import nn

from ..config import ModelConfig
from ..modules.cross_attention import GateRecorder, ImageKV, VisionAdapters
from .lm import LMOutput, MoshiLM
from .vision import ImageEncoder


@dataclass
class ImageContext:
    """What the LM needs of one image batch: K/V per adapted layer (computed once per image)."""

    kvs: list[ImageKV]

    @property
    def batch_size(self) -> int:
        return self.kvs[0].keys.shape[0]


@dataclass
class GateTrace:
    """Gate values recorded during a forward, detached: layer index -> [B, T, dim] (or [B, T, 1] for scalar
    gates); with `channel_means`, only their mean over channels, [B, T, 1] (what training logs).

    Detached because a trace is only read. Holding the gates' graph made activation checkpointing keep
    every layer's recomputed tensors alive until the step ended: the recompute of a layer fills all its
    saved tensors, and those of the gate branch were never used by a backward. Measured on an H100, 7B
    adapters, batch 8 x 30 s: +18.0 GB over the weights at the peak before, +3.6 GB after.
    """

    values: dict[int, torch.Tensor] = field(default_factory=dict)
    channel_means: bool = False

    def record(self, layer: int, g: torch.Tensor) -> None:
        g = g.detach()
        self.values[layer] = g.float().mean(-1, keepdim=True) if self.channel_means else g

    def means(self) -> torch.Tensor | None:
        """[B, T, L] mean gate per token and adapted layer, or None when nothing was recorded."""
        if not self.values:
            return None
        return torch.stack([self.values[i].float().mean(-1) for i in sorted(self.values)], dim=-1)


class MoshiVis(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        t = cfg.lm.temporal
        self.lm = MoshiLM(cfg.lm)
        self.vision = ImageEncoder(cfg.vision, t.dim) if cfg.vision is not None else None
        self.adapters = (VisionAdapters(cfg.adapters, t.dim, t.num_heads, t.num_layers)
                         if cfg.adapters is not None else None)

    # ------------------------------------------------------------------------------------------ image
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, S, S] (preprocessed) -> image tokens [B, N, dim] (projected and normalised)."""
        if self.vision is None:
            raise ValueError("this model has no vision encoder (config.vision is None)")
        return self.vision(pixels.to(self.vision.proj.weight.dtype))

    def image_context(self, image_embeds: torch.Tensor) -> ImageContext:
        """image tokens [B, N, dim] -> the K/V every layer and every step reuse."""
        if self.adapters is None:
            raise ValueError("this model has no adapters (config.adapters is None)")
        return ImageContext(self.adapters.image_kv(image_embeds))

    def fusions(self, image: ImageContext | None, image_mask: torch.Tensor | None = None,
                record: GateRecorder | None = None) -> list | None:
        """Fusion callables for the base transformer, or None (pure Moshi) when there is no image."""
        if image is None or self.adapters is None:
            return None
        return self.adapters.fusions(image.kvs, image_mask, record)

    # ------------------------------------------------------------------------------------------ training
    def forward(self, codes: torch.Tensor, image: ImageContext | None = None,
                image_mask: torch.Tensor | None = None, gates: GateTrace | None = None,
                inputs: torch.Tensor | None = None) -> LMOutput:
        """Teacher-forced forward. codes: [B, 17, T] aligned frames; image_mask: [B] or [B, T] (steps of
        the delayed input sequence where the image is visible); inputs: [B, 17, T] what the temporal
        transformer reads in place of codes (`MoshiLM.forward`)."""
        record = gates.record if gates is not None else None
        return self.lm(codes, fusions=self.fusions(image, image_mask, record), inputs=inputs)

    # ------------------------------------------------------------------------------------------ params
    def adapter_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) of everything MoshiVis adds to Moshi: cross-attention, gates, norm_cross,
        and the image projection + its norm. The one list used for freezing, optimizer groups and
        FSDP units."""
        if self.adapters is not None:
            for n, p in self.adapters.named_parameters():
                yield f"adapters.{n}", p
        if self.vision is not None:
            for n, p in self.vision.projection_parameters():
                yield f"vision.{n}", p

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in self.adapter_parameters()}
