"""The tiny codec's training recipe: synthesise sentences in many voices, then fit k-means codebooks.

    python -m moshivis.audio.tiny.train --out tinyworld/codec            # the shipped artefacts
    python -m moshivis.audio.tiny.train --out /tmp/c --sentences 40 --minutes 1 --semantic-k 16 --acoustic-k 16

Steps (one process; torch and CTranslate2 on `threads` threads, TTS engines in `workers` threads):
1. `n_sentences` training sentences (`sentences`, train side only), each in a random training voice
   (`voices.draw_voice`: piper joe / flite / eSpeak with rate, pitch and resampling perturbation; the
   held-out family never), with random leading silence (also a random sub-frame alignment).
2. Semantic: causal Whisper windows (as the codec computes them) on the first `semantic_utterances`
   utterances, k-means K = `semantic_k`.
3. Acoustic: stacked log-mel vectors with the frame grid shifted by `shifts` random offsets of 0-7
   feature hops (augmentation: the codec must not depend on where frame boundaries fall), subsampled to
   `max_vectors`, PCA, 7 RVQ stages of k-means K = `acoustic_k`, sharing what is left of `minutes_budget`.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..tts import SAMPLE_RATE, make_tts
from .acoustic import quantizer_mse, train_acoustic
from .codec import TinyCodec, TinyCodecConfig
from .features import FRAMES_PER_CODEC_FRAME, acoustic_logmel, pad_to_frames, stack_frames, whisper_log10mel
from .kmeans import kmeans
from .semantic import WhisperEncoder, causal_features, whisper_fingerprint
from .sentences import sentences
from .voices import HELD_OUT_FAMILY, VoiceDraw, apply_resample, draw_voice, family

MAX_LEAD_SILENCE = 0.5  # seconds
TAIL_SILENCE = 0.25


def synthesize(items: Sequence[tuple[str, VoiceDraw]], workers: int = 1) -> list[np.ndarray]:
    """(text, voice) pairs -> float32 [S] audio at 24 kHz (TTS engines run in `workers` threads)."""
    def one(item: tuple[str, VoiceDraw]) -> np.ndarray:
        text, voice = item
        audio, _ = make_tts(voice.spec).synthesize(text)
        return apply_resample(audio, voice.resample_factor)

    if workers <= 1:
        return [one(it) for it in items]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, items))


def pad_silence(audio: np.ndarray, rng: random.Random) -> np.ndarray:
    """Random leading silence (0 to MAX_LEAD_SILENCE s, any sample offset) and a fixed tail."""
    lead = rng.randint(0, int(MAX_LEAD_SILENCE * SAMPLE_RATE))
    return np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(int(TAIL_SILENCE * SAMPLE_RATE), np.float32)])


def acoustic_vectors(audios: Sequence[np.ndarray], log_floor: float, shifts: int = FRAMES_PER_CODEC_FRAME,
                     seed: int = 0) -> torch.Tensor:
    """Stacked log-mel vectors [N, 640] of every utterance, with the frame grid shifted by `shifts`
    distinct random offsets of 0-7 feature hops per utterance (8: all; the first shift is always 0)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for a in audios:
        x = pad_to_frames(torch.from_numpy(a)[None])
        mel = acoustic_logmel(x, log_floor)  # [1, 8 T, 80]
        picks = [0] + (1 + torch.randperm(FRAMES_PER_CODEC_FRAME - 1, generator=g)[: shifts - 1]).tolist()
        for shift in picks:
            n = (mel.shape[1] - shift) // FRAMES_PER_CODEC_FRAME * FRAMES_PER_CODEC_FRAME
            if n:
                out.append(stack_frames(mel[:, shift:shift + n])[0])
    return torch.cat(out)


