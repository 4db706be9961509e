"""Throughput of the synthetic data pipeline: easy-vqa rows -> template dialogues -> Piper (Moshi) and
flite/espeak (user) speech -> Mimi (random weights) tokens -> shards. Prints JSON.

    python benchmarks/synth_throughput.py --rows 20

The aligner defaults to Whisper so that its cost per utterance is measured (the pipeline's default,
`auto`, takes Piper's own word timings for free); Piper's timings are then the reference of the
text-token placement check, reported alongside. Model loads (Mimi, Piper, Whisper) are done before the
clock starts, so the figures are steady-state rates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")

from moshivis.data.synth import DialogueConfig, SourceConfig, SynthConfig, load_codec, run_synth  # noqa: E402


def measure(rows: int, speech_fraction: float, aligner: str, codec_spec: str, max_turns: int,
            out: Path) -> dict[str, object]:
    import torch

    from moshivis.audio.align import WhisperAligner
    from moshivis.audio.tts import make_tts

    t0 = time.perf_counter()
    codec = load_codec(codec_spec)
    whisper = WhisperAligner() if aligner != "piper" else None
    make_tts("piper:joe").synthesize("Warm up.")
    if whisper is not None:
        whisper.model  # noqa: B018 - loads the model
    load_s = time.perf_counter() - t0
    cfg = SynthConfig(out_dir=str(out), source=SourceConfig(kind="easy-vqa", split="train", limit=rows),
                      dialogues=DialogueConfig(min_turns=2, max_turns=max_turns), speech_fraction=speech_fraction,
                      aligner=aligner)  # type: ignore[arg-type]
    result = run_synth(cfg, codec=codec, aligner=whisper, progress=sys.stderr.isatty())
    report = result.report.to_json()
    t = report["throughput"]
    align = report["alignment"]
    return {
        "rows": rows,
        "codec": codec_spec,
        "aligner": aligner,
        "torch_threads": torch.get_num_threads(),
        "samples_written": t["samples_written"],
        "written": report["written"],
        "errors": report["errors_by_reason"],
        "wall_s": t["wall_s"],
        "model_load_s": round(load_s, 2),
        "samples_per_min": t["samples_per_min"],
        "audio_generated_s": t["audio_generated_s"],
        "tts_rtf": t["tts_rtf"],
        "tts_rtf_by_backend": {k: v["rtf"] for k, v in t["tts"].items()},
        "codec_rtf": t["codec_rtf"],
        "codec_audio_s": t["codec"]["audio_s"],
        "alignment_s_per_utterance": t["alignment_s_per_utterance"],
        "whisper_s_per_utterance": t["whisper_s_per_utterance"],
        "text_token_vs_piper_start": {k: align["token_vs_reference"].get(k) for k in
                                      ("words", "within_2_frames", "mean_abs_frames")},
        "whisper_vs_piper_start": {k: align["aligner_vs_tts"].get(k) for k in
                                   ("words", "within_2_frames", "mean_abs_frames", "mean_frames")},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20)
    p.add_argument("--speech-fraction", type=float, default=1.0)
    p.add_argument("--aligner", default="whisper", choices=["auto", "piper", "whisper"])
    p.add_argument("--codec", default="mimi", help="mimi (random weights) | mimi:PATH | py:module:Class")
    p.add_argument("--max-turns", type=int, default=6)
    p.add_argument("--out", default=None, help="shard folder (default: a temporary one, removed)")
    args = p.parse_args()
    if args.out:
        print(json.dumps(measure(args.rows, args.speech_fraction, args.aligner, args.codec, args.max_turns,
                                 Path(args.out)), indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="synth_bench_") as tmp:
        print(json.dumps(measure(args.rows, args.speech_fraction, args.aligner, args.codec, args.max_turns,
                                 Path(tmp) / "shards"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
