"""Explicit key-map tables between our parameter names and every checkpoint layout we read or write.

Each table row is (ours, theirs) with placeholders expanded from the config:
  {i} temporal layer, {d} depformer layer, {k} audio input stream (n_q), {c} depformer codebook step
  (dep_q), {e} depformer audio embedding (dep_q - 1), {j} adapted layer index and {L} its base layer.
Prefix rows (ending in '.') map a whole sub-tree whose names come from `transformers` (the SigLIP tower).
"""

from __future__ import annotations

from ..config import ModelConfig

# --------------------------------------------------------------------------------- base Moshi (temporal+depth)
# The part shared by the released MoshiVis layout and ours, minus the top-level prefix of the LM.
_LM_BODY = [
    ("text_emb.weight", "{llm}text_emb.weight"),
    ("text_linear.weight", "{llm}text_linear.weight"),
    ("out_norm.alpha", "{llm}out_norm.alpha"),
    ("audio_emb.{k}.weight", "{audio_emb}.{k}.weight"),
    ("transformer.layers.{i}.norm1.alpha", "{llm}transformer.layers.{i}.norm1.alpha"),
    ("transformer.layers.{i}.norm2.alpha", "{llm}transformer.layers.{i}.norm2.alpha"),
    ("transformer.layers.{i}.self_attn.in_proj.weight", "{llm}transformer.layers.{i}.self_attn.in_proj_weight"),
    ("transformer.layers.{i}.self_attn.out_proj.weight", "{llm}transformer.layers.{i}.self_attn.out_proj.weight"),
    ("transformer.layers.{i}.gating.linear_in.weight", "{llm}transformer.layers.{i}.gating.linear_in.weight"),
    ("transformer.layers.{i}.gating.linear_out.weight", "{llm}transformer.layers.{i}.gating.linear_out.weight"),
    ("depformer_in.{c}.weight", "depformer_in.{c}.weight"),
    ("depformer_text_emb.weight", "depformer_text_emb.weight"),
    ("depformer_emb.{e}.weight", "depformer_emb.{e}.weight"),
    ("depformer.layers.{d}.norm1.alpha", "depformer.layers.{d}.norm1.alpha"),
    ("depformer.layers.{d}.norm2.alpha", "depformer.layers.{d}.norm2.alpha"),
    ("depformer.layers.{d}.self_attn.in_proj.weight", "depformer.layers.{d}.self_attn.in_proj_weight"),
    ("depformer.layers.{d}.self_attn.out_proj.weight", "depformer.layers.{d}.self_attn.out_proj.weight"),
    ("depformer.layers.{d}.gating.{c}.linear_in.weight", "depformer.layers.{d}.gating.{c}.linear_in.weight"),
    ("depformer.layers.{d}.gating.{c}.linear_out.weight", "depformer.layers.{d}.gating.{c}.linear_out.weight"),
    ("audio_linears.{c}.weight", "{audio_linears}.{c}.weight"),
]

# Released PyTorch MoshiVis (kyutai/moshika-vis-pytorch-bf16): LM under `llm.`, audio tables at top level.
KYUTEYE_LM = [("lm." + ours, theirs.format(llm="llm.", audio_emb="audio_emb", audio_linears="audio_linears",
                                           i="{i}", k="{k}", c="{c}", d="{d}", e="{e}"))
              for ours, theirs in _LM_BODY]

# The `moshi` package's LMModel (base Moshi checkpoints), with its attention weights in the stacked
# `in_proj_weight` spelling (`normalize_moshi_spelling` folds the `in_projs.{c}.weight` spelling into it).
MOSHI_LM = [("lm." + ours, theirs.format(llm="", audio_emb="emb", audio_linears="linears",
                                         i="{i}", k="{k}", c="{c}", d="{d}", e="{e}"))
            for ours, theirs in _LM_BODY]

