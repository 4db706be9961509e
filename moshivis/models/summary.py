"""Parameter accounting of a MoshiVis model (works on `meta` models: nothing is allocated)."""

from __future__ import annotations

from torch import nn

from .moshivis import MoshiVis


def count(params) -> int:
    return sum(p.numel() for p in params)


def parameter_report(model: MoshiVis) -> dict[str, int | str]:
    """Counts by part. `base` is Moshi alone (the LM); `adapters` everything MoshiVis trains (cross-
    attention, gates, norm_cross, image projection + norm); `vision_tower` the frozen SigLIP."""
    adapter_ids = {id(p) for _, p in model.adapter_parameters()}
    trainable = sum(p.numel() for p in model.parameters() if id(p) in adapter_ids)
    parts: dict[str, int | str] = {
        "preset": model.cfg.name,
        "base": count(model.lm.parameters()),
        "adapters": trainable,
        "adapters_cross_attention": count(model.adapters.xa.parameters()) if model.adapters else 0,
        "adapters_gates": count(model.adapters.gates.parameters()) if model.adapters else 0,
        "adapters_norm_cross": count(model.adapters.norms.parameters()) if model.adapters else 0,
        "adapters_projection": count(p for _, p in model.vision.projection_parameters()) if model.vision else 0,
        "vision_tower": count(model.vision.tower.parameters()) if model.vision else 0,
        "total": count(model.parameters()),
    }
    parts["trainable"] = trainable
    parts["frozen"] = int(parts["total"]) - trainable
    return parts


def freeze_base(model: MoshiVis) -> list[nn.Parameter]:
    """requires_grad only on the adapter parameters; returns them (for the optimizer)."""
    adapters = [p for _, p in model.adapter_parameters()]
    ids = {id(p) for p in adapters}
    for p in model.parameters():
        p.requires_grad_(id(p) in ids)
    return adapters
