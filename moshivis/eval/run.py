"""Running a model bundle on a benchmark: batched streaming, resumable, with a running score.

Text prompts go through the text stream (as speechless training samples); audio prompts play the
question on the user's stream (the dataset's audio, or TTS with a voice pool), then silence. The answer is
Moshi's text stream until its turn ends. Predictions are appended to a JSONL file; a rerun skips the ids
(per prompt kind) already there, so an interrupted run continues.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..inference.ask import QUESTION_VOICE, AskConfig, Question, ask_batch
from ..inference.bundle import Bundle
from ..models.vision import preprocess_images
from .items import EvalItem


@dataclass
class RunConfig:
    prompt: str = "text"  # "text" | "audio"
    batch_size: int = 8
    voices: Sequence[str] = (QUESTION_VOICE,)  # TTS for audio prompts when the item has no question audio
    keep_wav: str | None = None  # folder for the spoken answers
    ask: AskConfig | None = None
    use_image: bool = True  # False: no image at all (the blind baseline: the frozen base as it was)
    asr: bool = False  # transcribe each spoken answer with Whisper tiny.en -> the row's "asr"


def read_rows(path: str | os.PathLike, prompt: str) -> dict[str, dict]:
    """The prediction rows of one prompt kind in a JSONL file, by id ({} when the file does not exist).
    A last line cut short (a run killed while writing) is not a row; any other bad line is an error."""
    p = Path(path)
    if not p.is_file():
        return {}
    out: dict[str, dict] = {}
    lines = p.read_text().splitlines()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):
                break
            raise ValueError(f"{p}:{n}: not a JSON prediction row ({e.msg})") from None
        if row.get("prompt") == prompt:
            out[str(row["id"])] = row
    return out


def drop_partial_line(path: str | os.PathLike) -> int:
    """Cut a last line that lacks its newline (a run killed mid-write) so that appending starts on a
    fresh line; returns the bytes removed."""
    p = Path(path)
    if not p.is_file():
        return 0
    data = p.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(p, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep


def done_ids(path: str | os.PathLike, prompt: str) -> set[str]:
    return set(read_rows(path, prompt))


def _batches(items: Iterable[EvalItem], size: int) -> Iterator[list[EvalItem]]:
    batch: list[EvalItem] = []
    for it in items:
        batch.append(it)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_benchmark(bundle: Bundle, items: Sequence[EvalItem], out_jsonl: str | os.PathLike, cfg: RunConfig,
                  correct: Callable[[EvalItem, str], float] | None = None, progress: bool = True) -> dict[str, float]:
    """Answer every item not already in `out_jsonl`; returns {"answered", "skipped", "running_score"}.
    `correct(item, answer)` in [0, 1] drives the progress bar's running score (e.g. exact match)."""
    if cfg.prompt not in ("text", "audio"):
        raise ValueError(f"prompt must be 'text' or 'audio', got {cfg.prompt!r}")
    model, codec = bundle.model, bundle.codec
    drop_partial_line(out_jsonl)
    seen = done_ids(out_jsonl, cfg.prompt)
    todo = [it for it in items if str(it.id) not in seen]
    tts = None
    if cfg.prompt == "audio":
        from ..audio.tts import make_tts

        tts = [make_tts(v) for v in cfg.voices]
    if cfg.keep_wav:
        Path(cfg.keep_wav).mkdir(parents=True, exist_ok=True)
    spoken_answers = cfg.prompt == "audio" and (cfg.keep_wav is not None or cfg.asr)
    ask_cfg = dataclasses.replace(cfg.ask or AskConfig(), decode_audio=spoken_answers)
    transcribe = None
    if cfg.asr and cfg.prompt == "audio":
        from ..audio.tiny.evaluate import Transcriber

        transcribe = Transcriber()
    if cfg.use_image:
        lacking = [str(it.id) for it in todo if it.image is None or not it.image.path]
        if lacking:
            raise ValueError(f"{len(lacking)} items have no image (e.g. {lacking[:3]}); give them one or run "
                             "with use_image=False")
    total, n = 0.0, 0
    bar = tqdm(total=len(todo), disable=not progress, desc=f"eval ({cfg.prompt})", dynamic_ncols=True)
    with open(out_jsonl, "a") as f:
        for batch in _batches(todo, cfg.batch_size):
            embeds = None
            if cfg.use_image:
                pixels = torch.cat([preprocess_images(it.image.path, model.cfg.vision.image_size)  # type: ignore[union-attr]
                                    for it in batch])
                embeds = model.encode_image(pixels.to(model.lm.device))
            questions = []
            for i, it in enumerate(batch):
                if cfg.prompt == "text":
                    questions.append(Question(text=it.question))
                elif it.question_audio is not None:
                    questions.append(Question(audio=np.asarray(it.question_audio, dtype=np.float32)))
                else:
                    voice = tts[zlib.crc32(str(it.id).encode()) % len(tts)]  # type: ignore[index]
                    questions.append(Question(audio=voice.synthesize(it.question)[0]))
            for it, res in zip(batch, ask_batch(model, bundle.tokenizer, codec, embeds, questions, ask_cfg)):
                row = {"id": it.id, "answer": res.answer, "prompt": cfg.prompt, "gate_mean": res.gate_mean}
                if transcribe is not None and res.audio is not None:
                    row["asr"] = transcribe(res.audio)
                if cfg.keep_wav and res.audio is not None:
                    from ..audio.io import save_wav

                    row["wav"] = str(save_wav(Path(cfg.keep_wav) / f"{it.id}.wav", res.audio, codec.sample_rate))
                f.write(json.dumps(row) + "\n")
                if correct is not None:
                    total += correct(it, res.answer)
                    n += 1
            f.flush()
            bar.update(len(batch))
            if n:
                bar.set_postfix(score=f"{100 * total / n:.1f}")
    bar.close()
    return {"answered": len(todo), "skipped": len(items) - len(todo),
            "running_score": 100 * total / n if n else float("nan")}
