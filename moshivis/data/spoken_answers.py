"""What Moshi says: numbers in words, sentence shape, and a VQA answer ("blue", "3", "yes", "on the
table") as a short spoken sentence for its question (`spoken_answer`)."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence

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


def parse_number(text: str) -> int | None:
    t = text.strip().lower().rstrip(".")
    if t.isdigit():
        return int(t)
    return _WORD_NUMBERS.get(t)


def as_sentence(text: str) -> str:
    """Capitalised, ending with punctuation: how a turn is written."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def article_for(word: str) -> str:
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
    n = parse_number(a)
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
        return f"It's {article_for(a)} {a}."
    if q.startswith("where"):
        if re.match(r"(on|in|at|under|behind|near|next|above|below|inside|outside|by)\b", a.lower()):
            return f"It's {a}."
        return f"I'd say {a}."
    if n is not None:
        return f"The answer is {a}."
    if len(a.split()) <= 4:
        return f"It's {a}."
    return as_sentence(a)
