"""Can a question's polarity be heard in the user's codes? A small bidirectional GRU reads the user's codebooks
of every spoken yes/no easy-vqa question in training shard folders and is scored on another folder: the
ceiling a base reading the same codes could reach (README, stop 22: 95.5% from codebook 0, 78.2% from all 8).

    python scripts/polarity_ceiling.py --train runs/sp/a31,runs/sp/l41 --test runs/sp/b32 [--codebooks 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from listening_probe import asked_polarity, spoken_samples  # noqa: E402

from moshivis.data.layout import USER_AUDIO  # noqa: E402

CARD = 2048  # the tiny codec's largest codebook


def questions(shards: str, books: int) -> tuple[list[torch.Tensor], list[int]]:
    """User codes [frames, books] of each spoken yes/no question, and 1 if it is negated."""
    xs, ys = [], []
    for s in spoken_samples(shards, 10**9):
        codes = torch.as_tensor(s.codes, dtype=torch.long)
        for turn in s.meta["turns"]:
            polarity = asked_polarity(turn["text"]) if turn["speaker"] == "user" else None
            if polarity is not None:
                a, b = turn["frames"]
                # +2: the codec's semantic codes lag the audio a little (as listening_probe reads them)
                xs.append(codes[USER_AUDIO.start:USER_AUDIO.start + books, a:b + 2].T.clamp(0, CARD - 1))
                ys.append(int(polarity == "not"))
    return xs, ys


class Reader(torch.nn.Module):
    """Summed code embeddings -> bidirectional GRU -> max over frames -> 2 logits."""

    def __init__(self, books: int, dim: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.emb = torch.nn.ModuleList(torch.nn.Embedding(CARD, dim) for _ in range(books))
        self.gru = torch.nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
        self.out = torch.nn.Linear(2 * hidden, 2)

    def forward(self, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """x [B, T, books] (padded) -> logits [B, 2]."""
        h = sum(e(x[..., k]) for k, e in enumerate(self.emb))
        packed = torch.nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True)
        valid = torch.arange(out.shape[1])[None] < torch.tensor(lengths)[:, None]
        return self.out(out.masked_fill(~valid[..., None], float("-inf")).amax(1))


def _batch(xs: list[torch.Tensor], idx: list[int]) -> tuple[torch.Tensor, list[int]]:
    return torch.nn.utils.rnn.pad_sequence([xs[i] for i in idx], batch_first=True), [len(xs[i]) for i in idx]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="comma-separated shard folders to fit on")
    p.add_argument("--test", required=True, help="a shard folder to score on")
    p.add_argument("--codebooks", type=int, default=1, help="user codebooks read (1: the semantic one)")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    xa, ya = [], []
    for folder in args.train.split(","):
        x, y = questions(folder, args.codebooks)
        xa, ya = xa + x, ya + y
    xb, yb = questions(args.test, args.codebooks)
    if not xa or not xb:
        raise SystemExit(f"no spoken yes/no questions in {args.train if not xa else args.test}")
    model = Reader(args.codebooks)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.01)
    history = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xa)).tolist()
        for i in range(0, len(order), 64):
            x, lengths = _batch(xa, order[i:i + 64])
            loss = torch.nn.functional.cross_entropy(model(x, lengths), torch.tensor([ya[j] for j in order[i:i + 64]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            right = sum(int((model(*_batch(xb, list(range(i, min(i + 256, len(xb)))))).argmax(1)
                             == torch.tensor(yb[i:i + 256])).sum()) for i in range(0, len(xb), 256))
        history.append(round(100 * right / len(xb), 1))
        print(f"epoch {epoch}: test accuracy {history[-1]}%", file=sys.stderr)
    print(json.dumps({"train_questions": len(xa), "test_questions": len(xb), "codebooks": args.codebooks,
                      "negated_share_test": round(100 * sum(yb) / len(yb), 1), "accuracy_by_epoch": history}))


if __name__ == "__main__":
    main()