def utterance_max_logmel(audios: Sequence[np.ndarray]) -> float:
    """Median over utterances of the loudest acoustic log-mel value (floor-free)."""
    return float(np.median([float(acoustic_logmel(torch.from_numpy(a)[None, : len(a) // 240 * 240], -60.0).max())
                            for a in audios]))


def train_tiny_codec(out_dir: str | Path | None, voices: Sequence[str] | None = None, n_sentences: int = 2400,
                     seed: int = 0, minutes_budget: float = 14.0, *, semantic_k: int = 512, acoustic_k: int = 2048,
                     pca_dim: int = 128, semantic_utterances: int = 600, max_vectors: int = 250_000, shifts: int = 3,
                     kmeans_iters: int = 20, gl_lookahead: int = 4, floor_db: float = 70.0, workers: int = 2,
                     threads: int = 1, whisper: WhisperEncoder | None = None,
                     log: Callable[[str], None] = print) -> TinyCodec:
    """Train a TinyCodec and save it in `out_dir` (None: do not save). voices: training voice specs drawn
    uniformly (rate perturbation and resampling still applied), or None for the full mixture
    (`voices.draw_voice`). Returns the codec; `config.training` records what was done and how long."""
    t0 = time.monotonic()
    deadline = t0 + 60.0 * minutes_budget
    torch.set_num_threads(threads)
    rng = random.Random(f"tiny-codec:{seed}")
    texts = sentences(n_sentences, seed, "train")
    draws = []
    for _ in texts:
        if voices is None:
            draws.append(draw_voice(rng))
        else:
            d = draw_voice(rng)  # for its perturbations only
            spec = rng.choice(list(voices))
            if family(spec) == HELD_OUT_FAMILY:
                raise ValueError(f"{spec} is in the held-out family {HELD_OUT_FAMILY}")
            draws.append(VoiceDraw(spec, d.resample_factor))
    audios = [pad_silence(a, rng) for a in synthesize(list(zip(texts, draws)), workers)]
    seconds = sum(len(a) for a in audios) / SAMPLE_RATE
    t_synth = time.monotonic() - t0
    log(f"synthesised {len(audios)} utterances, {seconds:.0f} s of audio, in {t_synth:.0f} s")

    # Semantic codebook, on the causal windows the codec will compute.
    t1 = time.monotonic()
    whisper = whisper or WhisperEncoder(threads=threads)
    raws = [whisper_log10mel(pad_to_frames(torch.from_numpy(a)[None])) for a in audios[:semantic_utterances]]
    ref_max = float(np.median([float(r.max()) for r in raws]))
    window = TinyCodecConfig.whisper_window
    feats = torch.cat([causal_features(whisper, r, window, ref_max)[0] for r in raws])
    centroids = kmeans(feats, min(semantic_k, feats.shape[0]), kmeans_iters, seed)
    t_sem = time.monotonic() - t1
    log(f"semantic: {feats.shape[0]} windows, K={centroids.shape[0]}, {t_sem:.0f} s")

    # Acoustic RVQ.
    t2 = time.monotonic()
    log_floor = utterance_max_logmel(audios) - floor_db / 10 * np.log(10)
    vecs = acoustic_vectors(audios, log_floor, shifts, seed)
    g = torch.Generator().manual_seed(seed)
    if vecs.shape[0] > max_vectors:
        vecs = vecs[torch.randperm(vecs.shape[0], generator=g)[:max_vectors]]
    quant = train_acoustic(vecs, acoustic_k, 7, pca_dim, kmeans_iters, seed, deadline=deadline - 5.0)
    t_ac = time.monotonic() - t2
    mse = [quantizer_mse(quant, vecs[:20000], s) for s in (1, 3, 7)]
    log(f"acoustic: {vecs.shape[0]} vectors, PCA {quant.basis.shape[1]}, K={acoustic_k} x 7, {t_ac:.0f} s; "
        f"train log-mel MSE 1/3/7 stages {mse[0]:.3f}/{mse[1]:.3f}/{mse[2]:.3f}")

    info = {
        "recipe": "moshivis.audio.tiny.train.train_tiny_codec",
        "seed": seed, "n_sentences": n_sentences, "distinct_sentences": len(set(texts)),
        "audio_seconds": round(seconds, 1), "voices": "mixture" if voices is None else list(voices),
        "voice_families": {b: len({family(d.spec) for d in draws if d.spec.startswith(b + ":")})
                           for b in ("piper", "flite", "espeak")},
        "utterances_per_backend": {b: sum(d.spec.startswith(b + ":") for d in draws)
                                   for b in ("piper", "flite", "espeak")},
        "resampled_share": round(sum(d.resample_factor != 1.0 for d in draws) / len(draws), 3),
        "held_out_family": HELD_OUT_FAMILY,
        "semantic_windows": int(feats.shape[0]), "acoustic_vectors": int(vecs.shape[0]), "grid_shifts": shifts,
        "train_logmel_mse_1_3_7": [round(m, 4) for m in mse],
        "seconds": {"synthesis": round(t_synth, 1), "semantic": round(t_sem, 1), "acoustic": round(t_ac, 1),
                    "total": round(time.monotonic() - t0, 1)},
        "threads": threads, "tts_workers": workers,
    }
    config = TinyCodecConfig(semantic_k=int(centroids.shape[0]), acoustic_k=acoustic_k, pca_dim=pca_dim,
                             log_floor=round(float(log_floor), 4), whisper_window=window,
                             whisper_ref_max=round(ref_max, 4), whisper_fingerprint=whisper_fingerprint(whisper.path),
                             gl_lookahead=gl_lookahead, training=info)
    codec = TinyCodec(config, quant, centroids, whisper)
    if out_dir is not None:
        codec.save(out_dir)
        codec = TinyCodec.load(out_dir, whisper)  # what ships (fp16 codebooks) is what is returned
        log(f"saved to {out_dir} ({info['seconds']['total']:.0f} s in all)")
    return codec


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="tinyworld/codec")
    p.add_argument("--sentences", type=int, default=2400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=14.0)
    p.add_argument("--voices", nargs="*", default=None, help="training voice specs (default: the full mixture)")
    p.add_argument("--semantic-k", type=int, default=512)
    p.add_argument("--acoustic-k", type=int, default=2048)
    p.add_argument("--pca-dim", type=int, default=128)
    p.add_argument("--semantic-utterances", type=int, default=600)
    p.add_argument("--max-vectors", type=int, default=250_000)
    p.add_argument("--shifts", type=int, default=3, help="frame-grid shifts per utterance (1-8)")
    p.add_argument("--gl-lookahead", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    codec = train_tiny_codec(a.out, a.voices, a.sentences, a.seed, a.minutes, semantic_k=a.semantic_k,
                             acoustic_k=a.acoustic_k, pca_dim=a.pca_dim, semantic_utterances=a.semantic_utterances,
                             max_vectors=a.max_vectors, shifts=a.shifts, gl_lookahead=a.gl_lookahead, workers=a.workers,
                             threads=a.threads)
    print(json.dumps(codec.config.training, indent=2))


if __name__ == "__main__":
    main()
