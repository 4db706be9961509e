"""Training throughput, adapters vs full, side by side (same model size, same batches, interleaved).

Each step is what the trainer does per micro-batch: forward through `TrainStep` (image projection,
cross-attention, Moshi, loss), backward, AdamW step. Tokens = target tokens (text + Moshi audio) per step.

    python benchmarks/train_throughput.py --preset small --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")

from moshivis.config import preset  # noqa: E402
from moshivis.models.loaders import build_model  # noqa: E402
from moshivis.train.loss import LossWeights  # noqa: E402
from moshivis.train.optim import build_optimizer  # noqa: E402
from moshivis.train.config import OptimSection  # noqa: E402
from moshivis.train.setup import set_trainable  # noqa: E402
from moshivis.train.step import TrainStep  # noqa: E402
from train_memory import random_batch  # noqa: E402  (this folder: run as a script)


def make(preset_name: str, mode: str, device: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(preset(preset_name), device=device).train()
    set_trainable(model, mode)
    step = TrainStep(model, LossWeights())
    named = [(n, p) for n, p in step.named_parameters() if p.requires_grad]
    return step, build_optimizer(named, OptimSection(lr=1e-4)), sum(p.numel() for _, p in named)


def one_step(step: TrainStep, opt, batch, dtype) -> None:
    codes, mask, feats, present = batch
    ctx = torch.autocast(codes.device.type, dtype=dtype) if dtype is not None else torch.autocast("cpu", enabled=False)
    with ctx:
        res, _ = step(codes, mask, feats, present)
        loss = res.total(step.weights)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="small")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    dev = args.device
    dtype = torch.bfloat16 if dev.startswith("cuda") else None
    cfg = preset(args.preset)
    *batch, tokens = random_batch(cfg, args.batch, args.frames, dev)
    runs = {m: make(args.preset, m, dev) for m in ("adapters", "full")}
    times: dict[str, list[float]] = {m: [] for m in runs}
    for i in range(args.steps + args.warmup):
        for m in (list(runs) if i % 2 == 0 else list(reversed(runs))):
            step, opt, _ = runs[m]
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            one_step(step, opt, batch, dtype)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            if i >= args.warmup:
                times[m].append(time.perf_counter() - t0)
    med = {m: statistics.median(v) for m, v in times.items()}
    result = {"preset": args.preset, "device": dev, "threads": torch.get_num_threads(), "batch": args.batch,
              "frames": args.frames, "target_tokens_per_step": tokens,
              **{f"{m}_trainable_params": runs[m][2] for m in runs},
              **{f"{m}_s_per_step": round(med[m], 4) for m in runs},
              **{f"{m}_tokens_per_s": round(tokens / med[m], 1) for m in runs},
              "adapters_speedup_over_full": round(med["full"] / med["adapters"], 3)}
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:>28}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
