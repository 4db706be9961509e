"""Is a spoken yes/no question's polarity in the LM's state when Moshi echoes it, or lost before?

The embedded model echoes a yes/no question before answering ("A green shape? ..." / "Not a green shape?
..."), and about a quarter of spoken echoes get the polarity wrong, mostly in held-out wordings (README,
stops 21-24). A GRU on the user's codes tells polarity 95.5% right (`polarity_ceiling.py`), so the codes
hold it. This script asks where it is lost: it streams spoken questions of the results sample through the
bundle exactly as `eval run` does (same voices, same image), records the temporal transformer's output
[dim] at the step that samples the echo's first piece, and fits a logistic-regression probe on those
states for seen-wording questions; it then scores the probe and the model's own echo on held-out
wordings. A probe far above the echo: the state knows, the text head's reading of it does not. A probe
no better than the echo: the state has already lost it (the listening itself must be taught).

    python scripts/polarity_state_probe.py [--bundle tinyworld/bundle] [--limit 400] [--out runs/probe.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from listening_probe import asked_polarity  # noqa: E402

from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD  # noqa: E402
from moshivis.inference import ask as ask_module  # noqa: E402
from moshivis.inference.generator import Generator  # noqa: E402


class Recorder(Generator):
    """A plain generator that keeps, per step, the transformer output [B, dim] and the sampled text [B]."""

    def start(self, batch_size: int = 1) -> None:
        super().start(batch_size)
        self.states: list[torch.Tensor] = []
        self.texts: list[torch.Tensor] = []

    def step(self, *args, **kwargs):  # type: ignore[override]
        out = super().step(*args, **kwargs)
        self.states.append(self.last.transformer_out.float().clone())
        self.texts.append(self.last.text_token.clone())
        return out


def echo_step(texts: torch.Tensor, first: int) -> int | None:
    """texts [T] sampled text per step -> the first step >= first whose token is a word piece."""
    for t in range(first, texts.shape[0]):
        if int(texts[t]) not in (TEXT_PAD, TEXT_EPAD):
            return t
    return None


def fit_probe(x: torch.Tensor, y: torch.Tensor, l2: float = 1e-2, steps: int = 500) -> torch.nn.Linear:
    """Logistic regression on standardised features (LBFGS, L2 on the weights)."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(probe(x)[:, 0], y.float())
        loss = loss + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", default="tinyworld/bundle")
    p.add_argument("--questions", default="tinyworld/results/questions.jsonl")
    p.add_argument("--limit", type=int, default=400, help="yes/no questions to ask (first ones of the file)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", default=None, help="JSON with the per-question rows and the summary")
    args = p.parse_args(argv)

    from moshivis.audio.tts import make_tts
    from moshivis.eval.benchmarks import load_benchmark
    from moshivis.inference.ask import AskConfig, Question, ask_batch
    from moshivis.inference.bundle import load_bundle
    from moshivis.models.vision import preprocess_images
    from moshivis.tinyworld.stages import user_voices

    rows = [json.loads(line) for line in Path(args.questions).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if asked_polarity(r["question"]) is not None][:args.limit]
    items = {str(it.id): it for it in load_benchmark("easy-vqa", split="test").items}
    bundle = load_bundle(args.bundle)
    model, codec = bundle.model, bundle.codec
    voices = [make_tts(v) for v in user_voices()]
    cfg = AskConfig(max_answer_frames=20, decode_audio=False)

    recorders: list[Recorder] = []

    def make(model, sampling, xa_start=None, seed=None):  # what ask_batch builds, recording
        recorders.append(Recorder(model, sampling, xa_start, seed))
        return recorders[-1]

    ask_module.make_generator = make  # this script's own process only
    results = []
    for i in tqdm(range(0, len(rows), args.batch_size), desc="asking"):
        batch = rows[i:i + args.batch_size]
        its = [items[r["id"]] for r in batch]
        pixels = torch.cat([preprocess_images(it.image.path, model.cfg.vision.image_size) for it in its])
        with torch.no_grad():
            embeds = model.encode_image(pixels)
        qs = [Question(audio=voices[zlib.crc32(r["id"].encode()) % len(voices)].synthesize(r["question"])[0])
              for r in batch]
        answers = ask_batch(model, bundle.tokenizer, codec, embeds, qs, cfg)
        rec = recorders[-1]
        states, texts = torch.stack(rec.states, 1), torch.stack(rec.texts, 1)  # [B, T, dim], [B, T]
        for b, (r, q, a) in enumerate(zip(batch, qs, answers)):
            # the question ends at lead + its frames; the echo is the first word piece after that
            q_frames = -(-len(q.audio) // codec.frame_size)
            t = echo_step(texts[b], cfg.lead_frames + q_frames // 2)
            if t is None:
                continue
            piece = bundle.tokenizer.piece(int(texts[b, t])).strip("▁ ").lower()
            results.append({"id": r["id"], "question": r["question"], "wording": r["wording"],
                            "negated": asked_polarity(r["question"]) == "not", "echo_piece": piece,
                            "echo_negated": piece == "not", "answer": a.answer,
                            "state": states[b, t].tolist()})

    x = torch.tensor([r["state"] for r in results])
    y = torch.tensor([r["negated"] for r in results])
    seen = torch.tensor([r["wording"] == "seen" for r in results])
    mu, sd = x[seen].mean(0), x[seen].std(0) + 1e-6
    z = (x - mu) / sd
    probe = fit_probe(z[seen], y[seen])
    with torch.no_grad():
        pred = probe(z)[:, 0] > 0
    echo = torch.tensor([r["echo_negated"] for r in results])

    def acc(mask: torch.Tensor, guess: torch.Tensor) -> float:
        return round(100 * float((guess[mask] == y[mask]).float().mean()), 1) if bool(mask.any()) else float("nan")

    # Within seen wordings, a 5-fold split (by question) says how well the probe fits unseen questions of
    # the same wordings: the held-out wording score is read against it.
    idx = seen.nonzero().flatten()
    folds = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))].chunk(5)
    cv = torch.zeros(len(results), dtype=torch.bool)
    for k, test in enumerate(folds):
        train = torch.cat([f for j, f in enumerate(folds) if j != k])
        pr = fit_probe(z[train], y[train])
        with torch.no_grad():
            cv[test] = pr(z[test])[:, 0] > 0
    summary = {
        "bundle": args.bundle, "questions": len(results), "seen": int(seen.sum()), "held_out": int((~seen).sum()),
        "negated_share": round(float(y.float().mean()), 3),
        "echo_acc_seen": acc(seen, echo), "echo_acc_held_out": acc(~seen, echo),
        "probe_acc_seen_train": acc(seen, pred), "probe_acc_seen_5fold": acc(seen, cv),
        "probe_acc_held_out": acc(~seen, pred),
        "held_out_plain": {"echo": acc(~seen & ~y, echo), "probe": acc(~seen & ~y, pred)},
        "held_out_negated": {"echo": acc(~seen & y, echo), "probe": acc(~seen & y, pred)},
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        for r in results:
            del r["state"]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
