"""Facts the templates can say about a captioned image (COCO, DOCCI, PixMo-Cap): colours, counts and
locations of known nouns (`caption_facts`), a caption as Moshi would say it (`as_seen`), and a caption
with one colour or noun swapped for a false one, for misleading questions (`swap_word`)."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from moshivis.data.spoken_answers import as_sentence

CAPTION_COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black",
                                   "white", "gray", "grey", "silver", "gold", "beige", "teal")
SWAP_COLORS = ("red", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray")
# noun -> (plural, swap group). Swaps stay in a group so a misleading question is plausible.
NOUNS: dict[str, tuple[str, str]] = {
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
SINGULAR = {plural: noun for noun, (plural, _) in NOUNS.items()} | {noun: noun for noun in NOUNS}
_COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10}
_LOC_VERBS = {"is", "are", "sitting", "standing", "lying", "laying", "parked", "sits", "stands", "hanging",
              "placed", "perched", "resting", "sit", "stand", "located"}
_PREPS = ("on top of", "in front of", "next to", "on", "in", "under", "behind", "near", "beside", "above",
          "below", "inside", "across", "at")
DETERMINERS = {"the", "a", "an", "some", "his", "her", "their", "its"}
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
        facts.nouns |= {SINGULAR[t] for t in _tokens(cap) if t in SINGULAR}
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
                if k < len(toks) and toks[k] in SINGULAR and toks[k] not in seen_colors:
                    if k == j or toks[j] not in CAPTION_COLORS and toks[j].isalpha():
                        facts.colors.append((toks[k], " ".join(phrase)))
                        seen_colors.add(toks[k])
                    break
        if t in _COUNT_WORDS:
            for k in (i + 1, i + 2):
                if k < len(toks) and toks[k] in SINGULAR:
                    n, word = _COUNT_WORDS[t], toks[k]
                    plural = word != SINGULAR[word] or word == "sheep" and n > 1
                    if (n == 1) != plural:  # "a dogs" / "two dog": a parse we got wrong, skip it
                        counted[SINGULAR[word]] += 1
                        count_of[SINGULAR[word]] = n
                    break
                if k < len(toks) and not toks[k].isalpha():
                    break
        if t in SINGULAR:
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
            if j < len(toks) and toks[j] in DETERMINERS:
                phrase = [toks[j]]
                for t in toks[j + 1:j + 4]:
                    if not t.isalpha() or t in _PHRASE_STOP:
                        break
                    phrase.append(t)
                if len(phrase) >= 2:
                    return " ".join(words + phrase)
            return None
    return None


SEEN_STARTS = {"a", "an", "two", "three", "four", "five", "several", "some", "many", "people", "one"}


def as_seen(caption: str) -> str:
    """A caption as Moshi would say it: "A man riding a horse" -> "I see a man riding a horse." """
    text = caption.strip()
    first = text.split(maxsplit=1)[0].lower() if text else ""
    # "A dog is sitting ..." is already a full sentence; "I see a dog is sitting" is not English.
    if first in SEEN_STARTS and not re.search(r"\b(is|are|was|were|has|have)\b", text.split(".")[0]):
        text = "I see " + text[0].lower() + text[1:]
    return as_sentence(text)


def swap_word(caption: str, rng: random.Random, nouns_present: set[str]) -> tuple[str, str, str, str] | None:
    """Swap one colour or known noun of `caption` for a false one: (new caption, kind, true, false)."""
    toks = [(m.group(), m.start(), m.end()) for m in re.finditer(r"[A-Za-z]+", caption)]
    candidates = []
    for word, s, e in toks:
        w = word.lower()
        if w in SWAP_COLORS or w == "grey":
            options = [c for c in SWAP_COLORS if c != w and not (w == "grey" and c == "gray")]
            candidates.append(("color", w, s, e, options))
        elif w in NOUNS:
            group = NOUNS[w][1]
            options = [n for n, (_, g) in NOUNS.items() if g == group and n != w and n not in nouns_present]
            if options:
                candidates.append(("noun", w, s, e, options))
    if not candidates:
        return None
    kind, w, s, e, options = rng.choice(candidates)
    new = rng.choice(options)
    return caption[:s] + new + caption[e:], kind, w, new
