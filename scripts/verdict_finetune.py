"""Diagnostic (README, stop 15): can the base learn the yes/no comparison at all? Fine-tunes a base with a
loss ONLY on the verdict pieces (after " so") of evidence-first speechless dialogues, and prints
`moshivis eval verdict`'s argmax accuracy on fresh dialogues as it goes. Not a recipe stage.

    python scripts/verdict_finetune.py --base BASE.safetensors --train SHARDS --fresh SHARDS \\
        [--steps 1000] [--lr 1e-4] [--batch 8] [--every 250] [--out model.safetensors]
"""

from __future__ import annotations

import argparse
import os
import random

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from moshivis.data.shards import ShardReader  # noqa: E402
from moshivis.eval.verdict_probe import verdict_openings, verdict_positions, verdict_probe  # noqa: E402
from moshivis.inference.bundle import EMBEDDED_BUNDLE, load_bundle  # noqa: E402
from moshivis.models.loaders import load_model, save_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="base checkpoint (the model shape of --bundle)")
    ap.add_argument("--bundle", default=str(EMBEDDED_BUNDLE), help="bundle giving the config and tokenizer")
    ap.add_argument("--train", required=True, help="shards whose speechless verdicts are trained on")
    ap.add_argument("--fresh", required=True, help="shards never trained on, for the probe")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--probe-samples", type=int, default=300)
    ap.add_argument("--out", default=None, help="write the fine-tuned model here")
    args = ap.parse_args()

    ref = load_bundle(args.bundle)
    tok = ref.tokenizer
    model = load_model(args.base, ref.model.cfg, fresh_adapters=True)
    cue, openings = verdict_openings(tok)
    train = []
    for s in ShardReader(args.train):
        if s.kind == "speechless":
            codes = torch.as_tensor(np.asarray(s.codes)).long()
            if pos := verdict_positions(codes[0], cue, openings):
                train.append((codes, pos))
    if not train:
        raise SystemExit(f"{args.train}: no speechless dialogue holds a verdict after ' so' (evidence_first data?)")
    fresh = [s for s in ShardReader(args.fresh) if s.kind == "speechless"]

    def probe(step: int) -> None:
        model.eval()
        r = verdict_probe(model, fresh, tok, limit=args.probe_samples).to_dict()["none"]
        print(f"step {step}: " + ", ".join(f"{k} {v['argmax']:.3f} (n={v['n']})" for k, v in r.items()), flush=True)
        model.train()

    print(f"{len(train)} training dialogues with a verdict", flush=True)
    probe(0)
    params = [p for n, p in model.named_parameters() if not n.startswith(("adapters", "vision"))]
    opt = torch.optim.AdamW(params, lr=args.lr)
    rng = random.Random(0)
    model.train()
    for step in tqdm(range(1, args.steps + 1), desc="verdict fine-tune"):
        opt.zero_grad()
        for codes, pos in rng.sample(train, min(args.batch, len(train))):
            logits = model(codes[None]).text_logits[0, 0]  # [T, text_card]
            (torch.nn.functional.cross_entropy(logits[pos], codes[0, pos]) / args.batch).backward()
        opt.step()
        if step % args.every == 0:
            probe(step)
    if args.out:
        save_checkpoint(model, args.out)
        print("saved", args.out)


if __name__ == "__main__":
    main()
