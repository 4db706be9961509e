"""Diagnostic (README, stop 19): is a spoken question's key word (its colour or shape) in the user's
semantic codes, and does the model hear it?

Two measurements on spoken easy-vqa shards (`moshivis data synth`, echo answers: "A red shape? ..."):

1. `codes`: a bag-of-codes classifier (softmax regression on counts of the user's codebook-0 codes over the
   question's frames) fitted on the questions of `--train` shards and scored on those of `--test` shards:
   what a simple reader gets out of the codec's semantic tokens. The majority word's share is printed
   beside it. `codes_polarity`: the same reader on yes/no questions, for their polarity ("is there not a
   ..." vs "is there a ...", stop 21).
2. `echo` (with `--checkpoint`): teacher-forced, no image: at the frame of the first colour/shape piece of
   every Moshi turn that opens with an echo ("A ...", "Not a ..."), is that piece the model's argmax? Run
   on shards the base trained on and on fresh ones, it separates memorising from hearing; run again with
   Moshi's own audio hidden up to that word, it separates hearing the user from reading Moshi's voice.

    python scripts/listening_probe.py --train runs/sp/a31 --test runs/sp/b32 [--checkpoint CKPT] [--limit 150]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import re
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import torch

from moshivis.data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES
from moshivis.data.layout import MOSHI_AUDIO, USER_AUDIO

WORDS = (*EASY_COLORS, *EASY_SHAPES)


def asked_word(text: str) -> str | None:
    """The one colour or shape word a question names (None: none or several)."""
    found = [w for w in WORDS if re.search(rf"\b{w}", text.lower())]
    return found[0] if len(found) == 1 else None


def asked_polarity(text: str) -> str | None:
    """"not" for a negated yes/no easy-vqa question ("is there not a red shape?"), "has" for a plain one,
    None for any other question."""
    from moshivis.data.easy_vqa_wordings import parse_easy_vqa_question

    q = parse_easy_vqa_question(text)
    if q is None or not q.intent.startswith(("has_", "not_")):
        return None
    return q.intent.split("_")[0]


def spoken_samples(shards: str, limit: int) -> Iterator[Any]:
    """The first `limit` image_speech samples of a shard folder."""
    from moshivis.data.shards import ShardReader

    return islice((s for s in ShardReader(shards, load_images=False) if s.kind == "image_speech"), limit)


def question_codes(shards: str, limit: int, label=asked_word) -> tuple[list[torch.Tensor], list[str]]:
    """User codebook-0 codes [frames] of every spoken user turn that `label` names (default: the one
    colour/shape word it asks about), and that label, from the first `limit` spoken samples."""
    codes, words = [], []
    for s in spoken_samples(shards, limit):
        c = torch.as_tensor(s.codes, dtype=torch.long)
        for turn in s.meta["turns"]:
            word = label(turn["text"]) if turn["speaker"] == "user" else None
            if word is not None:
                a, b = turn["frames"]
                codes.append(c[USER_AUDIO.start, a:b + 2])  # +2: the codec's semantic codes lag the audio a little
                words.append(word)
    return codes, words


def bag(codes: list[torch.Tensor], cardinality: int) -> torch.Tensor:
    """[N, cardinality] code counts."""
    out = torch.zeros(len(codes), cardinality)
    for i, c in enumerate(codes):
        out[i].index_add_(0, c.clamp(0, cardinality - 1), torch.ones(len(c)))
    return out


def bag_accuracy(xa: list[torch.Tensor], ya: list[str], xb: list[torch.Tensor], yb: list[str],
                 cardinality: int = 2048, steps: int = 300) -> tuple[float, float]:
    """Softmax regression on code counts fitted on (xa, ya), scored on (xb, yb): (accuracy %, majority %)."""
    labels = sorted(set(ya) | set(yb))
    a, b = bag(xa, cardinality), bag(xb, cardinality)
    ta = torch.tensor([labels.index(w) for w in ya])
    tb = torch.tensor([labels.index(w) for w in yb])
    w = torch.zeros(cardinality, len(labels), requires_grad=True)
    bias = torch.zeros(len(labels), requires_grad=True)
    opt = torch.optim.Adam([w, bias], lr=0.05)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(a @ w + bias, ta) + 1e-3 * w.square().sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = ((b @ w + bias).argmax(1) == tb).float().mean().item()
    majority = max(yb.count(x) for x in set(yb)) / len(yb)
    return round(100 * acc, 1), round(100 * majority, 1)


def codes_probe(train: str, test: str, limit: int, cardinality: int = 2048, label=asked_word) -> dict[str, object]:
    xa, ya = question_codes(train, limit, label)
    xb, yb = question_codes(test, limit, label)
    if not xa or not xb:
        raise SystemExit(f"no spoken questions that {label.__name__} labels in {train if not xa else test}")
    acc, majority = bag_accuracy(xa, ya, xb, yb, cardinality)
    return {"train_questions": len(xa), "test_questions": len(xb), "accuracy": acc, "majority": majority}


def hits(pred: torch.Tensor, target: torch.Tensor, frames: list[int]) -> int:
    """How many of `frames` have pred [T] == target [T]."""
    return sum(int(pred[f]) == int(target[f]) for f in frames)


@torch.no_grad()
def echo_probe(checkpoint: str, shards: str, limit: int, key_pieces: set[int], text_lead: int = 0
               ) -> dict[str, object]:
    """Right echo words with Moshi's own audio as recorded, and with it hidden (-1) from 2 frames before the
    echo turn to the echo word: the first number can come from Moshi's own voice leading into the word; only
    the second needs the user's question (stop 19: 71.2% vs 27.5%). text_lead: the frames a base was trained
    with Moshi's text ahead of its audio (`data.text_lead`); the samples are read the same way."""
    from moshivis.data.text_lead import lead_text
    from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD
    from moshivis.models.loaders import load_model

    lm = load_model(checkpoint).lm.eval()
    n, right, right_hidden = 0, 0, 0
    pn, pol, pol_hidden = 0, 0, 0  # the echo's first word ("Not" / "A"): the question's polarity
    for s in spoken_samples(shards, limit):
        codes = torch.as_tensor(lead_text(s.codes, s.loss_mask, text_lead)[0], dtype=torch.long)
        hidden = codes.clone()
        spots, firsts = [], []
        for turn in s.meta["turns"]:
            if turn["speaker"] != "moshi" or turn["text"].split()[0] not in ("A", "An", "Not"):
                continue
            a, b = turn["frames"]
            a, b = max(0, a - text_lead), b - text_lead  # the turn's text frames
            f = next((f for f in range(a, min(b + 1, codes.shape[1])) if int(codes[0, f]) in key_pieces), None)
            if f is not None:
                spots.append(f)
                hidden[MOSHI_AUDIO, max(0, a - 2):f + 1] = -1  # Moshi's codebooks: zero embedding
                first = next(g for g in range(a, f + 1) if int(codes[0, g]) not in (TEXT_PAD, TEXT_EPAD))
                firsts.append(first)
        if not spots:
            continue
        pred = lm(codes[None]).text_logits[0, 0].argmax(-1)  # [T]
        pred_hidden = lm(hidden[None]).text_logits[0, 0].argmax(-1)
        n, pn = n + len(spots), pn + len(firsts)
        right, right_hidden = right + hits(pred, codes[0], spots), right_hidden + hits(pred_hidden, codes[0], spots)
        pol, pol_hidden = pol + hits(pred, codes[0], firsts), pol_hidden + hits(pred_hidden, codes[0], firsts)
    return {"shards": shards, "echo_words": n, "accuracy": round(100 * right / max(n, 1), 1),
            "accuracy_moshi_audio_hidden": round(100 * right_hidden / max(n, 1), 1),
            "polarity_words": pn, "polarity_accuracy": round(100 * pol / max(pn, 1), 1),
            "polarity_accuracy_moshi_audio_hidden": round(100 * pol_hidden / max(pn, 1), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="spoken shards the classifier fits (and the base trained on)")
    p.add_argument("--test", required=True, help="spoken shards neither saw")
    p.add_argument("--checkpoint", default=None, help="a base (or bundle model) for the echo probe")
    p.add_argument("--tokenizer", default="tinyworld/bundle/tokenizer.model")
    p.add_argument("--limit", type=int, default=150, help="spoken samples read per shard folder")
    p.add_argument("--text-lead", type=int, default=0, help="the base's data.text_lead (frames)")
    args = p.parse_args()
    torch.set_num_threads(1)
    out: dict[str, object] = {"codes": codes_probe(args.train, args.test, args.limit),
                              "codes_polarity": codes_probe(args.train, args.test, args.limit, label=asked_polarity)}
    if args.checkpoint:
        from moshivis.data.tokenizer import TextTokenizer

        tok = TextTokenizer(Path(args.tokenizer))
        pieces = {tok.encode(f" {w}")[0] for w in WORDS}
        out["echo"] = [echo_probe(args.checkpoint, s, args.limit, pieces, args.text_lead) for s in (args.train, args.test)]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
