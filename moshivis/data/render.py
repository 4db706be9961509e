"""Dialogue -> `Sample`: the two renderings of one dialogue.

    speechless_sample   the dialogue in the text stream only (`layout.speechless_layout`)
    SpokenRenderer      full duplex: TTS per turn, word timings for Moshi's turns, both tracks through the
                        codec, Moshi's words placed on the text stream (`layout.place_words`)

Each failure is a `StageFailure` carrying the counted `RowError`; `synth.run_synth` records it and goes on.
The timeline, meta fields and segment mode are described in `synth`'s module docstring.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from moshivis.data.layout import FRAME_RATE, place_words, speechless_layout, spoken_layout
from moshivis.data.report import SynthReport
from moshivis.data.tokenizer import TextTokenizer
from moshivis.data.types import Dialogue, RowError, Sample, SampleKind, Turn, WordTiming

if TYPE_CHECKING:  # synth imports this module; the config is only a type here
    from moshivis.data.synth import SynthConfig

# Stable reasons of the rendering stages.
TTS_FAILED = "tts failed"
ALIGN_FAILED = "alignment failed"
CODEC_ERROR = "codec error"
TOO_LONG = "too long"
TTS_SAMPLE_RATE = 24000  # every TTS backend returns 24 kHz


def sample_id(d: Dialogue, kind: str) -> str:
    """Deterministic sample id: `{dialogue id}/{kind}` (what resume skips on)."""
    return f"{d.id}/{kind}"


class StageFailure(Exception):
    """Internal: one sample failed at `stage` with `error`; the run records it and goes on."""

    def __init__(self, stage: str, error: RowError) -> None:
        super().__init__(f"{stage}: {error.reason}: {error.detail}")
        self.stage, self.error = stage, error


def _frame(seconds: float) -> int:
    return int(math.floor(seconds * FRAME_RATE + 1e-6))  # the same rounding as `place_words`


def _merge_spans(spans: list[tuple[int, int]]) -> list[list[int]]:
    """Sorted [start, end) spans with touching/overlapping ones merged."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def _unrelated_spans(turns: list[Turn], ranges: list[tuple[int, int]]) -> list[list[int]]:
    """Frame ranges [start, end) of the turns not about the image; consecutive ones merged with the gaps
    between them (a concatenated off-topic dialogue is one stretch of the timeline)."""
    spans: list[tuple[int, int]] = []
    run: list[int] | None = None
    for turn, (s, e) in zip(turns, ranges):
        if turn.about_image:
            if run is not None:
                spans.append((run[0], run[1]))
                run = None
        elif run is None:
            run = [s, e]
        else:
            run[1] = e
    if run is not None:
        spans.append((run[0], run[1]))
    return _merge_spans(spans)


def _base_meta(d: Dialogue) -> dict[str, Any]:
    meta: dict[str, Any] = {"dialogue_id": d.id, "source": d.source, "question_type": d.question_type}
    for key in ("row", "concat", "exchange_types", "corrections", "topics"):
        if key in d.meta:
            meta[key] = d.meta[key]
    return meta


def speechless_sample(d: Dialogue, tokenizer: TextTokenizer, cfg: SynthConfig,
                      kind: SampleKind = "speechless") -> Sample:
    """The dialogue in the text stream only (`layout.speechless_layout`), turn frame ranges in meta.
    kind: "speechless" (an image dialogue) or "text_only" (an image-free one)."""
    gap, lead = cfg.speechless_gap_frames, 2
    codes, mask = speechless_layout([(t.speaker, t.text) for t in d.turns], tokenizer, gap_frames=gap,
                                    lead_frames=lead)
    T = codes.shape[1]
    if T > cfg.max_frames:
        raise StageFailure("layout", RowError(d.source, sample_id(d, kind), TOO_LONG,
                                              f"{T} frames > max_frames {cfg.max_frames}"))
    ranges: list[tuple[int, int]] = []
    pos = lead
    for t in d.turns:  # the same arithmetic as speechless_layout: tokens, then `gap` frames of padding
        n = len(tokenizer.encode(t.text))
        ranges.append((pos, pos + n))
        pos += n + gap
    meta = _base_meta(d)
    meta["turns"] = [{"speaker": t.speaker, "text": t.text, "frames": list(r), "about_image": t.about_image}
                     for t, r in zip(d.turns, ranges)]
    meta["unrelated_spans"] = _unrelated_spans(d.turns, ranges)
    return Sample(sample_id(d, kind), kind, codes, mask, d.image, meta)


@dataclass
class _Rendered:
    """One turn through TTS (+ alignment for Moshi's turns)."""

    turn: Turn
    audio: np.ndarray  # [S] at the codec's rate
    voice: str
    words: list[WordTiming] | None = None  # the timings used (Moshi only), seconds from the turn start
    reference: list[WordTiming] | None = None  # the TTS engine's own timings when it gave them
    method: str = ""  # "tts" or "whisper"


