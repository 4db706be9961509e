"""The image-reliance probe's token selection (the probe runs end to end in test_recipe_smoke.py)."""

from __future__ import annotations


def test_key_token_mask():
    from moshivis.eval.image_reliance import key_token_mask

    pieces = ["\u2581Red", " blue,", "circle.", "\u2581reddish", "Yes", "know"]
    # SentencePiece writes the leading space as U+2581 in piece(); the mask must see through it.
    assert key_token_mask(lambda i: pieces[i].replace("\u2581", " "), len(pieces)).tolist() == [
        True, True, True, False, True, False]
