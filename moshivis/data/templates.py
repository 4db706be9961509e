"""Offline template dialogues: a `SourceRow` -> a multi-turn `Dialogue` about its image, no LLM needed.

The paper generates its dialogues with two LLMs (see `llm_dialogues`); templates are the cheap,
deterministic stand-in: they make every question type of the paper from what a row already holds.

- VQA rows (VQAv2, OCR-VQA): the real QA pairs, answer = most common annotator answer, said as a short
  spoken sentence (`spoken_answer`).
- Caption rows (COCO, DOCCI, PixMo-Cap): questions derived from the caption: what is seen, details,
  colours / counts / locations of known nouns, and misleading premises made by swapping a colour or noun.
- easy-vqa rows: the package's own questions, parsed into a structured intent so answers can be phrased
  and questions reworded (`paraphrase`) from a wording table split into train / held-out wordings
  (`wording_split`), so a model can later be scored on wordings it never heard.

Question types (`QUESTION_TYPES`): properties, location, counting, misleading, teacher_student, mixed.
Randomness: one `random.Random` per (seed, row, type), so a dialogue depends only on those and not on
the order rows are processed in.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from moshivis.data.sources import SourceRow
from moshivis.data.types import Dialogue, RowError, Turn

QUESTION_TYPES: tuple[str, ...] = ("properties", "location", "counting", "misleading", "teacher_student", "mixed")
NO_TEMPLATE = "no template"  # RowError reason: the row holds nothing to ask that kind of question about

WordingSet = Literal["train", "heldout", "all"]


@dataclass
class TemplateConfig:
    """Knobs of `make_dialogue`. Turn counts are even (user first, Moshi last) and are an upper bound
    drawn uniformly in [min_turns, max_turns]: a row with few facts gives a shorter dialogue, never
    repeated questions; fewer than `min_turns` possible turns is a RowError."""

    min_turns: int = 2
    max_turns: int = 16
    numbers_as_words: bool = False  # "3" -> "three" in every turn (what a TTS voice says anyway)
    paraphrase_prob: float = 0.0  # easy-vqa: share of questions reworded with `paraphrase`
    wordings: WordingSet = "train"  # which wording set paraphrases draw from
    heldout_fraction: float = 0.3
    split_seed: int = 0
    read_images: bool = True  # easy-vqa location facts come from the image's pixels (64x64, cheap)
    p_correct: float = 0.6  # teacher_student: how often the "student" answers right


# ------------------------------------------------------------------------------- words and numbers

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
    "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_to_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 ("twenty-one", "three hundred and five"); digits beyond."""
    if n < 0 or n >= 1_000_000:
        return str(n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_to_words(rest))
    rest = n % 1000
    sep = "" if rest == 0 else (" and " if rest < 100 else " ")
    return number_to_words(n // 1000) + " thousand" + ("" if rest == 0 else sep + number_to_words(rest))


def numbers_in_words(text: str) -> str:
    """Every standalone integer of `text` in words."""
    return re.sub(r"\b\d+\b", lambda m: number_to_words(int(m.group())), text)


_WORD_NUMBERS = {w: i for i, w in enumerate(_ONES[:11])}


def _parse_number(text: str) -> int | None:
    t = text.strip().lower().rstrip(".")
    if t.isdigit():
        return int(t)
    return _WORD_NUMBERS.get(t)


def _sentence(text: str) -> str:
    """Capitalised, ending with punctuation: how a turn is written."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def most_common_answer(answers: Sequence[str]) -> str:
    """The answer given most often (case- and space-insensitive); ties go to the earliest."""
    norm = [a.strip().lower() for a in answers]
    counts = Counter(norm)
    best = max(counts.values())
    return next(a.strip() for a, n in zip(answers, norm) if counts[n] == best)


# ------------------------------------------------------------------------------------ spoken answers

_NEG = {"is": "isn't", "are": "aren't", "was": "wasn't", "were": "weren't", "does": "doesn't", "do": "don't",
        "did": "didn't", "can": "can't", "could": "couldn't", "has": "hasn't", "have": "haven't",
        "will": "won't", "would": "wouldn't", "should": "shouldn't"}
_PLURAL_SUBJECTS = {"these", "those", "they", "both", "all", "people", "men", "women", "children"}


def _yes_no(question: str, yes: bool) -> str:
    """ "Is there a dog?" + yes -> "Yes, there is." ; "Do you see ...?" + no -> "No, I don't." """
    q = question.strip().lower()
    m = re.match(r"(is|are|was|were|does|do|did|can|could|has|have|will|would|should)\s+(\w+)", q)
    if m is None or re.search(r"\b(not|no)\b|n't\b", q):
        return "Yes." if yes else "No."  # negated questions: a bare yes/no is the only unambiguous reply
    aux, subj = m.groups()
    if subj == "you":
        pron, aux = "I", {"are": "am", "were": "was"}.get(aux, aux)
    elif subj == "there":
        pron = "there"
    elif subj in _PLURAL_SUBJECTS or aux in ("are", "were", "do"):
        pron = "they"
    else:
        pron = "it"
    if yes:
        return f"Yes, {pron} {aux}."
    if pron == "I" and aux == "am":
        return "No, I'm not."
    return f"No, {pron} {_NEG[aux]}."


def spoken_answer(question: str, answer: str, rng: random.Random | None = None) -> str:
    """A VQA answer ("blue", "3", "yes", "on the table") as a short spoken sentence for `question`."""
    rng = rng or random.Random(0)
    q = question.strip().lower().rstrip("?").strip()
    a = answer.strip().rstrip(".")
    if a.lower() in ("yes", "no"):
        return _yes_no(question, a.lower() == "yes")
    n = _parse_number(a)
    if q.startswith("how many"):
        if n == 0:
            return "There are none."
        if n == 1:
            return rng.choice(["Just one.", "There is one.", "I count one."])
        return rng.choice([f"There are {a}.", f"I count {a}.", f"The answer is {a}."])
    if m := re.match(r"what colou?rs? (is|are) (?:the |this |that )(.+)", q):
        verb, subj = m.groups()
        return f"The {subj} {verb} {a}."
    if re.match(r"who (wrote|is the author of)", q):
        return f"It was written by {a}."
    if re.match(r"what is the title of", q):
        return f"The title is {a}."
    if re.match(r"what (type|genre|kind) of book", q):
        return f"It's a book in the {a} category."
    if m := re.match(r"what (?:is|are) the (.+?) doing", q):
        subj = m.group(1)
        return f"The {subj} {'are' if subj.endswith('s') else 'is'} {a}."
    if (re.match(r"what (kind|type|sort) of", q) or re.match(r"what (is|are) .+ (holding|carrying|riding|throwing|"
                                                             r"catching|using)$", q)) \
            and len(a.split()) == 1 and not a.endswith("s"):
        return f"It's {_article(a)} {a}."
    if q.startswith("where"):
        if re.match(r"(on|in|at|under|behind|near|next|above|below|inside|outside|by)\b", a.lower()):
            return f"It's {a}."
        return f"I'd say {a}."
    if n is not None:
        return f"The answer is {a}."
    if len(a.split()) <= 4:
        return f"It's {a}."
    return _sentence(a)


# ------------------------------------------------------------------------------------------ easy-vqa

EASY_COLORS: tuple[str, ...] = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")
EASY_SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle")

# Wordings of each easy-vqa question intent. ORIGINALS are the package's own patterns (22 templates,
# covering all its 107 distinct questions); PARAPHRASES are new wordings. Placeholders: {color}, {shape},
# {subject} ("shape" or a shape name). Every wording must parse back to its own intent only (tested).
EASY_ORIGINALS: dict[str, tuple[str, ...]] = {
    "shape": ("what shape is in the image?", "what shape does the image contain?", "what shape is present?"),
    "color": ("what color is the {subject}?", "what is the color of the {subject}?"),
    "shape_of_color": ("what is the {color} shape?",),
    "has_color": ("is there a {color} shape?", "is there a {color} shape in the image?",
                  "is a {color} shape present?", "does the image contain a {color} shape?"),
    "not_color": ("is there not a {color} shape?", "is there not a {color} shape in the image?",
                  "is no {color} shape present?", "does the image not contain a {color} shape?"),
    "has_shape": ("is there a {shape}?", "is there a {shape} in the image?", "is a {shape} present?",
                  "does the image contain a {shape}?"),
    "not_shape": ("is there not a {shape}?", "is there not a {shape} in the image?", "is no {shape} present?",
                  "does the image not contain a {shape}?"),
}
EASY_PARAPHRASES: dict[str, tuple[str, ...]] = {
    "shape": ("which shape do you see?", "what is the shape in this picture?", "what kind of shape is this?",
              "can you tell me what shape is in the picture?", "what shape can you see?", "which shape is shown?",
              "what shape is drawn here?", "what's the shape in the image?", "which shape does the picture show?",
              "what geometric shape is in this picture?"),
    "color": ("what colour is the {subject}?", "which color is the {subject}?",
              "can you tell me the color of the {subject}?", "what's the color of the {subject}?",
              "what color does the {subject} have?", "how is the {subject} colored?",
              "what colour does the {subject} have?", "tell me the colour of the {subject}."),
    "shape_of_color": ("which shape is {color}?", "what shape is the {color} one?", "can you name the {color} shape?",
                       "what is the {color} object in the picture?", "what's the {color} shape?",
                       "which shape is colored {color}?"),
    "has_color": ("do you see anything {color}?", "is the shape {color}?", "can you see a {color} shape?",
                  "is anything in the picture {color}?", "does the picture have a {color} shape?",
                  "is there something {color} in this picture?", "do you see a {color} shape?",
                  "is the shape in the picture {color}?"),
    "not_color": ("is there no {color} shape?", "is it true that there is no {color} shape?",
                  "is the picture free of {color} shapes?", "is there nothing {color} in the image?",
                  "does the picture lack a {color} shape?", "is the shape not {color}?",
                  "are there no {color} shapes here?"),
    "has_shape": ("do you see a {shape}?", "is the shape a {shape}?", "can you see a {shape} in the picture?",
                  "is there a {shape} in this picture?", "does the picture show a {shape}?",
                  "is the shape in the picture a {shape}?", "is that a {shape}?"),
    "not_shape": ("is there no {shape}?", "is it true that there is no {shape} in the picture?",
                  "is the shape not a {shape}?", "does the picture lack a {shape}?",
                  "is the picture free of {shape}s?", "are there no {shape}s here?"),
}


@dataclass(frozen=True)
class EasyVqaQuestion:
    """A parsed easy-vqa question: intent (a key of EASY_ORIGINALS), the colour / shape / subject it
    names, and the wording template it matched."""

    intent: str
    value: str | None
    template: str

    def fill(self, template: str) -> str:
        return _fill(template, self.intent, self.value)


def _fill(template: str, intent: str, value: str | None) -> str:
    key = {"color": "subject", "shape_of_color": "color", "has_color": "color", "not_color": "color",
           "has_shape": "shape", "not_shape": "shape"}.get(intent)
    return template.format(**{key: value}) if key is not None else template


@lru_cache(maxsize=1)
def _easy_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    groups = {"{color}": f"(?P<v>{'|'.join(EASY_COLORS)})", "{shape}": f"(?P<v>{'|'.join(EASY_SHAPES)})",
              "{subject}": f"(?P<v>shape|{'|'.join(EASY_SHAPES)})"}
    out = []
    for intent in EASY_ORIGINALS:
        for template in EASY_ORIGINALS[intent] + EASY_PARAPHRASES[intent]:
            pattern = re.escape(template)
            for ph, group in groups.items():
                pattern = pattern.replace(re.escape(ph), group)
            out.append((re.compile(pattern + r"\Z"), intent, template))
    return out


@lru_cache(maxsize=8192)  # easy-vqa has 107 distinct questions, each parsed many times
def parse_easy_vqa_question(question: str) -> EasyVqaQuestion | None:
    """The intent of an easy-vqa question (original or paraphrased wording), None if it is neither."""
    q = question.strip().lower()
    if q.endswith("."):
        q = q[:-1] + "?"  # "tell me the colour of the shape." is a question too
    for pattern, intent, template in _easy_patterns():
        if m := pattern.match(q) or (pattern.match(q[:-1] + ".") if q.endswith("?") else None):
            return EasyVqaQuestion(intent, m.groupdict().get("v"), template)
    return None


@dataclass(frozen=True)
class WordingSplit:
    """Per intent, the wordings a model may train on (all originals + most paraphrases) and the
    held-out paraphrases kept for evaluation. Disjoint by construction."""

    train: dict[str, tuple[str, ...]]
    heldout: dict[str, tuple[str, ...]]

    def wordings(self, intent: str, which: WordingSet) -> tuple[str, ...]:
        if which == "train":
            return self.train[intent]
        if which == "heldout":
            return self.heldout[intent]
        return self.train[intent] + self.heldout[intent]


@lru_cache(maxsize=32)
def wording_split(heldout_fraction: float = 0.3, seed: int = 0) -> WordingSplit:
    """Deterministic train / held-out split of the paraphrase wordings, per intent: at least one held-out
    and one train paraphrase per intent. Originals are always train: they are the data set's questions."""
    train: dict[str, tuple[str, ...]] = {}
    heldout: dict[str, tuple[str, ...]] = {}
    for intent, paras in EASY_PARAPHRASES.items():
        order = sorted(paras)  # independent of the table's order
        random.Random(f"wording-split|{seed}|{intent}").shuffle(order)
        k = min(max(1, round(heldout_fraction * len(order))), len(order) - 1)
        heldout[intent] = tuple(sorted(order[:k]))
        train[intent] = EASY_ORIGINALS[intent] + tuple(sorted(order[k:]))
    return WordingSplit(train, heldout)


def paraphrase(question: str, rng: random.Random, wordings: WordingSet = "all",
               split: WordingSplit | None = None) -> str:
    """Another wording of an easy-vqa question, same meaning, drawn from `wordings` of `split`
    (default `wording_split()`), never the question's own wording. ValueError if the question is not an
    easy-vqa pattern."""
    parsed = parse_easy_vqa_question(question)
    if parsed is None:
        raise ValueError(f"not an easy-vqa question: {question!r}")
    split = split or wording_split()
    options = [t for t in split.wordings(parsed.intent, wordings) if t != parsed.template]
    return parsed.fill(rng.choice(options))


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


def _easy_thing(attrs: EasyVqaAttributes) -> str:
    """ "a blue circle" / "a circle" / "a blue shape" / "a shape" """
    words = " ".join(w for w in (attrs.color, attrs.shape or "shape") if w)
    return f"{_article(words)} {words}"


def easy_vqa_spoken_answer(p: EasyVqaQuestion, answer: str, attrs: EasyVqaAttributes, rng: random.Random) -> str:
    """Moshi's sentence for an easy-vqa question, adding what else is known ("No, there isn't a red
    shape. The shape is blue.")."""
    a = answer.strip().lower()
    thing = _easy_thing(attrs)
    if p.intent == "shape":
        return rng.choice([f"It's {thing}.", f"I see {thing}.", f"There is {thing}."])
    if p.intent == "color":
        return rng.choice([f"The {p.value} is {a}.", f"It's {a}."])
    if p.intent == "shape_of_color":
        return rng.choice([f"The {p.value} shape is {_article(a)} {a}.", f"It's {_article(a)} {a}."])
    is_color = p.intent in ("has_color", "not_color")
    present = (a == "yes") == p.intent.startswith("has")
    bare = f"{p.value} shape" if is_color else str(p.value)  # "red shape" / "circle"
    named = f"{_article(bare)} {bare}"
    other = ""
    if not present:
        known = attrs.color if is_color else attrs.shape
        if known:
            other = f" The shape is {known}." if is_color else f" The shape is {_article(known)} {known}."
    if p.intent.startswith("has"):
        return f"Yes, there is {named}." if present else f"No, there isn't {named}.{other}"
    # Negated question: answer the fact, not the polarity ("Is there not a red shape?" -> no -> there is one).
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


# ------------------------------------------------------------------------------------ caption facts

CAPTION_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
                                   "white", "gray", "grey", "silver", "gold", "beige", "teal")
