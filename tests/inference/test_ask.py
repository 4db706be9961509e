"""`ask` / `moshivis ask` on a tiny bundle (random tiny model, a trained SentencePiece, a toy codec)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from testkit import tiny_model
from moshivis.cli import main
from moshivis.data.tokenizer import train_tokenizer
from moshivis.inference.ask import AskConfig, ask, typed_prompt
from moshivis.inference.bundle import load_bundle, write_bundle_file
from moshivis.models.loaders import save_checkpoint

SENTENCES = ["what colour is the shape", "the circle is blue", "is there a red square", "yes there is"]


@pytest.fixture
def bundle_dir(tmp_path):
    root = tmp_path / "bundle"
    root.mkdir()
    save_checkpoint(tiny_model(), root / "model.safetensors")
    train_tokenizer(SENTENCES * 5, root / "tokenizer", vocab_size=50)
    write_bundle_file(root, "model.safetensors", "tokenizer.model", "py:toy_codec:SmallEnergyCodec")
    Image.new("RGB", (80, 60), (20, 40, 220)).save(tmp_path / "img.png")
    t = np.arange(24000) / 24000
    sf.write(tmp_path / "q.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 24000)
    return root


def test_ask_text_and_audio(bundle_dir):
    b = load_bundle(bundle_dir)
    embeds = b.model.encode_image(__import__("torch").rand(1, 3, 56, 56) * 2 - 1)
    cfg = AskConfig(max_answer_frames=20, end_pad_frames=4)
    typed = ask(b.model, b.tokenizer, b.codec, embeds, question_text="what colour is the shape", cfg=cfg)
    n_q = len(b.tokenizer.encode("What colour is the shape."))
    assert typed.audio is None and typed.frames <= 2 + n_q + 2 + 20
    spoken = ask(b.model, b.tokenizer, b.codec, embeds, question_audio=np.zeros(24000, np.float32), cfg=cfg)
    assert spoken.audio is not None and spoken.audio.dtype == np.float32
    assert spoken.audio.shape[0] % b.codec.frame_size == 0
    assert all(0 <= g <= 1 for _, g in spoken.pieces)
    with pytest.raises(ValueError, match="exactly one"):
        ask(b.model, b.tokenizer, b.codec, embeds, cfg=cfg)


def test_typed_question_is_written_as_training_turns_are(bundle_dir):
    # Training turns are capitalised sentences; a lower-case typed question must reach the model as one.
    tok = load_bundle(bundle_dir).tokenizer
    assert tok.encode("is there a red square") != tok.encode("Is there a red square.")  # case-sensitive
    assert typed_prompt(tok, "is there a red square") == typed_prompt(tok, "Is there a red square.")
    assert typed_prompt(tok, "  is there a red square?") == typed_prompt(tok, "Is there a red square?")


def test_cli_ask_json(bundle_dir, capsys, tmp_path):
    img, wav, out = tmp_path / "img.png", tmp_path / "q.wav", tmp_path / "a.wav"
    assert main(["ask", "--checkpoint", str(bundle_dir), "--image", str(img), "--audio", str(wav),
                 "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert set(r) >= {"answer", "gate_mean", "audio"} and r["audio"] == str(out) and out.stat().st_size > 44
    assert main(["ask", "--checkpoint", str(bundle_dir), "--image", str(img), "--text", "is there a red square"]) == 0
    assert "answer:" in capsys.readouterr().out


def test_missing_bundle_is_named(tmp_path, capsys):
    assert main(["ask", "--checkpoint", str(tmp_path), "--image", "x.png", "--text", "hi"]) == 2
    assert "not a model bundle" in capsys.readouterr().err


def test_batch_equals_one_at_a_time(bundle_dir):
    """A typed and a spoken question in one batch give what each gives alone (greedy)."""
    import torch

    from moshivis.inference.ask import Question, ask_batch

    b = load_bundle(bundle_dir)
    embeds = b.model.encode_image(torch.rand(2, 3, 56, 56) * 2 - 1)
    cfg = AskConfig(max_answer_frames=12, end_pad_frames=3)
    qs = [Question(text="what colour is the shape"), Question(audio=np.zeros(12000, np.float32))]
    together = ask_batch(b.model, b.tokenizer, b.codec, embeds, qs, cfg)
    alone = [ask_batch(b.model, b.tokenizer, b.codec, embeds[i:i + 1], [q], cfg)[0] for i, q in enumerate(qs)]
    for x, y in zip(together, alone):
        assert x.answer == y.answer and [p for p, _ in x.pieces] == [p for p, _ in y.pieces]


def test_eval_run_resumes_and_scores(bundle_dir, tmp_path, capsys):
    """`moshivis eval run` on easy-vqa with both prompt kinds; a rerun answers nothing twice; the file
    scores with `eval score`."""
    out = tmp_path / "preds.jsonl"
    for prompts in ("text", "audio"):
        assert main(["eval", "run", "--benchmark", "easy-vqa", "--checkpoint", str(bundle_dir), "--limit", "3",
                     "--batch-size", "2", "--prompts", prompts, "--out", str(out)]) == 0
        assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["answered"] == 3
    assert main(["eval", "run", "--benchmark", "easy-vqa", "--checkpoint", str(bundle_dir), "--limit", "3",
                 "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["skipped"] == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["prompt"] for r in rows) == ["audio"] * 3 + ["text"] * 3
    assert main(["eval", "score", "--benchmark", "easy-vqa", "--predictions", str(out), "--json"]) == 0


def test_typed_answer_ends_at_the_first_padding_after_a_word(bundle_dir, monkeypatch):
    """Speechless turns pack their pieces with no padding inside, so a typed answer ends at the first PAD
    after a word (`typed_end_pad_frames`), not after `end_pad_frames` of them; spoken answers keep the long
    rule. The generator is scripted: answer pieces, one PAD, then more pieces (what a model says next)."""
    import torch

    from moshivis.inference import ask as ask_module

    b = load_bundle(bundle_dir)
    before, after = b.tokenizer.encode("shape")[0], b.tokenizer.encode("what")[0]
    assert before != after
    from moshivis.inference.generator import Generator

    class Scripted(Generator):  # the real generator; only the text it emits is replaced after the question
        def step(self, user, force_text=None, force_audio=None):
            out = super().step(user, force_text=force_text, force_audio=force_audio)
            if out is not None and force_text is not None and (force_text == -2).all():
                self.n = getattr(self, "n", 0) + 1
                out[:, 0, 0] = before if self.n < 3 else (3 if self.n == 3 else after)  # ..., PAD, after, ...
            return out
    monkeypatch.setattr(ask_module, "make_generator",
                        lambda model, sampling, xa_start=None, seed=None, cuda_graph=None:
                        Scripted(model, sampling, xa_start, seed))
    cfg = AskConfig(max_answer_frames=30, end_pad_frames=4, sampling=ask_module.SamplingConfig(0, 0, 0, 0))
    typed = ask(b.model, b.tokenizer, b.codec, None, question_text="what colour", cfg=cfg)
    pieces = [b.tokenizer.piece(before), b.tokenizer.piece(after)]
    assert [p for p, _ in typed.pieces] and all(p == pieces[0] for p, _ in typed.pieces)
    longer = ask(b.model, b.tokenizer, b.codec, None, question_text="what colour",
                 cfg=AskConfig(max_answer_frames=30, end_pad_frames=4, typed_end_pad_frames=4,
                               sampling=ask_module.SamplingConfig(0, 0, 0, 0)))
    assert pieces[1] in [p for p, _ in longer.pieces]


def test_default_question_voices_are_deterministic():
    """`eval run` and the demo speak questions with their default voices: the same question must give the
    same audio every time, or two identical runs answer differently (piper samples noise: it did)."""
    from moshivis.audio.tts import make_tts
    from moshivis.eval.run import RunConfig
    from moshivis.inference.ask import QUESTION_VOICE

    for spec in (*RunConfig().voices, QUESTION_VOICE):
        voice = make_tts(spec)
        a, b = voice.synthesize("what color is the shape?")[0], voice.synthesize("what color is the shape?")[0]
        assert a.shape == b.shape and np.array_equal(a, b), spec


def test_interrupted_eval_run_resumes_to_the_same_score(bundle_dir, tmp_path, capsys, monkeypatch):
    """A run stopped after two batches (and killed in the middle of writing a row) continues: the finished
    questions are not asked again, and predictions and score equal an uninterrupted run's."""
    from moshivis.eval import run as run_module

    args = ["eval", "run", "--benchmark", "easy-vqa", "--checkpoint", str(bundle_dir), "--limit", "6",
            "--batch-size", "2", "--prompts", "text"]
    whole = tmp_path / "whole.jsonl"
    assert main([*args, "--out", str(whole)]) == 0
    capsys.readouterr()

    real, asked = run_module.ask_batch, []

    def stop_after_two_batches(model, tokenizer, codec, embeds, questions, cfg):
        if len(asked) == 2:
            raise KeyboardInterrupt  # what Ctrl-C does between batches
        asked.append(len(questions))
        return real(model, tokenizer, codec, embeds, questions, cfg)

    part = tmp_path / "part.jsonl"
    monkeypatch.setattr(run_module, "ask_batch", stop_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        main([*args, "--out", str(part)])
    assert len(part.read_text().splitlines()) == 4
    with open(part, "a") as f:
        f.write('{"id": "test/4", "answer": "The sh')  # a kill in the middle of writing a row
    monkeypatch.setattr(run_module, "ask_batch", real)
    assert main([*args, "--out", str(part)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["answered"] == 2 and summary["skipped"] == 4

    def rows(p):
        return {r["id"]: r["answer"] for r in map(json.loads, p.read_text().splitlines())}
    assert rows(part) == rows(whole)
    scores = []
    for p in (whole, part):
        assert main(["eval", "score", "--benchmark", "easy-vqa", "--predictions", str(p), "--only-predicted",
                     "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out)["prompts"]["text"]["text_answer"])
    assert scores[0] == scores[1]


def test_a_bad_prediction_line_is_named(tmp_path):
    from moshivis.eval.run import read_rows

    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "1", "answer": "a", "prompt": "text"}\nnot json\n{"id": "2", "answer": "b", "prompt": "text"}\n')
    with pytest.raises(ValueError, match="p.jsonl:2: not a JSON prediction row"):
        read_rows(p, "text")
