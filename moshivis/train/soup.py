"""Weight averaging ("model soup") of checkpoints fine-tuned from one starting point.

Runs that start from the same weights and differ only in their training seed (data order, dropout, hidden
voices) end in different places, and on the embedded model their held-out accuracy spreads by 8-15 points
(docs/TINYWORLD_LOG.md, stop 28). Fine-tunes of one start usually stay in one basin, so the mean of their
weights is a model in its own right, and it does not depend on which seed was lucky. This module makes that
mean from model files (the trainer's `checkpoints/step_*/model.safetensors`, or any moshivis-layout file);
it knows nothing of how they were trained.

    python -m moshivis.train.soup --out soup.safetensors RUN_OR_FILE [RUN_OR_FILE ...] [--weights 1 1 2]

A run folder stands for its latest checkpoint. Every file must hold the same keys with the same shapes and
dtypes; integer tensors (buffers) must be equal. The sum is taken in float64 and cast back to each tensor's
dtype. The first file's metadata (its model config) is kept, with the ingredients added under `soup`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file

from moshivis.models.loaders import CheckpointError, read_safetensors
from moshivis.train.checkpoint import latest_checkpoint

MODEL_FILE = "model.safetensors"


def resolve_model_file(source: str | os.PathLike) -> Path:
    """A model file from a file path, a checkpoint folder, or a training run folder (its latest checkpoint)."""
    path = Path(source)
    if path.is_file():
        return path
    if (path / MODEL_FILE).is_file():
        return path / MODEL_FILE
    if path.is_dir():
        last = latest_checkpoint(path)
        if last is not None and (last / MODEL_FILE).is_file():
            return last / MODEL_FILE
        raise CheckpointError(f"{path}: a folder with no {MODEL_FILE} and no checkpoints/step_* holding one")
    raise CheckpointError(f"{path}: no such file or folder")


def average_state(states: Sequence[dict[str, torch.Tensor]], names: Sequence[str],
                  weights: Sequence[float] | None = None) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts that hold the same keys, shapes and dtypes.

    Float tensors are averaged in float64 and cast back; other tensors must be equal in every state (they
    are buffers such as step counters or index tables, whose mean would mean nothing). `names` label the
    states in errors."""
    if not states:
        raise ValueError("a soup needs at least one checkpoint")
    if len(names) != len(states):
        raise ValueError(f"{len(names)} names for {len(states)} states")
    w = [1.0] * len(states) if weights is None else [float(x) for x in weights]
    if len(w) != len(states):
        raise ValueError(f"{len(w)} weights for {len(states)} checkpoints")
    if any(x < 0 for x in w) or sum(w) <= 0:
        raise ValueError(f"soup weights must be >= 0 with a positive sum, got {w}")
    total = sum(w)
    first, first_name = states[0], names[0]
    for state, name in zip(states[1:], names[1:]):
        missing, extra = sorted(set(first) - set(state)), sorted(set(state) - set(first))
        if missing or extra:
            raise CheckpointError(f"{name}: keys differ from {first_name}: missing {missing[:5]}, "
                                  f"unexpected {extra[:5]}")
        for key, ref in first.items():
            got = state[key]
            if got.shape != ref.shape or got.dtype != ref.dtype:
                raise CheckpointError(f"{name}: {key} is {tuple(got.shape)} {got.dtype}, "
                                      f"{first_name} has {tuple(ref.shape)} {ref.dtype}")
            if not ref.is_floating_point() and not torch.equal(got, ref):
                raise CheckpointError(f"{name}: {key} ({ref.dtype}) differs from {first_name}; "
                                      "non-float tensors cannot be averaged")
    out: dict[str, torch.Tensor] = {}
    for key, ref in first.items():
        if not ref.is_floating_point():
            out[key] = ref.clone()
            continue
        acc = torch.zeros(ref.shape, dtype=torch.float64)
        for state, weight in zip(states, w):
            acc += state[key].to(torch.float64) * (weight / total)
        out[key] = acc.to(ref.dtype)
    return out


def make_soup(sources: Sequence[str | os.PathLike], out: str | os.PathLike,
              weights: Sequence[float] | None = None) -> Path:
    """Average the model files of `sources` (files, checkpoint folders or run folders) into `out`."""
    files = [resolve_model_file(s) for s in sources]
    read = [read_safetensors(f) for f in files]
    names = [str(f) for f in files]
    state = average_state([t for t, _ in read], names, weights)
    meta = dict(read[0][1])
    meta["soup"] = json.dumps({"files": names, "weights": list(weights) if weights else [1.0] * len(files)})
    out = Path(out)
    if out.suffix != ".safetensors":  # a folder, like a checkpoint's: `out/model.safetensors`
        out = out / MODEL_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out), metadata=meta)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The soup's command-line arguments (here and in `moshivis soup`)."""
    p.add_argument("sources", nargs="+", help="model files, checkpoint folders, or run folders (latest step)")
    p.add_argument("--out", required=True, help="a .safetensors file, or a folder to hold model.safetensors")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one per source (default: equal)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m moshivis.train.soup", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        path = make_soup(args.sources, args.out, args.weights)
    except (CheckpointError, ValueError) as e:
        print(f"soup: error: {e}", file=sys.stderr)
        return 2
    print(f"soup of {len(args.sources)} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
