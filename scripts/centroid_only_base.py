"""A base whose codebook-0 inputs carry code identity only through the codec's centroids (stop 31, arm F).

From a checkpoint without a centroid input: attach one (`models/centroid_input.py`), set both sides'
codebook-0 rows of the semantic codes to their mean (a constant, so they say nothing about which code came)
and set the projection to a ridge fit of the centred rows from the standardised centroids (one projection
serves both sides: it is fitted to the mean of the two sides' centred rows). Prints how much of the rows'
variance the fit explains; the model then needs training to recover (stop 31: 400 listening steps).

    python scripts/centroid_only_base.py --checkpoint tinyworld/bundle/model.safetensors \
        --codec tinyworld/codec --out runs/pol/cent_init.safetensors [--ridge 10]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from moshivis.audio.tiny.codec import read_semantic_centroids
from moshivis.models.centroid_input import attach_centroid_input
from moshivis.models.loaders import load_model, save_checkpoint
from moshivis.models.moshivis import MoshiVis


def centroid_only(model: MoshiVis, centroids: torch.Tensor, ridge: float = 10.0) -> dict[str, float]:
    """In place. centroids [K, C] as the codec stores them -> R^2 of the fit per side ({"model": .., "user": ..})."""
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    attach_centroid_input(model, centroids)
    lm = model.lm
    x = lm.centroid_input.centroids.float()  # [K, C], standardised
    k = x.shape[0]
    sides = {"model": 0, "user": lm.cfg.dep_q}
    with torch.no_grad():
        rows = {s: lm.audio_emb[i].weight[:k].float().clone() for s, i in sides.items()}
        target = sum(r - r.mean(0) for r in rows.values()) / len(rows)  # [K, dim]
        w = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1]), x.T @ target)  # [C, dim]
        lm.centroid_input.proj.weight.copy_(w.T.to(lm.centroid_input.proj.weight.dtype))
        fit = x @ w
        r2 = {}
        for s, i in sides.items():
            centred = rows[s] - rows[s].mean(0)
            r2[s] = round(float(1 - (centred - fit).pow(2).sum() / centred.pow(2).sum()), 4)
            lm.audio_emb[i].weight[:k] = rows[s].mean(0).to(lm.audio_emb[i].weight.dtype)
    return r2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="a model in our format without a centroid input")
    ap.add_argument("--codec", required=True, help="tiny codec folder (its codebook-0 centroids)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ridge", type=float, default=10.0)
    args = ap.parse_args(argv)
    model = load_model(args.checkpoint, dtype=torch.float32)
    r2 = centroid_only(model, read_semantic_centroids(args.codec), args.ridge)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, args.out)
    print(json.dumps({"out": str(args.out), "fit_r2": r2}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
