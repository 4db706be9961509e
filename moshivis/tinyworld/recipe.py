"""The embedded model's recipe: every piece trained by the project's own code, on CPU, in stages.

    codec        tiny codec (Whisper-distilled semantic codebook + log-mel RVQ), `moshivis.audio.tiny`
    vision       small SigLIP tower pre-trained on easy-vqa, then frozen (`vision_pretrain`)
    tokenizer    SentencePiece on the text of every dialogue the recipe will speak
    init         the `tinyworld` model with the pre-trained tower in place (random LM, fresh adapters)
    base_data    audio-only spoken dialogues (no image): arithmetic, counting, colours of things, yes/no
    base         "tiny Moshi": `full` training on base_data (the image never shown)
    image_data   easy-vqa train dialogues with paraphrases: image-speech + speechless + audio-only + concat
    adapters     the paper's recipe: base frozen, adapters trained on the mixture
    bundle       model + tokenizer + codec spec in `tinyworld/bundle` (what `moshivis ask/demo` load)

Each stage records `done.json` (settings, seconds) in its work folder and is skipped when that exists with
the same settings, so an interrupted build resumes at the stage it was in. `smoke=True` runs every stage
at toy sizes (CI).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
STAGES = ("codec", "vision", "tokenizer", "init", "base_data", "base", "image_data", "adapters", "bundle")


@dataclass
class RecipeConfig:
    work: str = "runs/tinyworld"  # intermediate data and checkpoints
    artefacts: str = str(REPO / "tinyworld")  # shipped: codec/, vision/, bundle/
    seed: int = 0
    smoke: bool = False
    codec_minutes: float = 12.0
    vision_minutes: float = 10.0
    tokenizer_vocab: int = 1000
    base_dialogues: int = 3000
    base_steps: int = 3000
    image_rows: int | None = None  # easy-vqa train rows (None: all 4,000 images' questions)
    speech_fraction: float = 0.5
    audio_only: int = 500
    p_concat: float = 0.2
    paraphrase_prob: float = 0.5
    adapter_steps: int = 3000
    batch_size: int = 16
    max_frames: int = 250
    held_out_voices: tuple[str, ...] = ("flite:slt",)  # never used in training: the unseen-voice family
    extra: dict[str, Any] = field(default_factory=dict)

    def scaled(self) -> "RecipeConfig":
        """Toy sizes for CI (`smoke`): every stage runs, in seconds."""
        if not self.smoke:
            return self
        return dataclasses.replace(self, base_dialogues=6, base_steps=3, image_rows=4, audio_only=2,
                                   adapter_steps=3, batch_size=2, max_frames=200, codec_minutes=0.5,
                                   vision_minutes=0.3, tokenizer_vocab=200)


class Stage:
    """A named step with a work folder and a `done.json` marker."""

    def __init__(self, cfg: RecipeConfig, name: str) -> None:
        self.cfg, self.name = cfg, name
        self.dir = Path(cfg.work) / name
        self.marker = self.dir / "done.json"

    def settings(self) -> dict[str, Any]:
        return {"stage": self.name, "recipe": dataclasses.asdict(self.cfg)}

    def is_done(self) -> bool:
        if not self.marker.is_file():
            return False
        # Compare as JSON: tuples in the settings come back as lists.
        return json.loads(self.marker.read_text()).get("settings") == json.loads(json.dumps(self.settings()))

    def finish(self, seconds: float, result: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(json.dumps({"settings": self.settings(), "seconds": round(seconds, 1),
                                           "result": result}, indent=2, default=str))


def run_stage(cfg: RecipeConfig, name: str, fn: Callable[[Stage], dict[str, Any]], force: bool = False,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    stage = Stage(cfg, name)
    if stage.is_done() and not force:
        log(f"[tinyworld] {name}: done before, skipped")
        return json.loads(stage.marker.read_text())
    log(f"[tinyworld] {name} ...")
    stage.dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    result = fn(stage)
    stage.finish(time.monotonic() - t0, result)
    log(f"[tinyworld] {name}: {time.monotonic() - t0:.0f} s")
    return json.loads(stage.marker.read_text())


def build(cfg: RecipeConfig, stages: tuple[str, ...] = STAGES, force: bool = False,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the stages in order (each skipped when already done with the same settings)."""
    from . import stages as S  # the stage bodies, one function each

    cfg = cfg.scaled()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    out: dict[str, Any] = {}
    for name in STAGES:
        if name in stages:
            out[name] = run_stage(cfg, name, getattr(S, f"stage_{name}"), force, log)
    return out


def clean(cfg: RecipeConfig) -> None:
    shutil.rmtree(cfg.work, ignore_errors=True)
