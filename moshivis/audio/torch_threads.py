"""Keep torch's intra-op thread count across calls that change the process's OpenMP setting.

CTranslate2 (the Whisper encoder of the tiny codec, faster-whisper's ASR) sets the process-wide OpenMP
thread count to its own `intra_threads` when a model is created, which silently leaves torch on that many
threads for the rest of the process: adapter training after the base's probe ran 1.7x slower (stop 10).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def keep_torch_threads() -> Iterator[None]:
    n = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
