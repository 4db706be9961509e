"""Run by `torchrun` from test_distributed.py: train on a shard folder and write rank 0's losses."""

from __future__ import annotations

import json
import sys

import torch

from moshivis.train.config import load_config
from moshivis.train.trainer import Trainer


def main() -> None:
    out_file, overrides = sys.argv[1], sys.argv[2:]
    torch.set_num_threads(1)
    trainer = Trainer(load_config(None, overrides))
    history = trainer.run(show_progress=False)
    if trainer.info.is_main:
        with open(out_file, "w") as f:
            json.dump([m.loss for m in history], f)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
