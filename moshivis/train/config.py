"""Typed training configuration, read from YAML with `key=value` overrides.

Every key is checked before any work starts: an unknown key, a value of the wrong type or an impossible
combination fails with a message naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

Mode = Literal["adapters", "full", "lora"]


@dataclass
class ModelSection:
    preset: str = "tiny"
    checkpoint: str | None = None  # any format moshivis loads; adapters start fresh for base Moshi files
    adapters: dict[str, Any] = field(default_factory=dict)  # AdapterConfig overrides (ablations)
    fresh_adapters: bool = False  # from `checkpoint` take the LM + vision tower only; adapters start fresh
    lora_rank: int = 8  # mode lora only
    # A tiny codec folder: codebook 0 also enters the LM as a map of this codec's centroids
    # (`models/centroid_input.py`), attached to a checkpoint that has no such input.
    centroid_codec: str | None = None
    activation_checkpointing: bool = False


@dataclass
class DataSection:
    shards: list[str] = field(default_factory=list)
    p_audio: float = 0.25  # share of image-speech samples among image samples (the paper's 25%)
    image_samples: float = 1.0  # weight of image samples (image-speech + speechless) in the mixture
    audio_only: float = 0.0  # weight of audio-only (no image) dialogues
    text_only: float = 0.0  # weight of text-only (no image, no audio) dialogues
    bucket_window: int = 0  # >0: batches of similar length, sorted within windows of this many batches
    drop_images: bool = False  # image samples train without their image (a blind base learns their language)
    max_frames: int = 375  # 30 s at 12.5 Hz
    crop: Literal["start", "random"] = "start"  # longer samples: their first max_frames, or a seeded window
    # False: a batch is as long as its longest sample (CPU: tinyworld's base dialogues are 55-107 frames,
    # so padding them to 160 wasted over half the compute); True keeps shapes static (GPU, memory plans).
    pad_to_max: bool = True
    image_root: str | None = None  # where relative image paths of the shards are found
    image_cache: str | None = None  # folder caching frozen image-encoder outputs per image
    num_workers: int = 0
    # Spoken samples (image-speech, audio-only): Moshi's text stream this many frames earlier than its
    # audio (data.text_lead), and the share of them whose Moshi audio the transformer does not see
    # (train.hidden_voice). Both stop Moshi's text from reading its words off Moshi's recorded voice.
    text_lead: int = 0
    hide_moshi_audio: float = 0.0
    # Share of the user's frames hidden (ZERO_TOKEN) in the inputs of every spoken sample, redrawn each step
    # (train.user_dropout): the model cannot recall whole question code sequences (README, stop 22).
    user_frame_dropout: float = 0.0
    # Share of audio-only (image-free spoken) samples given another batch sample's image (train.lent_images):
    # adapters learn to leave unrelated talk alone while an image is loaded (README, stop 22).
    lend_images: float = 0.0


@dataclass
class OptimSection:
    lr: float = 2e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    text_padding_weight: float = 0.5
    semantic_weight: float = 100.0
    # Weight of the audio loss (Moshi's 8 codebooks, each a mean over targets) against the text loss. Lower
    # it when adapters should spend their capacity on what the image changes (the words) rather than on
    # Moshi's speech (stop 12's fresh-dialogue experiment).
    audio_weight: float = 1.0
    # Key text pieces weigh `key_weight`: key_tokens = [after, id, id, ...] names the piece that must come
    # just before (padding skipped; -1: any piece) and the pieces weighted (loss.LossWeights.key_*; empty:
    # off). For yes/no verdicts after " so": `eval.verdict_probe.verdict_openings(tokenizer)` gives the ids.
    key_weight: float = 1.0
    key_tokens: tuple[int, ...] = ()


@dataclass
class TrainConfig:
    mode: Mode = "adapters"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    steps: int = 1000
    batch_size: int = 8  # global batch (samples per optimizer step, all ranks together)
    grad_accum: int = 1  # micro-batches per optimizer step on each rank
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    distributed: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    seed: int = 0
    out_dir: str = "runs/default"
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    tensorboard: bool = True
    max_nan_skips: int = 0  # NaN/inf loss stops the run unless this is > 0

    def validate(self, world_size: int = 1) -> None:
        """Raise ValueError naming the first impossible key."""
        if self.steps <= 0:
            raise ValueError(f"steps must be > 0, got {self.steps}")
        if self.batch_size <= 0 or self.grad_accum <= 0:
            raise ValueError(f"batch_size and grad_accum must be > 0 (got {self.batch_size}, {self.grad_accum})")
        if self.batch_size % (world_size * self.grad_accum):
            raise ValueError(f"batch_size {self.batch_size} is not divisible by world_size {world_size} x "
                             f"grad_accum {self.grad_accum}")
        if self.optim.key_weight < 0:
            raise ValueError(f"optim.key_weight must be >= 0, got {self.optim.key_weight}")
        if len(self.optim.key_tokens) == 1:
            raise ValueError(f"optim.key_tokens = {list(self.optim.key_tokens)}: give the piece before, then at "
                             "least one weighted piece")
        if not 0.0 <= self.data.p_audio <= 1.0:
            raise ValueError(f"data.p_audio must be in [0, 1], got {self.data.p_audio}")
        if self.data.audio_only < 0 or self.data.image_samples < 0 or self.data.text_only < 0:
            raise ValueError(f"data.audio_only, data.text_only and data.image_samples must be >= 0 "
                             f"(got {self.data.audio_only}, {self.data.text_only}, {self.data.image_samples})")
        if self.data.audio_only + self.data.image_samples + self.data.text_only <= 0:
            raise ValueError("data.image_samples, data.audio_only and data.text_only are all 0: nothing to train on")
        if self.data.text_lead < 0:
            raise ValueError(f"data.text_lead must be >= 0 frames, got {self.data.text_lead}")
        if not 0.0 <= self.data.hide_moshi_audio <= 1.0:
            raise ValueError(f"data.hide_moshi_audio must be in [0, 1], got {self.data.hide_moshi_audio}")
        if not 0.0 <= self.data.user_frame_dropout < 1.0:
            raise ValueError(f"data.user_frame_dropout must be in [0, 1), got {self.data.user_frame_dropout}")
        if not 0.0 <= self.data.lend_images <= 1.0:
            raise ValueError(f"data.lend_images must be in [0, 1], got {self.data.lend_images}")
        if not self.data.shards:
            raise ValueError("data.shards is empty: give at least one shard folder")
        for s in self.data.shards:
            if not (Path(s) / "manifest.json").is_file():
                raise ValueError(f"data.shards: {s} has no manifest.json (not a moshivis shard folder)")
        if self.optim.lr <= 0:
            raise ValueError(f"optim.lr must be > 0, got {self.optim.lr}")
        if self.save_every <= 0 or self.log_every <= 0:
            raise ValueError("save_every and log_every must be > 0")

    @property
    def micro_batch(self) -> int:
        """Samples per forward on one rank, for a world of 1 (see `per_rank_micro_batch`)."""
        return self.batch_size // self.grad_accum

    def per_rank_micro_batch(self, world_size: int) -> int:
        return self.batch_size // (world_size * self.grad_accum)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check/convert a YAML value to the annotated type; errors name the key."""
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp):
            raise ValueError(f"{key}: {value!r} is not one of {', '.join(map(str, get_args(tp)))}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {type(value).__name__}")
        return _from_dict(tp, value, key + ".")
    args = [a for a in get_args(tp) if a is not type(None)]
    if value is None:
        if type(None) in get_args(tp):
            return None
        raise ValueError(f"{key}: may not be null")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        targs = get_args(tp)
        if origin is tuple and targs and targs[-1] is not Ellipsis:  # fixed length, e.g. betas
            if len(value) != len(targs):
                raise ValueError(f"{key}: expected {len(targs)} items, got {len(value)}")
            items = [_coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, targs))]
        else:  # the elements are checked too: a typo inside a list names its key and index
            items = [_coerce(v, targs[0], f"{key}[{i}]") if targs else v for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        return value
    if args and origin is not None:  # X | None
        return _coerce(value, args[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        if tp is int and float(value) != int(value):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return tp(value)
    if tp is str:
        return str(value)
    return value


def _from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config key(s): {', '.join(prefix + u for u in unknown)}")
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in values.items()})


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {dotted}: {p} is not a section")
    node[parts[-1]] = value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """YAML file (or defaults) + `a.b=value` overrides (values parsed as YAML scalars)."""
    tree: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file not found: {p}")
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p}: not valid YAML ({e})") from None
        if not isinstance(tree, dict):
            raise ValueError(f"{p}: the top level must be a mapping")
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        _set_path(tree, key.strip(), yaml.safe_load(raw))
    return _from_dict(TrainConfig, tree)
