"""A seeded generator of the short sentences the embedded model hears and says: shape / colour / number /
arithmetic / position questions and answers, yes-no pairs, and small talk.

Train and evaluation strings never overlap, whatever the seeds: a sentence belongs to the evaluation
side when a hash of its normalised text falls in the `EVAL_SHARE` slice. Words are shared; strings are not.
"""

from __future__ import annotations

import hashlib
import random

COLOURS = "red blue green yellow orange purple pink brown black white gray teal".split()
SHAPES = "circle square triangle rectangle star heart diamond oval hexagon".split()
SIZES = "big small tiny large little".split()
PLACES = ("on the left", "on the right", "at the top", "at the bottom", "in the middle", "in the corner",
          "next to the {c2} {s2}", "above the {c2} {s2}", "below the {c2} {s2}")
NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
           "sixteen seventeen eighteen nineteen twenty").split()
SMALL_TALK = (
    "Hello, how are you today?", "I'm doing well, thank you.", "Good morning!", "Good night, sleep well.",
    "Thank you very much.", "You're welcome.", "Can you help me with this picture?", "Of course, I can help.",
    "What do you see in the image?", "Let me take a look.", "That is a good question.", "I am not sure.",
    "Could you say that again, please?", "Sure, no problem.", "Nice to meet you.", "See you later.",
    "What is your name?", "My name is Moshi.", "How was your day?", "It was a lovely day.",
    "Do you like this game?", "Yes, it is fun.", "Let's try another one.", "Well done, that is right.",
    "Sorry, that is not correct.", "Please look at the picture again.", "Are you ready?", "I am ready.",
    "Tell me more.", "Okay, let me think.", "That sounds great.", "Have a nice day.",
)
EVAL_SHARE = 0.15


def _plural(shape: str, n: int) -> str:
    return shape if n == 1 else shape + "s"


def _fill(template: str, rng: random.Random) -> str:
    c, c2 = rng.sample(COLOURS, 2)
    s, s2 = rng.sample(SHAPES, 2)
    place = rng.choice(PLACES).format(c2=c2, s2=s2)
    return template.format(c=c, c2=c2, s=s, s2=s2, z=rng.choice(SIZES), place=place)


def _arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 10), rng.randint(0, 10)
    op = rng.choice(("plus", "minus", "times"))
    if op == "minus" and b > a:
        a, b = b, a
    r = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    if r > 20:
        op, r = "plus", a + b
    x, y, z = NUMBERS[a], NUMBERS[b], NUMBERS[r]
    return rng.choice((f"What is {x} {op} {y}?", f"{x.capitalize()} {op} {y} is {z}.",
                       f"How much is {x} {op} {y}?", f"The answer is {z}.", f"{x.capitalize()} {op} {y} equals {z}."))


def _counting(rng: random.Random) -> str:
    n = rng.randint(0, 12)
    c, s = rng.choice(COLOURS), rng.choice(SHAPES)
    return rng.choice((f"How many {c} {s}s are there?", f"There are {NUMBERS[n]} {_plural(s, n)}.",
                       f"I can count {NUMBERS[n]} {c} {_plural(s, n)}.", f"How many {s}s do you see?",
                       f"I see {NUMBERS[n]} {_plural(s, n)} in the picture."))


QA_TEMPLATES = (
    "What colour is the {s}?", "The {s} is {c}.", "What shape is {c}?", "The {c} shape is a {s}.",
    "Is there a {c} {s}?", "Yes, there is a {c} {s}.", "No, there is no {c} {s}.", "Where is the {c} {s}?",
    "The {c} {s} is {place}.", "Is the {s} {c}?", "No, the {s} is {c2}.", "Yes, it is {c}.",
    "What is {place}?", "A {z} {c} {s} is {place}.", "Does the image contain a {s}?",
    "I see a {z} {c} {s} and a {c2} {s2}.", "Which shape is bigger?", "The {c} {s} is bigger than the {s2}.",
    "Is the {c} {s} {place}?", "The image shows a {c} {s}.",
)


def random_sentence(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.5:
        return _fill(rng.choice(QA_TEMPLATES), rng)
    if r < 0.65:
        return _counting(rng)
    if r < 0.82:
        return _arithmetic(rng)
    return rng.choice(SMALL_TALK)


def is_eval(sentence: str) -> bool:
    """Whether `sentence` belongs to the evaluation side (stable across runs and seeds)."""
    key = " ".join(sentence.lower().split()).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") / 2**32 < EVAL_SHARE


def sentences(n: int, seed: int, split: str = "train", distinct: bool = False) -> list[str]:
    """n sentences of one split ("train" or "eval"); distinct: no repeated string (ValueError when the
    generator runs dry). Repeats are allowed otherwise: the same text in other voices is useful."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be train or eval, got {split!r}")
    rng = random.Random(f"tiny-sentences:{seed}:{split}")
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(200 * n + 1000):
        if len(out) == n:
            break
        s = random_sentence(rng)
        if is_eval(s) != (split == "eval") or (distinct and s in seen):
            continue
        seen.add(s)
        out.append(s)
    if len(out) < n:
        raise ValueError(f"only {len(out)} distinct {split} sentences found, asked for {n}")
    return out
