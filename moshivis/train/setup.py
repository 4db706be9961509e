"""Build the model a run trains and decide which parameters learn (`adapters`, `full`, `lora`)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..config import ModelConfig, preset
from ..models.centroid_input import attach_centroid_input, standardize_centroids
from ..models.loaders import build_model, checkpoint_config, load_model
from ..models.moshivis import MoshiVis
from .config import OptimSection, TrainConfig
from .loss import LossWeights
from .lora import attach_lora


def model_config(cfg: TrainConfig) -> ModelConfig:
    """The preset, or the config stored in a checkpoint of our format (it wins: a checkpoint made by an
    earlier stage may have other vocabulary sizes than the preset), with adapter overrides applied."""
    mc = (checkpoint_config(cfg.model.checkpoint) if cfg.model.checkpoint else None) or preset(cfg.model.preset)
    if cfg.model.adapters:
        if mc.adapters is None:
            raise ValueError(f"model.adapters: preset {cfg.model.preset} has no adapters to override")
        try:
            mc.adapters = dataclasses.replace(mc.adapters, **cfg.model.adapters)
        except TypeError as e:
            raise ValueError(f"model.adapters: {e}") from None
    return mc


def build_training_model(cfg: TrainConfig, device: torch.device | str = "cpu") -> MoshiVis:
    """The model before any wrapping, in float32 (mixed precision is applied by the trainer)."""
    mc = model_config(cfg)
    torch.manual_seed(cfg.seed)  # fresh adapters (and random bases) are the same on every rank and run
    if cfg.model.checkpoint:
        model = load_model(cfg.model.checkpoint, mc, device=device, dtype=torch.float32,
                           fresh_adapters=cfg.model.fresh_adapters)
    else:
        model = build_model(mc, device=device)
    if cfg.model.centroid_codec:
        add_centroid_input(model, cfg.model.centroid_codec)
    model.lm.transformer.checkpointing = cfg.model.activation_checkpointing
    model.lm.depformer.checkpointing = cfg.model.activation_checkpointing
    if cfg.mode == "lora":
        attach_lora(model, cfg.model.lora_rank)
    set_trainable(model, cfg.mode)
    return model


def add_centroid_input(model: MoshiVis, codec_dir: str) -> None:
    """Attach the centroid input of codec `codec_dir` (`model.centroid_codec`), or check that the one the
    checkpoint already has holds that codec's centroids (a run resumed or continued from such a model)."""
    from ..audio.tiny.codec import read_semantic_centroids  # the tiny codec is only needed for this option

    centroids = read_semantic_centroids(codec_dir)
    have = model.lm.centroid_input
    if have is None:
        attach_centroid_input(model, centroids)
        return
    want = standardize_centroids(centroids)
    if tuple(have.centroids.shape) != tuple(want.shape) or not torch.allclose(have.centroids.float(), want,
                                                                              atol=1e-2):
        raise ValueError(f"model.centroid_codec={codec_dir}: the checkpoint's centroid input holds other centroids "
                         f"({tuple(have.centroids.shape)}) than this codec's ({tuple(want.shape)})")


def trainable_names(model: MoshiVis, mode: str) -> set[str]:
    """Names of the parameters that learn in `mode`. The SigLIP tower never trains (frozen, as in the
    paper); `full` trains the LM and the adapters; `lora` the low-rank updates and the adapters."""
    adapters = {n for n, _ in model.adapter_parameters()}
    names = {n for n, _ in model.named_parameters()}
    if mode == "adapters":
        return adapters
    if mode == "full":
        return {n for n in names if n.startswith("lm.")} | adapters
    if mode == "lora":
        return {n for n in names if n.startswith("lora.")} | adapters
    raise ValueError(f"mode: unknown {mode!r}")


def set_trainable(model: MoshiVis, mode: str) -> list[nn.Parameter]:
    keep = trainable_names(model, mode)
    params = []
    for n, p in model.named_parameters():
        p.requires_grad_(n in keep)
        if n in keep:
            params.append(p)
    return params


def frozen_to_bf16(model: MoshiVis, trainable: set[str]) -> None:
    """Frozen weights are only read: keep them in bf16 (half the memory); trainable ones stay fp32 masters.
    Used by the trainer under bf16 mixed precision and by `benchmarks/train_memory.py`."""
    for n, p in model.named_parameters():
        if n not in trainable:
            p.data = p.data.to(torch.bfloat16)


def loss_weights(optim: OptimSection) -> LossWeights:
    """The loss weights a training config asks for (the trainer's and the benchmarks' one source)."""
    key_after, key_ids = (optim.key_tokens[0], tuple(optim.key_tokens[1:])) if optim.key_tokens else (-1, ())
    return LossWeights(audio=optim.audio_weight, text_padding=optim.text_padding_weight,
                       semantic=optim.semantic_weight, key=optim.key_weight, key_after=key_after, key_ids=key_ids)
