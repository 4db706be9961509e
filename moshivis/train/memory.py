"""Memory per GPU of a training run, from a meta-device build (`moshivis train --dry-run`).

Parameters, gradients and optimizer states are counted exactly from the model (their dtypes follow the
trainer: frozen weights bf16, trainable masters fp32, AdamW two fp32 states; FSDP shards all of them over
the GPUs). Activations are MEASURED, not guessed: the training forward runs on the `meta` device at the real
widths and sequence length, and every tensor autograd saves for backward is counted (weights excluded)
through `torch.autograd.graph.saved_tensors_hooks`. The forward runs in bf16 as under autocast; views of
one tensor are counted once per saved view, so the figure is an upper bound. Attention is counted as a fused
GPU kernel (flash / memory-efficient SDPA) saves it: q, k, v, the output and one float32 log-sum-exp per
query and head, not the [T, S] probability matrix that the CPU math fallback would keep.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from ..models.loaders import build_model
from .config import TrainConfig
from .loss import LossWeights
from .setup import model_config, trainable_names
from .step import TrainStep

GB = 1024 ** 3


def _bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class _FusedAttention(torch.autograd.Function):
    """Shapes and saved tensors of a fused attention kernel (meta tensors: nothing is computed)."""

    @staticmethod
    def forward(ctx, q, k, v):  # type: ignore[override]
        out = torch.empty_like(q)
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _fused_sdpa(q, k, v, attn_mask=None, **_: Any) -> torch.Tensor:
    return _FusedAttention.apply(q, k, v)


def planning_config(cfg: TrainConfig):
    """The model config a dry run plans for, without downloading anything.

    A local checkpoint of our format carries its config in the header, which is read (no weights). A hub id
    is not fetched (a dry run is what one does before the weights are there; it waited ~30 s on retries
    offline and then failed): the preset stands in, as it does for the released layouts, which carry none.
    """
    ck = cfg.model.checkpoint
    if ck and not Path(ck).is_file():
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, checkpoint=None))
    return model_config(cfg)


def measure_activations(cfg: TrainConfig, batch: int, frames: int, checkpointing: bool,
                        drop_layers: tuple[int, int] = (0, 0), device: str = "meta") -> int:
    """Bytes autograd saves for one training forward of `batch` x `frames` (meta device, bf16).
    drop_layers: (temporal, depformer) layers removed, to measure one layer's share by difference."""
    mc = planning_config(cfg)
    mc.lm.temporal.num_layers -= drop_layers[0]
    mc.lm.depformer.num_layers -= drop_layers[1]
    if mc.adapters is not None and mc.adapters.layers is not None:
        mc.adapters.layers = tuple(i for i in mc.adapters.layers if i < mc.lm.temporal.num_layers)
    model = (build_model(mc, init=False) if device == "meta" else build_model(mc, device=device)).to(torch.bfloat16)
    keep = trainable_names(model, cfg.mode)
    for n, p in model.named_parameters():
        p.requires_grad_(n in keep)
    model.lm.transformer.checkpointing = checkpointing
    model.lm.depformer.checkpointing = checkpointing
    model.train()
    params = {id(p) for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        base = t._base if t._base is not None else t
        if id(t) not in params and id(base) not in params and id(t) not in seen:
            seen.add(id(t))
            total += _bytes(t)
        return t

    codes = torch.zeros(batch, mc.lm.num_streams, frames, dtype=torch.long, device=device)
    mask = torch.ones(batch, mc.lm.num_streams, frames, dtype=torch.bool, device=device)
    feats = present = None
    if mc.vision is not None and mc.adapters is not None:
        feats = torch.zeros(batch, mc.vision.num_tokens, mc.vision.hidden_size, dtype=torch.bfloat16, device=device)
        present = torch.ones(batch, dtype=torch.bool, device=device)
    step = TrainStep(model, LossWeights())
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            mock.patch.object(torch.nn.functional, "scaled_dot_product_attention", _fused_sdpa):
        res, _ = step(codes, mask, feats, present if present is not None else torch.zeros(batch, dtype=torch.bool))
        res.total(LossWeights())
    return total


def training_memory(cfg: TrainConfig, gpus: int = 8, gpu_memory_gb: float = 80.0) -> dict[str, Any]:
    """Per-GPU memory (GB) of `cfg` with FSDP over `gpus` (1: no sharding)."""
    mc = planning_config(cfg)
    model = build_model(mc, init=False)
    keep = trainable_names(model, cfg.mode)
    n_train = sum(p.numel() for n, p in model.named_parameters() if n in keep)
    n_frozen = sum(p.numel() for n, p in model.named_parameters() if n not in keep)
    shard = max(1, gpus)
    micro = max(1, cfg.batch_size // (gpus * cfg.grad_accum))
    frames = cfg.data.max_frames
    params = (n_frozen * 2 + n_train * 4) / shard  # frozen bf16, trainable fp32 masters
    grads = n_train * 4 / shard
    optim = n_train * 8 / shard  # AdamW exp_avg + exp_avg_sq, fp32
    ckpt = cfg.model.activation_checkpointing
    acts = measure_activations(cfg, micro, frames, ckpt)
    # One layer's own activations (by difference, without checkpointing): with checkpointing, the layer
    # being recomputed in backward holds this much on top of the saved layer inputs.
    full = measure_activations(cfg, micro, frames, False)
    per_temporal = full - measure_activations(cfg, micro, frames, False, (1, 0))
    per_depformer = full - measure_activations(cfg, micro, frames, False, (0, 1))
    recompute = max(per_temporal, per_depformer) if ckpt else 0
    # FSDP gathers one unit's full weights at a time (two with prefetch): the largest layer, in bf16.
    layer = max(sum(p.numel() for p in l.parameters()) for l in model.lm.transformer.layers)
    gathered = 2 * layer * 2 if shard > 1 else 0
    total = params + grads + optim + acts + recompute + gathered
    return {
        "preset": mc.name, "mode": cfg.mode, "gpus": gpus, "micro_batch_per_gpu": micro, "frames": frames,
        "seconds": frames / 12.5, "activation_checkpointing": cfg.model.activation_checkpointing,
        "trainable_params": n_train, "frozen_params": n_frozen,
        "gb": {"parameters": params / GB, "gradients": grads / GB, "optimizer": optim / GB,
               "activations": acts / GB, "recompute_peak": recompute / GB, "fsdp_gathered_layers": gathered / GB,
               "total": total / GB},
        "activations_per_temporal_layer_gb": per_temporal / GB,
        "activations_per_depformer_layer_gb": per_depformer / GB,
        "gpu_memory_gb": gpu_memory_gb, "fits": total / GB < gpu_memory_gb,
    }


def format_table(r: dict[str, Any]) -> str:
    lines = [f"{r['preset']} {r['mode']} training, {r['gpus']} GPU(s), micro-batch {r['micro_batch_per_gpu']} x "
             f"{r['frames']} frames ({r['seconds']:.0f} s) per GPU, activation checkpointing "
             f"{'on' if r['activation_checkpointing'] else 'off'}",
             f"trainable {r['trainable_params']:,} / frozen {r['frozen_params']:,} parameters",
             "| memory per GPU | GB |", "|---|---|"]
    for k, v in r["gb"].items():
        lines.append(f"| {k.replace('_', ' ')} | {v:.2f} |")
    lines.append(f"fits in {r['gpu_memory_gb']:.0f} GB: {'yes' if r['fits'] else 'NO'}")
    return "\n".join(lines)
