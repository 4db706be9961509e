"""New sentence frames for easy-vqa questions: training-only wordings whose STRUCTURE none of the wording
tables has (a carrier phrase, another verb or noun, the question turned around), for every intent.

Stop 26 measured (`scripts/listening_ceiling.py`) that a reader of the codec's tokens generalises to
held-out wordings in proportion to how many distinct training wordings it heard, while more renderings of
the same wordings, or stop 24's drills (training wordings' own parts recombined), add little. These frames
test the other way to add wordings: new structures written for their own sake.

They were written from the meanings alone, not by editing held-out wordings, and the held-out wordings
stay unheard by the same rule as the drills': a frame is kept only if it is at least `min_edits` word edits
(default 2) from EVERY held-out wording of every intent (a placeholder counts as one word), and it must be
in no wording table. Each frame must parse back to its own intent only (tested).
"""

from __future__ import annotations

import re
from functools import lru_cache

from moshivis.data.easy_vqa_wordings import heldout_edits, table_wordings, template_regex

EASY_FRAMES: dict[str, tuple[str, ...]] = {
    "shape": ("what shape do you see in the image?", "tell me, what shape is this?", "what is this shape called?",
              "what shape is the object?", "do you know what shape this is?", "name the shape in the image.",
              "what kind of figure is in the picture?", "what would you call this shape?",
              "which kind of shape is drawn?", "what shape is it?", "look at the image. what shape is there?",
              "what sort of shape are we looking at?"),
    "color": ("what color would you say the {subject} is?", "tell me, what color is the {subject}?",
              "do you know the color of the {subject}?", "in what color is the {subject} drawn?",
              "the {subject} is what color?", "what color is used for the {subject}?",
              "describe the color of the {subject}.", "what color is the {subject} in this image?",
              "could you say what color the {subject} is?", "look at the {subject}. what color is it?",
              "what sort of color has the {subject} got?", "name the color of the {subject}."),
    "shape_of_color": ("the {color} shape is what kind of shape?", "what kind of shape is the {color} one?",
                       "tell me, what is the {color} shape?", "what is the shape colored {color}?",
                       "do you know what the {color} shape is?", "which shape has the color {color}?",
                       "what is the {color} thing in the image?", "what form does the {color} shape take?",
                       "name the {color} shape.", "could you tell me which shape is {color}?",
                       "what do you call the {color} shape?", "look at the {color} one. what shape is it?"),
    "has_color": ("is any shape here {color}?", "would you say the shape is {color}?",
                  "tell me, is there a {color} shape?", "am i looking at a {color} shape?",
                  "is the color of the shape {color}?", "could the shape be {color}?", "is it a {color} shape?",
                  "does it look {color} to you?", "is the object {color}?", "is there any {color} in the image?",
                  "is {color} the color of the shape?", "is the figure {color}?"),
    "not_color": ("is the shape some color other than {color}?", "is there no {color} in the image at all?",
                  "is it true that the shape is not {color}?", "would you say nothing here is {color}?",
                  "is the shape anything but {color}?", "am i right that there is no {color} shape?",
                  "is {color} missing from the picture?", "is {color} absent from the image?",
                  "is the shape not colored {color}?", "is there not any {color} here?", "is the figure not {color}?",
                  "are there zero {color} shapes?"),
    "has_shape": ("is it a {shape}?", "am i looking at a {shape}?", "would you say the shape is a {shape}?",
                  "is the object a {shape}?", "is the figure a {shape}?", "tell me, is there a {shape}?",
                  "could the shape be a {shape}?", "is there any {shape} in the image?",
                  "does the shape look like a {shape}?", "is a {shape} drawn in the picture?",
                  "can i see a {shape} here?", "is the image showing a {shape}?"),
    "not_shape": ("is it not a {shape}?", "is the object not a {shape}?", "is the shape something other than a {shape}?",
                  "is it true that the shape is not a {shape}?", "would you say there is no {shape} here?",
                  "is a {shape} missing from the picture?", "is the figure not a {shape}?",
                  "am i right that there is no {shape}?", "is there not any {shape} here?",
                  "does the shape not look like a {shape}?", "is the shape anything but a {shape}?",
                  "is a {shape} absent from the image?"),
}


