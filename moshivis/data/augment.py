"""Dialogue augmentations that teach the model when the image matters and when it does not.

- `concat_augment`: with probability `p_concat`, an unrelated dialogue is prepended or appended to an
  image dialogue and its turns marked `about_image=False`, so the model learns to switch between talking
  about the image and other topics (paper, section on data: "p_concat").
- `audio_only_dialogues`: dialogues with no image at all (`Dialogue.image is None`), from a text
  dialogue source or from a small built-in generator of image-unrelated Q&A (arithmetic, counting,
  colours of common things, yes/no facts, shapes), so that plain speech ability is kept up while training.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from moshivis.data.polarity_facts import polarity_fact
from moshivis.data.templates import numbers_in_words
from moshivis.data.types import Dialogue, Turn

UnrelatedSource = Callable[[random.Random], Dialogue]
SMALLTALK = "smalltalk"
AUDIO_ONLY = "audio_only"

# ------------------------------------------------------------------------------- built-in Q&A topics

_THING_COLORS = (("banana", "yellow"), ("lemon", "yellow"), ("strawberry", "red"), ("tomato", "red"),
                 ("cherry", "red"), ("carrot", "orange"), ("pumpkin", "orange"), ("frog", "green"),
                 ("lime", "green"), ("cucumber", "green"), ("polar bear", "white"), ("snowball", "white"),
                 ("crow", "black"), ("lump of coal", "black"), ("blueberry", "blue"), ("flamingo", "pink"),
                 ("chocolate bar", "brown"), ("school bus", "yellow"), ("fire truck", "red"),
                 ("elephant", "gray"), ("rain cloud", "gray"), ("tree trunk", "brown"), ("mallard's neck", "teal"))
_PLURAL_COLORS = (("grass", "green", "is"), ("the sky on a clear day", "blue", "is"), ("snow", "white", "is"),
                  ("milk", "white", "is"), ("leaves in summer", "green", "are"))
_YES_NO = (("Is the sun hot?", "Yes, the sun is very hot."), ("Is ice cold?", "Yes, ice is cold."),
           ("Do fish live in water?", "Yes, fish live in water."), ("Can cats fly?", "No, cats can't fly."),
           ("Is a mouse bigger than an elephant?", "No, an elephant is much bigger than a mouse."),
           ("Do birds have feathers?", "Yes, birds have feathers."), ("Is the moon made of cheese?",
                                                                      "No, the moon is made of rock."),
           ("Does a week have seven days?", "Yes, a week has seven days."),
           ("Is water wet?", "Yes, water is wet."), ("Can people breathe underwater?",
                                                     "No, people can't breathe underwater without equipment."),
           ("Do trees grow from seeds?", "Yes, most trees grow from seeds."),
           ("Is winter warmer than summer?", "No, winter is usually colder than summer."))
# Shape and colour words in image-free sentences, so a base model trained without images can already say
# (and hear) the words its image answers will need.
_SHAPES = (("How many sides does a triangle have?", "A triangle has three sides."),
           ("How many sides does a rectangle have?", "A rectangle has four sides."),
           ("What shape is a wheel?", "A wheel is a circle."), ("What shape is a door?", "A door is a rectangle."),
           ("What shape is a slice of pizza?", "A slice of pizza is a triangle."),
           ("What shape is a coin?", "A coin is a circle."), ("What shape is a book?", "A book is a rectangle."),
           ("Is a circle round?", "Yes, a circle is round."), ("Does a triangle have corners?",
                                                                "Yes, a triangle has three corners."),
           ("Is a rectangle round?", "No, a rectangle has four straight sides."))
_MIXES = (("blue", "green", "teal"), ("black", "white", "gray"), ("red", "yellow", "orange"),
          ("blue", "yellow", "green"), ("red", "white", "pink"), ("red", "blue", "purple"))
_LEGS = (("dog", 4), ("cat", 4), ("spider", 8), ("bird", 2), ("horse", 4), ("ant", 6), ("chicken", 2),
         ("cow", 4), ("bee", 6))
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    op = rng.choice(["plus", "minus", "times"])
    if op == "times":
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        result = a * b
    else:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        if op == "minus" and b > a:
            a, b = b, a  # keep results non-negative: nicer to say, and what a child's quiz asks
        result = a + b if op == "plus" else a - b
    q = rng.choice([f"What is {a} {op} {b}?", f"How much is {a} {op} {b}?", f"Can you tell me what {a} {op} {b} is?"])
    return q, f"{a} {op} {b} is {result}."


def _counting(rng: random.Random) -> tuple[str, str]:
    start = rng.randint(1, 10)
    end = start + rng.randint(3, 6)
    return f"Can you count from {start} to {end}?", ", ".join(str(i) for i in range(start, end + 1)) + "."


def _color_of_thing(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.25:
        thing, color, verb = rng.choice(_PLURAL_COLORS)
        return f"What colour {verb} {thing}?", f"{thing[0].upper() + thing[1:]} {verb} {color}."
    thing, color = rng.choice(_THING_COLORS)
    art = "an" if thing[0] in "aeiou" else "a"
    return f"What colour is {art} {thing}?", f"{art.capitalize()} {thing} is usually {color}."


def _yes_no_fact(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_YES_NO)


def _legs(rng: random.Random) -> tuple[str, str]:
    animal, n = rng.choice(_LEGS)
    return f"How many legs does a {animal} have?", f"A {animal} has {n} legs."


def _shape_fact(rng: random.Random) -> tuple[str, str]:
    return rng.choice(_SHAPES)


def _color_mix(rng: random.Random) -> tuple[str, str]:
    a, b, mix = rng.choice(_MIXES)
    return f"What colour do you get when you mix {a} and {b}?", f"Mixing {a} and {b} gives {mix}."


def _next_day(rng: random.Random) -> tuple[str, str]:
    i = rng.randrange(7)
    return f"What day comes after {_DAYS[i]}?", f"{_DAYS[(i + 1) % 7]} comes after {_DAYS[i]}."


SMALLTALK_TOPICS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "arithmetic": _arithmetic, "counting": _counting, "colors": _color_of_thing, "yes_no": _yes_no_fact,
    "legs": _legs, "days": _next_day, "shapes": _shape_fact, "color_mix": _color_mix,
    "polarity": polarity_fact,
}
# The topics drawn when none are named (what every recipe dataset so far was made with). "polarity" is
# asked for by name (`SynthConfig.audio_only_topics`).
DEFAULT_TOPICS = ("arithmetic", "counting", "colors", "yes_no", "legs", "days", "shapes", "color_mix")


def check_topics(topics: Sequence[str] | None) -> tuple[str, ...]:
    """The topics to draw from (DEFAULT_TOPICS for None); unknown names are an error naming them."""
    if topics is None:
        return DEFAULT_TOPICS
    bad = [t for t in topics if t not in SMALLTALK_TOPICS]
    if bad or not topics:
        raise ValueError(f"audio-only topics {bad or '[]'}: choose from {', '.join(SMALLTALK_TOPICS)}")
    return tuple(topics)
_OPENERS = (("Hi Moshi!", "Hi! How can I help you?"), ("Hello, how are you?", "I'm doing well, thanks for asking!"),
            ("Can I ask you a few questions?", "Of course, go ahead."))


def smalltalk_dialogue(rng: random.Random, min_pairs: int = 1, max_pairs: int = 4,
                       numbers_as_words: bool = False, dialogue_id: str | None = None,
                       topics: Sequence[str] | None = None) -> Dialogue:
    """An image-unrelated dialogue of `min_pairs..max_pairs` question/answer exchanges (sometimes opened
    by a greeting), every turn `about_image=False`, `image=None`. `meta["qa"]` keeps the topic of each
    exchange, so tests and filters can check answers. topics: the topics drawn (None: DEFAULT_TOPICS)."""
    drawn = list(check_topics(topics))
    n = rng.randint(min_pairs, max_pairs)
    pairs: list[tuple[str, str]] = []
    topics: list[str] = []
    if n >= 2 and rng.random() < 0.3:
        pairs.append(rng.choice(_OPENERS))
        topics.append("greeting")
    while len(pairs) < n:
        topic = rng.choice(drawn)
        q, a = SMALLTALK_TOPICS[topic](rng)
        if (q, a) in pairs:
            continue  # the same yes/no fact twice in a row would be odd
        pairs.append((q, a))
        topics.append(topic)

    def fix(text: str) -> str:
        # Number words first, then the capital: "2 plus 12 is 14." -> "Two plus twelve is fourteen."
        text = numbers_in_words(text) if numbers_as_words else text
        return text[:1].upper() + text[1:]
    turns = [Turn(speaker, fix(text), about_image=False) for q, a in pairs for speaker, text in (("user", q),
                                                                                                  ("moshi", a))]
    return Dialogue(id=dialogue_id or f"{SMALLTALK}:{rng.getrandbits(48):012x}", turns=turns, image=None,
                    source=SMALLTALK, question_type=AUDIO_ONLY, meta={"topics": topics})


def as_audio_only(d: Dialogue) -> Dialogue:
    """`d` without its image: every turn `about_image=False`. For text dialogues that never needed one."""
    return replace(d, image=None, question_type=AUDIO_ONLY,
                   turns=[Turn(t.speaker, t.text, about_image=False) for t in d.turns],
                   meta={**d.meta, "audio_only_from": d.id})


def audio_only_dialogues(n: int | None = 100, seed: int = 0, source: Iterable[Dialogue] | None = None,
                         min_pairs: int = 1, max_pairs: int = 4, numbers_as_words: bool = False,
                         topics: Sequence[str] | None = None) -> Iterator[Dialogue]:
    """`n` audio-only dialogues (image None): from `source` (a text dialogue source, made imageless by
    `as_audio_only`) when given, else from the built-in generator. Deterministic per seed; `n` None with
    a source: all of it."""
    if source is not None:
        for i, d in enumerate(source):
            if n is not None and i >= n:
                return
            yield as_audio_only(d)
        return
    if n is None:
        raise ValueError("the built-in generator is endless: pass n")
    for i in range(n):
        rng = random.Random(f"audio-only|{seed}|{i}")
        yield smalltalk_dialogue(rng, min_pairs, max_pairs, numbers_as_words, dialogue_id=f"{SMALLTALK}:{seed}:{i}",
                                 topics=topics)


# -------------------------------------------------------------------------------------- concatenation


def concat_augment(dialogue: Dialogue, rng: random.Random, p_concat: float = 0.3,
                   unrelated: UnrelatedSource | Sequence[Dialogue] | None = None,
                   max_turns: int | None = None) -> Dialogue:
    """With probability `p_concat`, `dialogue` with an unrelated dialogue prepended or appended (equal
    odds); otherwise `dialogue` itself, unchanged. The unrelated turns get `about_image=False`; the image
    stays `dialogue`'s. `unrelated`: a function of an RNG (default `smalltalk_dialogue`) or a pool to draw
    from. `max_turns` trims the unrelated part (whole exchanges) to fit; no room left: no concatenation.
    `meta["concat"]` says where it went and what it was."""
    if not 0.0 <= p_concat <= 1.0:
        raise ValueError(f"p_concat must be in [0, 1], got {p_concat}")
    if rng.random() >= p_concat:
        return dialogue
    if unrelated is None:
        other = smalltalk_dialogue(rng)
    elif callable(unrelated):
        other = unrelated(rng)
    else:
        if not unrelated:
            raise ValueError("empty pool of unrelated dialogues")
        other = rng.choice(list(unrelated))
    extra = [Turn(t.speaker, t.text, about_image=False) for t in other.turns]
    if len(extra) % 2 or (extra and extra[0].speaker != "user"):
        raise ValueError(f"unrelated dialogue {other.id} must be user-first with whole exchanges")
    if max_turns is not None:
        room = (max_turns - len(dialogue.turns)) // 2 * 2
        extra = extra[: max(0, room)]
    if not extra:
        return dialogue
    # Appending after a dialogue that ends on the user would put two user turns in a row.
    position = "prepend" if len(dialogue.turns) % 2 else rng.choice(["prepend", "append"])
    turns = extra + list(dialogue.turns) if position == "prepend" else list(dialogue.turns) + extra
    return replace(dialogue, id=f"{dialogue.id}+{position[:3]}", turns=turns,
                   meta={**dialogue.meta, "concat": {"position": position, "other_id": other.id,
                                                     "unrelated_turns": len(extra)}})
