"""What an easy-vqa image shows: its one shape and colour as its QA pairs tell (`easy_vqa_attributes`),
where the shape sits, read from the pixels (`easy_vqa_layout`), and Moshi's sentence for an easy-vqa
question (`easy_vqa_spoken_answer`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from moshivis.data.easy_vqa_wordings import EasyVqaQuestion, parse_easy_vqa_question
from moshivis.data.spoken_answers import article_for, most_common_answer


@dataclass
class EasyVqaAttributes:
    shape: str | None = None
    color: str | None = None


def easy_vqa_attributes(qa: Sequence[tuple[str, Sequence[str]]]) -> EasyVqaAttributes:
    """The image's shape and colour as far as its QA pairs tell (each easy-vqa image has one shape)."""
    attrs = EasyVqaAttributes()
    for question, answers in qa:
        p = parse_easy_vqa_question(question)
        if p is None or not answers:
            continue
        a = most_common_answer(answers).lower()
        if p.intent == "shape":
            attrs.shape = a
        elif p.intent == "color":
            attrs.color = a
            if p.value != "shape":
                attrs.shape = p.value
        elif p.intent == "shape_of_color":
            attrs.color, attrs.shape = p.value, a
        elif p.intent in ("has_color", "not_color") and (a == "yes") == (p.intent == "has_color"):
            attrs.color = p.value
        elif p.intent in ("has_shape", "not_shape") and (a == "yes") == (p.intent == "has_shape"):
            attrs.shape = p.value
    return attrs


def easy_thing(attrs: EasyVqaAttributes) -> str:
    """ "a blue circle" / "a circle" / "a blue shape" / "a shape" """
    words = " ".join(w for w in (attrs.color, attrs.shape or "shape") if w)
    return f"{article_for(words)} {words}"


def easy_vqa_spoken_answer(p: EasyVqaQuestion, answer: str, attrs: EasyVqaAttributes, rng: random.Random,
                           evidence_first: bool = False, echo: bool = False) -> str:
    """Moshi's sentence for an easy-vqa question, adding what else is known.

    Yes/no answers: verdict first ("No, there isn't a red shape. The shape is blue."), or, with
    `evidence_first` and the image's attribute known, what the image shows first and then the verdict
    ("The shape is blue, so no, there isn't a red shape.").

    Why the option: verdict first, the yes/no word must come from comparing the question with the image
    inside one token's forward pass, and the adapters never learned it (typed has-colour accuracy equalled
    the blind base's, 83.3 vs 82.6%, stop 13). Evidence first, the attribute is read from the image and the
    verdict is a comparison of two words in the text. A full rebuild with it (stop 14) took colour
    questions from 78 to 98% typed, but the base then said the verdict for "absent" even when the colour it
    had just named was the one asked about (only 12% of easy-vqa's has/not-colour questions have it
    present), and the typed total fell from 66.7 to 62.1%: README, stop 14.

    `echo` (with `evidence_first`): the answer first repeats what was asked in Moshi's own words ("A red
    shape? The shape is blue, so no, there isn't a red shape."; negated: "Not a red shape? ..."). In the
    evidence-first builds the verdict agreed with the evidence only at chance (53%, stop 15): it compared a
    word Moshi had just said with one many frames back on the text stream (typed) or only in the user's
    audio (spoken). Echoed, both words sit a few pieces apart in Moshi's own text."""
    a = answer.strip().lower()
    thing = easy_thing(attrs)
    if p.intent == "shape":
        return rng.choice([f"It's {thing}.", f"I see {thing}.", f"There is {thing}."])
    if p.intent == "color":
        return rng.choice([f"The {p.value} is {a}.", f"It's {a}."])
    if p.intent == "shape_of_color":
        return rng.choice([f"The {p.value} shape is {article_for(a)} {a}.", f"It's {article_for(a)} {a}."])
    is_color = p.intent in ("has_color", "not_color")
    present = (a == "yes") == p.intent.startswith("has")
    bare = f"{p.value} shape" if is_color else str(p.value)  # "red shape" / "circle"
    named = f"{article_for(bare)} {bare}"
    known = attrs.color if is_color else attrs.shape
    # What the image shows, when its QA pairs tell: "The shape is blue" / "The shape is a circle".
    seen = (f"The shape is {known}" if is_color else f"The shape is {article_for(known)} {known}") if known else None
    if evidence_first and seen:
        if echo:  # "A red shape? The shape is blue" / "Not a circle? The shape is a circle"
            asked = named if p.intent.startswith("has") else f"not {named}"
            seen = f"{asked[0].upper()}{asked[1:]}? {seen}"
        if p.intent.startswith("has"):
            return f"{seen}, so yes, there is {named}." if present else f"{seen}, so no, there isn't {named}."
        # Negated question: answer the fact, not the polarity ("Is there not a red shape?" -> no -> there is one).
        return f"{seen}, so actually there is {named}." if present else f"{seen}, so that's right, there is no {bare}."
    other = f" {seen}." if not present and seen else ""
    if p.intent.startswith("has"):
        return f"Yes, there is {named}." if present else f"No, there isn't {named}.{other}"
    return f"Actually, there is {named}." if present else f"That's right, there is no {bare}.{other}"


def easy_vqa_layout(path: str) -> tuple[str, str, str, float] | None:
    """(vertical, horizontal, phrase, area fraction) of the one shape in an easy-vqa image, from pixels:
    the shape is whatever differs from the border's dominant colour. None when no shape is found."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB")).astype(np.int32)
    h, w, _ = arr.shape
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    colors, counts = np.unique(border, axis=0, return_counts=True)
    bg = colors[counts.argmax()]
    mask = np.abs(arr - bg).sum(-1) > 60
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.min() + ys.max()) / 2 / h, (xs.min() + xs.max()) / 2 / w
    # Thirds would call a shape spanning x 0.4..0.9 "in the middle"; 0.4/0.6 matches what a person says.
    vert = "top" if cy < 0.4 else "bottom" if cy > 0.6 else "middle"
    horiz = "left" if cx < 0.4 else "right" if cx > 0.6 else "center"
    if vert == "middle" and horiz == "center":
        phrase = "in the middle of the picture"
    elif vert == "middle":
        phrase = f"on the {horiz} side"
    elif horiz == "center":
        phrase = f"at the {vert}"
    else:
        phrase = f"in the {vert} {horiz} corner"
    return vert, horiz, phrase, float(mask.mean())