# The yes/no frames again, in polarity PAIRS: each plain frame with its negation by "not" / "no" only, the
# rest of the frame the same. Stop 27 found that unpaired frames pull a held-out wording toward whichever
# polarity its nearest new frame has; paired, no frame skeleton carries a polarity, only the negating word.
PAIRED_FRAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "color": (("is any shape here {color}?", "is no shape here {color}?"),
              ("would you say the shape is {color}?", "would you say the shape is not {color}?"),
              ("tell me, is there a {color} shape?", "tell me, is there no {color} shape?"),
              ("am i looking at a {color} shape?", "am i not looking at a {color} shape?"),
              ("is the color of the shape {color}?", "is the color of the shape not {color}?"),
              ("is it a {color} shape?", "is it not a {color} shape?"),
              ("does it look {color} to you?", "does it not look {color} to you?"),
              ("is the object {color}?", "is the object not {color}?"),
              ("is there any {color} in the image?", "is there no {color} in the image?"),
              ("is {color} the color of the shape?", "is {color} not the color of the shape?"),
              ("is the figure {color}?", "is the figure not {color}?")),
    "shape": (("am i looking at a {shape}?", "am i not looking at a {shape}?"),
              ("would you say the shape is a {shape}?", "would you say the shape is not a {shape}?"),
              ("tell me, is there a {shape}?", "tell me, is there no {shape}?"),
              ("is there any {shape} in the image?", "is there no {shape} in the image?"),
              ("does the shape look like a {shape}?", "does the shape not look like a {shape}?"),
              ("is a {shape} drawn in the picture?", "is no {shape} drawn in the picture?"),
              ("is the image showing a {shape}?", "is the image not showing a {shape}?"),
              ("would you say there is a {shape} here?", "would you say there is no {shape} here?"),
              ("am i right that there is a {shape}?", "am i right that there is no {shape}?")),
}


# Negating words none of the wording tables uses: the frames above bring them in. `closed_negation=True`
# drops the negated frames that rely on them, so negation stays the tables' closed class (not / no / nothing
# / lack / free of) while the plain frames still add new structures.
NEW_NEGATIONS: tuple[str, ...] = ("missing", "absent", "anything but", "other than", "zero")


def _unheard(template: str, heldout_fraction: float, split_seed: int, min_edits: int) -> bool:
    """In no wording table and at least `min_edits` word edits from every held-out wording."""
    return template not in table_wordings() and heldout_edits(template, heldout_fraction, split_seed) >= min_edits


@lru_cache(maxsize=8)
def frame_wordings(heldout_fraction: float = 0.3, split_seed: int = 0, min_edits: int = 2,
                   closed_negation: bool = False) -> dict[str, tuple[str, ...]]:
    """Per intent, the frames a model may train on under that wording split: in no wording table and at
    least `min_edits` word edits from every held-out wording (sorted); with `closed_negation`, none that
    says its negation with a word of NEW_NEGATIONS."""
    return {intent: tuple(sorted(t for t in frames if _unheard(t, heldout_fraction, split_seed, min_edits)
                                 and not (closed_negation and any(w in t for w in NEW_NEGATIONS))))
            for intent, frames in EASY_FRAMES.items()}


@lru_cache(maxsize=8)
def paired_frame_wordings(heldout_fraction: float = 0.3, split_seed: int = 0, min_edits: int = 2,
                          ) -> dict[str, tuple[str, ...]]:
    """Like `frame_wordings`, but the yes/no intents take PAIRED_FRAMES, a pair kept only when both its
    wordings pass the filter (so the skeletons stay balanced); the other intents keep their frames."""
    out = dict(frame_wordings(heldout_fraction, split_seed, min_edits))
    for kind, pairs in PAIRED_FRAMES.items():
        kept = [(a, b) for a, b in pairs if _unheard(a, heldout_fraction, split_seed, min_edits)
                and _unheard(b, heldout_fraction, split_seed, min_edits)]
        out[f"has_{kind}"] = tuple(sorted(a for a, _ in kept))
        out[f"not_{kind}"] = tuple(sorted(b for _, b in kept))
    return out


@lru_cache(maxsize=8)
def _frame_patterns(heldout_fraction: float, split_seed: int) -> list[tuple[re.Pattern[str], str, str]]:
    every = {i: set(frame_wordings(heldout_fraction, split_seed)[i]) | set(paired_frame_wordings(
        heldout_fraction, split_seed)[i]) for i in EASY_FRAMES}
    return [(template_regex(t), intent, t) for intent, templates in every.items() for t in sorted(templates)]


def parse_frame(question: str, heldout_fraction: float = 0.3, split_seed: int = 0) -> tuple[str, str | None, str] | None:
    """(intent, value, template) of a question asked in a frame wording (paired or not), None if it is not one."""
    q = question.strip().lower()
    for pattern, intent, template in _frame_patterns(heldout_fraction, split_seed):
        if m := pattern.match(q):
            return intent, m.groupdict().get("v"), template
    return None
