"""Image side of MoshiVis: preprocessing, the frozen SigLIP tower and the adapter projection.

Pipeline (REFERENCE.md §2): uint8 RGB image -> square bicubic resize (aspect ratio not kept) -> /255 ->
(x - 0.5) / 0.5 -> SigLIP vision tower (last hidden state after `post_layernorm`, no pooling head)
-> `proj` Linear(hidden -> lm_dim, bias) -> `norm` RMSNorm (variance form, eps 1e-5, input dtype).
The result [B, N, lm_dim] is the cross-attention source of every adapted LM layer.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import nn
from transformers import SiglipVisionConfig, SiglipVisionModel

from ..config import VisionConfig
from ..modules.norms import RMSNorm

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor, str, Path]
"""One image: a PIL image, an HxWx3 uint8 array/tensor, or the path of an image file."""

# SigLIP (PaliGemma) normalisation: per-channel mean 0.5 and std 0.5, i.e. pixels end up in [-1, 1].
_MEAN = 0.5
_STD = 0.5

DEFAULT_MAX_PIXELS = 50_000_000


# ------------------------------------------------------------------------------------------ decoding


def decode_image_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *,
                       source: str = "image bytes") -> Image.Image:
    """Decode an encoded image (PNG, JPEG, ...) into an RGB PIL image, refusing decompression bombs.

    The size is read from the header (`Image.open` is lazy) and checked against `max_pixels` BEFORE the
    pixel data is decoded, so a tiny file that claims a huge canvas costs nothing.
    `source` only names the data in error messages (e.g. a file path).
    Raises ValueError (one line) for corrupt/unsupported data or an image over `max_pixels`.
    """
    if not data:
        raise ValueError(f"{source}: empty data, not an image")
    try:
        # Only the header is parsed here. PIL's own process-wide guard (`Image.MAX_IMAGE_PIXELS`) is left
        # alone (no global state): it may warn, or refuse on its own above twice its limit.
        img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width * height > max_pixels:
            raise ValueError(f"{source}: image of {width}x{height} = {width * height} pixels exceeds the "
                             f"limit of {max_pixels} pixels (possible decompression bomb)")
        if width == 0 or height == 0:
            raise ValueError(f"{source}: empty image ({width}x{height})")
        img.load()  # the actual decode: truncated/corrupt pixel data fails here
    except Image.DecompressionBombError as e:
        # PIL's own hard limit fired while reading the header (its message names the pixel count).
        raise ValueError(f"{source}: image too large to decode ({_one_line(e)})") from None
    except UnidentifiedImageError:
        raise ValueError(f"{source}: not a recognised image file (corrupt or unsupported format)") from None
    except (OSError, SyntaxError, EOFError) as e:
        # PIL reports truncated/corrupt streams with these (SyntaxError for some broken headers).
        raise ValueError(f"{source}: corrupt image data ({_one_line(e)})") from None
    return img.convert("RGB")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _load_image_file(path: Path, max_pixels: int) -> Image.Image:
    """Read and decode an image file; every failure is a ValueError naming the path."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read image file ({_one_line(e)})") from None
    return decode_image_bytes(data, max_pixels, source=str(path))


# ------------------------------------------------------------------------------------- preprocessing


def _to_chw_uint8(image: ImageLike, index: int, max_pixels: int) -> torch.Tensor:
    """One image -> [3, H, W] uint8 CPU tensor, validating type, dtype, channels and size."""
    where = f"image {index}"
    if isinstance(image, (str, Path)):
        image = _load_image_file(Path(image), max_pixels)
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"{where}: empty image ({image.width}x{image.height})")
        # convert("RGB") handles L/P/RGBA/CMYK...; the alpha channel (if any) is dropped, not composited.
        hwc = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())
    elif isinstance(image, np.ndarray):
        _check_array(image.shape, str(image.dtype), image.dtype == np.uint8, where)
        hwc = torch.from_numpy(np.ascontiguousarray(image))
    elif isinstance(image, torch.Tensor):
        _check_array(tuple(image.shape), str(image.dtype), image.dtype == torch.uint8, where)
        hwc = image.detach().to("cpu")
    else:
        raise TypeError(f"{where}: unsupported type {type(image).__name__} (expected a PIL image, an HxWx3 "
                        "uint8 numpy array or torch tensor, or a file path)")
    return hwc.permute(2, 0, 1).contiguous()


