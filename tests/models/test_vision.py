"""Image preprocessing + SigLIP tower + projection against the `kyuteye_tiny` golden fixture."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from moshivis.config import moshika_vis_7b, tiny
from moshivis.models.vision import ImageEncoder, decode_image_bytes, preprocess_images
from testkit import FIXTURE_DIR

FIXTURE = FIXTURE_DIR

# Prefixes of the image side in the released checkpoint layout (see the fixture README).
TOWER_PREFIX = "image_prefix.enc.model."
PROJ_PREFIX = "image_prefix.proj_xa."
NORM_KEY = "image_prefix.norm_xa.alpha"


def _load(name: str) -> dict[str, torch.Tensor]:
    if not (FIXTURE / name).exists():
        pytest.skip(f"golden fixture not found: {FIXTURE / name}")
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / name))


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    return _load("inputs.safetensors")


@pytest.fixture(scope="module")
def outputs() -> dict[str, torch.Tensor]:
    return _load("outputs.safetensors")


@pytest.fixture(scope="module")
def encoder() -> ImageEncoder:
    """The tiny encoder with the fixture's weights, loaded strictly."""
    weights = _load("model.safetensors")
    torch.manual_seed(0)
    enc = ImageEncoder(tiny().vision, lm_dim=64).eval()
    tower = {k[len(TOWER_PREFIX):]: v for k, v in weights.items() if k.startswith(TOWER_PREFIX)}
    proj = {k[len(PROJ_PREFIX):]: v for k, v in weights.items() if k.startswith(PROJ_PREFIX)}
    enc.tower.load_state_dict(tower, strict=True)
    enc.proj.load_state_dict(proj, strict=True)
    enc.norm.load_state_dict({"alpha": weights[NORM_KEY]}, strict=True)
    return enc


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# ------------------------------------------------------------------------------------ preprocessing


def test_preprocess_matches_fixture(inputs: dict[str, torch.Tensor]) -> None:
    pixels = preprocess_images(inputs["image_uint8"], 56)
    assert pixels.shape == (1, 3, 56, 56) and pixels.dtype == torch.float32
    # Measured: 0 (the image is already 56x56, so the resize is skipped).
    assert _max_abs(pixels, inputs["pixels"]) <= 1e-6


def test_preprocess_accepts_all_input_kinds(inputs: dict[str, torch.Tensor], tmp_path: Path) -> None:
    hwc = inputs["image_uint8"]
    path = tmp_path / "img.png"
    Image.fromarray(hwc.numpy()).save(path)
    batch = preprocess_images([hwc, hwc.numpy(), Image.fromarray(hwc.numpy()), path, str(path)], 56)
    assert batch.shape == (5, 3, 56, 56)
    for i in range(1, 5):
        assert torch.equal(batch[i], batch[0])


def test_resize_matches_torchvision(inputs: dict[str, torch.Tensor]) -> None:
    """A 96x72 image resized to 56x56 (aspect ratio not kept) vs the official torchvision output.

    Measured with torch 2.13 CPU (fixture from torch 2.14.1 / torchvision 0.29.1): the uint8 result is identical
    (0 levels); normalised pixels differ by max 1.19e-7, mean 3.3e-8 (float32 rounding of /255 and -0.5/0.5),
    because `preprocess_images` runs torch's native uint8 bicubic-AA kernel, the same one
    torchvision uses. (A float resize + one final round/clamp differs by up to 14 uint8 levels, mean 0.28, on
    1832 of 9408 values: the uint8 kernel clamps between its horizontal and vertical passes.)
    The bound below allows 2 uint8 levels in case the kernel changes between torch versions.
    """
    pixels = preprocess_images(inputs["resize_src_uint8"], 56)
    ref = inputs["resize_pixels"]
    diff = (pixels - ref).abs()
    print(f"resize: max |Δ| = {diff.max().item():.3g} ({diff.max().item() * 127.5:.2f} uint8 levels), "
          f"mean |Δ| = {diff.mean().item():.3g}")
    assert diff.max().item() <= 2 / 255 * 2 + 1e-6
    assert diff.mean().item() <= 0.1 / 255 * 2  # less than 0.1 uint8 level on average


