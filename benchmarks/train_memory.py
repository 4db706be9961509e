"""Real training memory and speed on one GPU, next to what `moshivis train --dry-run` predicts.

Builds the config's model with random weights (no download: the base checkpoint is not read), keeps the
frozen weights in bf16 and the trainable ones in fp32 as the trainer does, and runs real training steps
(forward under bf16 autocast, backward, gradient clipping, AdamW) on random tokens at the given micro-batch
and length. Measured: the allocator's peak over the steps, the resident memory after a step (weights +
optimizer states), seconds per step and target tokens per second. Predicted: `training_memory(cfg, gpus=1)`
at the same micro-batch, so the two can be read side by side. Prints JSON.

    python benchmarks/train_memory.py configs/moshika-vis-7b-adapters.yaml --micro-batch 8 --checkpointing on

On CPU it runs too (for the test on the tiny preset); memory is then not measured (null).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time

import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")

from moshivis.train.config import load_config  # noqa: E402
from moshivis.train.memory import GB, training_memory  # noqa: E402
from moshivis.train.optim import build_optimizer  # noqa: E402
from moshivis.train.setup import build_training_model, frozen_to_bf16, loss_weights, trainable_names  # noqa: E402
from moshivis.train.step import TrainStep  # noqa: E402


def random_batch(mc, batch: int, frames: int, device: str, seed: int = 0):
    """Codes [B, 17, T] (text ids in stream 0), loss mask on Moshi's 9 streams, image features [B, N, C]."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, mc.lm.audio_card, (batch, mc.lm.num_streams, frames), generator=g)
    codes[:, 0] = torch.randint(0, mc.lm.text_card, (batch, frames), generator=g)
    mask = torch.zeros_like(codes, dtype=torch.bool)
    mask[:, :9] = True
    feats = torch.randn(batch, mc.vision.num_tokens, mc.vision.hidden_size, generator=g)
    present = torch.ones(batch, dtype=torch.bool)
    return codes.to(device), mask.to(device), feats.to(device), present.to(device), int(mask[:, :9].sum())


def peak_breakdown(snapshot: dict, top: int = 12) -> list[dict[str, object]]:
    """Replay the allocator trace of `torch.cuda.memory._snapshot()` and return the allocations alive at the
    highest point, grouped by the innermost moshivis source line that made them (GB, largest first).
    Only what was allocated while recording counts (the weights, made before, are the baseline)."""
    events = snapshot["device_traces"][0]

    def replay(stop: int) -> tuple[dict[int, tuple[int, str]], int, int]:
        live: dict[int, tuple[int, str]] = {}
        total = best = best_i = 0
        for i, ev in enumerate(events[:stop]):
            if ev["action"] == "alloc":
                frames = ev.get("frames") or []
                ours = [f for f in frames if "moshivis" in f["filename"] or "benchmarks" in f["filename"]]
                f = (ours or frames or [{"filename": "?", "line": 0, "name": "?"}])[0]
                live[ev["addr"]] = (ev["size"], f"{f['filename'].split('moshivis/')[-1]}:{f['line']} {f['name']}")
                total += ev["size"]
                if total > best:
                    best, best_i = total, i + 1
            elif ev["action"] in ("free_requested", "free_completed") and ev["addr"] in live:
                total -= live.pop(ev["addr"])[0]
        return live, best, best_i

    _, best, best_i = replay(len(events))  # where the peak is; then the state right there (no copies)
    at_best = replay(best_i)[0]
    groups: dict[str, list[int]] = {}
    for size, where in at_best.values():
        g = groups.setdefault(where, [0, 0])
        g[0] += size
        g[1] += 1
    rows = sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]
    return [{"where": w, "gb": round(b / GB, 3), "tensors": n} for w, (b, n) in rows] + \
        [{"where": "TOTAL above the baseline", "gb": round(best / GB, 3), "tensors": len(at_best)}]


