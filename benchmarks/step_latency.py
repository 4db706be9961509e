"""Per-step latency of streaming generation with and without an image, measured side by side.

Both generators run in the same process on the same model, interleaved step by step (A, B, A, B, ...), so
machine noise hits both alike; the figure that matters is the ratio. Prints JSON.

    python benchmarks/step_latency.py --preset small --json
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
from moshivis.inference.generator import Generator, SamplingConfig  # noqa: E402
from moshivis.models.loaders import build_model  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(preset_name: str, steps: int, warmup: int, device: str, dtype: str, batch: int) -> dict[str, object]:
    torch.manual_seed(0)
    cfg = preset(preset_name)
    model = build_model(cfg, device=device, dtype=getattr(torch, dtype)).eval()
    n_tokens = cfg.vision.num_tokens
    # The image cost per step is the cross-attention over N image tokens; the SigLIP tower runs once per
    # image (timed separately below), so random image tokens stand in for an encoded picture.
    embeds = torch.randn(batch, n_tokens, cfg.lm.temporal.dim, device=device, dtype=getattr(torch, dtype))
    t0 = time.perf_counter()
    with torch.no_grad():
        pixels = torch.rand(1, 3, cfg.vision.image_size, cfg.vision.image_size, device=device) * 2 - 1
        model.encode_image(pixels)
    _sync(device)
    encode_ms = (time.perf_counter() - t0) * 1000

    greedy = SamplingConfig(0, 0, 0, 0)
    gens = {"no_image": Generator(model, greedy), "image": Generator(model, greedy)}
    for g in gens.values():
        g.start(batch)
    gens["image"].set_image(embeds)
    user = torch.randint(0, cfg.lm.audio_card, (batch, 8, steps + warmup), device=device)
    times: dict[str, list[float]] = {k: [] for k in gens}
    for t in range(steps + warmup):
        order = list(gens) if t % 2 == 0 else list(reversed(gens))  # alternate who goes first
        for name in order:
            _sync(device)
            t0 = time.perf_counter()
            gens[name].step(user[:, :, t:t + 1])
            _sync(device)
            if t >= warmup:
                times[name].append((time.perf_counter() - t0) * 1000)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "preset": preset_name, "device": device, "dtype": dtype, "batch": batch, "steps": steps,
        "threads": torch.get_num_threads(), "image_tokens": n_tokens,
        "median_ms_no_image": round(med["no_image"], 3), "median_ms_image": round(med["image"], 3),
        "p90_ms_no_image": round(statistics.quantiles(times["no_image"], n=10)[-1], 3),
        "p90_ms_image": round(statistics.quantiles(times["image"], n=10)[-1], 3),
        "image_over_no_image": round(med["image"] / med["no_image"], 4),
        "image_overhead_percent": round(100 * (med["image"] / med["no_image"] - 1), 2),
        "image_encode_ms_once": round(encode_ms, 1),
        "realtime_budget_ms": 80,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, float32 on CPU")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    result = measure(args.preset, args.steps, args.warmup, args.device, dtype, args.batch)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
