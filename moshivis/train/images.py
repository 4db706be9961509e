"""Frozen image-encoder features for training batches, cached on disk once per image.

The SigLIP tower is frozen, so its output for an image never changes during a run (or across runs with
the same tower): it is computed once, stored under `cache_dir/<tower fingerprint>/`, and read back in
later epochs. The trainable projection runs on top of it at every step.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..data.types import ImageRef
from ..models.moshivis import MoshiVis
from ..models.vision import ImageEncoder, preprocess_images


def tower_fingerprint(encoder: ImageEncoder) -> str:
    """A short hash of the tower's config and a few of its weights: a cache made with another tower is
    never read."""
    h = hashlib.sha1(repr(encoder.cfg).encode())
    sd = encoder.tower.state_dict()
    for name in sorted(sd)[:3] + sorted(sd)[-3:]:
        h.update(name.encode())
        h.update(sd[name].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class ImageFeatureStore:
    """Tower outputs [N, hidden] per image, from the cache or computed (and cached)."""

    def __init__(self, model: MoshiVis, image_root: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None) -> None:
        if model.vision is None:
            raise ValueError("the model has no vision encoder")
        self.encoder = model.vision
        self.image_root = Path(image_root) if image_root else None
        self.cache = Path(cache_dir) / tower_fingerprint(self.encoder) if cache_dir else None
        if self.cache is not None:
            self.cache.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._memory: dict[str, torch.Tensor] = {}  # most recent features, so small datasets stay in RAM
        self.memory_items = 4096

    def _path(self, ref: ImageRef) -> Path:
        p = Path(ref.path)
        return p if p.is_absolute() or self.image_root is None else self.image_root / p

    def _cache_file(self, ref: ImageRef) -> Path | None:
        if self.cache is None:
            return None
        key = hashlib.sha1(f"{ref.image_id}\0{ref.path}".encode()).hexdigest()
        return self.cache / f"{key}.safetensors"

    @torch.no_grad()
    def features(self, ref: ImageRef) -> torch.Tensor:
        """[N, hidden] float32 tower output of one image."""
        key = f"{ref.image_id}\0{ref.path}"
        if key in self._memory:
            self.hits += 1
            return self._memory[key]
        cached = self._cache_file(ref)
        if cached is not None and cached.is_file():
            self.hits += 1
            return self._remember(key, load_file(str(cached))["features"])
        self.misses += 1
        pixels = preprocess_images(self._path(ref), self.encoder.cfg.image_size)
        param = next(self.encoder.tower.parameters())
        out = self.encoder.encode_tower(pixels.to(param.device, param.dtype))[0].float().cpu()
        if cached is not None:
            tmp = cached.with_suffix(".tmp")
            save_file({"features": out.contiguous()}, str(tmp))
            os.replace(tmp, cached)
        return self._remember(key, out)

    def _remember(self, key: str, value: torch.Tensor) -> torch.Tensor:
        if len(self._memory) >= self.memory_items:
            self._memory.pop(next(iter(self._memory)))  # oldest first
        self._memory[key] = value
        return value

    def batch(self, refs: list[ImageRef | None]) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Tower outputs [B, N, hidden] (zeros where a sample has no image) and present [B] bool;
        (None, all-False) when no sample of the batch has an image."""
        present = torch.tensor([r is not None for r in refs], dtype=torch.bool)
        if not present.any():
            return None, present
        feats = {i: self.features(r) for i, r in enumerate(refs) if r is not None}
        first = next(iter(feats.values()))
        out = torch.zeros(len(refs), *first.shape)
        for i, f in feats.items():
            out[i] = f
        return out, present
