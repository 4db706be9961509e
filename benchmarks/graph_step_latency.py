"""Per-step latency on a GPU: eager `Generator` vs `GraphGenerator` (CUDA graph replay), side by side.

Four generators share one model (eager / graph, each with and without an image) and run interleaved step
by step in one process, rotating who goes first, so machine noise hits all alike. Greedy decoding on the
same user codes; besides the medians it reports how often the graphed run picked the same tokens as the
eager one (random bf16 weights: after the first differing token the two conversations diverge, so
`first_text_divergence` says more than the agreement share). Needs CUDA. Prints JSON.

    python benchmarks/graph_step_latency.py --preset moshika-vis-7b --steps 100 --warmup 10
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
from moshivis.inference.cuda_graph import GraphGenerator  # noqa: E402
from moshivis.inference.generator import Generator, SamplingConfig  # noqa: E402
from moshivis.models.loaders import build_model  # noqa: E402


def measure(preset_name: str, steps: int, warmup: int, dtype: str, batch: int) -> dict[str, object]:
    torch.manual_seed(0)
    cfg = preset(preset_name)
    dev = "cuda"
    model = build_model(cfg, device=dev, dtype=getattr(torch, dtype)).eval()
    embeds = torch.randn(batch, cfg.vision.num_tokens, cfg.lm.temporal.dim, device=dev, dtype=getattr(torch, dtype))
    greedy = SamplingConfig(0, 0, 0, 0)
    gens: dict[str, Generator] = {
        "eager_no_image": Generator(model, greedy), "eager_image": Generator(model, greedy),
        "graph_no_image": GraphGenerator(model, greedy), "graph_image": GraphGenerator(model, greedy),
    }
    for name, g in gens.items():
        g.start(batch)
        if name.endswith("_image") and not name.endswith("no_image"):
            g.set_image(embeds)
    user = torch.randint(0, cfg.lm.audio_card, (batch, 8, steps + warmup), device=dev)
    times: dict[str, list[float]] = {k: [] for k in gens}
    tokens: dict[str, list[torch.Tensor]] = {k: [] for k in gens}
    names = list(gens)
    for t in range(steps + warmup):
        order = names[t % len(names):] + names[:t % len(names)]
        for name in order:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gens[name].step(user[:, :, t:t + 1])
            torch.cuda.synchronize()
            if t >= warmup:
                times[name].append((time.perf_counter() - t0) * 1000)
            last = gens[name].last
            tokens[name].append(torch.cat([last.text_token[:, None], last.audio_tokens], 1).cpu())
    med = {k: statistics.median(v) for k, v in times.items()}
    out: dict[str, object] = {
        "preset": preset_name, "device": torch.cuda.get_device_name(), "torch": torch.__version__,
        "dtype": dtype, "batch": batch, "steps": steps, "warmup": warmup,
        "image_tokens": cfg.vision.num_tokens, "realtime_budget_ms": 80,
        "captures": {k: getattr(g, "captures", 0) for k, g in gens.items()},
    }
    for k in gens:
        out[f"median_ms_{k}"] = round(med[k], 3)
        out[f"p90_ms_{k}"] = round(statistics.quantiles(times[k], n=10)[-1], 3)
    for cond in ("no_image", "image"):
        out[f"speedup_{cond}"] = round(med[f"eager_{cond}"] / med[f"graph_{cond}"], 2)
        a = torch.stack(tokens[f"eager_{cond}"], -1)  # [B, 9, T]
        b = torch.stack(tokens[f"graph_{cond}"], -1)
        same_text = (a[:, 0] == b[:, 0])
        out[f"text_token_agreement_{cond}"] = round(same_text.float().mean().item(), 4)
        out[f"audio_token_agreement_{cond}"] = round((a[:, 1:] == b[:, 1:]).float().mean().item(), 4)
        diff = (~same_text).any(0).nonzero()
        out[f"first_text_divergence_{cond}"] = int(diff[0]) if diff.numel() else None
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preset", default="small")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="bfloat16")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "CUDA graphs need a CUDA device"}))
        return 0
    print(json.dumps(measure(args.preset, args.steps, args.warmup, args.dtype, args.batch), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
