"""Every checkpoint format MoshiVis reads and writes, through the tables of `keymaps.py`.

Formats:
- `kyuteye`: the released PyTorch MoshiVis (`llm.*`, `audio_emb.*`, `image_prefix.*`; the shared
  cross-attention stored under layer 0 only). Read and written losslessly.
- `moshi`: a base Moshi checkpoint of the `moshi` package (`in_proj_weight` or `in_projs.{c}.weight`
  spellings). Loads strictly into `model.lm`; the adapters start fresh (gates ~0.018).
- `moshivis`: ours, safetensors with the config JSON in the metadata; `content` is `full` or `adapters`
  (an adapter-only file applied on top of a base checkpoint).
Models are built on the `meta` device and loaded with `assign=True`, so nothing is initialised twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Literal, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..config import ModelConfig, preset
from . import keymaps
from .moshivis import MoshiVis

Format = Literal["kyuteye", "moshi", "moshivis"]
DEFAULT_FILENAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint cannot be used; the message names the file and the offending keys/shapes."""


# ----------------------------------------------------------------------------------------------- paths
def resolve_checkpoint(source: str | os.PathLike, filename: str = DEFAULT_FILENAME,
                       cache_dir: str | os.PathLike | None = None, revision: str | None = None) -> Path:
    """A local file, a local folder (its `filename`, or its only .safetensors), or a hub id
    `org/name` resolved through `huggingface_hub` (from `cache_dir` when offline)."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        if (path / filename).is_file():
            return path / filename
        found = sorted(path.glob("*.safetensors"))
        if len(found) == 1:
            return found[0]
        raise CheckpointError(f"{path}: folder has no {filename} and {len(found)} .safetensors files")
    text = str(source)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")) and not path.suffix:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(hf_hub_download(text, filename, revision=revision,
                                        cache_dir=None if cache_dir is None else str(cache_dir)))
        except LocalEntryNotFoundError as e:
            raise CheckpointError(f"{text}: {filename} is not in the hub cache and the hub cannot be reached "
                                  f"({type(e).__name__})") from None
        except Exception as e:  # network, auth, missing repo: one line, not a traceback
            raise CheckpointError(f"{text}: cannot fetch {filename} from the hub: {e}") from None
    raise CheckpointError(f"{source}: no such file or folder (nor a hub id 'org/name')")


# ----------------------------------------------------------------------------------------------- reading
def read_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """All tensors and the metadata of a safetensors file, or a one-line CheckpointError."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        size = path.stat().st_size if path.exists() else 0
        raise CheckpointError(f"{path}: not a readable safetensors file ({size} bytes): {e}") from None
    return tensors, meta


