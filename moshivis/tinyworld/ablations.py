"""The paper's ablations in miniature, on the embedded model's frozen base and image data:

    reference     the shipped recipe's adapter settings (dynamic gate, shared cross-attention, p_audio 50%)
    no_gate       cross-attention added with no gate at all
    unshared_xa   one cross-attention per layer instead of one shared by all layers
    p_audio_0/25/100   share of image samples that are spoken (the rest are speechless text dialogues)
    audio_weight_1     the audio loss weighted as the text loss (the paper's; the recipe uses 0.1 since stop 13)
    gate_shift_-1/0    dynamic gates that start half-open or wider (sigmoid(-1) = 0.27, sigmoid(0) = 0.5) instead
                       of sigmoid(-4) = 0.018: the shipped gates stayed near 0.02 after training (stop 13)

Every variant trains fresh adapters for the same (reduced) number of steps from the same base, so they
compare with each other (the `reference` row is the shipped settings at that budget, not the shipped
model). Each is then scored by `tinyworld.results` on a subset of its conditions: text and audio prompts,
image-unrelated questions with an image, and the switching test.

    moshivis tinyworld ablations [--work runs/tinyworld] [--steps 250] [--variants ...]

Any base can stand in for the recipe's (`--base`, with its adapters' `--shards`, `--tokenizer`, `--codec`, and
`--extra` overrides for its own adapter settings): the shipped chain's base is not a `tinyworld build`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .recipe import RecipeConfig, stage_result
from .stages import adapter_overrides, frozen_base, run_overrides

VARIANTS: dict[str, list[str]] = {
    "reference": ["data.p_audio=0.5"],
    "no_gate": ["data.p_audio=0.5", "model.adapters.gate=none"],
    "unshared_xa": ["data.p_audio=0.5", "model.adapters.shared_xa=false"],
    "p_audio_0": ["data.p_audio=0.0"],
    "p_audio_25": ["data.p_audio=0.25"],
    "p_audio_100": ["data.p_audio=1.0"],
    "audio_weight_1": ["data.p_audio=0.5", "optim.audio_weight=1.0"],
    "gate_shift_-1": ["data.p_audio=0.5", "model.adapters.gate_shift=-1.0"],
    "gate_shift_0": ["data.p_audio=0.5", "model.adapters.gate_shift=0.0"],
}
EVAL_CONDITIONS = ("text", "audio_train", "unrelated_adapted", "switching")


@dataclass
class AblationConfig:
    work: str = "runs/tinyworld"  # the recipe's work folder (its base and data stages must be done)
    # The adapters' dialogues: the recipe's adapter_data; "image_data" (the ones the base heard) is what the
    # ablation table of stop 11/12 was measured on.
    data_stage: str = "adapter_data"
    steps: int = 250
    variants: tuple[str, ...] = tuple(VARIANTS)
    questions: int = 300
    unrelated: int = 100
    switching: int = 50
    batch_size: int = 16
    max_frames: int = 160
    seed: int = 0
    max_answer_frames: int = 150
    switching_answer_frames: int = 60
    extra: list[str] = field(default_factory=list)  # more training overrides for every variant
    progress: bool = True
    # A base that is not the recipe's: its checkpoint (adapters are made fresh), the adapters' shards, the
    # tokenizer and codec its bundles use, and the folder for the table. None: the recipe's, from `work`.
    base: str | None = None
    shards: list[str] | None = None
    tokenizer: str | None = None
    codec: str | None = None
    out: str | None = None

    def __post_init__(self) -> None:
        given = {k: getattr(self, k) for k in ("base", "shards", "tokenizer", "codec", "out")}
        if given["base"] is not None and any(v is None for v in given.values()):
            missing = [f"--{k}" for k, v in given.items() if v is None]
            raise ValueError(f"--base {self.base}: an ablation on another base also needs {', '.join(missing)}")


def ablation_dir(cfg: AblationConfig) -> Path:
    """work/ablations/<data stage>-<steps>: variants trained on other dialogues or for another number of
    steps are kept apart (only rows of one folder compare). With `base`: out/<steps>."""
    if cfg.base is not None:
        return Path(cfg.out) / str(cfg.steps)
    return Path(cfg.work) / "ablations" / f"{cfg.data_stage}-{cfg.steps}"


def _sources(cfg: AblationConfig) -> tuple[str, str, str, str]:
    """(base checkpoint, adapter shards as one comma list, tokenizer, codec folder)."""
    if cfg.base is not None:
        for path in (cfg.base, *cfg.shards, cfg.tokenizer, cfg.codec):
            if not Path(path).exists():
                raise FileNotFoundError(f"ablations: {path} does not exist")
        return cfg.base, ",".join(cfg.shards), cfg.tokenizer, cfg.codec
    work = Path(cfg.work)
    return (frozen_base(work), stage_result(work, cfg.data_stage)["shards"],
            stage_result(work, "tokenizer")["tokenizer"], stage_result(work, "codec")["codec"])


def train_variant(cfg: AblationConfig, name: str) -> Path:
    """Adapters of one variant, trained from the recipe's base; returns the bundle folder (resumable)."""
    from ..inference.bundle import write_bundle_file
    from ..models.loaders import load_adapters, load_model, save_checkpoint
    from ..train.config import load_config
    from ..train.trainer import Trainer

    if name not in VARIANTS:
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(VARIANTS)}")
    base, shards, tokenizer, codec = _sources(cfg)
    out = ablation_dir(cfg) / name
    bundle = out / "bundle"
    if (bundle / "bundle.json").is_file():
        return bundle
    # The recipe's adapter run, with fresh adapters of the variant's kind; the variant's overrides come last.
    tc = load_config(None, [*run_overrides(out / "run", cfg.seed, cfg.batch_size, cfg.max_frames, cfg.steps),
                            # the recipe's default adapter settings: each variant changes one of them
                            *adapter_overrides(base, shards, cfg.steps, RecipeConfig.adapter_warmup_steps,
                                               RecipeConfig.adapter_audio_weight),
                            *VARIANTS[name], *cfg.extra])
    Trainer(tc).run(resume=True, show_progress=cfg.progress)
    last = sorted((out / "run" / "checkpoints").iterdir())[-1] / "model.safetensors"
    from ..train.setup import model_config

    model = load_model(base, model_config(tc), fresh_adapters=True)
    load_adapters(model, last)
    bundle.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, bundle / "model.safetensors")
    write_bundle_file(bundle, "model.safetensors", str(Path(tokenizer).resolve()), f"tiny:{Path(codec).resolve()}")
    return bundle


