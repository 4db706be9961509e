"""What the benchmark loaders return: items to answer, and an account of what could not be loaded.

Nothing is dropped silently: every row that does not become an `EvalItem` is counted in the
`EvalLoadReport` by reason, with a few example ids, and items whose image is missing are listed by id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moshivis.data.types import ImageRef

__all__ = ["AUDIO_SAMPLE_RATE", "EvalItem", "EvalLoadReport", "EvalLoadError", "Benchmark"]

AUDIO_SAMPLE_RATE = 24_000  # the codec's rate: spoken questions are resampled to it on load

# Stable reasons (dashboards group by these strings).
MISSING_IMAGE = "missing image"
MALFORMED_ROW = "malformed row"
NO_ANSWERS = "no answers"
NO_ANNOTATION = "no annotation"
BAD_AUDIO = "undecodable audio"
NO_GROUND_TRUTH = "no ground truth"
DUPLICATE_ID = "duplicate id"


@dataclass
class EvalItem:
    """One question (or one image to caption) with its ground truth.

    answers: every ground-truth answer as published, unnormalised: VQAv2's 10 human answers, OCR-VQA's
    one answer, COCO's (usually 5) reference captions. question: "" for COCO captioning (the prompt is the
    runner's choice) unless a spoken benchmark gives one. question_audio: [S] float32 at 24 kHz, only for
    spoken benchmarks. image.path is "" when the loader was given no image root.
    """

    id: str
    benchmark: str
    image: ImageRef | None
    question: str
    answers: list[str]
    answer_type: str | None = None
    question_type: str | None = None
    question_audio: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def references(self) -> list[str]:
        """Alias of `answers` for captioning, where they are reference captions."""
        return self.answers

    @property
    def audio_seconds(self) -> float:
        return 0.0 if self.question_audio is None else len(self.question_audio) / AUDIO_SAMPLE_RATE


class EvalLoadError(ValueError):
    """Raised by a strict load when rows were malformed or images missing; the message is the summary."""


@dataclass
class EvalLoadReport:
    """Rows read, items kept, errors by reason (with examples), and missing images by image id."""

    benchmark: str
    source: str
    split: str | None
    images_checked: bool = True
    rows_read: int = 0
    items: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    missing_images: dict[str, list[str]] = field(default_factory=dict)  # image id -> item ids
    notes: list[str] = field(default_factory=list)
    max_examples: int = 5

    def error(self, reason: str, row: str, detail: str = "") -> None:
        self.errors[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(f"{row}: {detail}" if detail else row)

    def missing_image(self, image_id: str, item_id: str) -> None:
        self.missing_images.setdefault(image_id, []).append(item_id)
        self.error(MISSING_IMAGE, item_id, f"image {image_id}")

    @property
    def missing_image_count(self) -> int:
        """Distinct images not found (the items they would have fed are in `errors["missing image"]`)."""
        return len(self.missing_images)

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    @property
    def ok(self) -> bool:
        return self.total_errors == 0

    def summary(self) -> str:
        head = (f"{self.benchmark} ({self.split or 'all'}) from {self.source}: {self.rows_read} rows read, "
                f"{self.items} items kept, {self.total_errors} rows not used")
        lines = [head]
        for reason, n in self.errors.most_common():
            lines.append(f"  {reason}: {n} (e.g. {'; '.join(self.examples.get(reason, [])[:3])})")
        if self.missing_images:
            ids = sorted(self.missing_images)
            lines.append(f"  missing images: {len(ids)} distinct, ids {', '.join(ids[:10])}"
                         + (" ..." if len(ids) > 10 else ""))
        if not self.images_checked:
            lines.append("  images not checked (no image root given)")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark, "source": self.source, "split": self.split,
            "rows_read": self.rows_read, "items": self.items, "images_checked": self.images_checked,
            "errors": dict(self.errors), "examples": self.examples,
            "missing_images": {"count": self.missing_image_count, "ids": sorted(self.missing_images)},
            "notes": list(self.notes),
        }


@dataclass
class Benchmark:
    """A loaded benchmark: its items (in file order) and the load report."""

    name: str
    items: list[EvalItem]
    report: EvalLoadReport

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[EvalItem]:
        return iter(self.items)

    def by_id(self) -> dict[str, EvalItem]:
        return {item.id: item for item in self.items}
