"""Look inside a shard folder: the manifest summary, one sample's dialogue and its time-aligned text stream,
and optionally that sample's audio decoded back to a WAV (left: Moshi, right: the user).

`moshivis data inspect SHARDS [--index N | --id ID] [--wav OUT.wav] [--tokenizer PATH]`. The tokenizer and
the codec default to what the manifest's config records (written by `moshivis.data.synth`); a sample from
random-weight Mimi decodes to noise of the right length, which is all a test can ask of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moshivis.data.layout import FRAME_RATE, MOSHI_AUDIO, USER_AUDIO
from moshivis.data.shards import MANIFEST, ShardReader, StoredSample, read_manifest
from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer


@dataclass
class AlignedWord:
    """A word of the text stream: the frame of its first token, that frame's time, and its text."""

    frame: int
    time_s: float
    word: str
    tokens: list[int] = field(default_factory=list)


def manifest_summary(directory: str | Path) -> dict[str, Any]:
    """Counts per kind, hours and token counts from the manifest, plus the synth config's main facts and
    the run report (report.json) when present."""
    directory = Path(directory)
    m = read_manifest(directory)
    cfg = m.get("config") or {}
    synth = cfg.get("synth") or {}
    out: dict[str, Any] = {
        "folder": str(directory),
        "complete": m.get("complete"),
        "shards": m.get("num_shards"),
        "samples": m.get("num_samples"),
        "frames": m.get("num_frames"),
        "audio_hours": m.get("audio_hours"),
        "text_tokens": m.get("text_tokens"),
        "target_tokens": m.get("target_tokens"),
        "kinds": m.get("kinds", {}),
        "codec": cfg.get("codec"),
        "tokenizer": cfg.get("tokenizer"),
        "source": synth.get("source"),
    }
    report = directory / "report.json"
    if report.exists():
        r = json.loads(report.read_text(encoding="utf-8"))
        out["errors_by_reason"] = r.get("errors_by_reason", {})
        out["throughput"] = {k: r.get("throughput", {}).get(k) for k in
                             ("samples_per_min", "tts_rtf", "codec_rtf", "alignment_s_per_utterance")}
    return out


def find_sample(directory: str | Path, index: int | None = None, sample_id: str | None = None) -> StoredSample:
    """Sample number `index` (in shard order) or the one with id `sample_id` (default: the first)."""
    with ShardReader(directory, load_images=False) as reader:
        if sample_id is not None:
            for s in reader:
                if s.id == sample_id:
                    return s
            raise ValueError(f"{directory}: no sample with id {sample_id!r}")
        index = 0 if index is None else index
        if index < 0:
            index += len(reader)
        for i in range(reader.num_shards):
            n = reader.shard_length(i)
            if index < n:
                return reader.get(i, index)
            index -= n
        raise ValueError(f"{directory}: sample index out of range ({len(reader)} samples)")


def aligned_words(text: np.ndarray, tokenizer: TextTokenizer) -> list[AlignedWord]:
    """The text stream [T] as words: a word starts at a piece with SentencePiece's word-start marker (or
    after padding) and runs over the following tokens; padding (3), end of padding (0) and -1 are skipped."""
    words: list[AlignedWord] = []
    previous_was_token = False
    for frame, tok in enumerate(np.asarray(text).tolist()):
        if tok in (TEXT_PAD, TEXT_EPAD, -1):
            previous_was_token = False
            continue
        piece = tokenizer.piece(tok)
        if words and previous_was_token and not piece.startswith(" "):
            words[-1].word += piece
            words[-1].tokens.append(tok)
        else:
            words.append(AlignedWord(frame, round(frame / FRAME_RATE, 3), piece.strip(), [tok]))
        previous_was_token = True
    return words


def decode_audio(sample: StoredSample, codec: Any) -> np.ndarray:
    """[S, 2] float32: channel 0 Moshi's track, channel 1 the user's, decoded by `codec` (S = T * frame)."""
    import torch

    codes = np.asarray(sample.codes)
    if (codes[1:] < 0).any():
        raise ValueError(f"sample {sample.id!r} ({sample.kind}) has no audio codes to decode")
    both = torch.from_numpy(np.stack([codes[MOSHI_AUDIO], codes[USER_AUDIO]])).long()  # [2, 8, T]
    wav = codec.decode(both)  # [2, 1, T * frame_size]
    return wav[:, 0].detach().cpu().numpy().T.astype(np.float32)


def _resolve_tokenizer(directory: Path, manifest: dict[str, Any], tokenizer: str | Path | None) -> TextTokenizer:
    if tokenizer is None:
        recorded = (manifest.get("config") or {}).get("tokenizer")
        if not recorded:
            raise ValueError(f"{directory}: the manifest records no tokenizer; pass --tokenizer")
        path = Path(recorded)
        # A tokenizer the synth trained is recorded relative to the shards; one it was given, as given
        # (relative to where the synth ran): try the first, then the second.
        tokenizer = path if path.is_absolute() or not (directory / path).is_file() else directory / path
        if not Path(tokenizer).is_file():
            raise ValueError(f"{directory}: the manifest's tokenizer {recorded!r} is neither at {directory / path} "
                             f"nor at {path.resolve()}; pass --tokenizer")
    return TextTokenizer(tokenizer)