def measure(config: str | None, overrides: list[str], micro_batch: int, frames: int, checkpointing: bool,
            steps: int, device: str, explain: bool = False) -> dict[str, object]:
    cfg = load_config(config, [*overrides, f"batch_size={micro_batch}", "grad_accum=1",
                               f"data.max_frames={frames}",
                               f"model.activation_checkpointing={str(checkpointing).lower()}"])
    predicted = training_memory(cfg, gpus=1)
    cuda = device.startswith("cuda")
    # Random weights of the same shapes: the base checkpoint is not needed to measure memory and speed.
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, checkpoint=None))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    model = build_training_model(cfg, device)
    trainable = trainable_names(model, cfg.mode)
    if cuda and cfg.mode != "full":
        frozen_to_bf16(model, trainable)
    weights = loss_weights(cfg.optim)  # as the trainer weighs the loss
    step = TrainStep(model, weights)
    named = [(n, p) for n, p in step.named_parameters() if p.requires_grad]
    opt = build_optimizer(named, cfg.optim)
    codes, mask, feats, present, tokens = random_batch(model.cfg, micro_batch, frames, device)
    if cuda:
        torch.cuda.synchronize()
        weights_bytes = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    losses: list[float] = []
    for i in range(steps):
        if cuda and explain and i == steps - 1:  # trace the last step's allocations (slow: not timed)
            torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
        with ctx:
            res, _ = step(codes, mask, feats, present)
            loss = res.total(weights)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], cfg.optim.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if cuda:
            torch.cuda.synchronize()
        if (i > 0 or steps == 1) and not (explain and i == steps - 1):  # step 0 allocates AdamW states
            times.append(time.perf_counter() - t0)
    breakdown = None
    if cuda and explain:
        breakdown = peak_breakdown(torch.cuda.memory._snapshot())
        torch.cuda.memory._record_memory_history(enabled=None)
    sec = statistics.median(times)
    out: dict[str, object] = {
        "config": config, "preset": predicted["preset"], "mode": cfg.mode, "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
        "micro_batch": micro_batch, "frames": frames, "seconds_of_audio": frames / 12.5,
        "activation_checkpointing": checkpointing, "steps": steps,
        "trainable_params": predicted["trainable_params"], "frozen_params": predicted["frozen_params"],
        "s_per_step": round(sec, 4), "target_tokens_per_step": tokens, "target_tokens_per_s": round(tokens / sec, 1),
        "losses": [round(x, 4) for x in losses],
        "predicted_gb": {k: round(v, 3) for k, v in predicted["gb"].items()},
        "measured_gb": None,
    }
    if cuda:
        peak = torch.cuda.max_memory_allocated()
        resident = torch.cuda.memory_allocated()
        out["measured_gb"] = {
            "weights_after_build": round(weights_bytes / GB, 3),
            "resident_after_step": round(resident / GB, 3),  # weights + AdamW states (grads freed)
            "peak": round(peak / GB, 3),
            "reserved_peak": round(torch.cuda.max_memory_reserved() / GB, 3),
        }
        out["peak_over_predicted_total"] = round(peak / GB / predicted["gb"]["total"], 3)
        out["peak_breakdown_last_step"] = breakdown
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("config", nargs="?", default=None, help="training YAML (default: the defaults + overrides)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=375, help="frames per sample (12.5 per second)")
    p.add_argument("--checkpointing", choices=["on", "off"], default="on")
    p.add_argument("--steps", type=int, default=3, help="training steps; the first is not timed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--explain-peak", action="store_true",
                   help="GPU: trace the last step and list what is alive at its peak, by source line")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    config = args.config
    overrides = list(args.overrides)
    if config is not None and "=" in config and not os.path.isfile(config):
        config, overrides = None, [config, *overrides]
    r = measure(config, overrides, args.micro_batch, args.frames, args.checkpointing == "on", args.steps,
                args.device, args.explain_peak)
    print(json.dumps(r, indent=2) if args.json else "\n".join(f"{k:>26}: {v}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