def test_resize_identity_at_target_size() -> None:
    torch.manual_seed(0)
    img = torch.randint(0, 256, (56, 56, 3), dtype=torch.uint8)
    pixels = preprocess_images(img, 56)
    expected = (img.permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    assert torch.equal(pixels[0], expected)


# ------------------------------------------------------------------------------------------ encoder


def test_state_dict_layout() -> None:
    """transformers 5.x: no `vision_model.` prefix, so the checkpoint prefix maps 1:1 onto `tower`."""
    keys = set(ImageEncoder(tiny().vision, lm_dim=64).tower.state_dict())
    assert "embeddings.patch_embedding.weight" in keys
    assert "encoder.layers.0.self_attn.q_proj.weight" in keys
    assert "post_layernorm.weight" in keys
    assert not any(k.startswith("vision_model.") or k.startswith("head.") for k in keys)


@torch.no_grad()
def test_tower_and_projection_match_fixture(encoder: ImageEncoder, inputs: dict[str, torch.Tensor],
                                            outputs: dict[str, torch.Tensor]) -> None:
    pixels = inputs["pixels"]
    hidden = encoder.encode_tower(pixels)
    assert hidden.shape == (1, 16, 32)
    d_hidden = _max_abs(hidden, outputs["siglip_last_hidden_state"])
    embeds = encoder(pixels)
    assert embeds.shape == (1, 16, 64)
    d_embeds = _max_abs(embeds, outputs["image_embeds"])
    # Measured (torch 2.13 CPU, transformers 5.24, sdpa): 0 for both, bit-identical to the fixture.
    print(f"siglip max |Δ| = {d_hidden:.3g}, image_embeds max |Δ| = {d_embeds:.3g}")
    assert d_hidden <= 1e-4
    assert d_embeds <= 1e-4


@torch.no_grad()
def test_position_embedding_interpolation(encoder: ImageEncoder) -> None:
    """A 112x112 image gives an 8x8 grid = 64 tokens from the 4x4 learned position grid."""
    torch.manual_seed(0)
    img = torch.randint(0, 256, (112, 112, 3), dtype=torch.uint8)
    hidden = encoder.encode_tower(preprocess_images(img, 112))
    assert hidden.shape == (1, 64, 32)
    assert torch.isfinite(hidden).all()
    assert encoder(preprocess_images(img, 112)).shape == (1, 64, 64)


def test_parameter_groups() -> None:
    enc = ImageEncoder(tiny().vision, lm_dim=64)
    tower = {id(p) for p in enc.tower_parameters()}
    proj = {id(p) for _, p in enc.projection_parameters()}
    assert not tower & proj
    assert tower | proj == {id(p) for p in enc.parameters()}
    assert sum(p.numel() for _, p in enc.projection_parameters()) == 32 * 64 + 64 + 64


def test_meta_build_7b() -> None:
    """The released size builds on the meta device (no memory, no download); SigLIP So400m ~413M params."""
    with torch.device("meta"):
        enc = ImageEncoder(moshika_vis_7b().vision, 4096)
    n_tower = sum(p.numel() for p in enc.tower_parameters())
    n_proj = sum(p.numel() for _, p in enc.projection_parameters())
    print(f"SigLIP-448 tower: {n_tower} params; projection + norm: {n_proj}")
    assert all(p.is_meta for p in enc.parameters())
    assert 400_000_000 <= n_tower <= 430_000_000
    assert n_proj == 1152 * 4096 + 4096 + 4096


def test_meta_then_materialise_tiny(encoder: ImageEncoder, inputs: dict[str, torch.Tensor]) -> None:
    """Materialising from meta leaves the non-persistent `position_ids` buffer uninitialised:
    `reset_buffers` restores it (checked at the tiny size; the 7B tower is too big for a unit test)."""
    with torch.device("meta"):
        enc = ImageEncoder(tiny().vision, lm_dim=64)
    enc = enc.to_empty(device="cpu").eval()
    enc.reset_buffers()
    enc.load_state_dict(encoder.state_dict(), strict=True)
    assert torch.equal(enc.tower.embeddings.position_ids, torch.arange(16)[None])
    with torch.no_grad():
        assert torch.equal(enc(inputs["pixels"]), encoder(inputs["pixels"]))


# --------------------------------------------------------------------------------------- bad inputs


def test_corrupt_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(ValueError, match="broken.jpg"):
        preprocess_images(path, 56)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope.png"):
        preprocess_images(tmp_path / "nope.png", 56)


def test_wrong_channels_names_shape() -> None:
    with pytest.raises(ValueError, match=r"\(8, 8, 2\)"):
        preprocess_images(np.zeros((8, 8, 2), dtype=np.uint8), 56)
    with pytest.raises(ValueError, match=r"\(3, 8, 8\)"):  # CHW is refused, not guessed
        preprocess_images(torch.zeros(3, 8, 8, dtype=torch.uint8), 56)


def test_empty_and_wrong_dtype() -> None:
    with pytest.raises(ValueError, match="empty"):
        preprocess_images(np.zeros((0, 8, 3), dtype=np.uint8), 56)
    with pytest.raises(ValueError, match="no images"):
        preprocess_images([], 56)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_images(np.zeros((8, 8, 3), dtype=np.float32), 56)


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 4x4 PNG whose IHDR is patched to claim width x height (CRC recomputed)."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"  # 8-byte signature, 4-byte length, then the chunk type
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_decode_refuses_bombs() -> None:
    # 1e10 pixels: above PIL's own hard limit, which fires while reading the header.
    with pytest.raises(ValueError, match="10000000000"):
        decode_image_bytes(_png_claiming(100_000, 100_000))
    # 64M pixels: under PIL's limit, refused by ours before any pixel is decoded.
    with pytest.raises(ValueError, match="8000x8000"):
        decode_image_bytes(_png_claiming(8000, 8000))


def test_decode_garbage_and_valid() -> None:
    with pytest.raises(ValueError, match="not a recognised image"):
        decode_image_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="empty"):
        decode_image_bytes(b"")
    buf = io.BytesIO()
    Image.new("L", (5, 3), color=7).save(buf, format="PNG")
    img = decode_image_bytes(buf.getvalue())
    assert img.mode == "RGB" and img.size == (5, 3)
