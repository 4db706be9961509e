"""Training checkpoints: weights (adapters only, or everything that trains) in our safetensors format, plus
optimizer, scheduler, data position and RNG states, written atomically; `--resume` continues exactly.

Layout of `out_dir/checkpoints/step_000120/`:
  model.safetensors   trainable weights, our format (config in metadata; loadable by `load_adapters`)
  trainer.pt          step, optimizer (full state dict), scheduler
  rank{r}.pt          data position and RNG states of rank r
A checkpoint folder is first written as `.step_000120.tmp` and renamed when complete, so a killed run
never leaves a half checkpoint under a real name.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ..models.loaders import CheckpointError, read_safetensors
from ..models.moshivis import MoshiVis

STEP_DIR = re.compile(r"^step_(\d{6,})$")


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_dirs(out_dir: str | os.PathLike) -> list[Path]:
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and STEP_DIR.match(p.name))


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    found = checkpoint_dirs(out_dir)
    return found[-1] if found else None


def write_model_file(path: Path, model: MoshiVis, weights: dict[str, torch.Tensor], content: str) -> None:
    meta = {"format": "moshivis", "config": model.cfg.to_json(), "content": content}
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(path), metadata=meta)


def save_main(out_dir: str | os.PathLike, step: int, model: MoshiVis, weights: dict[str, torch.Tensor],
              content: str, trainer_state: dict[str, Any]) -> Path:
    """Rank 0: write the shared parts into the temporary folder (renamed by `finalize`)."""
    tmp = Path(out_dir) / "checkpoints" / f".step_{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_model_file(tmp / "model.safetensors", model, weights, content)
    torch.save(trainer_state, tmp / "trainer.pt")
    return tmp


def save_rank(out_dir: str | os.PathLike, step: int, rank: int, state: dict[str, Any]) -> None:
    tmp = Path(out_dir) / "checkpoints" / f".step_{step:06d}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(state, tmp / f"rank{rank}.pt")


def finalize(out_dir: str | os.PathLike, step: int, keep: int) -> Path:
    """Rank 0, after every rank wrote its part: atomically publish, then drop old checkpoints."""
    root = Path(out_dir) / "checkpoints"
    tmp, final = root / f".step_{step:06d}.tmp", root / f"step_{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(out_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_model_weights(folder: Path, model: MoshiVis, expected: set[str]) -> dict[str, torch.Tensor]:
    """The checkpoint's weights, refused (with the differing keys) if they are not exactly `expected`."""
    tensors, meta = read_safetensors(folder / "model.safetensors")
    missing, unexpected = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{folder}: checkpoint from another architecture or mode: "
                              f"missing {missing[:20]}, unexpected {unexpected[:20]}")
    state = model.state_dict()
    for k, v in tensors.items():
        if k in state and tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{folder}: shape mismatch for {k}: checkpoint {list(v.shape)}, "
                                  f"model {list(state[k].shape)}")
    return tensors