_SWAP_COLORS = ("red", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray")
# noun -> (plural, swap group). Swaps stay in a group so a misleading question is plausible.
_NOUNS: dict[str, tuple[str, str]] = {
    "man": ("men", "person"), "woman": ("women", "person"), "boy": ("boys", "person"), "girl": ("girls", "person"),
    "child": ("children", "person"), "person": ("people", "person"), "player": ("players", "person"),
    "lady": ("ladies", "person"), "baby": ("babies", "person"),
    "dog": ("dogs", "animal"), "cat": ("cats", "animal"), "horse": ("horses", "animal"), "cow": ("cows", "animal"),
    "sheep": ("sheep", "animal"), "elephant": ("elephants", "animal"), "giraffe": ("giraffes", "animal"),
    "zebra": ("zebras", "animal"), "bear": ("bears", "animal"), "bird": ("birds", "animal"),
    "duck": ("ducks", "animal"),
    "car": ("cars", "vehicle"), "bus": ("buses", "vehicle"), "truck": ("trucks", "vehicle"),
    "train": ("trains", "vehicle"), "bicycle": ("bicycles", "vehicle"), "motorcycle": ("motorcycles", "vehicle"),
    "boat": ("boats", "vehicle"), "airplane": ("airplanes", "vehicle"), "plane": ("planes", "vehicle"),
    "pizza": ("pizzas", "food"), "sandwich": ("sandwiches", "food"), "banana": ("bananas", "food"),
    "apple": ("apples", "food"), "cake": ("cakes", "food"), "donut": ("donuts", "food"), "carrot": ("carrots", "food"),
    "table": ("tables", "furniture"), "chair": ("chairs", "furniture"), "couch": ("couches", "furniture"),
    "bed": ("beds", "furniture"), "bench": ("benches", "furniture"), "desk": ("desks", "furniture"),
    "umbrella": ("umbrellas", "object"), "kite": ("kites", "object"), "clock": ("clocks", "object"),
    "laptop": ("laptops", "object"), "phone": ("phones", "object"), "book": ("books", "object"),
    "vase": ("vases", "object"), "cup": ("cups", "object"), "bowl": ("bowls", "object"), "plate": ("plates", "object"),
    "ball": ("balls", "object"), "hat": ("hats", "clothing"), "shirt": ("shirts", "clothing"),
    "jacket": ("jackets", "clothing"), "dress": ("dresses", "clothing"), "sign": ("signs", "object"),
    "bottle": ("bottles", "object"), "tree": ("trees", "plant"), "flower": ("flowers", "plant"),
    "building": ("buildings", "structure"), "house": ("houses", "structure"), "tower": ("towers", "structure"),
}
_SINGULAR = {plural: noun for noun, (plural, _) in _NOUNS.items()} | {noun: noun for noun in _NOUNS}
_COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10}
_LOC_VERBS = {"is", "are", "sitting", "standing", "lying", "laying", "parked", "sits", "stands", "hanging",
              "placed", "perched", "resting", "sit", "stand", "located"}
