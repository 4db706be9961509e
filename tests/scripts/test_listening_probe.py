"""scripts/listening_probe.py: the asked word of a question, and the bag-of-codes reader on codes that do
or do not carry the word."""

from __future__ import annotations

import torch
from testkit import load_script


def load_probe():
    return load_script("scripts/listening_probe.py")


def test_asked_word() -> None:
    probe = load_probe()
    assert probe.asked_word("Is there a teal shape in the image?") == "teal"
    assert probe.asked_word("does the picture lack a triangle?") == "triangle"
    assert probe.asked_word("What color is the shape?") is None
    assert probe.asked_word("Is the red shape a circle?") is None  # two words: ambiguous


def test_bag_reader_finds_a_word_in_the_codes_and_not_in_noise() -> None:
    probe = load_probe()
    g = torch.Generator().manual_seed(0)
    words = ["red", "blue", "circle", "triangle"]

    def utterances(n: int, informative: bool) -> tuple[list[torch.Tensor], list[str]]:
        xs, ys = [], []
        for i in range(n):
            w = words[i % len(words)]
            noise = torch.randint(0, 64, (12,), generator=g)
            # "informative": two codes of the word's own range among the noise, as a semantic codebook would
            key = torch.randint(100 + 10 * words.index(w), 105 + 10 * words.index(w), (2,), generator=g)
            xs.append(torch.cat([noise, key]) if informative else noise)
            ys.append(w)
        return xs, ys

    xa, ya = utterances(80, True)
    xb, yb = utterances(40, True)
    acc, majority = probe.bag_accuracy(xa, ya, xb, yb, cardinality=256)
    assert acc >= 85 and majority == 25.0  # 90 measured; chance 25
    xa, ya = utterances(80, False)
    xb, yb = utterances(40, False)
    acc, _ = probe.bag_accuracy(xa, ya, xb, yb, cardinality=256)
    assert acc <= 50  # chance is 25%: nothing to read


def test_asked_polarity() -> None:
    """Negated yes/no questions (original and paraphrased wordings) are "not", plain ones "has", others None."""
    probe = load_probe()
    assert probe.asked_polarity("is there not a teal shape in the image?") == "not"
    assert probe.asked_polarity("does the picture lack a triangle?") == "not"
    assert probe.asked_polarity("is the picture free of red shapes?") == "not"
    assert probe.asked_polarity("is there a teal shape?") == "has"
    assert probe.asked_polarity("is there something teal in this picture?") == "has"
    assert probe.asked_polarity("what color is the shape?") is None
    assert probe.asked_polarity("how much is two plus two?") is None
