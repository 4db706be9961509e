"""Splitting a transcript into words and comparing words across spellings ("3" / "three", "Blue," / "blue").

A transcript word is a whitespace-separated token that holds at least one letter or digit; a token of
punctuation only ("-", "...") is glued to the word before it, so `" ".join(words)` keeps all the text.
"""

from __future__ import annotations

import re

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)


def split_words(text: str) -> list[str]:
    """Transcript words, in order; punctuation-only tokens are attached to their left neighbour."""
    words: list[str] = []
    for token in text.split():
        if _ALNUM.search(token) or not words:
            words.append(token)
        else:
            words[-1] += " " + token
    if words and not _ALNUM.search(words[0]):  # text of punctuation only: no words at all
        return []
    return words


def number_words(n: int) -> str:
    """0 <= n < 10**9 as English words without separators: 25 -> "twentyfive", 300 -> "threehundred"."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (_ONES[n % 10] if n % 10 else "")
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return number_words(n // size) + name + (number_words(rest) if rest else "")
    raise AssertionError(n)


def normalize_word(word: str) -> str:
    """A comparison key: lower case, letters and digits only, integers spelled out ("3," -> "three";
    "twenty-five" and "25" -> "twentyfive"; "1,000" -> "onethousand"). "" for a word with neither."""
    w = word.lower().replace(",", "") if re.search(r"\d,\d", word) else word.lower()
    w = re.sub(r"\d+", lambda m: number_words(int(m.group())) if len(m.group()) <= 9 else m.group(), w)
    return "".join(ch for ch in w if ch.isalnum())
