"""`moshivis demo` with a model bundle: a shipped image, a spoken question (flite kal16, deterministic), the
answer streamed in real time, printed with the gate strength of every word, and written to a WAV file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable
from pathlib import Path

from .ask import QUESTION_VOICE, AskConfig, AskResult, ask
from .bundle import load_bundle

DEFAULT_QUESTION = "What color is the shape?"


def default_image() -> str:
    """An easy-vqa test image (the package ships them)."""
    import easy_vqa

    return easy_vqa.get_test_image_paths()[0]


@dataclass
class DemoResult:
    image: str
    question: str
    result: AskResult
    wav: str | None

    def transcript(self) -> str:
        words = " ".join(f"{p.strip()}[{round(10 * g)}]" for p, g in self.result.pieces if p.strip())
        rt = 80.0 / self.result.ms_per_frame if self.result.ms_per_frame > 0 else float("inf")
        return (f"image: {self.image}\nuser (spoken): {self.question}\nmoshi: {self.result.answer}\n"
                f"words [gate 0-10]: {words}\nmean gate {self.result.gate_mean:.3f}; "
                f"{self.result.ms_per_frame:.1f} ms per 80 ms frame ({rt:.1f}x real time)"
                + (f"\nspoken answer: {self.wav}" if self.wav else ""))


def run_demo(bundle_dir: str | os.PathLike, image: str | None = None, question: str = DEFAULT_QUESTION,
             out_wav: str | os.PathLike | None = "demo_answer.wav", realtime: bool = True,
             on_piece: Callable[[str, float], None] | None = None) -> DemoResult:
    from ..audio.io import save_wav
    from ..audio.tts import make_tts
    from ..models.vision import preprocess_images

    bundle = load_bundle(bundle_dir)
    image = image or default_image()
    model = bundle.model
    embeds = model.encode_image(preprocess_images(image, model.cfg.vision.image_size))
    audio, _ = make_tts(QUESTION_VOICE).synthesize(question)
    cfg = AskConfig(realtime=realtime, on_piece=None if on_piece is None else lambda b, p, g: on_piece(p, g))
    result = ask(model, bundle.tokenizer, bundle.codec, embeds, question_audio=audio, cfg=cfg)
    wav = None
    if out_wav is not None and result.audio is not None:
        wav = str(save_wav(Path(out_wav), result.audio, bundle.codec.sample_rate))
    return DemoResult(image, question, result, wav)
