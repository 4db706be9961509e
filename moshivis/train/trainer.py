"""The one trainer: adapters | full | lora, one CPU process or many GPUs, exact resume.

Per optimizer step every rank takes `grad_accum` micro-batches; the loss of each is normalised by the
target weights of the WHOLE step (all micro-batches, all ranks), so gradients equal those of one big batch
in one process, whatever the world size or accumulation.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from ..data.mixture import MixtureDataset, MixtureLoader
from .checkpoint import (finalize, latest_checkpoint, load_model_weights, rng_state, save_main, save_rank,
                         set_rng_state)
from .config import TrainConfig
from .distributed import DistInfo, all_reduce_sum, init_distributed, wrap
from .hidden_voice import hide_moshi_voice
from .images import ImageFeatureStore
from .lent_images import lend_images
from .loss import target_weight_sums
from .optim import build_optimizer, build_scheduler
from .setup import build_training_model, frozen_to_bf16, loss_weights, trainable_names
from .step import TrainStep
from .user_dropout import drop_user_frames


class NonFiniteLoss(RuntimeError):
    pass


@dataclass
class StepMetrics:
    step: int
    loss: float
    text_loss: float
    audio_loss: float
    lr: float
    grad_norm: float
    tokens: int
    tokens_per_s: float
    loss_by_kind: dict[str, float]
    gate_related: float | None
    gate_unrelated: float | None


def _related_mask(batch: dict[str, Any], T: int) -> torch.Tensor:
    """[B, T] True on frames of a dialogue about the image (samples carry `unrelated_spans` in meta,
    frame ranges of concatenated off-topic dialogue, in the sample's own frame numbering)."""
    B = len(batch["ids"])
    mask = torch.ones(B, T, dtype=torch.bool)
    for i, meta in enumerate(batch["meta"]):
        off = int(batch["offsets"][i])
        for start, end in (meta or {}).get("unrelated_spans", []):
            mask[i, max(0, start - off):max(0, end - off)] = False
    return mask


class Trainer:
    def __init__(self, cfg: TrainConfig, info: DistInfo | None = None) -> None:
        self.info = info or init_distributed()
        cfg.validate(self.info.world_size)
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        torch.manual_seed(cfg.seed)
        self.model = build_training_model(cfg, self.info.device)
        self.trainable = trainable_names(self.model, cfg.mode)
        use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and self.info.device.type == "cuda")
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None
        if use_bf16 and cfg.mode != "full":
            frozen_to_bf16(self.model, self.trainable)
        self.weights = loss_weights(cfg.optim)
        self.step_module = TrainStep(self.model, self.weights)
        self.wrapped = wrap(self.step_module, self.model, cfg.distributed, self.info,
                            torch.bfloat16 if use_bf16 and cfg.distributed == "fsdp" else None)
        named = [(n, p) for n, p in self.step_module.named_parameters() if p.requires_grad]
        self.optimizer = build_optimizer(named, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.steps)
        img = cfg.data.image_samples
        weights = {"image_speech": img * cfg.data.p_audio, "speechless": img * (1.0 - cfg.data.p_audio),
                   "audio_only": cfg.data.audio_only, "text_only": cfg.data.text_only}
        self.dataset = MixtureDataset(cfg.data.shards, {k: v for k, v in weights.items() if v > 0},
                                      seed=cfg.seed, rank=self.info.rank, world_size=self.info.world_size,
                                      drop_last=True, infinite=True, load_images=False,
                                      bucket_window=cfg.data.bucket_window)
        self.loader = MixtureLoader(self.dataset, cfg.per_rank_micro_batch(self.info.world_size),
                                    cfg.data.max_frames, num_workers=cfg.data.num_workers, crop=cfg.data.crop,
                                    crop_seed=cfg.seed, pad_to_max=cfg.data.pad_to_max,
                                    text_lead=cfg.data.text_lead)
        self.images = (ImageFeatureStore(self.model, cfg.data.image_root, cfg.data.image_cache)
                       if self.model.vision is not None else None)
        self.step = 0
        self.history: list[StepMetrics] = []

    # ------------------------------------------------------------------------------------------ state
    @property
    def saved_names(self) -> set[str]:
        """`full` saves the whole model (a complete checkpoint `load_model` reads); other modes save what
        trains (adapters: an adapter-only file for `load_adapters`)."""
        if self.cfg.mode == "full":
            return set(self.model.state_dict())
        return self.trainable

    def _saved_state(self) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.wrapped, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        keep = self.saved_names
        return {k.removeprefix("model."): v.float() for k, v in full.items() if k.removeprefix("model.") in keep}

    def save(self) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = self._saved_state()
        optim_state = get_optimizer_state_dict(self.wrapped, self.optimizer, options=opts)
        if self.info.is_main:
            content = {"adapters": "adapters", "full": "full"}.get(self.cfg.mode, "trainable")
            save_main(self.out, self.step, self.model, weights, content, {"step": self.step, "optimizer": optim_state,
                                         "scheduler": self.scheduler.state_dict(), "config": self.cfg.to_dict()})
        self._barrier()
        save_rank(self.out, self.step, self.info.rank, {"data": self.loader.state_dict(), "rng": rng_state()})
        self._barrier()
        if self.info.is_main:
            finalize(self.out, self.step, self.cfg.keep_checkpoints)
        self._barrier()

    def resume(self) -> bool:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        folder = latest_checkpoint(self.out)
        if folder is None:
            return False
        weights = load_model_weights(folder, self.model, self.saved_names)
        trainer_state = torch.load(folder / "trainer.pt", weights_only=False)
        opts = StateDictOptions(full_state_dict=True, strict=False)
        set_state_dict(self.wrapped, self.optimizer,
                       model_state_dict={"model." + k: v for k, v in weights.items()},
                       optim_state_dict=trainer_state["optimizer"], options=opts)
        self.scheduler.load_state_dict(trainer_state["scheduler"])
        # The scheduler's state does not touch the optimizer until its next step: restore the lr now.
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
            group["lr"] = lr
        rank_state = torch.load(folder / f"rank{self.info.rank}.pt", weights_only=False)
        self.loader.load_state_dict(rank_state["data"])
        set_rng_state(rank_state["rng"])
        self.step = int(trainer_state["step"])
        return True

    def _barrier(self) -> None:
        if self.info.enabled:
            dist.barrier()

    # ------------------------------------------------------------------------------------------ loop
    def _micro_batches(self, it) -> list[dict[str, Any]]:
        return [next(it) for _ in range(self.cfg.grad_accum)]

    def _check_tokens(self, batch: dict[str, Any]) -> None:
        """Token ids the model has no embedding for (data made with another tokenizer or codec) fail with
        the sample named, not as an index error deep inside an embedding."""
        lm = self.model.cfg.lm
        codes = batch["codes"]
        for stream, card, what in ((slice(0, 1), lm.text_card, "text"), (slice(1, None), lm.audio_card, "audio")):
            part = codes[:, stream]
            bad = (part >= card).flatten(1).any(1) | (part < -1).flatten(1).any(1)
            if bad.any():
                i = int(bad.nonzero()[0])
                raise ValueError(f"sample {batch['ids'][i]}: {what} token ids in [{int(part[i].min())}, "
                                 f"{int(part[i].max())}] outside the model's range [-1, {card - 1}] "
                                 f"(preset {self.model.cfg.name}: tokenizer or codec of the data do not match)")

    def train_step(self, batches: list[dict[str, Any]]) -> StepMetrics:
        t0 = time.perf_counter()
        for b in batches:
            self._check_tokens(b)
        dev = self.info.device
        sums = torch.zeros(2)
        for b in batches:
            tw, aw = target_weight_sums(b["codes"], b["loss_mask"], self.model.cfg.lm.delays, self.weights)
            sums += torch.stack([tw, aw])
        sums = all_reduce_sum(sums.to(dev), self.info)
        text_norm, audio_norm = sums[0], sums[1]
        scale = self.info.world_size  # DDP / FSDP average gradients over ranks; we want their sum
        totals = torch.zeros(3, device=dev)  # loss, text part, audio part (global after the reduce)
        kind_loss: dict[str, list[float]] = {}
        gate_rel, gate_unrel = torch.zeros(2, device=dev), torch.zeros(2, device=dev)
        tokens = 0
        for i, b in enumerate(batches):
            codes, mask = b["codes"].to(dev), b["loss_mask"].to(dev)
            # drop_images: image dialogues train a blind model (a base learning their language and priors).
            use_images = self.images is not None and not self.cfg.data.drop_images
            if use_images:
                b = lend_images(b, self.cfg.data.lend_images, self.cfg.seed, self.step)
            feats, present = self.images.batch(b["images"]) if use_images else (None, None)
            present = torch.zeros(codes.shape[0], dtype=torch.bool) if present is None else present
            feats = feats.to(dev) if feats is not None else None
            sync = i == len(batches) - 1
            no_sync = (self.wrapped.no_sync() if hasattr(self.wrapped, "no_sync") and not sync
                       else contextlib.nullcontext())
            if hasattr(self.wrapped, "set_requires_gradient_sync"):  # FSDP2
                self.wrapped.set_requires_gradient_sync(sync)
            autocast = (torch.autocast(dev.type, dtype=self.autocast_dtype) if self.autocast_dtype is not None
                        else contextlib.nullcontext())
            with no_sync, autocast:
                inputs = hide_moshi_voice(codes, b["kinds"], b["ids"], self.cfg.data.hide_moshi_audio,
                                          self.cfg.seed, self.step)
                inputs = drop_user_frames(codes, inputs, b["kinds"], b["ids"], self.cfg.data.user_frame_dropout,
                                          self.cfg.seed, self.step)
                res, gates = self.wrapped(codes, mask, feats, present.to(dev), inputs)
                loss = res.total(self.weights, text_norm, audio_norm)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite loss {loss.item()} at step {self.step + 1}, micro-batch {i}, "
                                    f"samples {b['ids']}")
            # A micro-batch with no image still has a graph in adapters mode: TrainStep ties the unused
            # adapters in with weight 0, so every rank runs the same backward (length buckets make such
            # batches: the p_audio 0 ablation crashed at step 21 in stop 11 before this).
            (loss * scale).backward()
            totals += torch.stack([loss.detach(), self.weights.text * res.text_sum.detach() / text_norm,
                                   self.weights.audio * res.audio_sum.detach() / audio_norm])
            tokens += int(mask[:, :9].sum())
            for kind, lt, la in zip(b["kinds"], res.per_sample_text.tolist(), res.per_sample_audio.tolist()):
                vals = [v for v in (lt, la) if not math.isnan(v)]
                if vals:
                    kind_loss.setdefault(kind, []).append(sum(vals) / len(vals))
            if gates is not None:
                rel = _related_mask(b, gates.shape[1]).to(dev) & present.to(dev)[:, None]
                unrel = ~_related_mask(b, gates.shape[1]).to(dev) & present.to(dev)[:, None]
                g = gates.detach().float().mean(-1)
                gate_rel += torch.stack([(g * rel).sum(), rel.sum()])
                gate_unrel += torch.stack([(g * unrel).sum(), unrel.sum()])
        params = [p for p in self.step_module.parameters() if p.requires_grad]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        totals = all_reduce_sum(totals, self.info)
        gate_rel, gate_unrel = all_reduce_sum(gate_rel, self.info), all_reduce_sum(gate_unrel, self.info)
        tok = int(all_reduce_sum(torch.tensor([tokens], device=dev), self.info)[0])
        dt = time.perf_counter() - t0
        return StepMetrics(
            step=self.step, loss=float(totals[0]), text_loss=float(totals[1]), audio_loss=float(totals[2]),
            lr=lr, grad_norm=float(grad_norm), tokens=tok, tokens_per_s=tok / dt,
            loss_by_kind={k: sum(v) / len(v) for k, v in kind_loss.items()},
            gate_related=float(gate_rel[0] / gate_rel[1]) if gate_rel[1] > 0 else None,
            gate_unrelated=float(gate_unrel[0] / gate_unrel[1]) if gate_unrel[1] > 0 else None)

    def run(self, resume: bool = False, show_progress: bool = True, stop_at: int | None = None
            ) -> list[StepMetrics]:
        """Train until `cfg.steps` (or until step `stop_at`, leaving the schedule as configured: a
        time-boxed chunk of a longer run, continued later with resume=True)."""
        if resume:
            self.resume()
        main = self.info.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
        writer = None
        if main and self.cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(self.out / "tb"))
        metrics_file = (self.out / "metrics.jsonl").open("a") if main else None
        bar = tqdm(total=self.cfg.steps, initial=self.step, disable=not (main and show_progress), desc="train",
                   dynamic_ncols=True)
        it = iter(self.loader)
        try:
            end = self.cfg.steps if stop_at is None else min(stop_at, self.cfg.steps)
            while self.step < end:
                m = self.train_step(self._micro_batches(it))
                self.history.append(m)
                if main:
                    bar.update(1)
                    bar.set_postfix(loss=f"{m.loss:.4f}", tok_s=f"{m.tokens_per_s:.0f}")
                    metrics_file.write(json.dumps(m.__dict__) + "\n")
                    metrics_file.flush()
                    if writer is not None and (m.step % self.cfg.log_every == 0 or m.step == 1):
                        for k in ("loss", "text_loss", "audio_loss", "lr", "grad_norm", "tokens_per_s"):
                            writer.add_scalar(f"train/{k}", getattr(m, k), m.step)
                        for k, v in m.loss_by_kind.items():
                            writer.add_scalar(f"loss_by_kind/{k}", v, m.step)
                        if m.gate_related is not None:
                            writer.add_scalar("gates/related", m.gate_related, m.step)
                        if m.gate_unrelated is not None:
                            writer.add_scalar("gates/unrelated", m.gate_unrelated, m.step)
                if self.step % self.cfg.save_every == 0 or self.step == end:
                    self.save()
        finally:
            bar.close()
            if metrics_file is not None:
                metrics_file.close()
            if writer is not None:
                writer.close()
        if main and (self.out / "metrics.jsonl").exists():
            from .plots import plot_metrics
            plot_metrics(self.out / "metrics.jsonl", self.out / "loss.png")
        return self.history
