"""Plain records passed between the stages of the data pipeline.

sources -> `Dialogue` -> (TTS + alignment) -> `SpokenTurn`s -> (codec + layout) -> `Sample` -> shards.
Every stage that can fail on a row returns a `RowError` with a reason instead of raising or dropping it,
so a run can end with a table of counts by reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Speaker = Literal["user", "moshi"]
# text_only: an image-free dialogue in the text stream alone (a speechless sample without an image). The
# base learns the typed-question format from them; a base that never saw text without audio made adapters
# trained on speechless samples garble it (stop 10).
SampleKind = Literal["image_speech", "speechless", "audio_only", "text_only"]
SAMPLE_KINDS: tuple[SampleKind, ...] = ("image_speech", "speechless", "audio_only", "text_only")
IMAGE_FREE_KINDS: tuple[SampleKind, ...] = ("audio_only", "text_only")


@dataclass
class ImageRef:
    """An image by file path (relative paths are resolved against the source's image root)."""

    image_id: str
    path: str


@dataclass
class Turn:
    speaker: Speaker
    text: str
    about_image: bool = True  # False for turns of a concatenated unrelated dialogue


@dataclass
class Dialogue:
    """A multi-turn conversation, user first. `image` None: an audio-only (no image) dialogue."""

    id: str
    turns: list[Turn]
    image: ImageRef | None
    source: str  # e.g. "easy-vqa", "coco", "vqav2"
    question_type: str = "mixed"  # properties, location, counting, misleading, teacher_student, mixed, ...
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RowError:
    """A source row (or a later stage of it) that could not be used, and why."""

    source: str
    row: str  # row index or id, enough to find it again
    reason: str  # short stable category, e.g. "missing image", "empty caption", "tts failed"
    detail: str = ""


@dataclass
class WordTiming:
    """One word of an utterance and where it is spoken, in seconds from the utterance start."""

    word: str
    start: float
    end: float


@dataclass
class SpokenTurn:
    """A turn rendered to speech: mono float32 audio at the codec's sample rate + word timings."""

    turn: Turn
    audio: np.ndarray  # [S] float32 in [-1, 1]
    sample_rate: int
    words: list[WordTiming]
    voice: str


@dataclass
class Sample:
    """One training sample, ready for the model.

    codes: [17, T] int — stream 0 text, 1..8 Moshi's audio codebooks, 9..16 the user's (-1 = nothing,
    embeds to zero). loss_mask: [17, T] bool — True where a target counts; only streams 0..8 can be True
    (the user streams are inputs, never targets).
    """

    id: str
    kind: SampleKind
    codes: np.ndarray
    loss_mask: np.ndarray
    image: ImageRef | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.codes.shape[1])
