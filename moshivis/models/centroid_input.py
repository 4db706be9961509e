"""The codebook-0 input as a linear map of each code's centroid, beside the learned embedding row.

Codebook 0 of the tiny codec is semantic: code c stands for a centroid, the 384-d Whisper tiny.en state that
k-means put at its centre. A learned embedding row treats codes as unrelated symbols, so the LM must learn
from data alone that two codes sound alike. `CentroidInput` adds `proj(centroid[c])` to the row: codes whose
centroids are close enter close, and what the LM learns for one code carries to its neighbours. A reader
trained on spoken questions heard held-out wordings 7.6-9 points better this way (stop 30,
`scripts/listening_ceiling.py`, view `centemb_causal` / `cent_causal`).

Checkpoint keys (under `lm.`): `centroid_input.centroids` [n_codes, centroid_dim] (a persistent buffer, the
codec's centroids standardised per dimension, see `standardize_centroids`) and `centroid_input.proj.weight`
[dim, centroid_dim]. `LMConfig.centroid_codes` / `centroid_dim` switch the module on (0 = off, the default:
every existing checkpoint is unchanged). `attach_centroid_input` adds it to a loaded model whose checkpoint
has none; the projection starts at zero, so attaching changes no output until it trains.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


def standardize_centroids(centroids: torch.Tensor) -> torch.Tensor:
    """centroids [K, C] -> the same, each dimension shifted and scaled to mean 0, std 1 over the K codes.

    Whisper states vary in scale by dimension (some sit near 0, a few reach tens); unscaled, a few dimensions
    would dominate the projection's first updates.
    """
    if centroids.ndim != 2 or centroids.shape[0] < 2:
        raise ValueError(f"centroids must be [K >= 2, C], got {tuple(centroids.shape)}")
    c = centroids.float()
    return (c - c.mean(0)) / c.std(0).clamp(min=1e-6)


class CentroidInput(nn.Module):
    """tokens [...] (codebook-0 ids) -> [..., dim]: proj(centroids[id]); ids outside 0..n_codes-1 (-1 = no
    token, the initial id = audio_card) give zero."""

    def __init__(self, n_codes: int, centroid_dim: int, dim: int) -> None:
        super().__init__()
        if n_codes < 1 or centroid_dim < 1:
            raise ValueError(f"CentroidInput needs n_codes >= 1 and centroid_dim >= 1, got {n_codes}, {centroid_dim}")
        self.n_codes = n_codes
        self.register_buffer("centroids", torch.zeros(n_codes, centroid_dim))
        self.proj = nn.Linear(centroid_dim, dim, bias=False)
        nn.init.zeros_(self.proj.weight)  # silent at first: a loaded base answers exactly as before

    def set_centroids(self, centroids: torch.Tensor) -> None:
        """Copy (already standardised) centroids [n_codes, centroid_dim] into the buffer."""
        if tuple(centroids.shape) != tuple(self.centroids.shape):
            raise ValueError(f"centroids have shape {tuple(centroids.shape)}, the model's centroid input "
                             f"expects {tuple(self.centroids.shape)} (LMConfig.centroid_codes x centroid_dim)")
        with torch.no_grad():
            self.centroids.copy_(centroids.to(self.centroids))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        valid = (tokens >= 0) & (tokens < self.n_codes)
        vec = self.centroids[tokens.clamp(0, self.n_codes - 1)]  # [..., C]
        return self.proj(vec.masked_fill(~valid[..., None], 0.0).to(self.proj.weight.dtype))


def attach_centroid_input(model: nn.Module, centroids: torch.Tensor) -> nn.Module:
    """Give a loaded MoshiVis (or anything with `.cfg.lm` and `.lm`) a centroid input on codebook 0.

    centroids: [K, C] as the codec stores them (standardised here). The model's config records K and C, so a
    checkpoint saved afterwards loads strictly with the module in place. Refuses a model that has one already.
    """
    lm = model.lm
    if getattr(lm, "centroid_input", None) is not None:
        raise ValueError("the model already has a centroid input (LMConfig.centroid_codes > 0)")
    if centroids.ndim != 2:
        raise ValueError(f"centroids must be [K, C], got {tuple(centroids.shape)}")
    k, c = centroids.shape
    if k > lm.cfg.audio_card:
        raise ValueError(f"{k} centroids but the LM has audio_card {lm.cfg.audio_card}")
    ref = lm.audio_emb[0].weight
    module = CentroidInput(k, c, lm.cfg.temporal.dim).to(device=ref.device, dtype=ref.dtype)
    module.set_centroids(standardize_centroids(centroids))
    lm.centroid_input = module
    new_lm_cfg = dataclasses.replace(lm.cfg, centroid_codes=k, centroid_dim=c)
    lm.cfg = new_lm_cfg
    model.cfg = dataclasses.replace(model.cfg, lm=new_lm_cfg)
    return model
