"""Loading CTranslate2 models (the codec's Whisper encoder, the ASR) leaves torch's thread count alone.

CTranslate2 sets the process's OpenMP thread count to its own; before the guard, a training stage run
after a data stage in the same process silently lost half its threads (stop 10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moshivis.audio.tiny.semantic import WhisperEncoder


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_whisper_encoder_keeps_torch_threads(two_threads) -> None:
    enc = WhisperEncoder(threads=1)
    out = enc(torch.zeros(1, 80, 200))
    assert out.shape[0] == 1
    assert torch.get_num_threads() == 2


def test_asr_keeps_torch_threads(two_threads) -> None:
    from moshivis.audio.tiny.evaluate import Transcriber

    asr = Transcriber(threads=1)
    assert isinstance(asr(np.zeros(24000, np.float32)), str)
    assert torch.get_num_threads() == 2
