"""Text tokenizers for Moshi's inner-monologue stream (SentencePiece, as Moshi's own 32k model).

Moshi's conventions are kept: id 3 is the padding token (no text this frame) and id 0 marks the end of
padding just before a word. A SentencePiece model trained here reserves 0 (unk), 1 (bos), 2 (eos) and
3 (pad) so those ids never collide with word pieces.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import sentencepiece as spm

TEXT_PAD = 3
TEXT_EPAD = 0


class TextTokenizer:
    """A SentencePiece model. `encode_word` tokenises one word as it appears inside a sentence."""

    def __init__(self, model_file: str | os.PathLike) -> None:
        path = Path(model_file)
        if not path.is_file():
            raise ValueError(f"{path}: text tokenizer model not found")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(path))
        except (RuntimeError, OSError) as e:
            raise ValueError(f"{path}: not a SentencePiece model ({e})") from None
        self.path = path

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def encode_word(self, word: str) -> list[int]:
        """Pieces of one word; SentencePiece prefixes the word-start marker as inside a sentence."""
        return list(self.sp.encode(word.strip()))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; padding and ids past the vocabulary (a model's text card may be larger than its
        tokenizer) are skipped."""
        n = self.vocab_size
        return self.sp.decode([int(i) for i in ids if 0 <= int(i) < n and int(i) not in (TEXT_PAD, TEXT_EPAD)])

    def piece(self, token: int) -> str:
        """The text a streamed token shows: SentencePiece's '▁' becomes a space ('' past the vocabulary)."""
        if not 0 <= int(token) < self.vocab_size or self.sp.is_control(int(token)):
            return ""
        return self.sp.id_to_piece(int(token)).replace("\u2581", " ")


def train_tokenizer(texts: Iterable[str], out_prefix: str | os.PathLike, vocab_size: int = 1000,
                    model_type: str = "unigram") -> TextTokenizer:
    """Train a SentencePiece model on `texts` with Moshi's special ids (0 unk/epad, 3 pad)."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    sentences = [t.strip() for t in texts if t and t.strip()]
    if not sentences:
        raise ValueError("cannot train a tokenizer on no text")
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_prefix=str(out_prefix), vocab_size=vocab_size,
        model_type=model_type, unk_id=TEXT_EPAD, bos_id=1, eos_id=2, pad_id=TEXT_PAD,
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2, num_threads=1,
    )
    return TextTokenizer(str(out_prefix) + ".model")
