"""Measurements of a TinyCodec: Whisper WER of round trips, semantic-token stability, real-time factors.

    python -m moshivis.audio.tiny.evaluate --codec tinyworld/codec --out tinyworld/codec/eval.json

- WER: faster-whisper tiny.en (int8, beam 1, temperature 0, 1 thread) on held-out sentences (`sentences`, eval side)
  spoken by training voices at nominal settings and by the held-out family; original audio for reference.
  Text is normalised word by word (`words.normalize_word`: case, punctuation, digits -> words).
- Semantic stability: isolated words x voices x takes at random sub-frame offsets; for each take, the
  nearest take of ANOTHER voice (DTW over token sequences, frame cost = cosine distance of the codewords)
  must be the same word. Codebook 0 is compared with the first acoustic codebook and with the whole-
  utterance (non-causal) Whisper tokens; agreement of causal with whole-utterance tokens is reported too.
- RTF: seconds of compute per second of audio, one thread, batch and streaming, each half alone.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...eval.asr_metric import edit_distance
from ..resample import resample
from ..tts import SAMPLE_RATE, make_tts
from ..words import normalize_word, split_words
from .codec import TinyCodec
from .features import FRAME_SIZE, acoustic_logmel, pad_to_frames, whisper_log10mel
from .semantic import default_whisper_path, normalise, pool_newest, sliding_windows, utterance_features
from .sentences import sentences
from .voices import EVAL_HELD_OUT_VOICES, EVAL_TRAIN_VOICES, family

STABILITY_WORDS = ("red", "blue", "green", "yellow", "circle", "square", "triangle", "star", "three", "seven",
                   "yes", "hello")
STABILITY_VOICES = ("piper:joe", "flite:kal16", "flite:awb", "flite:rms", "espeak:en-us", "espeak:en-gb+f3",
                    "flite:slt")


def text_words(text: str) -> list[str]:
    """Comparison keys of a transcript: "3 + 4 = 7." -> [three, plus, four, equals, seven]."""
    text = text.replace("+", " plus ").replace("=", " equals ").replace("×", " times ")
    return [k for k in (normalize_word(w) for w in split_words(text)) if k]


class Transcriber:
    """faster-whisper tiny.en, int8, greedy, one thread, temperature 0 only: faster-whisper's default
    falls back to sampling at higher temperatures on hard audio, which made repeated runs differ."""

    def __init__(self, threads: int = 1) -> None:
        from faster_whisper import WhisperModel

        from ..torch_threads import keep_torch_threads

        with keep_torch_threads():  # CTranslate2 would leave torch on `threads` threads
            self.model = WhisperModel(default_whisper_path(), device="cpu", compute_type="int8", cpu_threads=threads)

    def __call__(self, audio: np.ndarray) -> str:
        """audio float [S] at 24 kHz -> text."""
        a16 = resample(np.asarray(audio, np.float32).reshape(-1), SAMPLE_RATE, 16000)
        segs, _ = self.model.transcribe(a16, language="en", beam_size=1, temperature=0.0,
                                        condition_on_previous_text=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segs)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    errors = sum(edit_distance(text_words(r), text_words(h)) for r, h in zip(refs, hyps))
    return errors / max(1, sum(len(text_words(r)) for r in refs))


def eval_items(voices: Sequence[str], n: int, seed: int = 0) -> list[tuple[str, str, np.ndarray]]:
    """n (text, voice, audio) held-out sentences, voices cycled."""
    texts = sentences(n, seed, "eval", distinct=True)
    return [(t, voices[i % len(voices)], make_tts(voices[i % len(voices)]).synthesize(t)[0])
            for i, t in enumerate(texts)]


def round_trip(codec: TinyCodec, audio: np.ndarray) -> np.ndarray:
    """encode + decode (batch decode = the streaming decoder's audio, realigned)."""
    wav = torch.from_numpy(np.asarray(audio, np.float32))[None, None]
    return codec.decode(codec.encode(wav))[0, 0].numpy()


def wer_report(codec: TinyCodec, items: Sequence[tuple[str, str, np.ndarray]], asr: Transcriber) -> dict:
    """Original and round-trip WER, overall and per voice family, plus a few example transcripts."""
    rows = []
    for text, voice, audio in items:
        rows.append((text, family(voice).split(":")[0], asr(audio), asr(round_trip(codec, audio))))
    out: dict = {"sentences": len(rows), "words": sum(len(text_words(r[0])) for r in rows)}
    backends = sorted({r[1] for r in rows})
    groups: list[tuple[str, set[str]]] = [("all", set(backends))] + [(b, {b}) for b in backends]
    if len(backends) > 2 and {"piper", "flite"} <= set(backends):
        groups.append(("piper+flite", {"piper", "flite"}))  # the voices of the feasibility findings
    for name, keep in groups:
        sel = [r for r in rows if r[1] in keep]
        out[name] = {"original": round(wer([r[0] for r in sel], [r[2] for r in sel]), 4),
                     "codec": round(wer([r[0] for r in sel], [r[3] for r in sel]), 4), "sentences": len(sel)}
    out["examples"] = [{"text": r[0], "original": r[2], "codec": r[3]} for r in rows[:4]]
    return out


# ------------------------------------------------------------------ semantic tokens


def speech_span(audio: np.ndarray, rel: float = 0.02) -> tuple[int, int]:
    """First and last sample above rel x peak."""
    loud = np.flatnonzero(np.abs(audio) > rel * np.abs(audio).max())
    return int(loud[0]), int(loud[-1]) + 1


def dtw(cost: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Mean cost along the best monotone path of a [n, m] cost matrix, and that path."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return float(acc[n, m] / len(path)), path[::-1]


def _unit(x: torch.Tensor) -> np.ndarray:
    return (x / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)).numpy()


def stability_takes(words: Sequence[str], voices: Sequence[str], takes: int, seed: int = 0) -> list[dict]:
    """Isolated words: {word, voice, audio (with random lead silence), span (codec frames)}."""
    rng = random.Random(seed)
    out = []
    for voice in voices:
        for w in words:
            for k in range(takes):
                rate = 1.0 if k == 0 else round(rng.uniform(0.9, 1.1), 2)
                spec = voice if rate == 1.0 else f"{voice}:{rate}"
                a = make_tts(spec).synthesize(w.capitalize() + ".")[0]
                s, e = speech_span(a)
                a = a[s:e]
                lead = int(0.3 * SAMPLE_RATE) + rng.randint(0, FRAME_SIZE - 1)  # random sub-frame offset
                audio = np.concatenate([np.zeros(lead, np.float32), a, np.zeros(int(0.3 * SAMPLE_RATE), np.float32)])
                out.append({"word": w, "voice": voice, "audio": audio,
                            "span": (lead // FRAME_SIZE, -(-(lead + len(a)) // FRAME_SIZE))})
    return out


def token_views(codec: TinyCodec, audio: np.ndarray, lookaheads: Sequence[int] = (1, 2)) -> dict[str, torch.Tensor]:
    """Per-frame vectors [T, D] of one clip under several tokenisations (quantised ones as codewords)."""
    wav = torch.from_numpy(audio)[None, None]
    codes = codec.encode(wav)[0]  # [8, T]
    raw = whisper_log10mel(pad_to_frames(wav[:, 0]))
    cfg = codec.config
    views = {"cb0_causal": codec.semantic[codes[0]],
             "cb1_acoustic": codec.acoustic.books[0][codes[1]],
             "cb0_utterance": codec.semantic[codec.semantic_codes(
                 utterance_features(codec.whisper, raw, cfg.whisper_ref_max))[0]]}
    for la in lookaheads:
        states = codec.whisper(normalise(sliding_windows(raw, cfg.whisper_window, la), cfg.whisper_ref_max))
        views[f"cb0_lookahead{la}"] = codec.semantic[codec.semantic_codes(pool_newest(states, la))]
    views["_codes0"] = codes[0]
    return views


def dtw_to_many(query: np.ndarray, refs: list[np.ndarray]) -> np.ndarray:
    """DTW cost of query [n, D] (unit rows) against each of refs [m_r, D], cosine frame cost, normalised
    by n + m_r; all refs at once (padded), so the Python loop is over the n x m_max cells only."""
    m_max = max(r.shape[0] for r in refs)
    stack = np.zeros((len(refs), m_max, query.shape[1]))
    for i, r in enumerate(refs):
        stack[i, : r.shape[0]] = r
    cost = 1.0 - np.einsum("nd,rmd->rnm", query, stack)  # [R, n, m_max]
    n = query.shape[0]
    acc = np.full((len(refs), n + 1, m_max + 1), np.inf)
    acc[:, 0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m_max + 1):
            acc[:, i, j] = cost[:, i - 1, j - 1] + np.minimum(np.minimum(acc[:, i - 1, j], acc[:, i, j - 1]),
                                                             acc[:, i - 1, j - 1])
    ends = np.array([acc[k, n, r.shape[0]] for k, r in enumerate(refs)])
    return ends / (n + np.array([r.shape[0] for r in refs]))


def nearest_word_accuracy(takes: list[dict], name: str) -> dict[str, float]:
    """For each take, the word of the DTW-nearest take of another TRAINING voice (view `name`, cosine
    frame cost); accuracy separately for training-voice takes and held-out-voice takes."""
    vecs = [_unit(t["views"][name].float()) for t in takes]
    hits: dict[str, list[int]] = {}
    for i, ti in enumerate(takes):
        refs = [j for j, tj in enumerate(takes)
                if tj["voice"] != ti["voice"] and tj["voice"] not in EVAL_HELD_OUT_VOICES]
        d = dtw_to_many(vecs[i], [vecs[j] for j in refs])
        best = takes[refs[int(np.argmin(d))]]["word"]
        group = "held_out_voice" if ti["voice"] in EVAL_HELD_OUT_VOICES else "training_voices"
        hits.setdefault(group, []).append(int(best == ti["word"]))
    return {g: round(float(np.mean(h)), 3) for g, h in hits.items()}


def identical_token_share(takes: list[dict]) -> dict[str, float]:
    """Share of identical codebook-0 tokens along the DTW path (cost: token differs), for pairs of takes
    of two different training voices: same word vs different words (every 5th pair, for time)."""
    same, diff = [], []
    train = [t for t in takes if t["voice"] not in EVAL_HELD_OUT_VOICES]
    for i, ti in enumerate(train):
        for j in range(i + 1, len(train)):
            tj = train[j]
            if tj["voice"] == ti["voice"] or (tj["word"] != ti["word"] and (i + j) % 5):
                continue
            a, b = ti["views"]["_codes0"].numpy(), tj["views"]["_codes0"].numpy()
            _, path = dtw((a[:, None] != b[None]).astype(float))
            (same if tj["word"] == ti["word"] else diff).append(float(np.mean([a[p] == b[q] for p, q in path])))
    return {"same_word_other_voice": round(float(np.mean(same)), 3), "different_word": round(float(np.mean(diff)), 3)}


def semantic_stability(codec: TinyCodec, takes: list[dict]) -> dict:
    """1-NN word identification across voices per token view, and identical-token shares."""
    for t in takes:
        v = token_views(codec, t["audio"])
        s, e = t["span"]
        t["views"] = {k: x[s:e] for k, x in v.items()}
    words = {t["word"] for t in takes}
    res: dict = {"words": len(words), "voices": sorted({t["voice"] for t in takes}), "takes": len(takes),
                 "chance": round(1 / len(words), 3)}
    for name in (k for k in takes[0]["views"] if not k.startswith("_")):
        res[f"1nn_word_id_{name}"] = nearest_word_accuracy(takes, name)
    res["cb0_identical_token_share"] = identical_token_share(takes)
    return res


def causal_agreement(codec: TinyCodec, audios: Sequence[np.ndarray]) -> dict:
    """Share of frames whose causal codebook-0 token equals the whole-utterance token, for look-ahead
    0 (the codec), 1 and 2 frames; speech frames only."""
    agree: dict[str, list[float]] = {}
    for a in audios:
        v = token_views(codec, a)
        s, e = speech_span(a)
        lo, hi = s // FRAME_SIZE, -(-e // FRAME_SIZE)
        ref = v["cb0_utterance"][lo:hi]
        for name in ("cb0_causal", "cb0_lookahead1", "cb0_lookahead2"):
            agree.setdefault(name, []).append(float((v[name][lo:hi] == ref).all(-1).float().mean()))
    return {k: round(float(np.mean(x)), 3) for k, x in agree.items()}


# ------------------------------------------------------------------ speed


def measure_rtf(codec: TinyCodec, audio: np.ndarray, repeats: int = 1) -> dict:
    """Compute seconds per audio second (one thread), batch and streaming, each half, plus the
    semantic (Whisper) share of encoding."""
    torch.set_num_threads(1)
    wav = pad_to_frames(torch.from_numpy(np.asarray(audio, np.float32))[None])[None]
    secs = wav.shape[-1] / SAMPLE_RATE
    t_frames = wav.shape[-1] // FRAME_SIZE
    codec.encode(wav[..., :FRAME_SIZE * 4])  # load Whisper, warm caches

    def timed(fn) -> float:
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best / secs

    codes = codec.encode(wav)
    out = {"audio_seconds": round(secs, 2), "threads": 1}
    out["encode_batch"] = timed(lambda: codec.encode(wav))
    out["decode_batch"] = timed(lambda: codec.decode(codes))

    def stream_enc() -> None:
        with codec.streaming_encoder(1) as enc:
            for i in range(t_frames):
                enc.step(wav[..., i * FRAME_SIZE:(i + 1) * FRAME_SIZE])

    def stream_dec() -> None:
        with codec.streaming_decoder(1) as dec:
            for i in range(t_frames):
                dec.step(codes[..., i:i + 1])

    out["encode_streaming"] = timed(stream_enc)
    out["decode_streaming"] = timed(stream_dec)
    floor = codec.config.log_floor
    out["encode_acoustic_only"] = timed(lambda: codec.acoustic_codes(acoustic_logmel(wav[:, 0], floor)))
    out["round_trip_streaming"] = out["encode_streaming"] + out["decode_streaming"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default=None, help="artefact folder (default: tinyworld/codec)")
    p.add_argument("--out", default=None, help="write the JSON report here")
    p.add_argument("--train-voice-sentences", type=int, default=90)
    p.add_argument("--held-out-sentences", type=int, default=40)
    p.add_argument("--moshi-voice-sentences", type=int, default=40, help="extra piper joe sentences")
    p.add_argument("--takes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    codec = TinyCodec.load(a.codec)
    asr = Transcriber()
    report: dict = {"config": {k: v for k, v in codec.config.__dict__.items() if k != "training"}}
    t0 = time.monotonic()
    train_items = eval_items(EVAL_TRAIN_VOICES, a.train_voice_sentences, a.seed)
    report["wer_training_voices"] = wer_report(codec, train_items, asr)
    held = eval_items(EVAL_HELD_OUT_VOICES, a.held_out_sentences, a.seed + 1)
    report["wer_held_out_voice"] = wer_report(codec, held, asr)
    # Moshi's own voice is the one the decoder serves (user voices are only encoded): a larger set
    report["wer_moshi_voice"] = wer_report(codec, eval_items(("piper:joe",), a.moshi_voice_sentences, a.seed + 2), asr)
    print(json.dumps({k: report[k] for k in ("wer_training_voices", "wer_held_out_voice", "wer_moshi_voice")},
                     indent=1), flush=True)
    report["causal_vs_utterance_token_agreement"] = causal_agreement(codec, [x[2] for x in train_items[:24]])
    report["semantic_stability"] = semantic_stability(codec, stability_takes(STABILITY_WORDS, STABILITY_VOICES,
                                                                             a.takes, a.seed))
    report["rtf"] = measure_rtf(codec, np.concatenate([x[2] for x in train_items[:5]]))
    report["eval_seconds"] = round(time.monotonic() - t0, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
