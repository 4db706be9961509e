"""Server load: N concurrent conversations (N = 1, 2, 4, 8) on one model, and batched vs serial steps.

Part 1, through the real server: for each N a fresh `moshivis serve` app with max_sessions = N, N Python
protocol clients (Ogg/Opus, real time, each a spoken question then silence) at once; the server's step
latency percentiles, real-time margin (80 ms / p95 step), and underruns from /metrics.

Part 2, batched vs serial, side by side on the same model and inputs: one batched step of N conversations
vs N steps of one conversation each (what a server that serialises sessions behind a lock does),
interleaved, medians; ratio > 1 means batching is faster.

    python benchmarks/server_load.py [--bundle DIR] [--sessions 1 2 4 8] [--seconds 6] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

os.environ.setdefault("NO_TORCH_COMPILE", "1")

from moshivis.inference.bundle import EMBEDDED_BUNDLE, load_bundle  # noqa: E402
from moshivis.inference.generator import Generator, SamplingConfig  # noqa: E402


def question_audio(seconds: float) -> np.ndarray:
    try:
        from moshivis.audio.tts import make_tts

        a = make_tts("piper:joe").synthesize("What color is the shape?")[0]
    except Exception:  # no TTS: a tone stands in (the load is the same)
        a = 0.3 * np.sin(2 * np.pi * 220 * np.arange(24000) / 24000)
    return np.asarray(a, np.float32)[: int(24000 * seconds)]


def image_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 60, 200)).save(buf, "PNG")
    return buf.getvalue()


async def load_run(bundle, n: int, seconds: float) -> dict:
    import aiohttp
    from aiohttp.test_utils import TestServer

    from moshivis.server.app import make_app
    from moshivis.server.client import chat
    from moshivis.server.config import ServerConfig

    server = TestServer(make_app(bundle, ServerConfig(port=0, max_sessions=n)))
    await server.start_server()
    try:
        url = str(server.make_url("/api/chat"))
        q = question_audio(2.0)
        results = await asyncio.gather(*[chat(url, image_bytes(), q, tail_s=max(0.0, seconds - len(q) / 24000))
                                         for _ in range(n)])
        async with aiohttp.ClientSession() as s:
            async with s.get(str(server.make_url("/metrics"))) as r:
                m = await r.json()
    finally:
        await server.close()
    return {"sessions": n, "step_ms": m["step_ms"], "real_time_margin": m["real_time_margin"],
            "steps": m["steps"], "underruns": m["underruns"], "errors": sum(r.error is not None for r in results),
            "first_text_s_median": statistics.median([r.first_text_s for r in results if r.first_text_s] or [0])}


def batched_vs_serial(bundle, n: int, steps: int = 30) -> dict:
    model = bundle.model
    K = model.cfg.lm.dep_q
    sil = bundle.codec.silence_codes(1)[:K, 0]
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, bundle.codec.cardinality, (n, K, steps), generator=g)
    codes[:, :, : steps // 2] = sil[None, :, None]
    embeds = model.encode_image(torch.zeros(n, 3, model.cfg.vision.image_size, model.cfg.vision.image_size))
    greedy = SamplingConfig(0, 0, 0, 0)
    batched, serial = Generator(model, greedy), [Generator(model, greedy) for _ in range(n)]
    batched.start(n)
    batched.set_image(embeds)
    for i, gen in enumerate(serial):
        gen.start(1)
        gen.set_image(embeds[i:i + 1])
    tb, ts = [], []
    for t in range(steps):
        order = ("b", "s") if t % 2 == 0 else ("s", "b")
        for which in order:
            t0 = time.perf_counter()
            if which == "b":
                batched.step(codes[:, :, t:t + 1])
                tb.append(time.perf_counter() - t0)
            else:
                for i, gen in enumerate(serial):
                    gen.step(codes[i:i + 1, :, t:t + 1])
                ts.append(time.perf_counter() - t0)
    b, s = statistics.median(tb[3:]), statistics.median(ts[3:])
    return {"sessions": n, "batched_ms": round(1000 * b, 2), "serial_ms": round(1000 * s, 2),
            "batched_speedup": round(s / b, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bundle", default=str(EMBEDDED_BUNDLE))
    p.add_argument("--sessions", type=int, nargs="*", default=[1, 2, 4, 8])
    p.add_argument("--seconds", type=float, default=6.0, help="conversation length per client")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    bundle = load_bundle(args.bundle)
    load = [asyncio.run(load_run(bundle, n, args.seconds)) for n in args.sessions]
    with torch.no_grad():
        ratio = [batched_vs_serial(bundle, n) for n in args.sessions]
    out = {"bundle": args.bundle, "threads": torch.get_num_threads(), "load": load, "batched_vs_serial": ratio}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print("| sessions | step p50 ms | p95 ms | p99 ms | real-time margin | underruns | errors |")
        print("|---|---|---|---|---|---|---|")
        for r in load:
            s = r["step_ms"]
            print(f"| {r['sessions']} | {s['p50']} | {s['p95']} | {s['p99']} | {r['real_time_margin']} | "
                  f"{r['underruns']} | {r['errors']} |")
        print("\n| sessions | one batched step ms | serial steps ms | batched speed-up |\n|---|---|---|---|")
        for r in ratio:
            print(f"| {r['sessions']} | {r['batched_ms']} | {r['serial_ms']} | {r['batched_speedup']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
