"""Loss curves of a run, from its metrics.jsonl, as a PNG."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Last entry per step (a resumed run may have logged some steps twice)."""
    by_step: dict[int, dict] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            m = json.loads(line)
            by_step[m["step"]] = m
    return [by_step[s] for s in sorted(by_step)]


def plot_metrics(metrics_file: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_file)
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "text_loss", "audio_loss"):
        axes[0].plot(steps, [r[key] for r in rows], label=key)
    axes[0].set_xlabel("step")
    axes[0].set_title("training loss")
    axes[0].legend()
    kinds = sorted({k for r in rows for k in r.get("loss_by_kind", {})})
    for kind in kinds:
        pts = [(r["step"], r["loss_by_kind"][kind]) for r in rows if kind in r.get("loss_by_kind", {})]
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], label=kind)
    gates = [(r["step"], r["gate_related"]) for r in rows if r.get("gate_related") is not None]
    if gates:
        ax2 = axes[1].twinx()
        ax2.plot([g[0] for g in gates], [g[1] for g in gates], "k--", label="mean gate (image turns)")
        ax2.set_ylabel("gate")
        ax2.legend(loc="upper right")
    axes[1].set_xlabel("step")
    axes[1].set_title("per-sample CE by kind")
    if kinds:
        axes[1].legend(loc="upper left")
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
