"""Typed configuration of a MoshiVis model and its named size presets.

A config is plain data (dataclasses) so that it can travel inside a checkpoint's metadata as JSON.
`CONFIG_VERSION` is bumped whenever a field changes meaning; `ModelConfig.from_dict` is the ONE place
where older versions are migrated.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

CONFIG_VERSION = 1

NormKind = Literal["rms", "var"]
"""`rms`: x * a / sqrt(mean(x^2) + eps) (true RMS, moshi/Helium).
`var`: x * a / sqrt(var_unbiased(x) + eps) with x NOT centred (public PyTorch depformer and norm_xa)."""

GateKind = Literal["dynamic", "tanh", "none"]
"""`dynamic`: sigmoid(W2 relu(W1 y) - 4) per token and channel (the paper's default).
`tanh`: one learnable scalar per layer, tanh(alpha) (Flamingo-style, starts at 0).
`none`: the cross-attention output is added as is."""


@dataclass
class TransformerConfig:
    """A stack of pre-norm transformer layers (self-attention -> [fusion point] -> SiLU-gated FFN)."""

    dim: int
    num_heads: int
    num_layers: int
    ffn_hidden: int  # hidden width of the gated FFN (linear_in has 2 * ffn_hidden rows)
    context: int  # how many past steps a query may attend to (ring KV cache capacity)
    norm: NormKind = "rms"
    norm_eps: float = 1e-8
    rope: bool = True
    rope_max_period: float = 10000.0
    weights_per_step: int = 0  # > 0: separate attention/FFN weights per position (the depformer)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclass
class LMConfig:
    """Moshi: temporal transformer (Helium) + depth transformer (depformer) over 17 token streams."""

    text_card: int
    audio_card: int
    temporal: TransformerConfig
    depformer: TransformerConfig
    n_q: int = 16  # audio streams in the input: 8 for the model, 8 for the user
    dep_q: int = 8  # audio streams the model predicts (its own codebooks)
    delays: tuple[int, ...] = (0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1)
    text_padding_id: int = 3
    end_of_text_padding_id: int = 0
    # How many of the user's / the model's own codebooks are inputs of the temporal transformer (None: all).
    # 1 keeps only the semantic codebook. The tinyworld base showed why (stop 10): with few voices and one
    # TTS rendering per sentence, it read its later words off the acoustic fingerprint of its own first word
    # (word accuracy 0.74 with the user hidden) and keyed on speaker-specific user codes, instead of
    # learning what was asked. The model still PREDICTS all its codebooks (depformer); they are only not fed back.
    user_input_codebooks: int | None = None
    model_input_codebooks: int | None = None
    # Codebook 0 also enters as a linear map of each code's centroid (`models/centroid_input.py`): the codec's
    # codebook-0 size and centroid width, or 0 / 0 for no such input (every checkpoint before stop 31).
    centroid_codes: int = 0
    centroid_dim: int = 0

    @property
    def num_streams(self) -> int:
        return 1 + self.n_q

    @property
    def text_initial_id(self) -> int:
        return self.text_card

    @property
    def audio_initial_id(self) -> int:
        return self.audio_card

    @property
    def max_delay(self) -> int:
        return max(self.delays)

    @property
    def audio_inputs(self) -> tuple[int, ...]:
        """Audio streams (0..n_q-1: the model's dep_q, then the user's) that reach the embedding sum."""
        user = self.n_q - self.dep_q
        for name, value, top in (("user_input_codebooks", self.user_input_codebooks, user),
                                 ("model_input_codebooks", self.model_input_codebooks, self.dep_q)):
            if value is not None and not 0 <= value <= top:
                raise ValueError(f"lm.{name}={value} must be in 0..{top}")
        mine = self.dep_q if self.model_input_codebooks is None else self.model_input_codebooks
        theirs = user if self.user_input_codebooks is None else self.user_input_codebooks
        return tuple(range(mine)) + tuple(range(self.dep_q, self.dep_q + theirs))


@dataclass
class VisionConfig:
    """A SigLIP vision tower (`transformers.SiglipVisionConfig` fields) + projection to the LM width."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu_pytorch_tanh"
    proj_norm: NormKind = "var"
    proj_norm_eps: float = 1e-5

    @property
    def num_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass
class AdapterConfig:
    """Gated cross-attention adapters added to the temporal transformer (none in the depformer)."""

    shared_xa: bool = True  # one cross-attention for all layers (the paper) vs one per layer
    gate: GateKind = "dynamic"
    shared_gate: bool = False  # one gate module used by every layer
    gate_hidden: int | None = None  # None: dim // 8
    gate_shift: float = -4.0  # sigmoid(-4) ~ 0.018: the adapted model starts close to Moshi
    layers: tuple[int, ...] | None = None  # None: every layer
    norm_eps: float = 1e-8
    xa_start: int = 0  # default number of streaming steps with no image (the server uses 16)


@dataclass
class ModelConfig:
    lm: LMConfig
    vision: VisionConfig | None
    adapters: AdapterConfig | None = field(default_factory=AdapterConfig)
    name: str = "custom"
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "ModelConfig":
        """Build a config from `to_dict` output; migrates older versions; names unknown fields."""
        d = dict(d)
        version = d.pop("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ValueError(f"config version {version} is newer than this moshivis ({CONFIG_VERSION})")
        lm = dict(d.pop("lm"))
        lm["temporal"] = _build(TransformerConfig, lm["temporal"], "lm.temporal")
        lm["depformer"] = _build(TransformerConfig, lm["depformer"], "lm.depformer")
        lm["delays"] = tuple(lm.get("delays", LMConfig.__dataclass_fields__["delays"].default))
        vision = d.pop("vision", None)
        adapters = d.pop("adapters", None)
        if adapters is not None and adapters.get("layers") is not None:
            adapters = dict(adapters, layers=tuple(adapters["layers"]))
        return _build(
            ModelConfig,
            dict(
                d,
                lm=_build(LMConfig, lm, "lm"),
                vision=None if vision is None else _build(VisionConfig, vision, "vision"),
                adapters=None if adapters is None else _build(AdapterConfig, adapters, "adapters"),
                version=CONFIG_VERSION,
            ),
            "model",
        )

    @staticmethod
    def from_json(text: str) -> "ModelConfig":
        return ModelConfig.from_dict(json.loads(text))


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config field(s) in {where}: {', '.join(unknown)}")
    return cls(**values)


def gated_ffn_hidden(dim: int, hidden_scale: float) -> int:
    """Moshi's rule for the SiLU-gated FFN width: 2 * int(hidden_scale * dim) // 3."""
    return 2 * int(hidden_scale * dim) // 3


# ----------------------------------------------------------------------------------------------- presets


def moshi_lm(text_card: int, audio_card: int, dim: int, heads: int, layers: int, dep_dim: int, dep_heads: int,
             dep_layers: int, hidden_scale: float = 4.125) -> LMConfig:
    """A Moshi LM of the released shape at any size: RoPE temporal transformer (true RMS norms, context 3000)
    + depformer with per-codebook weights, no positional encoding, variance-form norms (public PyTorch code)."""
    return LMConfig(
        text_card=text_card,
        audio_card=audio_card,
        temporal=TransformerConfig(dim=dim, num_heads=heads, num_layers=layers,
                                   ffn_hidden=gated_ffn_hidden(dim, hidden_scale), context=3000),
        depformer=TransformerConfig(dim=dep_dim, num_heads=dep_heads, num_layers=dep_layers,
                                    ffn_hidden=gated_ffn_hidden(dep_dim, hidden_scale), context=8, norm="var",
                                    rope=False, weights_per_step=8),
    )


def tiny() -> ModelConfig:
    """The size of `shared/fixtures/kyuteye_tiny` (440k parameters): used by the tests."""
    return ModelConfig(
        name="tiny",
        lm=moshi_lm(text_card=100, audio_card=32, dim=64, heads=4, layers=2, dep_dim=32, dep_heads=2, dep_layers=2),
        vision=VisionConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, patch_size=14,
                            image_size=56),
    )


def small() -> ModelConfig:
    """Benchmark size: dim 1024 x 8 layers, depformer 512 x 4, real vocabularies, 1024 image tokens."""
    return ModelConfig(
        name="small",
        lm=moshi_lm(text_card=32000, audio_card=2048, dim=1024, heads=8, layers=8, dep_dim=512, dep_heads=8,
                    dep_layers=4),
        vision=VisionConfig(hidden_size=384, intermediate_size=1536, num_layers=4, num_heads=6, patch_size=14,
                            image_size=448),
    )


def moshika_vis_7b() -> ModelConfig:
    """The released MoshiVis (kyutai/moshika-vis-pytorch-bf16): Moshi 7B + PaliGemma2-448 SigLIP tower."""
    return ModelConfig(
        name="moshika-vis-7b",
        lm=moshi_lm(text_card=32000, audio_card=2048, dim=4096, heads=32, layers=32, dep_dim=1024, dep_heads=16,
                    dep_layers=6),
        vision=VisionConfig(hidden_size=1152, intermediate_size=4304, num_layers=27, num_heads=16, patch_size=14,
                            image_size=448),
        adapters=AdapterConfig(xa_start=16),
    )


def tinyworld() -> ModelConfig:
    """The embedded model (`moshivis tinyworld build`): a CPU-trainable Moshi (dim 192 x 6 layers, depformer
    96 x 2), a 1,000-piece tokenizer, the tiny codec's 1,024 codes, the 64-token easy-vqa SigLIP tower."""
    mc = ModelConfig(
        name="tinyworld",
        lm=moshi_lm(text_card=1000, audio_card=1024, dim=192, heads=6, layers=6, dep_dim=96, dep_heads=4,
                    dep_layers=2),
        vision=VisionConfig(hidden_size=128, intermediate_size=512, num_layers=4, num_heads=4, patch_size=8,
                            image_size=64),
    )
    mc.lm.user_input_codebooks = 1  # semantic codebooks only, both sides (see LMConfig)
    mc.lm.model_input_codebooks = 1
    return mc


PRESETS = {"tiny": tiny, "small": small, "moshika-vis-7b": moshika_vis_7b, "tinyworld": tinyworld}


def preset(name: str) -> ModelConfig:
    """A fresh copy of a named preset."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