# --------------------------------------------------------------------------------- MoshiVis additions
_XA = "llm.transformer.layers.{L}.cross_attention"
KYUTEYE_ADAPTERS_SHARED_XA = [  # stored once, under the first adapted layer
    ("adapters.xa.in_proj.weight", _XA + ".mha.in_proj_weight"),
    ("adapters.xa.out_proj.weight", _XA + ".mha.out_proj.weight"),
]
KYUTEYE_ADAPTERS_PER_LAYER_XA = [
    ("adapters.xa.{j}.in_proj.weight", _XA + ".mha.in_proj_weight"),
    ("adapters.xa.{j}.out_proj.weight", _XA + ".mha.out_proj.weight"),
]
KYUTEYE_ADAPTERS_NORMS = [("adapters.norms.{j}.alpha", "llm.transformer.layers.{L}.norm_cross.alpha")]
KYUTEYE_GATES = {
    "dynamic": [("adapters.gates.{g}.w1.weight", _XA.replace("{L}", "{G}") + ".gate.alpha.0.weight"),
                ("adapters.gates.{g}.w2.weight", _XA.replace("{L}", "{G}") + ".gate.alpha.2.weight")],
    "tanh": [("adapters.gates.{g}.alpha", _XA.replace("{L}", "{G}") + ".gate.alpha")],
    "none": [],
}
KYUTEYE_VISION = [
    ("vision.proj.weight", "image_prefix.proj_xa.weight"),
    ("vision.proj.bias", "image_prefix.proj_xa.bias"),
    ("vision.norm.alpha", "image_prefix.norm_xa.alpha"),
]
KYUTEYE_VISION_PREFIX = ("vision.tower.", "image_prefix.enc.model.")


def _expand(table: list[tuple[str, str]], ranges: dict[str, range]) -> list[tuple[str, str]]:
    """Expand every placeholder of every row over its range; rows without placeholders pass through."""
    out: list[tuple[str, str]] = []
    for ours, theirs in table:
        rows = [(ours, theirs)]
        for name, rng in ranges.items():
            tag = "{" + name + "}"
            if tag in ours or tag in theirs:
                rows = [(o.replace(tag, str(v)), t.replace(tag, str(v))) for o, t in rows for v in rng]
        out.extend(rows)
    return out


def _lm_ranges(cfg: ModelConfig) -> dict[str, range]:
    lm = cfg.lm
    return {"i": range(lm.temporal.num_layers), "d": range(lm.depformer.num_layers), "k": range(lm.n_q),
            "c": range(lm.dep_q), "e": range(lm.dep_q - 1)}


def kyuteye_key_map(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(ours, released) for every parameter of a MoshiVis built from `cfg` except the SigLIP tower
    (mapped by `KYUTEYE_VISION_PREFIX`)."""
    pairs = _expand(KYUTEYE_LM, _lm_ranges(cfg))
    a = cfg.adapters
    if a is not None:
        layer_ids = list(range(cfg.lm.temporal.num_layers)) if a.layers is None else list(a.layers)
        if a.shared_xa:
            pairs += [(o, t.replace("{L}", str(layer_ids[0]))) for o, t in KYUTEYE_ADAPTERS_SHARED_XA]
        for j, L in enumerate(layer_ids):
            per = KYUTEYE_ADAPTERS_NORMS + ([] if a.shared_xa else KYUTEYE_ADAPTERS_PER_LAYER_XA)
            pairs += [(o.replace("{j}", str(j)), t.replace("{L}", str(L))) for o, t in per]
        gate_rows = KYUTEYE_GATES[a.gate]
        gates = [(0, layer_ids[0])] if a.shared_gate else list(enumerate(layer_ids))
        for g, G in gates:
            pairs += [(o.replace("{g}", str(g)), t.replace("{G}", str(G))) for o, t in gate_rows]
    if cfg.vision is not None:
        pairs += KYUTEYE_VISION
    return pairs


def moshi_key_map(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(ours, moshi package) for the base LM only (a Moshi checkpoint holds nothing else)."""
    return _expand(MOSHI_LM, _lm_ranges(cfg))
