"""Image-free yes/no questions about everyday things, asked plainly or negated in many common English ways,
answered in the embedded model's echo-evidence-verdict form ("Not a red banana? A banana is yellow, so
that's right, it isn't red.").

Why: the spoken model hears held-out question wordings as their nearest trained wording. Its two worst
(README, stop 30) are plain questions one word from a trained negated one: "does the picture HAVE a red
shape?" (trained: "... LACK ...") and "is there SOMETHING red in this picture?" ("... NOTHING ..."). A speech
model that had heard these words in other sentences would know which way they point; this tiny one never
heard them at all. These exchanges teach ordinary polarity words (have / lack, something / nothing, free of,
no, not, without, missing, ...) in sentences about things, never about a picture or a shape in one: no
sentence here is an easy-vqa wording, trained or held out (tested). The echo's first word ("A" / "Not") is
the same readout the image answers use, so what is learned here is where those answers need it.
"""

from __future__ import annotations

import random

# (thing, its usual colour) and (thing, its shape): facts a child knows.
COLOR_THINGS = (("banana", "yellow"), ("lemon", "yellow"), ("strawberry", "red"), ("tomato", "red"),
                ("cherry", "red"), ("carrot", "orange"), ("pumpkin", "orange"), ("frog", "green"),
                ("lime", "green"), ("cucumber", "green"), ("polar bear", "white"), ("snowball", "white"),
                ("crow", "black"), ("blueberry", "blue"), ("flamingo", "pink"), ("chocolate bar", "brown"),
                ("school bus", "yellow"), ("fire truck", "red"), ("elephant", "gray"), ("tree trunk", "brown"),
                ("pea", "green"), ("coal lump", "black"), ("mouse", "gray"), ("sunflower", "yellow"))
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow", "white", "orange", "pink")
SHAPE_THINGS = (("wheel", "circle"), ("coin", "circle"), ("plate", "circle"), ("door", "rectangle"),
                ("book", "rectangle"), ("phone", "rectangle"), ("slice of pizza", "triangle"),
                ("road sign for yield", "triangle"), ("tent seen from the front", "triangle"))
SHAPES = ("circle", "rectangle", "triangle")

# Plain and negated ways to ask whether THING is COLOUR ({t}: "a banana", {c}: the colour, {ac}: "an orange").
PLAIN_COLOR = ("does {t} have {ac} colour?", "is there something {c} about {t}?", "is {t} {c}?",
               "is {t} usually {c}?", "does {t} look {c}?", "would you call {t} {c}?",
               "do people say {t} is {c}?", "has {t} got {ac} colour?", "is {c} the colour of {t}?",
               "can you find something {c} on {t}?")
NEGATED_COLOR = ("does {t} lack {ac} colour?", "is there nothing {c} about {t}?", "is {t} not {c}?",
                 "is {t} free of {c}?", "is there no {c} on {t}?", "is {t} without any {c}?",
                 "is {c} missing from {t}?", "has {t} got no {c} on it?", "is {c} never the colour of {t}?",
                 "is it true that {t} is not {c}?")
PLAIN_SHAPE = ("does {t} have the shape of a {s}?", "is {t} a {s}?", "is there something {s}-shaped about {t}?",
               "does {t} look like a {s}?", "is {t} shaped like a {s}?")
NEGATED_SHAPE = ("does {t} lack the shape of a {s}?", "is {t} not a {s}?", "is there nothing {s}-shaped about {t}?",
                 "does {t} not look like a {s}?", "is {t} not shaped like a {s}?")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def polarity_fact(rng: random.Random) -> tuple[str, str]:
    """(question, answer): a colour or shape fact about a thing, the asked value right half the time, the
    question plain or negated half the time each."""
    negated = rng.random() < 0.5
    if rng.random() < 0.7:
        thing, true = rng.choice(COLOR_THINGS)
        asked = true if rng.random() < 0.5 else rng.choice([c for c in COLORS if c != true])
        template = rng.choice(NEGATED_COLOR if negated else PLAIN_COLOR)
        question = template.format(t=f"{_article(thing)} {thing}", c=asked, ac=f"{_article(asked)} {asked}")
        echo = f"{'Not ' + _article(asked) if negated else _article(asked).capitalize()} {asked} {thing}?"
        evidence = f"{_article(thing).capitalize()} {thing} is {true}"
        is_word = "is" if asked == true else "isn't"
        tail = f"it {is_word} {asked}."
    else:
        thing, true = rng.choice(SHAPE_THINGS)
        asked = true if rng.random() < 0.5 else rng.choice([s for s in SHAPES if s != true])
        template = rng.choice(NEGATED_SHAPE if negated else PLAIN_SHAPE)
        question = template.format(t=f"{_article(thing)} {thing}", s=asked)
        echo = f"{'Not ' + _article(asked) if negated else _article(asked).capitalize()} {asked}?"
        evidence = f"{_article(thing).capitalize()} {thing} is {_article(true)} {true}"
        tail = f"it {'is' if asked == true else 'is not'} {_article(asked)} {asked}."
    holds = asked == true
    # The verdict answers the question as asked: "not X?" when X holds -> no.
    if negated:
        verdict = "so that's right," if not holds else "so no,"
    else:
        verdict = "so yes," if holds else "so no,"
    return question[0].upper() + question[1:], f"{echo} {evidence}, {verdict} {tail}"
