"""An evaluation report next to the paper's numbers: JSON, a Markdown table, and a bar plot.

References (percent / CIDEr x 100):
- PaliGemma 224 px, stage-3 transfer (the vision-language model MoshiVis' image encoder comes from):
  COCO 141.9 CIDEr, VQAv2 83.2, OCR-VQA 73.2 - from its paper's tables.
- MoshiVis at p_audio = 25 % (share of speech-prompted training data), text vs audio prompts: read off the
  MoshiVis paper's figure by eye, so about +-1 point: OCR-VQA ~68 text / ~65 audio, VQAv2 ~79 / ~71,
  COCO ~126 / ~123. They are marked "~" wherever shown.

Input: the dicts `moshivis.eval.score.score` returns (one per benchmark). "Ours" is the headline number of
the text-stream answers, per prompt kind.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from moshivis.eval.benchmarks import canonical_name

__all__ = ["PAPER_REFERENCES", "build_report", "markdown_table", "plot_report", "write_report"]

PAPER_REFERENCES: dict[str, dict[str, Any]] = {
    "paligemma_224_stage3": {
        "label": "PaliGemma-224 (stage 3)", "approximate": False,
        "scores": {"coco": 141.9, "vqav2": 83.2, "ocrvqa": 73.2},
    },
    "moshivis_p25_text": {
        "label": "MoshiVis p_audio 25% (text prompt, ~)", "approximate": True,
        "scores": {"coco": 126.0, "vqav2": 79.0, "ocrvqa": 68.0},
    },
    "moshivis_p25_audio": {
        "label": "MoshiVis p_audio 25% (audio prompt, ~)", "approximate": True,
        "scores": {"coco": 123.0, "vqav2": 71.0, "ocrvqa": 65.0},
    },
}
_METRIC_LABEL = {"accuracy": "VQA accuracy", "exact_match": "accuracy (exact match)", "cider": "CIDEr-D",
                 "easy_vqa_accuracy": "accuracy (answer word)"}


def _reference_key(benchmark: str) -> str:
    """The paper's name for a benchmark: babillage configs compare with their base benchmark."""
    base, config = canonical_name(benchmark)
    return config if base == "babillage" and config else base


def build_report(scores: Iterable[Mapping[str, Any]], run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """{"run": ..., "rows": [one per benchmark: ours per prompt + references], "scores": the inputs}."""
    rows = []
    all_scores = list(scores)
    for s in all_scores:
        key = _reference_key(str(s["benchmark"]))
        prompts = s.get("prompts", {})
        row: dict[str, Any] = {
            "benchmark": s["benchmark"], "reference_key": key,
            "metric": "easy_vqa_accuracy" if s.get("family") == "easy_vqa" else s["headline_metric"],
            "ours_text": prompts.get("text", {}).get("headline"),
            "ours_audio": prompts.get("audio", {}).get("headline"),
            "coverage": {p: b.get("coverage") for p, b in prompts.items()},
            "references": {name: ref["scores"].get(key) for name, ref in PAPER_REFERENCES.items()},
        }
        for p, b in prompts.items():
            if "asr_vs_text" in b:
                row.setdefault("asr", {})[p] = {"wer": b["asr_vs_text"]["wer"],
                                                "agreement": b["asr_vs_text"]["agreement"]}
        rows.append(row)
    return {"run": dict(run or {}), "rows": rows, "references": PAPER_REFERENCES, "scores": all_scores}


def _fmt(value: Any, approximate: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"~{value:.0f}" if approximate else f"{value:.1f}"


def markdown_table(report: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table (and an ASR table when transcripts were scored)."""
    refs = PAPER_REFERENCES
    head = ["benchmark", "metric", "ours (text prompt)", "ours (audio prompt)"] + [r["label"] for r in refs.values()]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["rows"]:
        cells = [str(row["benchmark"]), _METRIC_LABEL.get(row["metric"], row["metric"]),
                 _fmt(row["ours_text"]), _fmt(row["ours_audio"])]
        cells += [_fmt(row["references"].get(name), ref["approximate"]) for name, ref in refs.items()]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("`~`: read off the MoshiVis paper's figure (about +-1 point). Missing predictions score 0; "
                 "coverage is in report.json.")
    asr_rows = [(row["benchmark"], p, v) for row in report["rows"] for p, v in row.get("asr", {}).items()]
    if asr_rows:
        lines += ["", "| benchmark | prompt | WER spoken vs text (%) | agreement (%) |", "|---|---|---|---|"]
        lines += [f"| {b} | {p} | {v['wer']:.1f} | {v['agreement']:.1f} |" for b, p, v in asr_rows]
    return "\n".join(lines) + "\n"


def plot_report(report: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Grouped bars per benchmark: ours (text, audio prompt) beside the references. PNG via Agg."""
    import matplotlib

    matplotlib.use("Agg")  # no display; also safe when another backend was chosen earlier
    import matplotlib.pyplot as plt

    rows = report["rows"]
    series: list[tuple[str, list[float | None], str]] = [
        ("ours (text prompt)", [r["ours_text"] for r in rows], "tab:blue"),
        ("ours (audio prompt)", [r["ours_audio"] for r in rows], "tab:cyan"),
    ]
    colours = {"paligemma_224_stage3": "tab:gray", "moshivis_p25_text": "tab:orange",
               "moshivis_p25_audio": "tab:red"}
    for name, ref in PAPER_REFERENCES.items():
        series.append((ref["label"], [r["references"].get(name) for r in rows], colours.get(name, "black")))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(rows) + 2), 4.5))
    for k, (label, values, colour) in enumerate(series):
        xs = [i + (k - (len(series) - 1) / 2) * width for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        hatch = "//" if "~" in label else None
        ax.bar(xs, ys, width, label=label, color=colour, hatch=hatch, edgecolor="white" if hatch else None)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([f"{r['benchmark']}\n({_METRIC_LABEL.get(r['metric'], r['metric'])})" for r in rows])
    ax.set_ylabel("score (accuracy % / CIDEr x100)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Ours vs published numbers (~: read off the paper's figure)")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """report.json, report.md and report.png in `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / "report.png"}
    paths["json"].write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_table(report), encoding="utf-8")
    plot_report(report, paths["plot"])
    return paths
