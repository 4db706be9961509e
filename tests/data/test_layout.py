"""Text tokenizer and the 17-stream layout of spoken and speechless samples."""

from __future__ import annotations

import numpy as np
import pytest

from moshivis.data.layout import place_words, speechless_layout, spoken_layout
from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer, train_tokenizer
from moshivis.data.types import WordTiming

SENTENCES = [f"the {c} {s} is in the {p} of the image" for c in ("red", "blue", "green", "yellow")
             for s in ("circle", "square", "triangle") for p in ("middle", "corner", "top")]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> TextTokenizer:
    return train_tokenizer(SENTENCES + ["yes there is", "no there is not", "what shape is it"],
                           tmp_path_factory.mktemp("tok") / "spm", vocab_size=60)


def test_tokenizer_reserves_moshi_ids(tok):
    assert tok.sp.pad_id() == TEXT_PAD and tok.sp.unk_id() == TEXT_EPAD
    ids = tok.encode("the red circle")
    assert TEXT_PAD not in ids and TEXT_EPAD not in ids
    assert tok.decode(ids) == "the red circle"
    assert tok.decode([TEXT_PAD, *ids, TEXT_EPAD]) == "the red circle"
    assert "".join(tok.piece(i) for i in ids).strip() == "the red circle"


def test_bad_tokenizer_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        TextTokenizer(tmp_path / "none.model")
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.model"):
        TextTokenizer(bad)


def test_words_land_on_their_start_frame(tok):
    words = [WordTiming("the", 0.50, 0.62), WordTiming("blue", 0.64, 0.90), WordTiming("triangle", 1.40, 1.9)]
    stream, placed = place_words(words, tok, num_frames=40, offset_s=1.0)
    # 1.5 s -> frame 18; "blue" at 1.64 s -> frame 20; "triangle" at 2.4 s -> frame 30.
    assert [p.target_frame for p in placed] == [18, 20, 30]
    assert placed[0].frame == 18 and stream[17] == TEXT_EPAD
    assert stream[:17].tolist() == [TEXT_PAD] * 17
    assert tok.decode(stream) == "the blue triangle"
    # Tokens of a word occupy consecutive frames; a collision pushes the next word later, never earlier.
    crowded = [WordTiming("triangle", 0.0, 0.1), WordTiming("triangle", 0.05, 0.2)]
    _, pl = place_words(crowded, tok, 40)
    assert pl[1].frame >= pl[1].target_frame and pl[1].frame == len(tok.encode_word("triangle"))


def test_spoken_layout_masks(tok):
    T = 30
    text, _ = place_words([WordTiming("yes", 0.3, 0.5)], tok, T)
    moshi = np.random.default_rng(0).integers(0, 2048, (8, T))
    user = np.random.default_rng(1).integers(0, 2048, (8, T))
    codes, mask = spoken_layout(text, moshi, user)
    assert codes.shape == (17, T) and mask.shape == (17, T)
    assert np.array_equal(codes[1:9], moshi) and np.array_equal(codes[9:], user)
    assert mask[:9].all() and not mask[9:].any()  # user streams are never targets
    with pytest.raises(ValueError, match=r"codes must be \[8, 30\]"):
        spoken_layout(text, moshi[:, :10], user)


def test_speechless_layout(tok):
    turns = [("user", "what shape is it"), ("moshi", "the red circle"), ("user", "yes there is")]
    codes, mask = speechless_layout(turns, tok)
    assert (codes[1:] == -1).all() and not mask[1:].any()
    moshi_frames = codes[0][mask[0]]
    assert tok.decode(moshi_frames) == "the red circle"
    assert tok.decode(codes[0]) == "what shape is it the red circle yes there is"