def inspect_shards(directory: str | Path, index: int | None = None, sample_id: str | None = None,
                   wav: str | Path | None = None, tokenizer: str | Path | None = None, codec: Any | None = None,
                   console: Any | None = None) -> dict[str, Any]:
    """Print (to a rich `console`, when given) and return the manifest summary, one sample's dialogue and
    aligned words; write its audio to `wav` (stereo: Moshi left, user right) when asked. `codec` defaults
    to the one the manifest records (`moshivis.audio.registry.load_codec`)."""
    directory = Path(directory)
    if not (directory / MANIFEST).exists():
        raise FileNotFoundError(f"{directory}: no {MANIFEST} (not a shard folder)")
    manifest = read_manifest(directory)
    summary = manifest_summary(directory)
    sample = find_sample(directory, index, sample_id)
    tok = _resolve_tokenizer(directory, manifest, tokenizer)
    words = aligned_words(sample.codes[0], tok)
    result: dict[str, Any] = {"summary": summary, "id": sample.id, "kind": sample.kind,
                              "num_frames": sample.num_frames, "turns": sample.meta.get("turns", []),
                              "words": words, "wav": None}
    if wav is not None:
        if codec is None:
            from moshivis.audio.registry import load_codec

            spec = (manifest.get("config") or {}).get("codec")
            if not spec:
                raise ValueError(f"{directory}: the manifest records no codec; cannot decode audio")
            codec = load_codec(spec)
        import soundfile as sf

        audio = decode_audio(sample, codec)
        Path(wav).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(wav), np.clip(audio, -1.0, 1.0), int(codec.sample_rate), subtype="PCM_16", format="WAV")
        result["wav"] = {"path": str(wav), "samples": int(audio.shape[0]), "channels": int(audio.shape[1]),
                         "sample_rate": int(codec.sample_rate)}
    if console is not None:
        _print(console, result, sample)
    return result


def _print(console: Any, result: dict[str, Any], sample: StoredSample) -> None:
    from rich.table import Table

    s = result["summary"]
    table = Table(title=f"{s['folder']}: {s['samples']} samples in {s['shards']} shards"
                  f"{'' if s['complete'] else ' (incomplete)'}")
    for col in ("kind", "samples", "frames", "audio hours", "text tokens", "target tokens"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, k in s["kinds"].items():
        table.add_row(kind, str(k["samples"]), str(k["frames"]), f"{k['audio_hours']:.4f}", str(k["text_tokens"]),
                      str(k["target_tokens"]))
    table.add_row("total", str(s["samples"]), str(s["frames"]), f"{s['audio_hours']:.4f}", str(s["text_tokens"]),
                  str(s["target_tokens"]))
    console.print(table)
    console.print(f"codec: {s['codec']}   tokenizer: {s['tokenizer']}   source: {s['source']}")
    if s.get("errors_by_reason"):
        console.print("errors by reason: " + ", ".join(f"{r}: {n}" for r, n in sorted(s["errors_by_reason"].items())))
    if s.get("throughput"):
        console.print("throughput: " + ", ".join(f"{k}={v}" for k, v in s["throughput"].items()))

    spoken = sample.kind != "speechless"
    console.print(f"\n[bold]{sample.id}[/bold]  kind={sample.kind}  frames={sample.num_frames} "
                  f"({sample.num_frames / FRAME_RATE:.2f} s)  image={sample.image.path if sample.image else None}")
    turns = Table(title="dialogue")
    for col in ("speaker", "when", "text"):
        turns.add_column(col)
    for t in result["turns"]:
        when = f"{t['start']:.2f}-{t['end']:.2f} s" if "start" in t else f"frames {t['frames'][0]}-{t['frames'][1]}"
        turns.add_row(t["speaker"] + ("" if t.get("about_image", True) else " (off-topic)"), when, t["text"])
    console.print(turns)
    stream = Table(title="text stream" + ("" if spoken else " (speechless: frames are token slots, not time)"))
    for col in ("frame", "time (s)", "word"):
        stream.add_column(col, justify="left" if col == "word" else "right")
    for w in result["words"]:
        stream.add_row(str(w.frame), f"{w.time_s:.2f}" if spoken else "-", w.word)
    console.print(stream)
    if result["wav"]:
        w = result["wav"]
        console.print(f"wrote {w['path']}: {w['samples']} samples x {w['channels']} channels at {w['sample_rate']} Hz "
                      "(left: Moshi, right: user)")
