"""scripts/gpu_tiny_check.py: questions prepared here replay to the same answers (run here on the CPU; on a
GPU machine the same `check` compares the GPU's answers with these)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from testkit import load_script

from moshivis.audio.voice_pool import voice_available
from moshivis.inference.bundle import EMBEDDED_BUNDLE


def load():
    return load_script("scripts/gpu_tiny_check.py")


def test_replay_codec_refuses_tracks_it_does_not_hold() -> None:
    m = load()
    codec = m.ReplayCodec([torch.zeros(8, 5, dtype=torch.int16)], [9600], torch.arange(8), 1920, 24000)
    with pytest.raises(RuntimeError, match="9599 samples, stored one has 9600"):
        codec.encode(torch.zeros(1, 1, 9599))
    with pytest.raises(RuntimeError, match="more tracks"):
        codec.encode(torch.zeros(1, 1, 9600))
    assert torch.equal(codec.silence_codes(3), torch.arange(8)[:, None].expand(8, 3))


@pytest.mark.skipif(not (EMBEDDED_BUNDLE / "bundle.json").is_file(), reason="the embedded model is not built")
@pytest.mark.skipif(not voice_available("flite:kal16"), reason="flite is not installed: the spoken questions "
                    "are synthesised with the embedded model's training voices")
def test_prepare_then_check_gives_the_same_answers(tmp_path: Path) -> None:
    m = load()
    out = tmp_path / "inputs.pt"
    prepared = m.prepare(n=2, batch=2, out=out)
    # the replayed codes give what the real codec gives inside `ask_batch`
    assert prepared["replay_equals_codec"] == "2/2"
    checked = m.check(out, "cpu", eager_too=False)
    assert checked["default"]["generator"] == "Generator"
    for kind in ("text", "audio"):
        assert checked["default"][kind]["same_answer_as_cpu"] == "2/2"
        assert checked["default"][kind]["accuracy"] == prepared[kind]["accuracy"]
    # codes encoded by one codec mean nothing to a bundle with another: refused, naming the inputs
    data = torch.load(out, weights_only=False)
    data["codec"] = "0" * 16
    torch.save(data, out)
    with pytest.raises(ValueError, match="not the one .*inputs.pt was encoded with"):
        m.check(out, "cpu", eager_too=False)
