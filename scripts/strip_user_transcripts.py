"""The same shards with the user's transcript words (synth `transcribe_user`) taken off the text stream:
the control of stop 25's transcript experiment (same dialogues, same audio, no transcript).

    python scripts/strip_user_transcripts.py IN_SHARDS OUT_SHARDS [--tokenizer tinyworld/bundle/tokenizer.model]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from moshivis.data.shards import ShardReader, ShardWriter, read_manifest
from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer


def strip_user_words(codes: np.ndarray, meta: dict, tokenizer: TextTokenizer) -> tuple[np.ndarray, int]:
    """codes [17, T] of a spoken sample -> a copy with every user word's pieces (and the end-of-padding
    before it) set back to padding, and how many words were removed. The sample's `words` metadata says
    where each word went ([word, turn, frame, target, reference]; frame None = not placed)."""
    out = np.array(codes, copy=True)
    turns, n = meta["turns"], 0
    for word, turn, frame, _target, _ref in meta["words"]:
        if turns[turn]["speaker"] != "user" or frame is None:
            continue
        out[0, frame:frame + len(tokenizer.encode_word(word))] = TEXT_PAD
        if frame > 0 and out[0, frame - 1] == TEXT_EPAD:
            out[0, frame - 1] = TEXT_PAD
        n += 1
    return out, n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src")
    p.add_argument("out")
    p.add_argument("--tokenizer", default="tinyworld/bundle/tokenizer.model", help="the one the shards were made with")
    args = p.parse_args(argv)
    tokenizer = TextTokenizer(args.tokenizer)
    samples = words = 0
    # The synth's config is kept, so training reads the same codec and tokenizer records.
    with ShardWriter(args.out, samples_per_shard=64, config=read_manifest(args.src)["config"], resume=False) as w:
        for s in ShardReader(args.src, load_images=False):
            codes = s.codes
            if s.kind == "image_speech":
                codes, n = strip_user_words(s.codes, s.meta, tokenizer)
                words += n
            w.write(dataclasses.replace(s, codes=codes))
            samples += 1
    print(f"{samples} samples, {words} user words taken off the text stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
