"""A text normaliser for comparing what was *said* with what was *written*.

A spoken answer (or an ASR transcript of one) and a written answer differ in ways that carry no meaning
for the listener: case, punctuation that has no spoken form, "20" vs "twenty", "&" vs "and". Both sides
of every comparison go through `normalize_spoken`, so only differences a listener could hear remain.

Steps, in order (each one exists because one of those written/spoken differences would otherwise count):
1. Unicode NFKD, combining marks dropped ("Pokémon" -> "pokemon": ASR output rarely keeps accents),
   curly quotes folded to ASCII, lower case.
2. Thousands separators between digits removed ("1,000" -> "1000").
3. Symbols that are read out become words: "&" -> "and", "%" -> "percent", "+" -> "plus", "@" -> "at",
   "$5" -> "5 dollars".
4. Apostrophes removed ("don't" -> "dont", "harry's" -> "harrys"): ASR systems differ on them and the
   ear cannot hear them.
5. Initialisms lose their periods ("U.S." -> "us", "J.K." -> "jk"). Every other non-alphanumeric
   character becomes a space ("self-help" -> "self help", "3:16" -> "3 16"), except a period between two
   digits ("2.5" stays: it is said "two point five", a different number from "25").
6. Runs of English number words become digits: "twenty one" -> "21", "one hundred and five" -> "105",
   "two thousand" -> "2000", ordinals too ("twenty first" -> "21st", "second" -> "2nd").

Known limits: years said in pairs ("nineteen eighty four") stay "19 84"; "point" in spoken decimals is
not folded; "one" as a pronoun ("the one") becomes "1" (harmless: both sides change alike).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_spoken", "words_to_digits", "spoken_tokens"]

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_ORDINALS = {
    "first": "one", "second": "two", "third": "three", "fourth": "four", "fifth": "five", "sixth": "six",
    "seventh": "seven", "eighth": "eight", "ninth": "nine", "tenth": "ten", "eleventh": "eleven",
    "twelfth": "twelve", "thirteenth": "thirteen", "fourteenth": "fourteen", "fifteenth": "fifteen",
    "sixteenth": "sixteen", "seventeenth": "seventeen", "eighteenth": "eighteen", "nineteenth": "nineteen",
    "twentieth": "twenty", "thirtieth": "thirty", "fortieth": "forty", "fiftieth": "fifty",
    "sixtieth": "sixty", "seventieth": "seventy", "eightieth": "eighty", "ninetieth": "ninety",
    "hundredth": "hundred", "thousandth": "thousand", "millionth": "million", "billionth": "billion",
}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES) | {"hundred"}

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "\u201c": '"',
                         "\u201d": '"', "\u2032": "'"})
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_DOLLARS = re.compile(r"\$\s*(\d+(?:\.\d+)?)")
_SPOKEN_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at "}
_INITIALISM = re.compile(r"\b(?:[^\W\d_]\.){2,}")  # "u.s." / "j.k.": said as letters, written either way
_NOT_WORD = re.compile(r"[^\w.\s]|_")  # \w keeps letters of any script; "_" is not spoken
_LONE_PERIOD = re.compile(r"(?<!\d)\.|\.(?!\d)")  # a period not between two digits


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower()


def _ordinal_suffix(n: int) -> str:
    if 11 <= n % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


class _NumberRun:
    """Accumulates one run of cardinal number words; `accepts(word)` says whether `word` continues the
    run as one number ("twenty" then "one" does; "one" then "two" does not: that is two numbers)."""

    def __init__(self) -> None:
        self.total = 0  # sum of completed scale groups (e.g. 2000 in "two thousand five")
        self.current = 0  # the group below the last scale word (e.g. 5)
        self.last_scale = 0  # the last scale word's value, 0 if none yet
        self.words = 0
        self.zero = False  # "zero" is a number of its own and ends its run

    @property
    def value(self) -> int:
        return self.total + self.current

    def accepts(self, word: str) -> bool:
        if self.words == 0:
            return True
        if self.zero:
            return False
        c = self.current
        if word in _UNITS:
            v = _UNITS[word]
            if v == 0:
                return False
            # after nothing in this group, after hundreds, or after a bare tens word ("twenty" + "one")
            return c % 100 == 0 or (v < 10 and c % 100 >= 20 and c % 10 == 0)
        if word in _TENS:
            return c % 100 == 0
        if word == "hundred":
            return 0 < c < 100
        if word in _SCALES:
            scale = _SCALES[word]
            return c > 0 and (self.last_scale == 0 or scale < self.last_scale)
        return False

    def add(self, word: str) -> None:
        self.words += 1
        if word in _UNITS:
            self.current += _UNITS[word]
            self.zero = _UNITS[word] == 0 and self.words == 1
        elif word in _TENS:
            self.current += _TENS[word]
        elif word == "hundred":
            self.current = max(self.current, 1) * 100
        else:
            self.last_scale = _SCALES[word]
            self.total += max(self.current, 1) * self.last_scale
            self.current = 0


def words_to_digits(tokens: list[str]) -> list[str]:
    """Replace runs of English number words by their value in digits (see the module docstring).

    "and" inside a number ("one hundred and five") is absorbed only when a number word follows it and the
    run so far ends on a hundred/scale; elsewhere it stays a word. An ordinal word ends its run and gives
    the run an ordinal suffix ("twenty first" -> "21st").
    """
    out: list[str] = []
    run: _NumberRun | None = None

    def flush(ordinal: bool = False) -> None:
        nonlocal run
        if run is not None and run.words:
            out.append(f"{run.value}{_ordinal_suffix(run.value)}" if ordinal else str(run.value))
        run = None

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        cardinal = _ORDINALS.get(tok, tok)
        is_ordinal = tok in _ORDINALS
        if cardinal in _NUMBER_WORDS:
            if run is None or not run.accepts(cardinal):
                flush()
                run = _NumberRun()
            run.add(cardinal)
            if is_ordinal:
                flush(ordinal=True)
            i += 1
            continue
        if tok == "and" and run is not None and run.current % 100 == 0 and i + 1 < len(tokens):
            following = _ORDINALS.get(tokens[i + 1], tokens[i + 1])
            if (following in _UNITS or following in _TENS) and run.accepts(following):
                i += 1  # "hundred and five": the "and" is part of the number
                continue
        flush()
        out.append(tok)
        i += 1
    flush()
    return out


def spoken_tokens(text: str) -> list[str]:
    """`normalize_spoken(text)` as a list of words (what WER counts)."""
    text = _fold(text)
    text = _DIGIT_COMMA.sub("", text)
    text = _DOLLARS.sub(r" \1 dollars ", text)
    for symbol, word in _SPOKEN_SYMBOLS.items():
        text = text.replace(symbol, word)
    text = text.replace("'", "").replace("`", "")
    text = _INITIALISM.sub(lambda m: m.group(0).replace(".", ""), text)
    text = _NOT_WORD.sub(" ", text)
    text = _LONE_PERIOD.sub(" ", text)
    return words_to_digits(text.split())


def normalize_spoken(text: str) -> str:
    """Lower case, no unspoken punctuation, number words as digits, single spaces (module docstring)."""
    return " ".join(spoken_tokens(text))
