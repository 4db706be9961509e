"""Carry a trained tiny model over to a refitted semantic codebook (codebook 0) without starting again.

`moshivis.audio.tiny.refit` moves codebook 0's centroids to where the tiny world's speech lives (a reader of
the refitted codes understands 93.8% of training-worded spoken questions against 86.8%, stop 26), but every
code then means something else, so a model trained on the old codes would read noise. Both codebooks
quantise the same Whisper states, so new code j can start from what the model learned for the OLD codes
of the same sounds: its input embeddings and its output row are set to a mix of theirs, weighted by how
often the old codebook gave each old code to the frames that new code j takes (`cooccurrence_weights`, from
pooled states such as `refit --save-states` writes), or, without states, by centroid distance
(`code_weights`). Stop 28: the shipped bundle carried over this way (co-occurrence over 125k frames) and
not trained at all answered 60.7% of the first 300 spoken questions of the results sample, against 61.7%
with the old codebook (sign test p = 0.84). Fine-tuning on speech encoded with the new codebook then only
has to sharpen the rows.

Codebook 0 lives in four weights of the LM (n_q = 2 x dep_q audio streams, Moshi's first):

| key | rows | role |
|---|---|---|
| `lm.audio_emb.0.weight` | [card + 1, dim] | input embedding of Moshi's own codebook 0 |
| `lm.audio_emb.{dep_q}.weight` | [card + 1, dim] | input embedding of the user's codebook 0 |
| `lm.depformer_emb.0.weight` | [card + 1, dep_dim] | the depformer's input for codebook 1 (it embeds codebook 0) |
| `lm.audio_linears.0.weight` | [card, dep_dim] | the depformer's output logits for codebook 0 |

Only rows 0..K-1 (K = the semantic codebook's size) change: the acoustic codebooks, the padding / initial
token (row `card`) and every other weight are copied as they are.

    python -m moshivis.tinyworld.semantic_remap --checkpoint tinyworld/bundle/model.safetensors \
        --old-codec tinyworld/codec --new-codec runs/codec_refit --out runs/remapped.safetensors \
        [--states states.pt (pooled Whisper states [N, 384]: mix by co-occurrence, not by distance)]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

import torch

SEMANTIC_KEYS = ("lm.audio_emb.0.weight", "lm.audio_emb.{dep_q}.weight", "lm.depformer_emb.0.weight",
                 "lm.audio_linears.0.weight")


def semantic_keys(state: Mapping[str, torch.Tensor]) -> list[str]:
    """The four codebook-0 keys of a tiny LM state dict (dep_q read from its `audio_linears`)."""
    dep_q = sum(1 for k in state if k.startswith("lm.audio_linears.") and k.endswith(".weight"))
    if dep_q == 0:
        raise KeyError("no lm.audio_linears.{c}.weight in the checkpoint: is it a moshivis LM state dict?")
    keys = [k.format(dep_q=dep_q) for k in SEMANTIC_KEYS]
    missing = [k for k in keys if k not in state]
    if missing:
        raise KeyError(f"checkpoint lacks codebook-0 weights {missing}")
    return keys


def code_weights(old: torch.Tensor, new: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
    """old [K_old, D], new [K_new, D] centroids -> W [K_new, K_old], rows summing to 1: how much of each old
    code new code j starts from. W[j] = softmax(-|new_j - old_i|^2 / t) over i, with t (default) the median
    squared distance of a new centroid to its nearest old one, so a new centroid that sits on an old one
    takes mostly that one and one between several mixes them; temperature 0 takes the nearest alone."""
    if old.ndim != 2 or new.ndim != 2 or old.shape[1] != new.shape[1]:
        raise ValueError(f"centroids must be [K, D] with the same D, got old {tuple(old.shape)}, "
                         f"new {tuple(new.shape)}")
    d2 = torch.cdist(new.double(), old.double()).pow(2)  # [K_new, K_old]
    t = float(d2.min(1).values.median()) if temperature is None else float(temperature)
    if t <= 0:  # asked for, or every new centroid sits on an old one: the nearest alone
        return torch.nn.functional.one_hot(d2.argmin(1), old.shape[0]).double()
    return torch.softmax(-d2 / t, dim=1)


def cooccurrence_weights(states: torch.Tensor, old: torch.Tensor, new: torch.Tensor,
                         fallback: torch.Tensor | None = None) -> torch.Tensor:
    """W [K_new, K_old] from speech: W[j, i] = the share of the frames quantised to new code j that the old
    codebook quantised to i, so new code j starts from the mean of what the model learned for those
    frames. states [N, D]: pooled Whisper states (the codec's `semantic_states`). A new code no frame took
    keeps its row of `fallback` (default: `code_weights(old, new)`)."""
    from ..audio.tiny.kmeans import nearest

    if states.ndim != 2 or states.shape[1] != old.shape[1]:
        raise ValueError(f"states must be [N, {old.shape[1]}], got {tuple(states.shape)}")
    x = states.float()
    i_old, _ = nearest(x, old.float(), exact=True)
    i_new, _ = nearest(x, new.float(), exact=True)
    counts = torch.zeros(new.shape[0], old.shape[0], dtype=torch.float64)
    counts.index_put_((i_new, i_old), torch.ones(len(x), dtype=torch.float64), accumulate=True)
    seen = counts.sum(1) > 0
    w = fallback.clone().double() if fallback is not None else code_weights(old, new)
    w[seen] = counts[seen] / counts[seen].sum(1, keepdim=True)
    return w


def remap_semantic_rows(state: Mapping[str, torch.Tensor], weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """A copy of `state` whose codebook-0 rows 0..K_new-1 are `weights` [K_new, K_old] @ the old rows
    0..K_old-1, in each weight's own dtype; every other tensor is the same object."""
    k_new, k_old = weights.shape
    out = dict(state)
    for key in semantic_keys(state):
        w = state[key]
        if w.shape[0] < max(k_new, k_old):
            raise ValueError(f"{key} has {w.shape[0]} rows, fewer than the codebooks' {max(k_new, k_old)} codes")
        mixed = (weights @ w[:k_old].double()).to(w.dtype)
        out[key] = torch.cat([mixed, w[k_new:]], 0)
    return out


CENTROID_KEY = "lm.centroid_input.centroids"  # a model whose codebook 0 also enters by its centroids


def remap_centroid_input(state: Mapping[str, torch.Tensor], new: torch.Tensor) -> dict[str, torch.Tensor]:
    """A state whose centroid input (`models/centroid_input.py`) holds `new`'s centroids [K_new, 384]
    (standardised, as attaching does); a state without one is returned as is. The learned projection is kept:
    it maps a centroid, wherever the refit put it, the way it mapped the old ones."""
    from ..models.centroid_input import standardize_centroids

    out = dict(state)
    if CENTROID_KEY not in out:
        return out
    have = out[CENTROID_KEY]
    if tuple(have.shape) != tuple(new.shape):
        raise ValueError(f"{CENTROID_KEY} is {list(have.shape)}, the new codec's centroids {list(new.shape)}: "
                         "the centroid input cannot change size in a remap")
    out[CENTROID_KEY] = standardize_centroids(new).to(have.dtype)
    return out


def remap_checkpoint(checkpoint: Path, old_codec: Path, new_codec: Path, out: Path,
                     temperature: float | None = None, states: Path | None = None) -> dict:
    """Read a tiny model's safetensors, remap its codebook-0 rows from `old_codec`'s semantic centroids to
    `new_codec`'s, write `out` (metadata kept, plus the remap's provenance) -> a summary. states: a torch
    file of pooled Whisper states [N, 384] for `cooccurrence_weights` (else centroid distances alone)."""
    from safetensors.torch import save_file

    from ..audio.tiny.codec import read_semantic_centroids
    from ..models.loaders import read_safetensors

    old, new = read_semantic_centroids(old_codec), read_semantic_centroids(new_codec)
    weights = code_weights(old, new, temperature)
    if states is not None:
        x = torch.load(str(states), map_location="cpu", weights_only=True)
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{states}: expected one tensor [N, 384] of Whisper states, got {type(x).__name__}")
        weights = cooccurrence_weights(x, old, new, fallback=weights)
    state, meta = read_safetensors(checkpoint)
    remapped = remap_centroid_input(remap_semantic_rows(state, weights), new)
    top = weights.max(1).values
    summary = {"checkpoint": str(checkpoint), "old_codec": str(old_codec), "new_codec": str(new_codec),
               "codes": [int(weights.shape[1]), int(weights.shape[0])], "temperature": temperature,
               "states": None if states is None else str(states),
               "old_codes_used_as_nearest": int(weights.argmax(1).unique().numel()),
               "mean_top_weight": round(float(top.mean()), 4), "keys": semantic_keys(state)}
    meta["semantic_remap"] = json.dumps(summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in remapped.items()}, str(out), metadata=meta)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--old-codec", type=Path, required=True, help="the codec folder the checkpoint was trained on")
    p.add_argument("--new-codec", type=Path, required=True, help="the codec folder with the refitted codebook 0")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature over squared centroid distances (default: the median nearest "
                        "distance; 0: the nearest old code alone)")
    p.add_argument("--states", type=Path, default=None,
                   help="torch file of pooled Whisper states [N, 384]: mix old codes by how often they "
                        "quantise the frames each new code takes (codes no frame takes: by distance)")
    a = p.parse_args(argv)
    print(json.dumps(remap_checkpoint(a.checkpoint, a.old_codec, a.new_codec, a.out, a.temperature, a.states),
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