def detect_format(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> Format:
    if meta.get("format") == "moshivis":
        return "moshivis"
    if any(k.startswith("llm.") for k in tensors):
        return "kyuteye"
    if any(k.startswith(("transformer.layers.", "emb.")) for k in tensors):
        return "moshi"
    raise CheckpointError(f"unknown checkpoint layout (first keys: {sorted(tensors)[:5]})")


def normalize_moshi_spelling(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fold `self_attn.in_projs.{c}.weight` / `out_projs.{c}.weight` into the stacked
    `self_attn.in_proj_weight` / `out_proj.weight` (the older spelling, and the released MoshiVis one)."""
    out: dict[str, torch.Tensor] = {}
    groups: dict[str, dict[int, torch.Tensor]] = {}
    for k, v in tensors.items():
        for part, stacked in ((".in_projs.", ".in_proj_weight"), (".out_projs.", ".out_proj.weight")):
            if part in k and k.endswith(".weight"):
                head, tail = k.split(part)
                groups.setdefault(head + stacked, {})[int(tail.split(".")[0])] = v
                break
        else:
            out[k] = v
    for k, chunks in groups.items():
        if sorted(chunks) != list(range(len(chunks))):
            raise CheckpointError(f"{k}: per-step chunks {sorted(chunks)} are not 0..{len(chunks) - 1}")
        out[k] = torch.cat([chunks[c] for c in range(len(chunks))], dim=0)
    return out


def split_moshi_spelling(tensors: Mapping[str, torch.Tensor], dep_q: int) -> dict[str, torch.Tensor]:
    """Inverse of `normalize_moshi_spelling`: write the `in_projs.{c}` spelling of current moshi."""
    out: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        for stacked, part in ((".in_proj_weight", ".in_projs."), (".out_proj.weight", ".out_projs.")):
            if k.endswith(stacked) and ".self_attn" in k:
                n = dep_q if k.startswith("depformer.") else 1
                for c, chunk in enumerate(v.chunk(n, dim=0)):
                    out[k[:-len(stacked)] + part + f"{c}.weight"] = chunk.clone()
                break
        else:
            out[k] = v
    return out


# ----------------------------------------------------------------------------------------------- building
def build_model(cfg: ModelConfig, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                init: bool = True) -> MoshiVis:
    """A model with random weights (init=True) or an empty `meta` model to load into (init=False)."""
    if init:
        with torch.device(device):
            model = MoshiVis(cfg)
        return model.to(dtype)
    with torch.device("meta"):
        return MoshiVis(cfg)


def _materialize_buffers(model: torch.nn.Module, device: torch.device | str) -> None:
    """Non-persistent buffers are not in checkpoints: recreate the ones a meta build left empty
    (the SigLIP tower's `position_ids` = arange)."""
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf is not None and buf.is_meta:
                if name != "position_ids":
                    raise RuntimeError(f"cannot materialise buffer {name} of {type(module).__name__}")
                module.register_buffer(name, torch.arange(buf.shape[-1], device=device).expand(buf.shape),
                                       persistent=False)


def load_into(model: MoshiVis, ours: dict[str, torch.Tensor], source: str, strict_keys: set[str] | None = None,
              device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> MoshiVis:
    """Check names and shapes against `model` (all its keys, or `strict_keys`) and load with assign=True.

    Missing and unexpected keys are listed by name; a shape mismatch names the key and both shapes.
    """
    expected = model.state_dict()
    want = set(expected) if strict_keys is None else strict_keys
    missing = sorted(want - set(ours))
    # Relative to `want`, not the whole model: a partial (adapter) file must not overwrite base weights.
    unexpected = sorted(set(ours) - want)
    if missing or unexpected:
        raise CheckpointError(_key_report(source, missing, unexpected))
    for k, v in ours.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{source}: shape mismatch for {k}: checkpoint {list(v.shape)}, "
                                  f"model {list(expected[k].shape)}")
    ours = {k: v.to(device=device, dtype=dtype or v.dtype) for k, v in ours.items()}
    model.load_state_dict(ours, strict=strict_keys is None, assign=True)
    return model


def _key_report(source: str, missing: list[str], unexpected: list[str], limit: int = 20) -> str:
    parts = [f"{source}: checkpoint does not match the model"]
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
            parts.append(f"{len(keys)} {label} key(s): {shown}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------- formats
def kyuteye_to_ours(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """Rename a released MoshiVis state dict; keys not in the table are kept as is (reported later)."""
    theirs_to_ours = {t: o for o, t in keymaps.kyuteye_key_map(cfg)}
    o_prefix, t_prefix = keymaps.KYUTEYE_VISION_PREFIX
    out: dict[str, torch.Tensor] = {}
    for k, v in tensors.items():
        if k in theirs_to_ours:
            out[theirs_to_ours[k]] = v
        elif k.startswith(t_prefix) and cfg.vision is not None:
            out[o_prefix + k[len(t_prefix):]] = v
        else:
            out[k] = v
    return out


def ours_to_kyuteye(state: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    ours_to_theirs = dict(keymaps.kyuteye_key_map(cfg))
    o_prefix, t_prefix = keymaps.KYUTEYE_VISION_PREFIX
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k in ours_to_theirs:
            out[ours_to_theirs[k]] = v
        elif k.startswith(o_prefix):
            out[t_prefix + k[len(o_prefix):]] = v
        else:
            raise CheckpointError(f"{k} has no name in the released MoshiVis layout")
    return out


def moshi_to_ours(tensors: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    theirs_to_ours = {t: o for o, t in keymaps.moshi_key_map(cfg)}
    return {theirs_to_ours.get(k, k): v for k, v in normalize_moshi_spelling(tensors).items()}


def ours_to_moshi(state: Mapping[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    ours_to_theirs = dict(keymaps.moshi_key_map(cfg))
    stacked = {ours_to_theirs[k]: v for k, v in state.items() if k in ours_to_theirs}
    return split_moshi_spelling(stacked, cfg.lm.dep_q)


# ----------------------------------------------------------------------------------------------- public API
def load_model(source: str | os.PathLike, config: ModelConfig | str | None = None,
               device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
               cache_dir: str | os.PathLike | None = None, fresh_adapters: bool = False) -> MoshiVis:
    """Load any supported checkpoint.

    `config`: a ModelConfig or preset name; required for `kyuteye` and `moshi` files (they carry no
    config), optional for ours (the embedded config is used). A base `moshi` file gives a MoshiVis whose
    adapters and vision tower are freshly initialised. `fresh_adapters` (our format): load the LM and the
    vision tower strictly, and start the adapters (and image projection) fresh, so `config` may give them
    another architecture (ablations: no gate, unshared cross-attention, ...).
    """
    path = resolve_checkpoint(source, cache_dir=cache_dir)
    tensors, meta = read_safetensors(path)
    fmt = detect_format(tensors, meta)
    cfg = preset(config) if isinstance(config, str) else config
    if fmt == "moshivis":
        stored = _config_from_meta(meta, path)
        if meta.get("content") == "adapters":
            raise CheckpointError(f"{path}: an adapter-only file; load a base model first, then "
                                  f"`load_adapters(model, path)`")
        cfg = cfg or stored
        if fresh_adapters:
            model = build_model(cfg, init=True)
            fresh = {n for n, _ in model.adapter_parameters()}
            keep = {k: v for k, v in tensors.items() if not k.startswith("adapters.") and k not in fresh}
            load_into(model, keep, str(path), strict_keys=set(model.state_dict()) - fresh, device=device, dtype=dtype)
            return _finish(model.to(device=device, dtype=dtype or torch.float32), device)
        return _finish(load_into(build_model(cfg, init=False), dict(tensors), str(path), device=device,
                                 dtype=dtype), device)
    if cfg is None:
        raise CheckpointError(f"{path}: a {fmt} checkpoint carries no config; pass a preset "
                              f"(e.g. 'moshika-vis-7b') or a config")
    if fmt == "kyuteye":
        model = build_model(cfg, init=False)
        return _finish(load_into(model, kyuteye_to_ours(tensors, cfg), str(path), device=device, dtype=dtype),
                       device)
    # Base Moshi: strict on the LM, fresh adapters and vision.
    model = build_model(cfg, device=device, dtype=dtype or torch.float32, init=True)
    _check_moshi_layout(tensors, model, path)
    lm_state = {k[len("lm."):]: v for k, v in moshi_to_ours(tensors, cfg).items() if k.startswith("lm.")}
    others = sorted(k for k in moshi_to_ours(tensors, cfg) if not k.startswith("lm."))
    if others:
        raise CheckpointError(_key_report(str(path), [], others))
    try:
        model.lm.load_state_dict(lm_state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: {str(e).splitlines()[0]} {_state_diff(model.lm.state_dict(), lm_state)}")
    return model.to(dtype or torch.float32).eval()  # eval mode, as the other formats (`_finish`)


def _expected_moshi_shapes(model: MoshiVis, file_keys: set[str]) -> dict[str, torch.Size]:
    """Key -> shape a base Moshi file must hold for `model.lm`, in the file's own spelling.

    Each attention weight is expected in the spelling the file uses for it: the stacked
    `self_attn.in_proj_weight` / `self_attn.out_proj.weight`, or the per-step
    `self_attn.in_projs.{c}.weight` / `out_projs.{c}.weight`; when the file has neither (a missing weight),
    in the spelling of the rest of the file. Computed on `meta` tensors: no copies.
    """
    shapes = {"lm." + k: torch.empty(v.shape, device="meta") for k, v in model.lm.state_dict().items()}
    split = ours_to_moshi(shapes, model.cfg)
    expected = {k: v.shape for k, v in split.items()}
    file_is_stacked = any(k.endswith((".self_attn.in_proj_weight", ".self_attn.out_proj.weight"))
                          for k in file_keys)
    for key, v in normalize_moshi_spelling(split).items():
        if key in split:
            continue
        # `X.in_proj_weight` -> chunks `X.in_projs.{c}.weight`; `X.out_proj.weight` -> `X.out_projs.{c}.weight`.
        chunk_prefix = key.removesuffix(".weight").removesuffix("_weight") + "s."
        has_chunks = any(k.startswith(chunk_prefix) for k in file_keys)
        if key in file_keys or (file_is_stacked and not has_chunks):
            for chunk in [k for k in expected if k.startswith(chunk_prefix)]:
                del expected[chunk]
            expected[key] = v.shape
    return expected


def _check_moshi_layout(tensors: Mapping[str, torch.Tensor], model: MoshiVis, path: Path) -> None:
    """Names missing, unexpected and mis-shaped keys of a base Moshi file as the FILE spells them.

    Checking after the renaming and the stacking of per-step chunks would name keys the file does not have
    (`audio_emb.3.weight` for `emb.3.weight`, a concatenated `in_proj.weight` for one bad
    `in_projs.3.weight`, with the shapes of the concatenation).
    """
    expected = _expected_moshi_shapes(model, set(tensors))
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(_key_report(str(path), missing, unexpected))
    bad = [f"{k}: checkpoint {list(tensors[k].shape)}, model {list(shape)}"
           for k, shape in sorted(expected.items()) if tuple(tensors[k].shape) != tuple(shape)]
    if bad:
        more = f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else ""
        raise CheckpointError(f"{path}: shape mismatch for {'; '.join(bad[:5])}{more}")


def _state_diff(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> str:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [f"{k}: checkpoint {list(got[k].shape)}, model {list(expected[k].shape)}"
              for k in sorted(set(expected) & set(got)) if got[k].shape != expected[k].shape]
    return "; ".join(filter(None, [f"missing: {missing[:20]}" if missing else "",
                                   f"unexpected: {unexpected[:20]}" if unexpected else "",
                                   f"shape mismatch: {shapes[:5]}" if shapes else ""]))


def _finish(model: MoshiVis, device: torch.device | str) -> MoshiVis:
    _materialize_buffers(model, device)
    return model.eval()


def _config_from_meta(meta: Mapping[str, str], path: Path) -> ModelConfig:
    try:
        return ModelConfig.from_json(meta["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: bad or missing config in metadata: {e}") from None


def save_kyuteye(model: MoshiVis, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write the released PyTorch MoshiVis layout (loadable by the public `kyuteye` code)."""
    state = ours_to_kyuteye(model.state_dict(), model.cfg)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              metadata=dict(metadata or {"format": "pt"}))


def save_moshi(model: MoshiVis, path: str | os.PathLike) -> None:
    """Write the base LM in the `moshi` package layout (adapters are not part of Moshi)."""
    if model.cfg.lm.centroid_codes:
        raise CheckpointError(f"{path}: the moshi layout has no centroid input (lm.centroid_input.*); "
                              "save this model in our format")
    lm_state = {"lm." + k: v for k, v in model.lm.state_dict().items()}
    save_file({k: v.contiguous() for k, v in ours_to_moshi(lm_state, model.cfg).items()}, str(path),
              metadata={"format": "pt"})


def save_checkpoint(model: MoshiVis, path: str | os.PathLike, adapters_only: bool = False,
                    extra_metadata: Mapping[str, str] | None = None) -> None:
    """Our format: every weight (or only the adapters) + the config JSON in the metadata."""
    state = model.adapter_state_dict() if adapters_only else model.state_dict()
    meta = {"format": "moshivis", "config": model.cfg.to_json(),
            "content": "adapters" if adapters_only else "full", **(extra_metadata or {})}
    tmp = Path(str(path) + ".tmp")
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint under the real name


def load_adapters(model: MoshiVis, source: str | os.PathLike) -> MoshiVis:
    """Apply an adapter-only file (ours) on top of a loaded base; refuses other architectures."""
    path = resolve_checkpoint(source)
    tensors, meta = read_safetensors(path)
    if meta.get("format") != "moshivis" or meta.get("content") != "adapters":
        raise CheckpointError(f"{path}: not a moshivis adapter-only file (metadata {dict(meta)})")
    stored = _config_from_meta(meta, path)
    a, b = model.cfg.lm.temporal, stored.lm.temporal
    if (a.dim, a.num_layers) != (b.dim, b.num_layers):
        raise CheckpointError(f"{path}: adapters for lm.temporal dim {b.dim} x {b.num_layers} layers, "
                              f"model has dim {a.dim} x {a.num_layers} layers")
    # xa_start is a generation default, not architecture: a file may carry another one.
    mine = None if model.cfg.adapters is None else dataclasses.replace(model.cfg.adapters, xa_start=0)
    theirs = None if stored.adapters is None else dataclasses.replace(stored.adapters, xa_start=0)
    if mine != theirs:
        raise CheckpointError(f"{path}: adapter config differs from the model's: {_config_diff(theirs, mine)}")
    names = {n for n, _ in model.adapter_parameters()}
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    load_into(model, dict(tensors), str(path), strict_keys=names, device=dev, dtype=dtype)
    return model


def _config_diff(file_cfg: object, model_cfg: object) -> str:
    """`field: file X, model Y` for every differing dataclass field (or both values when one is None)."""
    if file_cfg is None or model_cfg is None:
        return f"file {file_cfg}, model {model_cfg}"
    diffs = [f"{f.name}: file {getattr(file_cfg, f.name)!r}, model {getattr(model_cfg, f.name)!r}"
             for f in dataclasses.fields(file_cfg) if getattr(file_cfg, f.name) != getattr(model_cfg, f.name)]
    return "; ".join(diffs)


def checkpoint_config(source: str | os.PathLike) -> ModelConfig | None:
    """The config a checkpoint in our format carries, read from its header only (None for the released
    and moshi layouts, which carry none)."""
    path = resolve_checkpoint(source)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file: {e}") from None
    return _config_from_meta(meta, path) if meta.get("format") == "moshivis" else None


def describe(path: str | os.PathLike) -> dict[str, object]:
    """Format, tensor count and metadata of a checkpoint without building a model."""
    tensors, meta = read_safetensors(path)
    return {"path": str(path), "format": detect_format(tensors, meta), "tensors": len(tensors),
            "parameters": sum(t.numel() for t in tensors.values()), "metadata": json.loads(json.dumps(meta))}
