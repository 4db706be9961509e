"""The trainer on CPU: adapters learn an image task with the base frozen bit for bit; exact resume;
bad configs fail before any work."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from colors import ANSWER_FRAMES, make_colour_shards
from moshivis.data.mixture import MixtureDataset, collate
from moshivis.models.loaders import read_safetensors
from moshivis.train.config import load_config
from moshivis.train.distributed import DistInfo
from moshivis.train.images import ImageFeatureStore
from moshivis.train.trainer import Trainer

SINGLE = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def config(tmp_path, shards, **over):
    base = [f"data.shards=[{shards}]", f"out_dir={tmp_path / 'run'}", "steps=100", "batch_size=8",
            "optim.lr=3e-2", "optim.warmup_steps=5", "data.max_frames=12", "tensorboard=false",
            "save_every=1000", "data.p_audio=0.5", f"data.image_cache={tmp_path / 'cache'}"]
    return load_config(None, base + [f"{k}={v}" for k, v in over.items()])


def run_recording_inputs(trainer: Trainer) -> tuple[list, list[tuple[torch.Tensor, torch.Tensor | None]]]:
    """Run `trainer` (no progress bar) with a spy on its forward: (history, [(codes, inputs)] per micro-batch),
    the batch's codes and what the transformer was given instead (None: the codes themselves)."""
    seen: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    forward = trainer.wrapped.forward

    def spy(codes, mask, feats, present, inputs=None):
        seen.append((codes, inputs))
        return forward(codes, mask, feats, present, inputs)

    trainer.wrapped.forward = spy
    return trainer.run(show_progress=False), seen


def answer_loss(model, batch, store, with_image: bool) -> tuple[float, float]:
    """Mean text CE and argmax accuracy on the first answer frame: the only one that needs the image (the
    later answer frames can copy the previous text token)."""
    feats, present = store.batch(batch["images"])
    image = model.image_context(model.vision.project(feats)) if with_image else None
    with torch.no_grad():
        out = model(batch["codes"], image=image, image_mask=present if with_image else None)
    lg = out.text_logits[:, 0, ANSWER_FRAMES[0]]
    tgt = batch["codes"][:, 0, ANSWER_FRAMES[0]]
    ce = torch.nn.functional.cross_entropy(lg.reshape(-1, lg.shape[-1]), tgt.reshape(-1)).item()
    return ce, (lg.argmax(-1) == tgt).float().mean().item()


def test_adapters_learn_the_image_and_the_base_stays_frozen(tmp_path):
    """A base pre-trained in `full` mode without images learns the answer prior (loss ~ ln 4, it cannot
    see the colour); adapters trained on top of it, base frozen, bring the loss far below that."""
    shards = make_colour_shards(tmp_path, n=64, audio_only=64)
    pre = config(tmp_path / "base", shards, mode="full", steps=120, **{"data.image_samples": 0, "optim.lr": 3e-3,
                                                                     "data.audio_only": 1})
    Trainer(pre, SINGLE).run(show_progress=False)
    base_ckpt = tmp_path / "base" / "run" / "checkpoints" / "step_000120" / "model.safetensors"
    trainer = Trainer(config(tmp_path, shards, **{"model.checkpoint": base_ckpt}), SINGLE)
    base_before = {k: v.clone() for k, v in trainer.model.state_dict().items() if k.startswith(("lm.", "vision.tower"))}
    # Image-speech samples look like the base's training data (speechless ones have no audio at all).
    eval_ds = MixtureDataset(shards, {"image_speech": 1}, seed=123, load_images=False)
    batch = collate(list(itertools.islice(iter(eval_ds), 32)), max_frames=12)
    assert set(batch["kinds"]) == {"image_speech"}
    store = ImageFeatureStore(trainer.model, cache_dir=tmp_path / "cache")
    blind_before, _ = answer_loss(trainer.model, batch, store, with_image=False)
    history = trainer.run(show_progress=False)
    after, acc = answer_loss(trainer.model, batch, store, with_image=True)
    blind_after, blind_acc = answer_loss(trainer.model, batch, store, with_image=False)
    # The frozen base cannot see the image: it only knows the prior over the 4 colours.
    assert blind_after == pytest.approx(blind_before, abs=1e-6)
    assert abs(blind_before - math.log(4)) < 0.3 and blind_acc < 0.5
    assert acc == 1.0 and after < 0.4 * blind_before, (acc, after, blind_before)
    for k, v in trainer.model.state_dict().items():
        if k in base_before:
            assert torch.equal(v, base_before[k]), k
    assert history[-1].loss < history[0].loss
    assert set(history[-1].loss_by_kind) <= {"image_speech", "speechless"}
    assert store.hits > 0  # features cached by the trainer were reused
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 100 and json.loads(lines[-1])["step"] == 100
    assert (tmp_path / "run" / "checkpoints" / "step_000100" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "loss.png").stat().st_size > 1000
    # Gate statistics: the gates opened on image frames during training (they start at 0.018).
    assert history[-1].gate_related is not None and history[-1].gate_related > 0.05


