"""`model.centroid_codec`: the trainer attaches the codec's centroid input, trains its projection in `full`
mode, saves it, continues from it, resumes exactly, and names a codec whose centroids differ."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from colors import make_colour_shards
from safetensors.torch import save_file

from moshivis.audio.tiny.codec import WEIGHTS_FILE, read_semantic_centroids
from moshivis.models.loaders import load_model
from moshivis.train.config import load_config
from moshivis.train.distributed import DistInfo
from moshivis.train.trainer import Trainer

SINGLE = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def fake_codec(folder: Path, seed: int = 0, k: int = 16, width: int = 384, key: str = "semantic.centroids") -> Path:
    """A codec folder holding only what the centroid input reads: codebook 0's centroids [k, width]."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file({key: torch.randn(k, width, generator=torch.Generator().manual_seed(seed)).half()},
              str(folder / WEIGHTS_FILE))
    return folder


def config(tmp_path: Path, shards: str, **over):
    base = [f"data.shards=[{shards}]", f"out_dir={tmp_path / 'run'}", "steps=3", "batch_size=4", "mode=full",
            "optim.lr=1e-2", "optim.warmup_steps=1", "data.max_frames=12", "tensorboard=false",
            "save_every=1000", "data.p_audio=0.5", f"data.image_cache={tmp_path / 'cache'}"]
    return load_config(None, base + [f"{k}={v}" for k, v in over.items()])


def test_full_mode_trains_the_projection_and_a_continuation_loads_it(tmp_path: Path) -> None:
    shards = make_colour_shards(tmp_path, n=8)
    codec = fake_codec(tmp_path / "codec")
    trainer = Trainer(config(tmp_path / "a", shards, **{"model.centroid_codec": str(codec)}), SINGLE)
    lm = trainer.model.lm
    assert lm.centroid_input is not None and not lm.centroid_input.proj.weight.any()
    centroids = lm.centroid_input.centroids.clone()
    trainer.run(show_progress=False)
    assert lm.centroid_input.proj.weight.abs().sum() > 0  # it learned
    assert torch.equal(lm.centroid_input.centroids, centroids)  # a buffer: never trained
    saved = tmp_path / "a" / "run" / "checkpoints" / "step_000003" / "model.safetensors"
    model = load_model(saved)
    assert model.cfg.lm.centroid_codes == 16 and model.cfg.lm.centroid_dim == 384
    torch.testing.assert_close(model.lm.centroid_input.proj.weight, lm.centroid_input.proj.weight)

    # Continuing from it with the same codec keeps the trained projection; another codec is named.
    again = Trainer(config(tmp_path / "b", shards, **{"model.checkpoint": str(saved),
                                                       "model.centroid_codec": str(codec)}), SINGLE)
    torch.testing.assert_close(again.model.lm.centroid_input.proj.weight, lm.centroid_input.proj.weight)
    other = fake_codec(tmp_path / "other", seed=5)
    with pytest.raises(ValueError, match="model.centroid_codec=.*other centroids"):
        Trainer(config(tmp_path / "c", shards, **{"model.checkpoint": str(saved),
                                                   "model.centroid_codec": str(other)}), SINGLE)


def test_resume_with_a_centroid_input_is_exact(tmp_path: Path) -> None:
    shards = make_colour_shards(tmp_path, n=8)
    codec = str(fake_codec(tmp_path / "codec"))
    over = {"model.centroid_codec": codec, "steps": 4, "save_every": 2}
    full = Trainer(config(tmp_path / "a", shards, **over), SINGLE).run(show_progress=False)
    Trainer(config(tmp_path / "b", shards, **over), SINGLE).run(show_progress=False, stop_at=2)
    rest = Trainer(config(tmp_path / "b", shards, **over), SINGLE).run(resume=True, show_progress=False)
    assert [m.loss for m in rest] == [m.loss for m in full[2:]]


def test_bad_codec_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere: not a tiny codec folder \(no tiny_codec.safetensors"):
        read_semantic_centroids(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no key semantic.centroids"):
        read_semantic_centroids(fake_codec(tmp_path / "a", key="acoustic.mean"))
    with pytest.raises(ValueError, match=r"shape \(16, 10\), expected \[K, 384\]"):
        read_semantic_centroids(fake_codec(tmp_path / "b", width=10))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / WEIGHTS_FILE).write_bytes(b"\x10\x00\x00\x00truncated")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        read_semantic_centroids(tmp_path / "c")
