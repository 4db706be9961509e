"""The account of one synthesis run (`moshivis.data.synth`): what went in, what came out, what failed and
why, and how fast each stage ran.

Every item that does not become a sample is counted here by (stage, reason) with a few examples, so
`read = kept + errors` holds per stage and nothing disappears silently. Alignment quality is kept as
histograms of integer frame errors (bounded memory however long the run), so the share of words within
N frames and the mean error come out exact.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from moshivis.data.types import RowError

# Stages in pipeline order; the counts table lists them in this order.
STAGES: tuple[str, ...] = ("source", "dialogue", "tts", "align", "codec", "layout")
MAX_EXAMPLES = 3


@dataclass
class StageTimer:
    """Wall seconds spent in one stage, the audio seconds it produced or consumed, and how many calls."""

    seconds: float = 0.0
    audio_s: float = 0.0
    calls: int = 0

    def add(self, seconds: float, audio_s: float = 0.0) -> None:
        self.seconds += seconds
        self.audio_s += audio_s
        self.calls += 1

    @property
    def rtf(self) -> float | None:
        """Real-time factor: compute seconds per audio second (< 1 is faster than real time)."""
        return self.seconds / self.audio_s if self.audio_s > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "audio_s": round(self.audio_s, 3), "calls": self.calls,
                "rtf": None if self.rtf is None else round(self.rtf, 4)}


@dataclass
class FrameErrors:
    """A histogram of signed integer frame errors (e.g. text token frame - reference word start frame)."""

    counts: Counter[int] = field(default_factory=Counter)

    def add(self, error: int) -> None:
        self.counts[int(error)] += 1

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def within(self, frames: int) -> float | None:
        n = self.n
        return sum(c for e, c in self.counts.items() if abs(e) <= frames) / n if n else None

    def to_json(self) -> dict[str, Any]:
        n = self.n
        if not n:
            return {"words": 0}
        mean_abs = sum(abs(e) * c for e, c in self.counts.items()) / n
        mean = sum(e * c for e, c in self.counts.items()) / n
        return {"words": n, "mean_abs_frames": round(mean_abs, 3), "mean_frames": round(mean, 3),
                "within_1_frame": round(self.within(1) or 0.0, 4), "within_2_frames": round(self.within(2) or 0.0, 4),
                "max_abs_frames": max(abs(e) for e in self.counts),
                "histogram": {str(e): c for e, c in sorted(self.counts.items())}}


@dataclass
class SynthReport:
    """Counts, errors and throughput of one `run_synth` call (a resumed run reports its own work; what an
    earlier run already stored is counted under `skipped`)."""

    rows_read: int = 0
    rows_kept: int = 0
    dialogues: int = 0  # dialogues made (image dialogues + audio-only ones)
    written: Counter[str] = field(default_factory=Counter)  # samples written by kind, this run
    skipped: Counter[str] = field(default_factory=Counter)  # samples already in the shards (resume)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) -> count
    examples: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    tts: dict[str, StageTimer] = field(default_factory=dict)  # by backend name
    codec: StageTimer = field(default_factory=StageTimer)
    align: dict[str, StageTimer] = field(default_factory=dict)  # by method: "tts" (engine timings), "whisper"
    dialogue_s: float = 0.0  # reading sources + generating dialogues
    tokenizer_s: float = 0.0
    audio_generated_s: float = 0.0  # duration of the spoken samples written (one timeline each)
    # Word timing quality. `aligner_vs_tts`: the aligner's start frame - the TTS engine's own start frame
    # (only where both exist). `token_vs_reference`: the frame of the word's first text token - the
    # reference start frame (engine timing when known, else the timing used), i.e. what the model sees.
    aligner_vs_tts: FrameErrors = field(default_factory=FrameErrors)
    token_vs_reference: FrameErrors = field(default_factory=FrameErrors)
    displaced_words: int = 0  # words whose tokens had to start later than their audio (previous word's tokens)
    placed_words: int = 0
    started: float = field(default_factory=time.perf_counter)
    wall_s: float = 0.0
    interrupted: bool = False

    # -- recording

    def error(self, stage: str, err: RowError) -> None:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
        key = (stage, err.reason)
        self.errors[key] += 1
        shown = self.examples.setdefault(key, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append({"source": err.source, "row": err.row, "detail": err.detail[:300]})

    def time_tts(self, backend: str, seconds: float, audio_s: float) -> None:
        self.tts.setdefault(backend, StageTimer()).add(seconds, audio_s)

    def time_align(self, method: str, seconds: float, audio_s: float) -> None:
        self.align.setdefault(method, StageTimer()).add(seconds, audio_s)

    def finish(self, interrupted: bool = False) -> None:
        self.wall_s = time.perf_counter() - self.started
        self.interrupted = interrupted

    # -- views

    @property
    def total_written(self) -> int:
        return sum(self.written.values())

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    def errors_by_reason(self, stage: str | None = None) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (s, reason), n in self.errors.items():
            if stage is None or s == stage:
                out[reason] += n
        return dict(out)

    def throughput(self) -> dict[str, Any]:
        """samples/min, audio generated, TTS / codec real-time factors, alignment seconds per utterance."""
        wall = self.wall_s or (time.perf_counter() - self.started)
        tts_all = StageTimer()
        for t in self.tts.values():
            tts_all.seconds += t.seconds
            tts_all.audio_s += t.audio_s
            tts_all.calls += t.calls
        align_calls = sum(t.calls for t in self.align.values())
        align_s = sum(t.seconds for t in self.align.values())
        whisper = self.align.get("whisper")
        return {
            "wall_s": round(wall, 3),
            "samples_written": self.total_written,
            "samples_per_min": round(60 * self.total_written / wall, 2) if wall > 0 else None,
            "audio_generated_s": round(self.audio_generated_s, 3),
            "audio_s_per_wall_s": round(self.audio_generated_s / wall, 4) if wall > 0 else None,
            "tts_rtf": None if tts_all.rtf is None else round(tts_all.rtf, 4),
            "tts": {name: t.to_json() for name, t in sorted(self.tts.items())},
            "codec_rtf": None if self.codec.rtf is None else round(self.codec.rtf, 4),
            "codec": self.codec.to_json(),
            "alignment_s": round(align_s, 3),
            "alignment_s_per_utterance": round(align_s / align_calls, 4) if align_calls else None,
            "whisper_s_per_utterance": round(whisper.seconds / whisper.calls, 4) if whisper and whisper.calls else None,
            "align": {name: t.to_json() for name, t in sorted(self.align.items())},
            "dialogue_s": round(self.dialogue_s, 3),
            "tokenizer_s": round(self.tokenizer_s, 3),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "dialogues": self.dialogues,
            "written": dict(self.written),
            "skipped": dict(self.skipped),
            "total_written": self.total_written,
            "total_errors": self.total_errors,
            "errors": [{"stage": s, "reason": r, "count": n, "examples": self.examples.get((s, r), [])}
                       for (s, r), n in sorted(self.errors.items(), key=lambda kv: (STAGES.index(kv[0][0]), kv[0][1]))],
            "errors_by_reason": self.errors_by_reason(),
            "alignment": {
                "aligner_vs_tts": self.aligner_vs_tts.to_json(),
                "token_vs_reference": self.token_vs_reference.to_json(),
                "placed_words": self.placed_words,
                "displaced_words": self.displaced_words,
            },
            "throughput": self.throughput(),
            "interrupted": self.interrupted,
        }

    def table(self) -> Any:
        """A `rich.table.Table`: samples by kind, then error counts by stage and reason with an example."""
        from rich.table import Table

        table = Table(title="synth")
        for col in ("stage", "reason", "count", "example"):
            table.add_column(col, justify="right" if col == "count" else "left")
        table.add_row("source", "rows read", str(self.rows_read), "")
        table.add_row("source", "rows kept", str(self.rows_kept), "")
        table.add_row("dialogue", "dialogues", str(self.dialogues), "")
        for kind, n in sorted(self.written.items()):
            table.add_row("written", kind, str(n), "")
        for kind, n in sorted(self.skipped.items()):
            table.add_row("skipped", f"{kind} (already stored)", str(n), "")
        for stage in STAGES:
            for (s, reason), n in sorted(self.errors.items()):
                if s == stage:
                    ex = self.examples[(s, reason)][0]
                    table.add_row(stage, reason, str(n), f"{ex['row']}: {ex['detail']}"[:80])
        table.add_row("total", "errors", str(self.total_errors), "")
        return table

    def throughput_table(self) -> Any:
        from rich.table import Table

        t = self.throughput()
        table = Table(title="throughput")
        table.add_column("measure")
        table.add_column("value", justify="right")
        rows = [("samples/min", t["samples_per_min"]), ("audio generated (s)", t["audio_generated_s"]),
                ("TTS real-time factor", t["tts_rtf"]), ("codec real-time factor", t["codec_rtf"]),
                ("alignment s/utterance", t["alignment_s_per_utterance"]), ("wall (s)", t["wall_s"])]
        align = self.to_json()["alignment"]["token_vs_reference"]
        if align.get("words"):
            rows += [("text token within 2 frames", align["within_2_frames"]),
                     ("text token mean |error| (frames)", align["mean_abs_frames"])]
        for name, value in rows:
            table.add_row(name, "-" if value is None else str(value))
        return table

    def render(self, width: int = 120) -> str:
        """Both tables as plain text (for logs and tests)."""
        from rich.console import Console

        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(self.table())
        console.print(self.throughput_table())
        out = console.file
        assert isinstance(out, io.StringIO)
        return out.getvalue()
