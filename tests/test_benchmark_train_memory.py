"""`benchmarks/train_memory.py` runs (tiny preset, CPU): the GPU figures in the README come from it."""

from __future__ import annotations

import json
import math

from testkit import load_script


def test_train_memory_benchmark_runs_real_steps_on_cpu(capsys):
    mod = load_script("benchmarks/train_memory.py")
    assert mod.main(["model.preset=tiny", "--micro-batch", "2", "--frames", "20", "--steps", "3",
                     "--device", "cpu", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["preset"] == "tiny" and r["mode"] == "adapters" and r["target_tokens_per_step"] == 2 * 9 * 20
    assert len(r["losses"]) == 3 and all(math.isfinite(x) for x in r["losses"])
    assert r["losses"][-1] < r["losses"][0]  # real optimizer steps on a fixed batch lower its loss
    assert r["predicted_gb"]["total"] > 0 and r["measured_gb"] is None  # no allocator to read on CPU