class SpokenRenderer:
    """Turns a dialogue into a full-duplex spoken `Sample`: TTS per turn, word timings for Moshi's turns,
    both tracks encoded by the codec, Moshi's words placed on the text stream."""

    def __init__(self, cfg: SynthConfig, codec: Any, tokenizer: TextTokenizer, report: SynthReport,
                 tts: Callable[[str], Any] | None = None, aligner: Any | None = None) -> None:
        from moshivis.audio.tts import make_tts
        from moshivis.audio.voice_pool import DEFAULT_USER_VOICES, VoicePool

        self.cfg, self.codec, self.tokenizer, self.report = cfg, codec, tokenizer, report
        self.pool = VoicePool(cfg.moshi_voice, cfg.user_voices or DEFAULT_USER_VOICES, seed=cfg.seed,
                              length_scale_jitter=cfg.length_scale_jitter)
        self.tts = tts or make_tts
        self._aligner = aligner
        self._spoken: dict[tuple[str, str], _Rendered] = {}  # segment mode: (voice, text) -> TTS + timings
        self._segments: dict[tuple[str, str, int], np.ndarray] = {}  # (voice, text, phase) -> codes [8, frames + tail]
        if abs(codec.sample_rate / codec.frame_size - FRAME_RATE) > 1e-6:
            raise ValueError(f"codec frame rate {codec.sample_rate / codec.frame_size} Hz != {FRAME_RATE} Hz")
        if codec.num_codebooks != 8:
            raise ValueError(f"the 17-stream layout needs 8 codebooks, codec has {codec.num_codebooks}")

    @property
    def aligner(self) -> Any:
        if self._aligner is None:
            from moshivis.audio.align import WhisperAligner

            self._aligner = WhisperAligner(self.cfg.whisper_model)
        return self._aligner

    # -- per turn

    def _speak(self, d: Dialogue, i: int, turn: Turn, spec: str) -> _Rendered:
        if not self.cfg.segment_codes:
            return self._speak_now(d, i, turn, spec)
        key = (spec, turn.text)
        if key not in self._spoken:
            self._spoken[key] = self._speak_now(d, i, turn, spec)
        cached = self._spoken[key]
        return _Rendered(turn, cached.audio, spec, cached.words, cached.reference, cached.method)

    def _segment(self, r: _Rendered, phase: int = 0) -> np.ndarray:
        """Codes [8, n + tail] of one turn encoded alone: `phase` samples of silence, its audio padded to whole
        frames, then silence."""
        import torch

        key = (r.voice, r.turn.text, phase)
        if key not in self._segments:
            F = self.codec.frame_size
            n = -(-(phase + len(r.audio)) // F)
            wav = np.zeros((n + self.cfg.segment_tail_frames) * F, np.float32)
            wav[phase:phase + len(r.audio)] = r.audio
            t0 = time.perf_counter()
            codes = self.codec.encode(torch.from_numpy(wav)[None, None])[0]
            self.report.codec.add(time.perf_counter() - t0, len(wav) / self.codec.sample_rate)
            self._segments[key] = codes.detach().cpu().numpy().astype(np.int64)
        return self._segments[key]

    def _speak_now(self, d: Dialogue, i: int, turn: Turn, spec: str) -> _Rendered:
        from moshivis.audio.resample import resample
        from moshivis.audio.tts_base import TTSError

        where = f"{d.id} turn {i}"
        try:
            voice = self.tts(spec)
            t0 = time.perf_counter()
            audio, timings = voice.synthesize(turn.text)
            self.report.time_tts(spec.partition(":")[0], time.perf_counter() - t0, len(audio) / TTS_SAMPLE_RATE)
        except TTSError as e:
            detail = f"{spec}: {e} (text {turn.text!r})"
            raise StageFailure("tts", RowError(d.source, where, TTS_FAILED, detail)) from None
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        rendered = _Rendered(turn, audio, spec)
        if turn.speaker == "moshi" or self.cfg.transcribe_user:
            rendered.words, rendered.reference, rendered.method = self._timings(d, where, turn.text, audio, timings)
        if self.codec.sample_rate != TTS_SAMPLE_RATE:  # timings are in seconds: unaffected
            rendered.audio = resample(audio, TTS_SAMPLE_RATE, self.codec.sample_rate).astype(np.float32)
        return rendered

    def _timings(self, d: Dialogue, where: str, text: str, audio: np.ndarray, tts_words: list[WordTiming] | None
                 ) -> tuple[list[WordTiming], list[WordTiming] | None, str]:
        from moshivis.audio.words import split_words

        duration = len(audio) / TTS_SAMPLE_RATE
        n_words = len(split_words(text))
        tts_ok = tts_words is not None and len(tts_words) == n_words
        mode = self.cfg.aligner
        if mode == "piper" or (mode == "auto" and tts_ok):
            if not tts_ok:
                raise StageFailure("align", RowError(d.source, where, ALIGN_FAILED,
                                                     "aligner 'piper': the TTS engine gave no word timings"))
            self.report.time_align("tts", 0.0, duration)
            return list(tts_words or []), tts_words, "tts"
        try:
            t0 = time.perf_counter()
            words = self.aligner.align(text, audio, TTS_SAMPLE_RATE)
            self.report.time_align("whisper", time.perf_counter() - t0, duration)
        except Exception as e:  # model missing, decode errors...: this utterance fails, the run goes on
            raise StageFailure("align", RowError(d.source, where, ALIGN_FAILED, f"whisper: {type(e).__name__}: {e}")
                               ) from None
        if len(words) != n_words:
            raise StageFailure("align", RowError(d.source, where, ALIGN_FAILED,
                                                 f"whisper gave {len(words)} timings for {n_words} words"))
        reference = tts_words if tts_ok else None
        if reference is not None:
            for used, ref in zip(words, reference):
                self.report.aligner_vs_tts.add(_frame(used.start) - _frame(ref.start))
        return words, reference, "whisper"

    # -- per dialogue

    def render(self, d: Dialogue, kind: SampleKind) -> Sample:
        cfg, codec = self.cfg, self.codec
        sid = sample_id(d, kind)
        voices = {"moshi": self.pool.moshi, "user": self.pool.user_voice(d.id)}
        turns = [self._speak(d, i, t, voices[t.speaker]) for i, t in enumerate(d.turns)]

        # Timeline (seconds; starts snapped to whole samples so audio and timings agree exactly).
        sr, F = codec.sample_rate, codec.frame_size
        rng = random.Random(f"{cfg.seed}|timeline|{d.id}")
        t = rng.uniform(*cfg.lead_in_s)
        starts: list[int] = []  # in samples
        for i, r in enumerate(turns):
            if i:
                t += rng.uniform(*cfg.gap_s)
            if cfg.segment_codes:  # turns on frame boundaries: their cached codes then fit the grid
                starts.append(int(round(t * sr / F)) * F)
                if cfg.user_subframe_jitter and r.turn.speaker == "user":  # ... plus a phase (see SynthConfig)
                    P = cfg.user_subframe_phases
                    starts[-1] += rng.randrange(P) * F // P if P else rng.randrange(F)
            else:
                starts.append(int(round(t * sr)))
            t = (starts[-1] + len(r.audio)) / sr
        T = -(-int(math.ceil((t + cfg.tail_s) * sr)) // F)
        if T > cfg.max_frames:  # before the codec: no point encoding what is rejected
            raise StageFailure("layout", RowError(d.source, sid, TOO_LONG,
                                                  f"{T} frames ({T / FRAME_RATE:.1f} s) > max_frames {cfg.max_frames}"))
        tracks = np.zeros((2, T * F), dtype=np.float32)  # 0: user, 1: Moshi
        for r, s0 in zip(turns, starts):
            tracks[1 if r.turn.speaker == "moshi" else 0, s0:s0 + len(r.audio)] = r.audio
        self.last_tracks = tracks  # the waveforms of the last sample (inspection, the segment-mode tests)

        if cfg.segment_codes:
            user_codes, moshi_codes = self._lay_segments(d, sid, turns, starts, T)
        else:
            user_codes, moshi_codes = self._encode(d, sid, tracks, T)

        # Moshi's words on the text stream, all turns in one call so a word never overwrites another.
        flat: list[tuple[int, WordTiming, WordTiming | None]] = []  # (turn index, absolute timing, reference)
        for i, (r, s0) in enumerate(zip(turns, starts)):
            if r.words is None:
                continue
            off = s0 / sr
            if r.turn.speaker == "user":  # a transcript word: placed once heard (`SynthConfig.transcribe_user`)
                lag = cfg.transcript_lag_frames / FRAME_RATE
                flat += [(i, WordTiming(w.word, off + w.end + lag, off + w.end + lag), None) for w in r.words]
                continue
            refs = r.reference or [None] * len(r.words)
            for w, ref in zip(r.words, refs):
                flat.append((i, WordTiming(w.word, off + w.start, off + w.end),
                             None if ref is None else WordTiming(ref.word, off + ref.start, off + ref.end)))
        text, placed = place_words([w for _, w, _ in flat], self.tokenizer, T)
        words_meta = self._placement_stats(flat, placed)

        codes, mask = spoken_layout(text, moshi_codes, user_codes)
        # Turn frame ranges [first frame with its audio, first frame after it).
        ranges = [(_frame(s0 / sr), int(math.ceil((s0 + len(r.audio)) / sr * FRAME_RATE - 1e-9)))
                  for r, s0 in zip(turns, starts)]
        meta = _base_meta(d)
        meta["turns"] = [{"speaker": r.turn.speaker, "text": r.turn.text, "start": round(s0 / sr, 4),
                          "end": round((s0 + len(r.audio)) / sr, 4), "frames": list(fr),
                          "about_image": r.turn.about_image, "voice": r.voice, "timing": r.method or None}
                         for r, s0, fr in zip(turns, starts, ranges)]
        meta["voices"] = voices
        meta["unrelated_spans"] = _unrelated_spans([r.turn for r in turns], ranges)
        meta["words"] = words_meta["words"]  # [word, turn, token frame | None, audio frame, reference frame | None]
        meta["placement"] = words_meta["stats"]
        meta["duration_s"] = round(T / FRAME_RATE, 3)
        meta["sample_rate"] = sr
        self.report.audio_generated_s += T / FRAME_RATE
        return Sample(sid, kind, codes, mask, d.image, meta)

    def _encode(self, d: Dialogue, sid: str, tracks: np.ndarray, T: int) -> tuple[np.ndarray, np.ndarray]:
        """Both tracks through the codec in one batch -> (user [8, T], moshi [8, T]) int64."""
        import torch

        codec = self.codec
        try:
            t0 = time.perf_counter()
            codes = codec.encode(torch.from_numpy(tracks)[:, None])
            self.report.codec.add(time.perf_counter() - t0, tracks.size / codec.sample_rate)
            codes = codes.detach().cpu().numpy().astype(np.int64)
        except Exception as e:  # a codec is a neural network on a device: OOM, bad input, ...
            raise StageFailure("codec", RowError(d.source, sid, CODEC_ERROR, f"{type(e).__name__}: {e}")) from None
        if codes.shape != (2, 8, T):
            raise StageFailure("codec", RowError(d.source, sid, CODEC_ERROR,
                                                 f"codes {list(codes.shape)}, expected [2, 8, {T}]"))
        if codes.min() < 0 or codes.max() >= codec.cardinality:
            raise StageFailure("codec", RowError(d.source, sid, CODEC_ERROR,
                                                 f"codes outside [0, {codec.cardinality})"))
        return codes[0], codes[1]

    def _lay_segments(self, d: Dialogue, sid: str, turns: list[_Rendered], starts: list[int], T: int
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Segment mode: (user [8, T], moshi [8, T]) from the cached per-turn codes on silence; a later turn
        of the same speaker overwrites the earlier one's trailing frames."""
        try:
            silence = self.codec.silence_codes(T).detach().cpu().numpy().astype(np.int64)
            tracks = {"user": silence.copy(), "moshi": silence.copy()}
            for r, s0 in zip(turns, starts):
                f0, phase = divmod(s0, self.codec.frame_size)
                seg = self._segment(r, phase)
                end = min(T, f0 + seg.shape[1])
                tracks[r.turn.speaker][:, f0:end] = seg[:, :end - f0]
        except Exception as e:  # a codec is a neural network on a device: OOM, bad input, ...
            raise StageFailure("codec", RowError(d.source, sid, CODEC_ERROR, f"{type(e).__name__}: {e}")) from None
        return tracks["user"], tracks["moshi"]

    def _placement_stats(self, flat: list[tuple[int, WordTiming, WordTiming | None]], placed: list[Any]
                         ) -> dict[str, Any]:
        """Match placed words back to their inputs (place_words skips words with no tokens or past the end;
        (word, target frame) identifies each one) and measure where their tokens went."""
        words: list[list[Any]] = []
        j = 0
        displacement: list[int] = []
        for turn_i, w, ref in flat:
            target = _frame(w.start)
            if j < len(placed) and placed[j].word == w.word and placed[j].target_frame == target:
                frame = placed[j].frame
                j += 1
            else:
                frame = None  # no tokens, or past the end of the sample
            ref_frame = None if ref is None else _frame(ref.start)
            words.append([w.word, turn_i, frame, target, ref_frame])
            if frame is None:
                continue
            displacement.append(frame - target)
            self.report.placed_words += 1
            self.report.displaced_words += int(frame > target)
            if ref_frame is not None:
                self.report.token_vs_reference.add(frame - ref_frame)
        stats: dict[str, Any] = {"words": len(flat), "placed": len(displacement)}
        if displacement:
            stats.update(displaced=int(sum(x > 0 for x in displacement)),
                         mean_displacement=round(float(np.mean(displacement)), 3),
                         max_displacement=int(max(displacement)))
        return {"words": words, "stats": stats}