_PREPS = ("on top of", "in front of", "next to", "on", "in", "under", "behind", "near", "beside", "above",
          "below", "inside", "across", "at")
_DETS = {"the", "a", "an", "some", "his", "her", "their", "its"}
_PHRASE_STOP = {"and", "with", "while", "that", "who", "which", "as", "near", "on", "in", "at", "under", "by", "of",
                "behind", "next", "beside", "to", "for", "from"}


@dataclass
class CaptionFacts:
    """What the templates can say about a captioned image. Counts / colours / locations come from the
    first caption only (COCO's five captions can disagree: "two dogs" / "a dog"); `nouns` from all."""

    captions: list[str]
    sentences: list[str]
    colors: list[tuple[str, str]] = field(default_factory=list)  # (noun as written, colour phrase)
    counts: list[tuple[str, int]] = field(default_factory=list)  # (singular noun, count)
    locations: list[tuple[str, str]] = field(default_factory=list)  # (noun as written, "on the table")
    nouns: set[str] = field(default_factory=set)  # singular forms seen anywhere


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z]+(?:'[a-z]+)?|[.,;:!?]", text.lower())


def caption_facts(captions: Sequence[str]) -> CaptionFacts:
    first = captions[0]
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", first.strip()) if s]
    facts = CaptionFacts(list(captions), sentences)
    for cap in captions:
        facts.nouns |= {_SINGULAR[t] for t in _tokens(cap) if t in _SINGULAR}
    toks = _tokens(first)
    seen_colors: set[str] = set()
    counted: Counter[str] = Counter()
    count_of: dict[str, int] = {}
    for i, t in enumerate(toks):
        if t in CAPTION_COLORS:  # "red and white bus" -> ("bus", "red and white")
            j, phrase = i + 1, [t]
            while j + 1 < len(toks) and toks[j] == "and" and toks[j + 1] in CAPTION_COLORS:
                phrase += ["and", toks[j + 1]]
                j += 2
            for k in (j, j + 1):  # the noun right after, or after one more adjective ("red sports car")
                if k < len(toks) and toks[k] in _SINGULAR and toks[k] not in seen_colors:
                    if k == j or toks[j] not in CAPTION_COLORS and toks[j].isalpha():
                        facts.colors.append((toks[k], " ".join(phrase)))
                        seen_colors.add(toks[k])
                    break
        if t in _COUNT_WORDS:
            for k in (i + 1, i + 2):
                if k < len(toks) and toks[k] in _SINGULAR:
                    n, word = _COUNT_WORDS[t], toks[k]
                    plural = word != _SINGULAR[word] or word == "sheep" and n > 1
                    if (n == 1) != plural:  # "a dogs" / "two dog": a parse we got wrong, skip it
                        counted[_SINGULAR[word]] += 1
                        count_of[_SINGULAR[word]] = n
                    break
                if k < len(toks) and not toks[k].isalpha():
                    break
        if t in _SINGULAR:
            if loc := _location_after(toks, i + 1):
                if all(noun != t for noun, _ in facts.locations):
                    facts.locations.append((t, loc))
    # A noun counted twice ("a man ... a man") has no single count we can trust.
    facts.counts = [(noun, n) for noun, n in count_of.items() if counted[noun] == 1]
    return facts


def _location_after(toks: list[str], i: int) -> str | None:
    """ "... dog [is sitting] on the wooden table, ..." -> "on the wooden table" """
    while i < len(toks) and toks[i] in _LOC_VERBS:
        i += 1
    for prep in _PREPS:
        words = prep.split()
        if toks[i:i + len(words)] == words:
            j = i + len(words)
            if j < len(toks) and toks[j] in _DETS:
                phrase = [toks[j]]
                for t in toks[j + 1:j + 4]:
                    if not t.isalpha() or t in _PHRASE_STOP:
                        break
                    phrase.append(t)
                if len(phrase) >= 2:
                    return " ".join(words + phrase)
            return None
    return None


_SEEN_STARTS = {"a", "an", "two", "three", "four", "five", "several", "some", "many", "people", "one"}


def _as_seen(caption: str) -> str:
    """A caption as Moshi would say it: "A man riding a horse" -> "I see a man riding a horse." """
    text = caption.strip()
    first = text.split(maxsplit=1)[0].lower() if text else ""
    # "A dog is sitting ..." is already a full sentence; "I see a dog is sitting" is not English.
    if first in _SEEN_STARTS and not re.search(r"\b(is|are|was|were|has|have)\b", text.split(".")[0]):
        text = "I see " + text[0].lower() + text[1:]
    return _sentence(text)


def _swap_word(caption: str, rng: random.Random, nouns_present: set[str]) -> tuple[str, str, str, str] | None:
    """Swap one colour or known noun of `caption` for a false one: (new caption, kind, true, false)."""
    toks = [(m.group(), m.start(), m.end()) for m in re.finditer(r"[A-Za-z]+", caption)]
    candidates = []
    for word, s, e in toks:
        w = word.lower()
        if w in _SWAP_COLORS or w == "grey":
            options = [c for c in _SWAP_COLORS if c != w and not (w == "grey" and c == "gray")]
            candidates.append(("color", w, s, e, options))
        elif w in _NOUNS:
            group = _NOUNS[w][1]
            options = [n for n, (_, g) in _NOUNS.items() if g == group and n != w and n not in nouns_present]
            if options:
                candidates.append(("noun", w, s, e, options))
    if not candidates:
        return None
    kind, w, s, e, options = rng.choice(candidates)
    new = rng.choice(options)
    return caption[:s] + new + caption[e:], kind, w, new


# -------------------------------------------------------------------------------------- exchanges


@dataclass
class _Exchange:
    """A user turn and Moshi's reply (teacher_student builds its own chain instead)."""

    kind: str
    user: str
    moshi: str
    opener: bool = False  # a natural first question ("What do you see?"): goes first when drawn
    correction: bool = False  # Moshi corrects a false premise
    paraphrased: bool = False


@dataclass
class _QuizItem:
    question: str
    answer: str  # the short correct answer, as a student would say it
    spoken: str  # Moshi's full sentence
    distractors: list[str]


def _distractors(answer: str, palette: Sequence[str], rng: random.Random) -> list[str]:
    a = answer.strip().lower()
    if a in ("yes", "no"):
        return ["no" if a == "yes" else "yes"]
    if (n := _parse_number(a)) is not None:
        return [str(m) for m in sorted({max(0, n + d) for d in (-2, -1, 1, 2)} - {n})]
    for pal in (EASY_SHAPES, palette, _SWAP_COLORS):
        if a in pal:
            return [x for x in pal if x != a]
    return []  # nothing plausible: the student says "I'm not sure"


class _Builder:
    """Collects the exchanges a row supports, per question type."""

    def __init__(self, row: SourceRow, rng: random.Random, config: TemplateConfig) -> None:
        self.row, self.rng, self.config = row, rng, config
        self.easy = row.source.startswith("easy-vqa")
        self.qa = [(q.strip(), most_common_answer(a)) for q, a in row.qa if q.strip() and a]
        self.facts = caption_facts(row.captions) if row.captions else None
        self.attrs = easy_vqa_attributes(row.qa) if self.easy else EasyVqaAttributes()
        if self.easy:
            for key in ("shape", "color"):  # a reader may know better (meta set by a caller)
                if isinstance(row.meta.get(key), str):
                    setattr(self.attrs, key, row.meta[key])
        self._layout: tuple[str, str, str, float] | None | bool = False  # False: not read yet

    # -- helpers
    def layout(self) -> tuple[str, str, str, float] | None:
        if self._layout is False:
            self._layout = None
            if self.config.read_images:
                try:
                    self._layout = easy_vqa_layout(self.row.image.path)
                except Exception:  # unreadable image: no location facts, the caller reports it
                    self._layout = None
        return self._layout if self._layout is not False else None

    def _easy_qa(self) -> list[tuple[EasyVqaQuestion, str, str]]:
        out = []
        for q, a in self.qa:
            if (p := parse_easy_vqa_question(q)) is not None:
                out.append((p, q, a))
        return out

    def _maybe_paraphrase(self, question: str) -> tuple[str, bool]:
        cfg = self.config
        if cfg.paraphrase_prob > 0 and self.rng.random() < cfg.paraphrase_prob:
            split = wording_split(cfg.heldout_fraction, cfg.split_seed)
            return paraphrase(question, self.rng, cfg.wordings, split), True
        return question, False

    # -- per type
    def properties(self) -> list[_Exchange]:
        out: list[_Exchange] = []
        rng = self.rng
        if self.easy:
            if self.attrs.shape or self.attrs.color:
                out.append(_Exchange("properties", rng.choice(["What do you see in this picture?",
                                                               "Can you describe the image?"]),
                                     f"I see {_easy_thing(self.attrs)} on a plain background.", opener=True))
            for p, q, a in self._easy_qa():
                q2, para = self._maybe_paraphrase(q)
                out.append(_Exchange("properties", _sentence(q2), easy_vqa_spoken_answer(p, a, self.attrs, rng),
                                     paraphrased=para))
        else:
            for q, a in self.qa:
                ql = q.lower()
                if not (ql.startswith(("how many", "where")) or _is_location_question(ql)):
                    out.append(_Exchange("properties", _sentence(q), spoken_answer(q, a, rng)))
        if self.facts is not None:
            f = self.facts
            out.append(_Exchange("properties", rng.choice(["What do you see in this picture?",
                                                           "What is in this image?", "What's in the picture?"]),
                                 _as_seen(f.sentences[0] if f.sentences else f.captions[0]), opener=True))
            if len(f.sentences) > 1 or len(f.captions[0]) > 60:
                out.append(_Exchange("properties", rng.choice(["Can you describe it in detail?",
                                                               "Tell me more about it.", "Can you describe it more?"]),
                                     _sentence(f.captions[0])))
            for other in f.captions[1:3]:
                out.append(_Exchange("properties", rng.choice(["What else can you tell me about it?",
                                                               "Can you say it another way?"]), _as_seen(other)))
            for noun, color in f.colors:
                verb = "are" if noun != _SINGULAR[noun] else "is"
                out.append(_Exchange("properties", f"What colour {verb} the {noun}?",
                                     rng.choice([f"The {noun} {verb} {color}.", f"{'They are' if verb == 'are' else 'It is'} {color}."])))
        return out

    def location(self) -> list[_Exchange]:
        out: list[_Exchange] = []
        if self.easy and (lay := self.layout()) is not None:
            vert, horiz, phrase, area = lay
            name = self.attrs.shape or "shape"
            desc = _easy_thing(self.attrs).split(" ", 1)[1]  # "blue circle"
            out.append(_Exchange("location", f"Where is the {name}?", f"The {desc} is {phrase}.", opener=True))
            out.append(_Exchange("location", "Is it on the left or on the right?",
                                 "It's roughly in the middle." if horiz == "center" else f"It's on the {horiz}."))
            out.append(_Exchange("location", "Is it closer to the top or to the bottom?",
                                 "Neither, it's about halfway down." if vert == "middle" else f"It's near the {vert}."))
            size = "small" if area < 0.08 else "medium-sized" if area < 0.25 else "large"
            out.append(_Exchange("location", "How big is it?", f"It's {size}, it covers about {round(area * 100)} percent of the picture."))
        elif not self.easy:
            for q, a in self.qa:
                if q.lower().startswith("where") or _is_location_question(q.lower()):
                    out.append(_Exchange("location", _sentence(q), spoken_answer(q, a, self.rng)))
        if self.facts is not None:
            for noun, loc in self.facts.locations:
                plural = noun != _SINGULAR[noun]
                out.append(_Exchange("location", f"Where {'are' if plural else 'is'} the {noun}?",
                                     f"The {noun} {'are' if plural else 'is'} {loc}."))
        return out

    def counting(self) -> list[_Exchange]:
        out: list[_Exchange] = []
        rng = self.rng
        if self.easy:
            out.append(_Exchange("counting", rng.choice(["How many shapes are there?", "How many shapes do you see?"]),
                                 f"There is just one shape, {_easy_thing(self.attrs)}.", opener=True))
            if self.attrs.shape:
                other = rng.choice([s for s in EASY_SHAPES if s != self.attrs.shape])
                for s in rng.sample([self.attrs.shape, other], 2):
                    out.append(_Exchange("counting", f"How many {s}s are in the picture?",
                                         f"There is one {s}." if s == self.attrs.shape else f"There are no {s}s."))
            if self.attrs.color:
                other = rng.choice([c for c in EASY_COLORS if c != self.attrs.color])
                for c in rng.sample([self.attrs.color, other], 2):
                    out.append(_Exchange("counting", f"How many {c} shapes can you see?",
                                         f"I see one {c} shape." if c == self.attrs.color else f"There are no {c} shapes."))
        else:
            for q, a in self.qa:
                if q.lower().startswith("how many"):
                    out.append(_Exchange("counting", _sentence(q), spoken_answer(q, a, rng)))
        if self.facts is not None:
            for noun, n in self.facts.counts:
                plural = _NOUNS[noun][0]
                said = f"There is one {noun}." if n == 1 else f"There are {n} {plural}."
                out.append(_Exchange("counting", f"How many {plural} are there?", said))
        return out

    def misleading(self) -> list[_Exchange]:
        out: list[_Exchange] = []
        rng = self.rng

        def add(user: str, moshi: str) -> None:
            out.append(_Exchange("misleading", user, moshi, correction=True))

        if self.easy:
            shape, color = self.attrs.shape, self.attrs.color
            if shape:
                wrong = rng.choice([s for s in EASY_SHAPES if s != shape])
                add(f"What color is the {wrong}?",
                    f"There is no {wrong} in this picture. The only shape is {_easy_thing(self.attrs)}.")
            if shape and color:
                wrong_c = rng.choice([c for c in EASY_COLORS if c != color])
                add(f"Why is the {shape} {wrong_c}?", f"Actually, the {shape} isn't {wrong_c}, it's {color}.")
                add(f"What is the {wrong_c} shape?",
                    f"There's no {wrong_c} shape here. The only shape is {_easy_thing(self.attrs)}.")
            add(rng.choice(["What are the two shapes in the picture?", "Which of the three shapes is the biggest?"]),
                f"Actually, there is only one shape: {_easy_thing(self.attrs)}.")
        else:
            for q, a in self.qa:
                if ex := _misleading_from_qa(q, a, rng):
                    add(*ex)
        if self.facts is not None:
            f = self.facts
            for noun, color in f.colors:
                true = color.split()[0]
                wrong = rng.choice([c for c in _SWAP_COLORS if c not in color.split() and not (true == "grey" and c == "gray")])
                verb = "are" if noun != _SINGULAR[noun] else "is"
                add(f"Why {verb} the {noun} {wrong}?", f"Actually, the {noun} {verb}n't {wrong}, {'they are' if verb == 'are' else 'it is'} {color}.")
            for noun, n in f.counts:
                wrong_n = n + rng.choice([1, 2])
                plural = _NOUNS[noun][0]
                add(f"What are the {wrong_n} {plural} doing?",
                    f"Actually, I can only see {'one ' + noun if n == 1 else f'{n} {plural}'}, not {wrong_n}.")
            # Swap a word in one sentence (DOCCI descriptions run to a paragraph; the claim stays short).
            swaps = [(sent, sw) for sent in f.sentences if (sw := _swap_word(sent, rng, f.nouns))]
            if swaps:
                true_sentence, (new_sentence, kind, true, false) = rng.choice(swaps)
                claim = new_sentence.strip().rstrip(".")
                if claim.split()[0].lower() in _SEEN_STARTS | _DETS:
                    claim = claim[0].lower() + claim[1:]
                if claim.split()[0] in _SEEN_STARTS and not re.search(r"\b(is|are|was|were|has|have)\b", claim):
                    user = rng.choice([f"So this is {claim}, right?", f"Is it true that this shows {claim}?"])
                else:  # a full sentence of its own: "the mug has a gray stripe"
                    user = rng.choice([f"I think {claim}. Is that right?", f"Someone told me that {claim}. Is that true?"])
                if kind == "color":
                    moshi = f"Not quite: it's {true}, not {false}. {_sentence(true_sentence)}"
                else:
                    moshi = f"No, there is no {false} here, it's {_article(true)} {true}. {_sentence(true_sentence)}"
                add(user, moshi)
        return out

    def quiz_items(self) -> list[_QuizItem]:
        items: list[_QuizItem] = []
        rng = self.rng
        if self.easy:
            for p, q, a in self._easy_qa():
                q2, _ = self._maybe_paraphrase(q)
                items.append(_QuizItem(_sentence(q2), a, easy_vqa_spoken_answer(p, a, self.attrs, rng),
                                       _distractors(a, EASY_COLORS, rng)))
        else:
            for q, a in self.qa:
                items.append(_QuizItem(_sentence(q), a, spoken_answer(q, a, rng), _distractors(a, _SWAP_COLORS, rng)))
        if self.facts is not None:
            f = self.facts
            for noun, color in f.colors:
                verb = "are" if noun != _SINGULAR[noun] else "is"
                items.append(_QuizItem(f"What colour {verb} the {noun}?", color, f"The {noun} {verb} {color}.",
                                       _distractors(color.split()[0], _SWAP_COLORS, rng)))
            for noun, n in f.counts:
                plural = _NOUNS[noun][0]
                items.append(_QuizItem(f"How many {plural} can you see?", str(n),
                                       f"There is one {noun}." if n == 1 else f"There are {n} {plural}.",
                                       _distractors(str(n), (), rng)))
            for noun in sorted(f.nouns)[:3]:
                items.append(_QuizItem(f"Is there {_article(noun)} {noun} in the picture?", "yes",
                                       f"Yes, there is {_article(noun)} {noun}.", ["no"]))
        return items


def _is_location_question(q: str) -> bool:
    return bool(re.search(r"\b(left|right|which side|on top of|behind|in front of)\b", q))


def _misleading_from_qa(question: str, answer: str, rng: random.Random) -> tuple[str, str] | None:
    """A false premise made from a true QA pair, with Moshi's correction; None if the pair gives none."""
    q = question.strip().lower().rstrip("?").strip()
    a = answer.strip().lower()
    if (m := re.match(r"what colou?r (is|are) the (.+)", q)) and a in CAPTION_COLORS:
        verb, subj = m.groups()
        wrong = rng.choice([c for c in _SWAP_COLORS if c != a])
        return f"Why {verb} the {subj} {wrong}?", f"Actually, the {subj} {verb}n't {wrong}, {'they are' if verb == 'are' else 'it is'} {a}."
    if (m := re.match(r"how many (.+?) (?:are|is|can|do|does|in|on)\b", q)) and (n := _parse_number(a)) is not None:
        thing = m.group(1)
        wrong = n + rng.choice([1, 2])
        return f"Why are there {wrong} {thing}?", f"Actually, there are {n} {thing}, not {wrong}."
    if (m := re.match(r"is there (?:a|an|any) (.+?)(?: in (?:the|this) (?:image|picture|photo))?$", q)) and a == "no":
        thing = m.group(1)
        if len(thing.split()) <= 4:
            return f"Tell me about the {thing} in this picture.", f"Actually, I don't see any {thing} in this picture."
    if (m := re.match(r"is this (?:a|an) (.+)$", q)) and a == "no" and len(m.group(1).split()) <= 4:
        thing = m.group(1)
        return f"Tell me more about this {thing}.", f"Actually, this isn't {_article(thing)} {thing}."
    return None


# ---------------------------------------------------------------------------------------- assembly

_OPEN_QUIZ = ("Can you quiz me about this picture?", "Let's play a game: ask me questions about the image.",
              "I want to practise. Ask me something about this picture.")
_NEXT = ("Next question: {q}", "Here's another one. {q}", "{q}")
_RIGHT = ("That's right! {s}", "Well done! {s}", "Correct. {s}")
_WRONG = ("Not quite. {s}", "Good try, but no. {s}", "Hmm, not really. {s}")
_UNSURE = ("That's okay. {s}", "No worries. {s}")
_MIX_KINDS = ("properties", "location", "counting", "misleading")


def make_dialogue(row: SourceRow, question_type: str = "mixed", seed: int = 0,
                  config: TemplateConfig | None = None) -> Dialogue | RowError:
    """A template dialogue about `row`'s image of `question_type` (one of QUESTION_TYPES), or a RowError
    ("no template") when the row holds nothing to ask that kind of question about. Deterministic in
    (seed, row.source, row.row, question_type, config)."""
    cfg = config or TemplateConfig()
    if question_type not in QUESTION_TYPES:
        raise ValueError(f"question_type must be one of {QUESTION_TYPES}, got {question_type!r}")
    if cfg.min_turns < 2 or cfg.max_turns < cfg.min_turns:
        raise ValueError(f"need 2 <= min_turns <= max_turns, got {cfg.min_turns}, {cfg.max_turns}")
    rng = random.Random(f"{seed}|{row.source}|{row.row}|{question_type}")
    lo, hi = (cfg.min_turns + 1) // 2, cfg.max_turns // 2
    n_pairs = rng.randint(lo, max(lo, hi))
    builder = _Builder(row, rng, cfg)
    meta: dict[str, object] = {"seed": seed, "row": row.row, "requested_turns": 2 * n_pairs}
    if question_type == "teacher_student":
        result = _quiz(builder, max(n_pairs, 2), meta)
    else:
        result = _assemble(builder, question_type, n_pairs, meta)
    if isinstance(result, RowError):
        return result
    turns = result
    if len(turns) < cfg.min_turns:
        return RowError(row.source, row.row, NO_TEMPLATE,
                        f"{question_type}: only {len(turns)} turns possible, min_turns={cfg.min_turns}")
    if cfg.numbers_as_words:
        turns = [Turn(t.speaker, numbers_in_words(t.text), t.about_image) for t in turns]
    return Dialogue(id=f"{row.source}:{row.row}:{question_type}:{seed}", turns=turns, image=row.image,
                    source=row.source, question_type=question_type, meta=meta)


def _assemble(b: _Builder, qtype: str, n_pairs: int, meta: dict[str, object]) -> list[Turn] | RowError:
    rng = b.rng
    if qtype == "mixed":
        pools = {k: getattr(b, k)() for k in _MIX_KINDS}
        primary = [ex for k in _MIX_KINDS for ex in pools[k]]
        filler: list[_Exchange] = []
    else:
        primary = getattr(b, qtype)()
        # Few facts of one kind: pad with plain property questions, as a real conversation would.
        filler = b.properties() if qtype != "properties" else []
    if not primary:
        return RowError(b.row.source, b.row.row, NO_TEMPLATE, f"{qtype}: nothing to ask about this row")
    openers = [ex for ex in primary + filler if ex.opener]
    rest_primary = [ex for ex in primary if not ex.opener]
    rest_filler = [ex for ex in filler if not ex.opener]
    rng.shuffle(rest_primary)
    rng.shuffle(rest_filler)
    chosen: list[_Exchange] = []
    # The first exchange: an opener when one fits the type, else a primary one.
    own_openers = [ex for ex in openers if ex.kind == qtype or qtype == "mixed"]
    if own_openers:
        chosen.append(rng.choice(own_openers))
    elif openers and rest_primary and rng.random() < 0.5:
        chosen.append(rng.choice(openers))
    body = rest_primary[: n_pairs - len(chosen)]
    body += rest_filler[: n_pairs - len(chosen) - len(body)]
    if not any(ex in primary for ex in chosen + body):
        body = [rng.choice(primary)] + body[:-1]
    # Keep primary exchanges spread through the dialogue rather than bunched at its start.
    rng.shuffle(body)
    chosen += body
    turns: list[Turn] = []
    corrections, paraphrased = [], []
    for ex in chosen:
        if ex.correction:
            corrections.append(len(turns) + 1)
        if ex.paraphrased:
            paraphrased.append(len(turns))
        turns += [Turn("user", _sentence(ex.user)), Turn("moshi", _sentence(ex.moshi))]
    meta["exchange_types"] = [ex.kind for ex in chosen]
    if corrections:
        meta["corrections"] = corrections  # indices of Moshi turns that correct a false premise
    if paraphrased:
        meta["paraphrased"] = paraphrased  # indices of user turns reworded by `paraphrase`
    if b.easy:
        meta["wordings"] = b.config.wordings if b.config.paraphrase_prob > 0 else "original"
    return turns


def _quiz(b: _Builder, n_pairs: int, meta: dict[str, object]) -> list[Turn] | RowError:
    """teacher_student: the user asks to be quizzed; Moshi asks, the user answers (right, wrong or
    unsure), Moshi gives feedback and asks the next one. Turns = 2 + 2 * rounds."""
    rng = b.rng
    items = b.quiz_items()
    rng.shuffle(items)
    rounds = min(len(items), n_pairs - 1)
    if rounds < 1:
        return RowError(b.row.source, b.row.row, NO_TEMPLATE, "teacher_student: nothing to quiz about")
    items = items[:rounds]
    turns = [Turn("user", rng.choice(_OPEN_QUIZ)), Turn("moshi", f"{rng.choice(['Sure!', 'Okay!', 'Of course.'])} {items[0].question}")]
    log = []
    for k, item in enumerate(items):
        if rng.random() < b.config.p_correct:
            given, verdict = item.answer, "right"
        elif item.distractors:
            given, verdict = rng.choice(item.distractors), "wrong"
        else:
            given, verdict = "", "unsure"
        user = _student_says(given, rng)
        feedback = rng.choice({"right": _RIGHT, "wrong": _WRONG, "unsure": _UNSURE}[verdict]).format(s=item.spoken)
        if k + 1 < len(items):
            feedback += " " + rng.choice(_NEXT).format(q=items[k + 1].question)
        else:
            feedback += " " + rng.choice(["That's all for now, well done!", "Thanks for playing!"])
        turns += [Turn("user", user), Turn("moshi", feedback)]
        log.append({"question": item.question, "expected": item.answer, "given": given, "verdict": verdict})
    meta["quiz"] = log
    meta["exchange_types"] = ["teacher_student"] * len(items)
    return turns


def _student_says(answer: str, rng: random.Random) -> str:
    if not answer:
        return rng.choice(["I'm not sure.", "I don't know."])
    if answer.lower() in ("yes", "no"):
        yes = answer.lower() == "yes"
        return rng.choice(["Yes.", "Yes, I think so."] if yes else ["No.", "No, I don't think so."])
    return _sentence(rng.choice(["{a}", "I think it's {a}.", "{a}?"]).format(a=answer))


def validate_dialogue(d: Dialogue) -> list[str]:
    """Problems with a dialogue's shape (empty list: fine): user first, strict alternation, no empty
    turn, Moshi last."""
    problems = []
    if not d.turns:
        return ["no turns"]
    for i, t in enumerate(d.turns):
        want = "user" if i % 2 == 0 else "moshi"
        if t.speaker != want:
            problems.append(f"turn {i}: {t.speaker}, expected {want}")
        if not t.text.strip():
            problems.append(f"turn {i}: empty text")
    if d.turns[-1].speaker != "moshi":
        problems.append("last turn is the user's")
    return problems


def paraphrase_template_count() -> int:
    """How many new wordings the paraphrase table adds (originals excluded)."""
    return sum(len(v) for v in EASY_PARAPHRASES.values())
