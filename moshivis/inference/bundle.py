"""A model bundle: everything `ask`/`demo` need in one folder.

    bundle.json        {"model": "model.safetensors", "tokenizer": "tokenizer.model", "codec": "<codec spec>"}
    model.safetensors  a full MoshiVis checkpoint in our format
    tokenizer.model    the SentencePiece text tokenizer

Relative paths inside a codec spec (e.g. "tiny:codec") are resolved against the bundle folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..audio.registry import load_codec
from ..data.tokenizer import TextTokenizer
from ..models.loaders import load_model
from ..models.moshivis import MoshiVis

BUNDLE_FILE = "bundle.json"
# The embedded model shipped with the repository (built by the tinyworld recipe).
EMBEDDED_BUNDLE = Path(__file__).resolve().parents[2] / "tinyworld" / "bundle"


@dataclass
class Bundle:
    model: MoshiVis
    tokenizer: TextTokenizer
    codec: Any  # AudioCodec
    root: Path


def _resolve_spec(spec: str, root: Path) -> str:
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("tiny", "mimi") and rest and not Path(rest).is_absolute() and (root / rest).exists():
        return f"{kind}:{root / rest}"
    return spec


def load_bundle(path: str | os.PathLike, device: str = "cpu") -> Bundle:
    root = Path(path)
    meta_file = root / BUNDLE_FILE
    if not meta_file.is_file():
        if root == EMBEDDED_BUNDLE:
            raise ValueError(f"the embedded model is not built yet ({root} is missing); give --checkpoint BUNDLE")
        raise ValueError(f"{root}: not a model bundle (no {BUNDLE_FILE})")
    try:
        meta = json.loads(meta_file.read_text())
        model_file, tok_file, codec = meta["model"], meta["tokenizer"], meta["codec"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{meta_file}: bad bundle description ({type(e).__name__}: {e})") from None
    model = load_model(root / model_file, device=device, dtype=torch.float32)  # shipped weights may be fp16
    tokenizer = TextTokenizer(root / tok_file)
    codec_obj = load_codec(_resolve_spec(codec, root))
    lm = model.cfg.lm
    if tokenizer.vocab_size > lm.text_card:
        raise ValueError(f"{root}: tokenizer has {tokenizer.vocab_size} pieces, the model only {lm.text_card}")
    if codec_obj.cardinality > lm.audio_card or codec_obj.num_codebooks < lm.dep_q:
        raise ValueError(f"{root}: codec ({codec_obj.num_codebooks} x {codec_obj.cardinality}) does not fit the "
                         f"model ({lm.dep_q} x {lm.audio_card})")
    return Bundle(model, tokenizer, codec_obj, root)


def write_bundle_file(root: str | os.PathLike, model: str, tokenizer: str, codec: str,
                      extra: dict[str, Any] | None = None) -> Path:
    out = Path(root) / BUNDLE_FILE
    out.write_text(json.dumps({"model": model, "tokenizer": tokenizer, "codec": codec, **(extra or {})}, indent=2))
    return out


def bundle_codec_spec(codec: str | os.PathLike) -> str:
    """A codec spec for bundle.json (`audio.registry.load_codec`'s forms): "mimi", "mimi:PATH", "py:..." as
    given; "tiny:DIR" or a bare DIR (a tiny codec folder) -> "tiny:<absolute DIR>", checked to exist."""
    text = str(codec)
    kind, sep, rest = text.partition(":")
    if text == "mimi" or (sep and kind in ("mimi", "py")):
        return text
    folder = Path(rest if sep and kind == "tiny" else text)
    if not folder.is_dir():
        raise ValueError(f"codec {text!r}: not a codec spec (mimi, mimi:PATH, tiny:DIR, py:module:Class) "
                         "and no such codec folder")
    return f"tiny:{folder.resolve()}"


def assemble_bundle(out: str | os.PathLike, base: str | os.PathLike, adapters: str | os.PathLike,
                    tokenizer: str | os.PathLike, codec: str) -> Path:
    """A bundle folder from a base checkpoint and an adapters one: one full checkpoint in float16 (to keep a
    shipped bundle small; `load_bundle` reads it back in float32), the tokenizer copied, `codec` as given."""
    import shutil

    from ..models.loaders import load_adapters, save_checkpoint

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    model = load_model(base)
    load_adapters(model, adapters)
    save_checkpoint(model.to(torch.float16), root / "model.safetensors")
    shutil.copy(tokenizer, root / "tokenizer.model")
    write_bundle_file(root, "model.safetensors", "tokenizer.model", codec)
    return root