def test_resume_in_process_is_exact(tmp_path):
    shards = make_colour_shards(tmp_path, n=32)
    full = Trainer(config(tmp_path / "a", shards, steps=10, save_every=4), SINGLE).run(show_progress=False)
    first = Trainer(config(tmp_path / "b", shards, steps=10, save_every=4), SINGLE)
    first.run(show_progress=False, stop_at=6)  # saves at 4 and 6; resume from the latest (6)
    cfg = config(tmp_path / "b", shards, steps=10, save_every=4)
    resumed = Trainer(cfg, SINGLE)
    rest = resumed.run(resume=True, show_progress=False)
    assert [m.step for m in rest] == [7, 8, 9, 10]
    assert [m.loss for m in rest] == [m.loss for m in full[6:]]


@pytest.mark.parametrize("override, message", [
    ({"stepz": 3}, "unknown config key"),
    ({"batch_size": 6, "grad_accum": 4}, "not divisible"),
    ({"data.p_audio": 1.5}, "data.p_audio"),
])
def test_bad_config_fails_before_work(tmp_path, override, message):
    shards = make_colour_shards(tmp_path, n=8)
    with pytest.raises(ValueError, match=message):
        Trainer(config(tmp_path, shards, **override), SINGLE)


def test_missing_data_is_named(tmp_path):
    with pytest.raises(ValueError, match="no manifest.json"):
        Trainer(config(tmp_path, tmp_path / "nothing"), SINGLE)


def test_non_finite_loss_stops_with_step_and_batch(tmp_path):
    from moshivis.train.trainer import NonFiniteLoss

    shards = make_colour_shards(tmp_path, n=16)
    trainer = Trainer(config(tmp_path, shards, steps=3), SINGLE)
    with torch.no_grad():
        trainer.model.adapters.xa.out_proj.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss, match=r"at step 1, micro-batch 0, samples \['s"):
        trainer.run(show_progress=False)


def test_resume_refuses_another_architecture(tmp_path):
    from moshivis.models.loaders import CheckpointError

    shards = make_colour_shards(tmp_path, n=16)
    Trainer(config(tmp_path, shards, steps=2), SINGLE).run(show_progress=False)
    other = Trainer(config(tmp_path, shards, steps=4, **{"model.adapters": "{shared_xa: false}"}), SINGLE)
    with pytest.raises(CheckpointError, match=r"another architecture.*missing \['adapters.xa.0.in_proj.weight'"):
        other.run(resume=True, show_progress=False)


def test_tokens_outside_the_model_are_named(tmp_path):
    shards = make_colour_shards(tmp_path, n=8)
    cfg = config(tmp_path, shards, steps=1)
    cfg.model.adapters = {}
    trainer = Trainer(cfg, SINGLE)
    trainer.model.cfg.lm.text_card = 12  # pretend the data was made with a bigger tokenizer
    with pytest.raises(ValueError, match=r"sample s\d+: text token ids .* outside the model's range \[-1, 11\]"):
        trainer.run(show_progress=False)


