"""scripts/polarity_state_probe.py: the echo's step, the probe fit, and the recording generator."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from testkit import load_script, tiny_model

from moshivis.data.tokenizer import TEXT_EPAD, TEXT_PAD
from moshivis.inference.generator import SamplingConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "polarity_state_probe.py"


def load():
    sys.path.insert(0, str(SCRIPT.parent))  # it imports listening_probe from beside it
    return load_script("scripts/polarity_state_probe.py")


def test_echo_step_is_the_first_word_piece_from_the_start():
    m = load()
    texts = torch.tensor([50, TEXT_PAD, TEXT_EPAD, TEXT_PAD, 77, 78])
    assert m.echo_step(texts, 1) == 4
    assert m.echo_step(texts, 0) == 0
    assert m.echo_step(torch.tensor([TEXT_PAD, TEXT_PAD]), 0) is None


def test_probe_separates_a_linear_label_and_not_noise():
    m = load()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g)
    y = x[:, 3] + 0.5 * x[:, 7] > 0
    probe = m.fit_probe(x[:150], y[:150])
    with torch.no_grad():
        assert ((probe(x[150:])[:, 0] > 0) == y[150:]).float().mean() > 0.9
    noise = torch.rand(200, generator=g) > 0.5  # a label the features do not hold
    probe = m.fit_probe(x[:150], noise[:150], l2=1.0)
    with torch.no_grad():
        assert ((probe(x[150:])[:, 0] > 0) == noise[150:]).float().mean() < 0.75


def test_recorder_keeps_one_state_text_and_user_frame_per_step():
    m = load()
    model = tiny_model()
    rec = m.Recorder(model, SamplingConfig(0, 0, 0, 0))
    user = torch.randint(0, 32, (2, 8, 5))
    with rec.streaming(2):
        for t in range(5):
            rec.step(user[:, :, t:t + 1])
    assert len(rec.states) == len(rec.texts) == len(rec.users) == 5
    assert rec.states[0].shape == (2, model.cfg.lm.temporal.dim)
    assert torch.equal(torch.stack(rec.users, -1), user)
