"""Offline streaming run: one conversation with random user audio codes, timed per step."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from ..models.moshivis import MoshiVis
from ..models.vision import preprocess_images
from .cuda_graph import make_generator
from .generator import SamplingConfig


def run_streaming(model: MoshiVis, steps: int = 50, image: str | Path | None = None, seed: int = 0,
                  text_temperature: float = 0.7, audio_temperature: float = 0.8,
                  xa_start: int | None = None) -> dict[str, object]:
    """Stream `steps` frames (user audio = random codes, as no codec is attached here) about an image and
    report the tokens produced, gate strength per step and milliseconds per step."""
    cfg = model.cfg
    g = torch.Generator().manual_seed(seed)
    if model.vision is not None:
        size = cfg.vision.image_size
        pixels = (preprocess_images(image, size) if image is not None
                  else torch.rand(1, 3, size, size, generator=g) * 2 - 1)
        t0 = time.perf_counter()
        with torch.no_grad():
            embeds = model.encode_image(pixels.to(model.lm.device))
        image_ms = (time.perf_counter() - t0) * 1000
    else:
        embeds, image_ms = None, 0.0
    user = torch.randint(0, cfg.lm.audio_card, (1, 8, steps), generator=g).to(model.lm.device)
    gen = make_generator(model, SamplingConfig(text_temperature, 25, audio_temperature, 250), xa_start=xa_start,
                         seed=seed)
    text, audio, gates, step_ms = [], [], [], []
    with gen.streaming(1):
        if embeds is not None:
            gen.set_image(embeds)
        for t in range(steps):
            t0 = time.perf_counter()
            out = gen.step(user[:, :, t:t + 1])
            step_ms.append((time.perf_counter() - t0) * 1000)
            gates.append(round(float(gen.gate_weight()[0]), 4))
            if out is not None:
                text.append(int(out[0, 0, 0]))
                audio.append([int(x) for x in out[0, 1:, 0]])
    median = statistics.median(step_ms)
    summary = (f"preset {cfg.name}: {steps} steps, {len(text)} frames out\n"
               f"text tokens: {text}\n"
               f"audio codebook 0: {[a[0] for a in audio]}\n"
               f"mean gate: {statistics.fmean(gates):.3f}; image encoding {image_ms:.1f} ms\n"
               f"median {median:.2f} ms per 80 ms step ({80 / median:.1f}x real time)")
    return {"preset": cfg.name, "steps": steps, "text_tokens": text, "audio_tokens": audio, "gates": gates,
            "image_ms": image_ms, "step_ms_median": median, "realtime_factor": 80 / median, "summary": summary}