def run_ablations(cfg: AblationConfig) -> dict[str, Any]:
    """Train and score every variant; writes `ablations.json` and `ablations.md` in `ablation_dir`."""
    from .results import ResultsConfig, evaluate

    out = ablation_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    rows = previous_rows(out, cfg)  # a run of some variants keeps the others' rows
    for name in cfg.variants:
        bundle = train_variant(cfg, name)
        res = evaluate(ResultsConfig(bundle=str(bundle), out=str(out / name / "results"), questions=cfg.questions,
                                     unrelated=cfg.unrelated, switching=cfg.switching, batch_size=cfg.batch_size,
                                     seed=cfg.seed, conditions=EVAL_CONDITIONS, progress=cfg.progress,
                                     max_answer_frames=cfg.max_answer_frames,
                                     switching_answer_frames=cfg.switching_answer_frames))
        rows[name] = row(res)
        rows = {k: rows[k] for k in sorted(rows, key=_variant_order)}
        (out / "ablations.json").write_text(json.dumps({**_sizes(cfg), "rows": rows}, indent=1))
        (out / "ablations.md").write_text(markdown(rows, cfg))
    return rows


def row(res: dict[str, Any]) -> dict[str, Any]:
    """One variant's table row from its `tinyworld.results.evaluate` scores."""
    return {"text": res["text"]["all"]["accuracy"], "audio": res["audio_train"]["all"]["accuracy"],
            "unrelated": res["unrelated"]["adapted"]["accuracy"], "gate_image": res["audio_train"]["gate_mean"],
            "gate_unrelated": res["unrelated"]["adapted"]["gate_mean"],
            "switch_q3": res["switching"]["unrelated_q3"]["accuracy"],
            "switch_gate_q3": res["switching"]["unrelated_q3"]["gate_mean"]}


def _sizes(cfg: AblationConfig) -> dict[str, int]:
    return {"steps": cfg.steps, "questions": cfg.questions, "unrelated": cfg.unrelated, "switching": cfg.switching}


def _variant_order(name: str) -> tuple[int, str]:
    names = list(VARIANTS)
    return (names.index(name) if name in names else len(names), name)


def previous_rows(out: Path, cfg: AblationConfig) -> dict[str, Any]:
    """Rows an earlier run wrote in `out/ablations.json`, if it measured at the same sizes (a file from
    before the sizes were recorded holds only `steps`, which the folder name already fixes); else {}."""
    path = out / "ablations.json"
    if not path.is_file():
        return {}
    try:
        prev = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e}); move it away to start the table afresh") from None
    if any(prev.get(k, v) != v for k, v in _sizes(cfg).items()):
        return {}
    return dict(prev.get("rows", {}))


def markdown(rows: dict[str, Any], cfg: AblationConfig) -> str:
    data = (f"data of the {cfg.data_stage} stage" if cfg.base is None
            else f"base {cfg.base}, data {', '.join(cfg.shards or [])}")
    lines = [f"Ablations: fresh adapters, {cfg.steps} steps each, same frozen base, {data}; easy-vqa test "
             f"{cfg.questions} questions, {cfg.unrelated} unrelated questions, {cfg.switching} switching "
             "conversations (accuracy %)", "",
             "| variant | text prompt | audio prompt | unrelated (with image) | switching: unrelated Q3 | "
             "gate: image Q | gate: unrelated Q | gate: switching Q3 |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        def g(v: float | None) -> str:
            return "-" if v is None else f"{v:.3f}"
        lines.append(f"| {name} | {r['text']:.1f} | {r['audio']:.1f} | {r['unrelated']:.1f} | {r['switch_q3']} | "
                     f"{g(r['gate_image'])} | {g(r['gate_unrelated'])} | {g(r['switch_gate_q3'])} |")
    return "\n".join(lines) + "\n"
