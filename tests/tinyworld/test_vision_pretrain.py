"""SigLIP pre-training of the tiny world's vision tower: the loss, a short run, save/reload, and the
committed artefacts' zero-shot colour accuracy."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from moshivis.config import VisionConfig
from moshivis.models.vision import ImageEncoder, preprocess_images
from moshivis.tinyworld.easy_vqa_captions import (
    COLOR,
    UNK,
    VALUES,
    caption_labels,
    load_easy_vqa,
    make_caption,
    tokenize,
)
from moshivis.tinyworld.vision_pretrain import (
    CONFIG_FILE,
    DEFAULT_OUT,
    HEADS_FILE,
    TOWER_FILE,
    SiglipPair,
    TextConfig,
    encode,
    load_pair,
    load_pretrained_encoder,
    save_artefacts,
    siglip_loss,
    to_pixels,
    train_contrastive,
    zero_shot_color,
)

torch.set_num_threads(1)

ARTEFACTS = Path(__file__).resolve().parents[2] / DEFAULT_OUT
# A tower small enough that 30 steps on 64 images take a few seconds.
MINI = VisionConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, patch_size=8, image_size=64)
MINI_TEXT = TextConfig(dim=32, num_layers=1, num_heads=2)


@pytest.fixture(scope="module")
def mini_train():
    pytest.importorskip("easy_vqa", reason="the easy_vqa package (the data set) is not installed")
    return load_easy_vqa("train", limit=64)


def _log_sigmoid(z: float) -> float:
    return -math.log1p(math.exp(-z))


def test_siglip_loss_matches_hand_computation() -> None:
    img = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    txt = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [0.5, 0.5], [-0.3, 1.0]]), dim=-1)
    t_prime, b = torch.tensor(math.log(10.0)), torch.tensor(-2.0)
    total = 0.0
    for i in range(3):
        for j in range(3):
            dot = sum(img[i, k].item() * txt[j, k].item() for k in range(2))
            z = 1.0 if i == j else -1.0
            total += _log_sigmoid(z * (10.0 * dot + b.item()))
    expected = -total / 3
    got = siglip_loss(img, txt, t_prime, b)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # Labels 0 leave a pair out; explicit +-1 labels equal to the default give the same loss.
    labels = 2 * torch.eye(3) - 1
    assert siglip_loss(img, txt, t_prime, b, labels).item() == pytest.approx(expected, rel=1e-6)
    labels[0, 1] = 0
    left_out = -(total - _log_sigmoid(-(10.0 * float(img[0] @ txt[1]) + b.item()))) / 3
    assert siglip_loss(img, txt, t_prime, b, labels).item() == pytest.approx(left_out, rel=1e-5)


def test_captions_are_true_of_their_image_and_in_vocabulary() -> None:
    rng = random.Random(0)
    attrs = torch.tensor([[0, 2, 0, 0, 0], [2, -1, 1, 1, 1], [5, 1, 2, 2, 2], [-1, 0, 1, 0, 2]])
    caps = [make_caption(a.tolist(), rng) for a in attrs for _ in range(50)]
    assert (tokenize([c.text for c in caps]) != UNK).all()
    mentions = torch.tensor([c.mention for c in caps])
    labels = caption_labels(attrs.repeat_interleave(50, 0), mentions)
    assert (labels.diagonal() == 1).all()
    full = make_caption([0, 2, 0, 0, 0], rng, full=True)
    assert full.text == "a small red triangle in the top left corner"
    # "a red shape" vs a blue image: false; vs an image of unknown colour: undecidable.
    red = torch.tensor([[0, -1, -1, -1, -1]])
    assert caption_labels(torch.tensor([[2, 0, 1, 1, 1], [-1, 0, 1, 1, 1]]), red).flatten().tolist() == [-1, 0]


def test_short_run_decreases_loss(mini_train) -> None:
    torch.manual_seed(0)
    model = SiglipPair(MINI, MINI_TEXT, embed_dim=32)
    hist = train_contrastive(model, mini_train, steps=30, batch_size=32, lr=3e-3, warmup=3, progress=False)
    losses = hist["losses"]
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_saved_tower_reloads_strictly_with_identical_outputs(mini_train, tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = SiglipPair(MINI, MINI_TEXT, embed_dim=32)
    train_contrastive(model, mini_train, steps=2, batch_size=16, progress=False)
    sizes = save_artefacts(model, tmp_path)
    assert set(sizes) == {TOWER_FILE, CONFIG_FILE, HEADS_FILE}
    enc = load_pretrained_encoder(tmp_path, lm_dim=48)  # strict load inside
    assert isinstance(enc, ImageEncoder) and enc.cfg == MINI and enc.lm_dim == 48
    # The loader's ImageEncoder goes through MoshiVis's own preprocessing of uint8 images.
    pixels = preprocess_images(list(mini_train.images[:4]), MINI.image_size)
    assert torch.equal(pixels, to_pixels(mini_train.images[:4], MINI.image_size))
    with torch.no_grad():
        assert torch.equal(enc.encode_tower(pixels), model.tokens(pixels))
        assert enc(pixels).shape == (4, MINI.num_tokens, 48)
    # A strict load means a tower of another shape is refused.
    other = ImageEncoder(VisionConfig(48, 64, 1, 2, 8, 64), lm_dim=48)
    from safetensors.torch import load_file

    with pytest.raises(RuntimeError):
        other.tower.load_state_dict(load_file(str(tmp_path / TOWER_FILE)), strict=True)
    pair = load_pair(tmp_path)
    with torch.no_grad():
        assert torch.equal(pair.embed_images(pixels), model.embed_images(pixels))


def test_artefacts_zero_shot_colour() -> None:
    if not (ARTEFACTS / TOWER_FILE).exists() or not (ARTEFACTS / HEADS_FILE).exists():
        pytest.skip(f"no pre-trained tower in {ARTEFACTS}: build it with "
                    "`python -m moshivis.tinyworld.vision_pretrain --out tinyworld/vision`")
    pytest.importorskip("easy_vqa", reason="the easy_vqa package (the data set) is not installed")
    test = load_easy_vqa("test", limit=200)
    model = load_pair(ARTEFACTS)
    _, emb = encode(model, test)
    result = zero_shot_color(model, emb, test)
    assert result["n"] >= 150 and (test.attrs[:, COLOR] >= 0).sum() == result["n"]
    assert result["accuracy"] >= 0.90, f"zero-shot colour {result} over {len(VALUES['color'])} colours"
