"""Real-time factors of the tiny codec (moshivis.audio.tiny), one CPU thread, printed as JSON.

    NO_TORCH_COMPILE=1 python benchmarks/tiny_codec.py [--codec tinyworld/codec] [--seconds 10]

RTF = compute seconds per second of audio (< 1: faster than real time). Measured: batch encode / decode,
streaming encode / decode (one 80-ms frame per call, as a live conversation runs), the acoustic half
of encoding alone (the rest is the Whisper encoder of codebook 0). Audio: TTS sentences (flite, or
piper when flite is missing) concatenated to about --seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def speech(seconds: float) -> np.ndarray:
    from moshivis.audio.tiny.sentences import sentences
    from moshivis.audio.tts import make_tts
    from moshivis.audio.voice_pool import voice_available

    voice = make_tts("flite:kal16" if voice_available("flite:kal16") else "piper:joe")
    parts, total = [], 0
    for text in sentences(200, 7, "eval"):
        a = voice.synthesize(text)[0]
        parts.append(a)
        total += len(a)
        if total >= seconds * 24000:
            break
    return np.concatenate(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default=None, help="artefact folder (default: tinyworld/codec)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=2, help="best of this many runs per measurement")
    a = p.parse_args()
    torch.set_num_threads(1)
    from moshivis.audio.tiny.codec import TinyCodec
    from moshivis.audio.tiny.evaluate import measure_rtf

    codec = TinyCodec.load(a.codec)
    result = measure_rtf(codec, speech(a.seconds), repeats=a.repeats)
    result.update({"machine": platform.machine(), "processor": platform.processor() or "unknown",
                   "decoder_delay_ms": round(1000 * codec.decoder_delay / codec.sample_rate, 1),
                   "config": {k: getattr(codec.config, k) for k in ("semantic_k", "acoustic_k", "pca_dim", "rvq_beam",
                                                                     "gl_lookahead", "gl_iters", "whisper_window")}})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
