"""The embedded bundle's model card (`tinyworld/bundle/README.md`), written from what was recorded.

Every number comes from a file: the recipe's `done.json` markers (settings, stage seconds, the base's
probe), the shard manifests (sample counts, audio hours), the bundle's config and files, and the
`results.json` of `moshivis tinyworld results`. Nothing is typed in by hand, so the card cannot drift from
the run it describes.

    moshivis tinyworld card --work runs/tinyworld --results runs/tinyworld/results/results.json

A bundle that `moshivis tinyworld build` did not make (the shipped one since stop 23 came from the session
scripts' chain) gets `--provenance FILE` instead: that file's Markdown says how the weights were made, and
the recipe's stage table is left out rather than filled with stages that did not make these weights.

    moshivis tinyworld card --provenance tinyworld/PROVENANCE.md --results tinyworld/results/results.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .markers import DONE
from .recipe import STAGES
from .stages import LISTEN_MAX_FRAMES


def _done(work: Path, name: str) -> dict[str, Any] | None:
    path = work / name / DONE
    return json.loads(path.read_text()) if path.is_file() else None


def _manifest_kinds(shards: str | None) -> dict[str, Any]:
    if not shards:
        return {}
    path = Path(shards) / "manifest.json"
    return json.loads(path.read_text()).get("kinds", {}) if path.is_file() else {}


def model_card(work: str | Path, results: dict[str, Any] | None, bundle: str | Path,
               provenance: str | None = None) -> str:
    """Markdown for the bundle folder's README.md. provenance: Markdown that replaces the recipe's stage
    table and probe (for weights the recipe did not build)."""
    from .results import markdown

    work, bundle = Path(work), Path(bundle)
    files = sorted(p for p in bundle.iterdir() if p.is_file() and p.name != "README.md")
    bundle_json = json.loads((bundle / "bundle.json").read_text()) if (bundle / "bundle.json").is_file() else {}
    cfg = _model_config(bundle / bundle_json.get("model", "model.safetensors"))
    lines = ["# tinyworld: the embedded MoshiVis", "",
             "A miniature of the paper's system trained by this project's own code on a 2-core CPU: a Mimi-shaped "
             "tiny codec, a tiny Moshi (text + 8 audio streams per side, full duplex), a frozen SigLIP tower "
             "pre-trained on easy-vqa, and gated cross-attention adapters trained with the paper's recipe. It "
             "answers spoken or typed questions about easy-vqa images (a coloured shape on a plain background).",
             "", "```bash", "moshivis demo                                   # a spoken question, answered in real time",
             "moshivis ask --image IMG --text \"what color is the shape?\" --json", "```", "", "## Files", "",
             "| file | bytes |", "|---|---|"]
    lines += [f"| `{p.name}` | {p.stat().st_size:,} |" for p in files]
    lines.append(f"| total | {sum(p.stat().st_size for p in files):,} |")
    if cfg is not None:
        lm, ad = cfg.lm, cfg.adapters
        lines += ["", "## Model", "",
                  f"- temporal transformer: dim {lm.temporal.dim} x {lm.temporal.num_layers} layers, "
                  f"{lm.temporal.num_heads} heads; depformer dim {lm.depformer.dim} x {lm.depformer.num_layers}",
                  f"- text vocabulary {lm.text_card}, audio codebooks of {lm.audio_card} codes",
                  f"- inputs of the temporal transformer: audio streams {list(lm.audio_inputs)} of 0..{lm.n_q - 1} "
                  "(the semantic codebook of each side; the acoustic ones are predicted, not fed back)",
                  f"- vision: SigLIP tower hidden {cfg.vision.hidden_size} x {cfg.vision.num_layers} layers, "
                  f"{cfg.vision.image_size} px, {cfg.vision.num_tokens} tokens, frozen" if cfg.vision else "- no vision",
                  f"- adapters: shared cross-attention {ad.shared_xa}, gate {ad.gate}" if ad else "- no adapters"]
    if provenance is not None:
        lines += ["", "## How these weights were made", "", provenance.strip()]
    else:
        lines += _recipe_section(work)
    if results:
        lines += ["", "## Results (`moshivis tinyworld results`)", "", markdown(results)]
    lines += ["", "## Limits", "",
              "- easy-vqa only: 8 colours x 3 shapes on plain backgrounds, 13 answers; the base knows a few hundred "
              "templated facts (arithmetic, counting, colours of things, days, yes/no).",
              "- Synthetic voices only (piper, flite, espeak-ng); one voice family is held out for evaluation.",
              "- Random weights would say nothing; these were trained once with seed 0."]
    return "\n".join(lines) + "\n"


def _recipe_section(work: Path) -> list[str]:
    """The recipe's stage table (seconds and what each stage recorded) and the base's probe."""
    lines = ["", "## Recipe (`moshivis tinyworld build`)", "",
             "| stage | seconds | what it recorded |", "|---|---|---|"]
    total = 0.0
    for name in STAGES:
        d = _done(work, name)
        if d is None:
            lines.append(f"| {name} | - | not built in {work} |")
            continue
        total += d.get("seconds") or 0.0
        lines.append(f"| {name} | {d.get('seconds')} | {_summary(name, d)} |")
    lines += [f"| total (stage time as recorded; a resumed stage counts only its last run) | {total:.0f} | |"]
    probes = [(name, p) for name in ("base", "base_listen")
              if (p := (_done(work, name) or {}).get("result", {}).get("probe"))]
    if probes:
        lines += ["", "Base probe (teacher-forced first word of Moshi's turn / every word start, `eval/turn_probe.py`):",
                  "", "| after | dialogues | first word of turn | word starts | samples |", "|---|---|---|---|---|"]
        for name, probe in probes:
            for side, label in (("train", "its training dialogues"), ("heldout", "new dialogues, same generator")):
                if side in probe:
                    p = probe[side]
                    lines.append(f"| {name} | {label} | {p['turn_accuracy']:.2f} | {p['word_accuracy']:.2f} "
                                 f"| {p['samples']} |")
    return lines


def _summary(name: str, d: dict[str, Any]) -> str:
    r = d.get("result", {})
    s = d.get("settings", {}).get("fields", {})  # the stage's own recipe fields
    if name in ("base_data", "image_data", "adapter_data"):
        kinds = _manifest_kinds(r.get("shards"))
        parts = [f"{k} {v['samples']:,} ({v.get('audio_hours', 0):.1f} h audio)" for k, v in kinds.items()]
        return "; ".join(parts) or "-"
    if name in ("base", "base_listen", "adapters"):
        steps = s.get({"base": "base_steps", "base_listen": "listen_steps", "adapters": "adapter_steps"}[name])
        frames = LISTEN_MAX_FRAMES if name == "base_listen" else s.get("max_frames")  # base_listen: whole dialogues
        loss = r.get("final_loss")
        return (f"{steps} steps x batch {s.get('batch_size')} x <= {frames} frames"
                + (f", final loss {loss:.3f}" if isinstance(loss, (int, float)) else ""))
    if name == "bundle":
        return f"{r.get('bytes', 0):,} bytes"
    return ", ".join(f"{k}={v}" for k, v in s.items() if k not in ("work", "artefacts", "smoke", "seed")) or "-"


def _model_config(path: Path):
    from ..models.loaders import checkpoint_config

    return checkpoint_config(path) if path.is_file() else None


def _read_given(path: str | Path, what: str) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return Path(path).read_text()


def write_model_card(work: str | Path, results_path: str | Path | None, bundle: str | Path,
                     provenance_path: str | Path | None = None) -> Path:
    """Write the card to `bundle`/README.md. A results or provenance path that is given but missing is a
    FileNotFoundError naming it, raised before the old card is touched."""
    results = json.loads(_read_given(results_path, "results")) if results_path else None
    provenance = _read_given(provenance_path, "provenance") if provenance_path is not None else None
    out = Path(bundle) / "README.md"
    out.write_text(model_card(work, results, bundle, provenance))
    return out
