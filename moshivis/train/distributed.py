"""Process groups and model wrapping: one CPU process, DDP or FSDP2, all through PyTorch's own tools.

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK; without them the run is a single process. Backends: NCCL
on GPUs, gloo on CPU (the same command runs on a laptop and on a GPU cluster).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..models.moshivis import MoshiVis


@dataclass
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(rank, world, local, device)


def all_reduce_sum(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.enabled:
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def shard_fsdp(train_module: nn.Module, model: MoshiVis, info: DistInfo, mp_dtype: torch.dtype | None) -> None:
    """FSDP2: one unit per temporal and per depformer layer, the adapters in their own units, the rest
    (embeddings, heads, image projection) in the root unit; the frozen SigLIP tower is not sharded.

    The shared cross-attention is called once per layer and once per image (`image_kv`), so its unit keeps
    its gathered weights for the whole forward (reshard_after_forward=False) instead of gathering 33 times.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(info.device.type, (info.world_size,))
    kw: dict = {"mesh": mesh}
    if mp_dtype is not None:
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=mp_dtype, reduce_dtype=torch.float32)
    for layer in list(model.lm.transformer.layers) + list(model.lm.depformer.layers):
        fully_shard(layer, **kw)
    if model.adapters is not None:
        xas = [model.adapters.xa] if not isinstance(model.adapters.xa, nn.ModuleList) else list(model.adapters.xa)
        for xa in xas:
            fully_shard(xa, reshard_after_forward=False, **kw)
            register_fsdp_forward_method(xa, "image_kv")
        for gate in model.adapters.gates:
            if any(True for _ in gate.parameters()):
                fully_shard(gate, reshard_after_forward=not model.adapters.cfg.shared_gate, **kw)
    # The frozen SigLIP tower runs outside the training forward (features are computed, then cached, by
    # the image store), so it stays whole on every rank instead of joining the root unit.
    ignored = set(model.vision.tower.parameters()) if model.vision is not None else set()
    fully_shard(train_module, ignored_params=ignored, **kw)


def wrap(train_module: nn.Module, model: MoshiVis, mode: str, info: DistInfo,
         mp_dtype: torch.dtype | None) -> nn.Module:
    """mode: none | ddp | fsdp (auto: fsdp on GPUs with several processes, ddp on CPU, none alone)."""
    if mode == "auto":
        mode = "none" if not info.enabled else ("fsdp" if info.device.type == "cuda" else "ddp")
    if mode == "none":
        if info.enabled:
            raise ValueError("distributed: none with several processes (use ddp or fsdp)")
        return train_module
    if not info.enabled:
        raise ValueError(f"distributed: {mode} needs several processes (run through torchrun)")
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.device.index] if info.device.type == "cuda" else None
        return DistributedDataParallel(train_module, device_ids=ids)
    if mode == "fsdp":
        shard_fsdp(train_module, model, info, mp_dtype)
        return train_module
    raise ValueError(f"distributed: unknown mode {mode!r}")
