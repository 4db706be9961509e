"""Is a spoken yes/no question's polarity in the LM's state when Moshi echoes it, or lost before?

The embedded model echoes a yes/no question before answering ("A green shape? ..." / "Not a green shape?
..."), and about a quarter of spoken echoes get the polarity wrong, mostly in held-out wordings (README,
stops 21-24). A GRU on the user's codes tells polarity 95.5% right (`polarity_ceiling.py`), so the codes
hold it. This script asks where it is lost: it streams spoken questions of the results sample through the
bundle exactly as `eval run` does (same voices, same image), records the temporal transformer's output
[dim] at the step that samples the echo's first piece (also after the question, and its mean over the
question), and fits logistic-regression probes on those states: for the sample's seen-wording questions,
or with `--train-questions N` for N train-split questions worded as the training data was (stop 25). It
then scores the probes, the model's own echo and a bag-of-codes control on held-out wordings. A probe
far above the echo: the state knows, the text head's reading of it does not. A probe no better than the
echo: the state has already lost it (the listening itself must be taught).

    python scripts/polarity_state_probe.py [--bundle tinyworld/bundle] [--limit 400] [--train-questions 480]
        [--out runs/probe.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import zlib
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).parent))
from listening_probe import asked_polarity  # noqa: E402

from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD  # noqa: E402
from moshivis.inference import ask as ask_module  # noqa: E402
from moshivis.inference.generator import Generator  # noqa: E402


class Recorder(Generator):
    """A plain generator that keeps, per step, the transformer output [B, dim], the sampled text [B] and the
    user's codes [B, 8]."""

    def start(self, batch_size: int = 1) -> None:
        super().start(batch_size)
        self.states: list[torch.Tensor] = []
        self.texts: list[torch.Tensor] = []
        self.users: list[torch.Tensor] = []

    def step(self, user_codes, *args, **kwargs):  # type: ignore[override]
        self.users.append(user_codes[:, :, 0].clone())
        out = super().step(user_codes, *args, **kwargs)
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
    p.add_argument("--train-questions", type=int, default=0,
                   help="fit the probe on this many train-split yes/no questions in training wordings (0: on "
                        "the sample's seen wordings)")
    p.add_argument("--out", default=None, help="JSON with the per-question rows and the summary")
    args = p.parse_args(argv)

    from moshivis.audio.tts import make_tts
    from moshivis.data.easy_vqa_wordings import paraphrase
    from moshivis.eval.benchmarks import load_benchmark
    from moshivis.inference.ask import AskConfig, Question, ask_batch
    from moshivis.inference.bundle import load_bundle
    from moshivis.models.vision import preprocess_images
    from moshivis.tinyworld.stages import user_voices

    rows = [json.loads(line) for line in Path(args.questions).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if asked_polarity(r["question"]) is not None][:args.limit]
    items = {str(it.id): it for it in load_benchmark("easy-vqa", split="test").items}
    if args.train_questions:
        # The probe's training set, worded as the model's own training data was: yes/no questions of the
        # train split, half reworded by a TRAINING paraphrase; the results sample is then all test rows.
        rng = random.Random("polarity-state-probe")
        train = [it for it in load_benchmark("easy-vqa", split="train").items if asked_polarity(it.question)]
        train = rng.sample(train, args.train_questions)
        items.update({str(it.id): it for it in train})
        rows = [{**r, "set": "test"} for r in rows] + [
            {"id": str(it.id), "set": "train", "wording": "train",
             "question": paraphrase(it.question, rng, wordings="train") if rng.random() < 0.5 else it.question}
            for it in train]
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
        rec.user = torch.stack(rec.users, -1)  # [B, 8, T] the user's codes as fed
        for b, (r, q, a) in enumerate(zip(batch, qs, answers)):
            # the question ends at lead + its frames; the echo is the first word piece after that
            q_frames = -(-len(q.audio) // codec.frame_size)
            t = echo_step(texts[b], cfg.lead_frames + q_frames // 2)
            if t is None:
                continue
            piece = bundle.tokenizer.piece(int(texts[b, t])).strip("▁ ").lower()
            q0, q1 = cfg.lead_frames, cfg.lead_frames + q_frames  # the question's frames
            results.append({"id": r["id"], "question": r["question"], "wording": r["wording"],
                            "set": r.get("set", "test"),
                            "state_end": states[b, min(q1 + 1, t)].tolist(),
                            "codes": rec.user[b, 0, q0:q1 + 2].tolist(),
                            "state_mean": states[b, q0:q1].mean(0).tolist(),
                            "negated": asked_polarity(r["question"]) == "not", "echo_piece": piece,
                            # "Not" is split into pieces ("No" + "t"): read the echo's polarity off the answer
                            "echo_negated": a.answer.lower().startswith("not"), "answer": a.answer,
                            "state": states[b, t].tolist()})

    y = torch.tensor([r["negated"] for r in results])
    # `fit` is the probes' training set: the training-worded train-split questions when asked for, else
    # the sample's seen wordings. Held-out wordings (of the results sample) are always the test.
    fit_on = "train" if args.train_questions else "seen"
    fit = torch.tensor([r["wording"] == fit_on for r in results])
    seen = torch.tensor([r["wording"] == "seen" for r in results])
    echo = torch.tensor([r["echo_negated"] for r in results])

    held = torch.tensor([r["wording"] == "held-out" for r in results])

    def acc(mask: torch.Tensor, guess: torch.Tensor) -> float:
        return round(100 * float((guess[mask] == y[mask]).float().mean()), 1) if bool(mask.any()) else float("nan")

    def codes_probe() -> dict[str, object]:
        """The control: the same probe on a bag of the question's codebook-0 codes (no LM). If it does no
        better on held-out wordings, the fit set simply does not teach those wordings' negation words."""
        card = int(max(max(r["codes"]) for r in results)) + 1
        for r in results:
            r["bag"] = torch.bincount(torch.tensor(r["codes"]), minlength=card).clamp(max=1).float().tolist()
        return probe_rows("bag")

    def probe_rows(feature: str) -> dict[str, object]:
        """Probes on one feature, L2 chosen by a 5-fold split of the fit set (by question);
        the held-out wordings are scored once, with that choice (`all_l2` shows every setting)."""
        x = torch.tensor([r[feature] for r in results])
        mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6
        z = (x - mu) / sd
        idx = fit.nonzero().flatten()
        folds = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))].chunk(5)
        rows: dict[float, dict[str, float]] = {}
        for l2 in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
            cv = torch.zeros(len(results), dtype=torch.bool)
            for k, test in enumerate(folds):
                train = torch.cat([f for j, f in enumerate(folds) if j != k])
                with torch.no_grad():
                    cv[test] = fit_probe(z[train], y[train], l2)(z[test])[:, 0] > 0
            with torch.no_grad():
                pred = fit_probe(z[fit], y[fit], l2)(z)[:, 0] > 0
            rows[l2] = {"fit_5fold": acc(fit, cv), "held_out": acc(held, pred),
                        "held_out_plain": acc(held & ~y, pred), "held_out_negated": acc(held & y, pred)}
        best = max(rows, key=lambda k: rows[k]["fit_5fold"])
        return {"l2": best, **rows[best], "all_l2": {str(k): v["held_out"] for k, v in rows.items()}}

    summary = {
        "bundle": args.bundle, "questions": len(results), "fit": int(fit.sum()), "held_out": int(held.sum()),
        "negated_share": round(float(y.float().mean()), 3),
        "probe_fit_on": fit_on,
        "echo": {"fit_set": acc(fit, echo), "seen": acc(seen, echo), "held_out": acc(held, echo),
                 "held_out_plain": acc(held & ~y, echo), "held_out_negated": acc(held & y, echo)},
        "codes_probe": codes_probe(),
        "probe_at_echo": probe_rows("state"),
        "probe_after_question": probe_rows("state_end"),
        "probe_question_mean": probe_rows("state_mean"),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        for r in results:
            for k in ("state", "state_end", "state_mean", "codes", "bag"):
                del r[k]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