def _check_array(shape: Sequence[int], dtype: str, is_uint8: bool, where: str) -> None:
    """Arrays must be HxWx3 uint8 RGB: anything else is ambiguous (CHW? float in [0,1] or [0,255]?)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"{where}: expected an HxWx3 RGB array, got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{where}: empty image, shape {shape}")
    if not is_uint8:
        raise ValueError(f"{where}: expected dtype uint8, got {dtype} (shape {shape})")


def resize_square_uint8(chw: torch.Tensor, image_size: int) -> torch.Tensor:
    """[3, H, W] uint8 -> [3, S, S] uint8: bicubic with antialias, aspect ratio NOT kept.

    torch's native uint8 bicubic-AA kernel is used on purpose: it is what torchvision's uint8 resize
    (the official preprocessing) runs, and it matches it bit for bit. Its separable passes round and
    clamp to uint8 between the horizontal and vertical pass, so a float resize followed by one final
    round differs by up to ~14 levels near sharp edges (bicubic overshoot).
    An image already S x S is returned unchanged (the resize would be the identity anyway).
    """
    if chw.shape[-2:] == (image_size, image_size):
        return chw
    out = torch.nn.functional.interpolate(chw[None], size=(image_size, image_size), mode="bicubic",
                                          antialias=True, align_corners=False)
    return out[0]


def preprocess_images(images: ImageLike | Sequence[ImageLike], image_size: int,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Images -> normalised pixels [B, 3, S, S] float32 on CPU, S = `image_size`, values in [-1, 1].

    `images` is one image or a list of them (PIL, HxWx3 uint8 numpy/torch, or file path; files are
    opened with PIL and converted to RGB, with the decompression-bomb guard of `decode_image_bytes`).
    Raises ValueError naming the problem (corrupt file and its path, wrong shape, empty image).
    """
    if image_size <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if isinstance(images, (Image.Image, np.ndarray, torch.Tensor, str, Path)):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("preprocess_images: no images given")
    chws = [resize_square_uint8(_to_chw_uint8(im, i, max_pixels), image_size) for i, im in enumerate(images)]
    x = torch.stack(chws).to(torch.float32) / 255.0
    return (x - _MEAN) / _STD


# --------------------------------------------------------------------------------------------- encoder


def siglip_config(cfg: VisionConfig, attn_implementation: str = "sdpa") -> SiglipVisionConfig:
    """The `transformers` config of the tower described by `cfg` (no pooling head: MoshiVis uses all tokens)."""
    return SiglipVisionConfig(
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_channels=3,
        patch_size=cfg.patch_size,
        image_size=cfg.image_size,
        hidden_act=cfg.hidden_act,
        layer_norm_eps=cfg.layer_norm_eps,
        attention_dropout=0.0,
        vision_use_head=False,
        attn_implementation=attn_implementation,
    )


class ImageEncoder(nn.Module):
    """SigLIP vision tower (frozen) + `proj` Linear(hidden -> lm_dim) + `norm` RMSNorm (adapter params).

    The tower is randomly initialised here (nothing is downloaded); weights come from a checkpoint.
    Its state_dict keys (transformers 5.x) are `embeddings.*`, `encoder.layers.*`, `post_layernorm.*`,
    i.e. the released checkpoint's `image_prefix.enc.model.*` with that prefix stripped.
    Can be built under `torch.device("meta")`; then call `reset_buffers()` after `to_empty`.
    """

    def __init__(self, cfg: VisionConfig, lm_dim: int, attn_implementation: str = "sdpa") -> None:
        super().__init__()
        self.cfg = cfg
        self.lm_dim = lm_dim
        self.tower = SiglipVisionModel(siglip_config(cfg, attn_implementation))
        self.proj = nn.Linear(cfg.hidden_size, lm_dim, bias=True)
        # Input-dtype compute (compute_dtype=None) as in the released `norm_xa`.
        self.norm = RMSNorm(lm_dim, kind=cfg.proj_norm, eps=cfg.proj_norm_eps, compute_dtype=None)

    def reset_buffers(self) -> None:
        """Recompute the tower's non-persistent `position_ids` buffer (garbage after meta -> `to_empty`)."""
        emb = self.tower.embeddings
        # Re-assigning a registered buffer keeps it registered (and non-persistent).
        emb.position_ids = torch.arange(emb.num_positions, device=emb.position_ids.device).expand((1, -1))

    def encode_tower(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, H, W] (normalised) -> [B, N, hidden], N = (H // patch) * (W // patch).

        Position embeddings are interpolated (bicubic) when the grid differs from the config's, so any
        image size works; at the config size they are used as stored.
        """
        if pixels.dim() != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected pixels [B, 3, H, W], got shape {tuple(pixels.shape)}")
        patch = self.cfg.patch_size
        if pixels.shape[2] < patch or pixels.shape[3] < patch:
            raise ValueError(f"image {tuple(pixels.shape[2:])} is smaller than one {patch}x{patch} patch")
        out = self.tower(pixel_values=pixels, interpolate_pos_encoding=True)
        return out.last_hidden_state

    def project(self, tower_out: torch.Tensor) -> torch.Tensor:
        """[B, N, hidden] -> [B, N, lm_dim]: norm(proj(x)), in the projection's dtype."""
        return self.norm(self.proj(tower_out.to(self.proj.weight.dtype)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [B, 3, H, W] -> image embeddings [B, N, lm_dim] (the cross-attention source)."""
        return self.project(self.encode_tower(pixels))

    def tower_parameters(self) -> Iterator[nn.Parameter]:
        """The SigLIP parameters (frozen during MoshiVis training)."""
        return self.tower.parameters()

    def projection_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(name, parameter) of `proj` + `norm` (trainable adapter parameters), names relative to self."""
        for prefix, module in (("proj", self.proj), ("norm", self.norm)):
            for n, p in module.named_parameters():
                yield f"{prefix}.{n}", p