def test_lora_mode_trains_low_rank_updates_only(tmp_path):
    shards = make_colour_shards(tmp_path, n=16)
    trainer = Trainer(config(tmp_path, shards, mode="lora", steps=3, **{"model.lora_rank": 2}), SINGLE)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.run(show_progress=False)
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("lm.", "vision.tower")))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("lora."))
    saved = read_safetensors(tmp_path / "run" / "checkpoints" / "step_000003" / "model.safetensors")[0]
    assert any(k.startswith("lora.") for k in saved) and not any(k.startswith("lm.") for k in saved)


@pytest.mark.parametrize("pad", [True, False])
def test_pad_to_max_off_trims_batches_to_the_longest_sample(tmp_path, pad):
    shards = make_colour_shards(tmp_path, n=8)
    trainer = Trainer(config(tmp_path, shards, **{"data.max_frames": 40, "data.pad_to_max": pad}), SINGLE)
    batch = next(iter(trainer.loader))
    longest = int(batch["lengths"].max())
    assert longest < 40
    assert batch["codes"].shape[-1] == (40 if pad else longest)


def test_drop_images_trains_blind_on_image_samples(tmp_path, monkeypatch):
    """data.drop_images: image samples are trained on without their image (the frozen tower is never
    asked for features, no cross-attention runs)."""
    shards = make_colour_shards(tmp_path, n=8)
    trainer = Trainer(config(tmp_path, shards, mode="full", steps=2, **{"data.drop_images": True}), SINGLE)

    def refuse(images):
        raise AssertionError("image features requested with drop_images")
    monkeypatch.setattr(trainer.images, "batch", refuse)
    history = trainer.run(show_progress=False)
    assert len(history) == 2 and history[-1].gate_related is None


def test_adapters_mode_survives_a_batch_with_no_image(tmp_path):
    """Only image-free samples in adapters mode: the forward reaches no trainable parameter (length buckets
    made such a batch in the p_audio 0 ablation). The step goes on, and the adapters still get a gradient,
    exactly zero, so that under DDP every rank back-propagates the same parameters."""
    shards = make_colour_shards(tmp_path, n=8, audio_only=16)
    cfg = config(tmp_path, shards, steps=2, **{"data.image_samples": 0, "data.audio_only": 1})
    trainer = Trainer(cfg, SINGLE)
    history = trainer.run(show_progress=False)
    assert len(history) == 2 and all(math.isfinite(h.loss) for h in history)
    codes = torch.zeros(2, 17, 12, dtype=torch.long)  # token 0: a valid id in every stream
    mask = torch.ones(2, 17, 12, dtype=torch.bool)
    res, gates = trainer.step_module(codes, mask, None, torch.zeros(2, dtype=torch.bool))
    assert gates is None
    res.total(trainer.weights).backward()
    grads = [p.grad for _, p in trainer.model.adapter_parameters()]
    assert grads and all(g is not None and not g.any() for g in grads)


@pytest.mark.parametrize("audio_weight", [0.0, 0.25])
def test_audio_weight_scales_the_audio_part_of_the_loss(tmp_path, audio_weight):
    """`optim.audio_weight` multiplies the audio part (Moshi's codebooks) of the loss; the text part is
    untouched, and the total is their sum."""
    shards = make_colour_shards(tmp_path, n=8, audio_only=8)
    full = Trainer(config(tmp_path / "a", shards, steps=1), SINGLE).run(show_progress=False)[0]
    cut = Trainer(config(tmp_path / "b", shards, steps=1, **{"optim.audio_weight": audio_weight}),
                  SINGLE).run(show_progress=False)[0]
    assert full.audio_loss > 0
    assert cut.text_loss == pytest.approx(full.text_loss, rel=1e-5)
    assert cut.audio_loss == pytest.approx(audio_weight * full.audio_loss, rel=1e-5, abs=1e-7)
    assert cut.loss == pytest.approx(cut.text_loss + cut.audio_loss, rel=1e-5)
