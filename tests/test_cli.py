"""The `moshivis` command line, run in-process through `main(argv)`."""

from __future__ import annotations

import json
import time

import pytest

from moshivis.cli import main
from moshivis.config import PRESETS, preset
from moshivis.models.loaders import build_model
from moshivis.models.summary import parameter_report


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_info_7b_counts(capsys):
    r = run_json(capsys, ["info", "--preset", "moshika-vis-7b", "--json"])
    assert r["base"] == 7_687_729_152  # REFERENCE.md: Moshi 7B
    assert round(r["adapters"] / 1e6, 1) == 206.2
    assert r["adapters_cross_attention"] == 4 * 4096 * 4096  # one shared Q|K|V + out projection
    assert r["adapters_gates"] == 32 * 2 * 512 * 4096
    assert r["adapters_projection"] == 1152 * 4096 + 4096 + 4096
    assert 400e6 < r["vision_tower"] < 430e6  # SigLIP So400m/14 at 448
    assert r["trainable"] + r["frozen"] == r["total"] == r["base"] + r["adapters"] + r["vision_tower"]
    assert r["build_seconds"] < 30


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_on_meta_in_seconds(name):
    t0 = time.perf_counter()
    model = build_model(preset(name), init=False)
    assert time.perf_counter() - t0 < 30
    assert all(p.is_meta for p in model.parameters())
    assert parameter_report(model)["total"] > 0


def test_small_preset_sizes():
    cfg = preset("small")
    assert (cfg.lm.temporal.dim, cfg.lm.temporal.num_layers) == (1024, 8)
    assert (cfg.lm.depformer.dim, cfg.lm.depformer.num_layers) == (512, 4)
    assert (cfg.lm.audio_card, cfg.lm.text_card, cfg.vision.num_tokens) == (2048, 32000, 1024)


def test_demo_runs_and_reports_speed(capsys):
    r = run_json(capsys, ["demo", "--preset", "tiny", "--steps", "12", "--json"])  # random tiny, not the bundle
    assert r["preset"] == "tiny" and r["steps"] == 12
    assert len(r["text_tokens"]) == 11  # nothing during the one-step acoustic delay
    assert all(len(a) == 8 for a in r["audio_tokens"])
    assert r["step_ms_median"] > 0 and r["realtime_factor"] > 0
    assert all(0 < g < 1 for g in r["gates"])  # an image is shown from step 0


def test_convert_then_generate_from_checkpoint(capsys, tmp_path, fixture_dir):
    ours = tmp_path / "tiny_moshivis.safetensors"
    assert main(["convert", str(fixture_dir / "model.safetensors"), str(ours), "--to", "moshivis",
                 "--preset", "tiny"]) == 0
    capsys.readouterr()
    r = run_json(capsys, ["generate", "--checkpoint", str(ours), "--steps", "6", "--json",
                          "--text-temperature", "0", "--audio-temperature", "0"])
    again = run_json(capsys, ["generate", "--checkpoint", str(ours), "--steps", "6", "--json",
                              "--text-temperature", "0", "--audio-temperature", "0"])
    assert r["text_tokens"] == again["text_tokens"] and len(r["text_tokens"]) == 5


def test_soup_of_two_copies_generates_like_the_original(capsys, tmp_path, fixture_dir):
    ours = tmp_path / "a.safetensors"
    assert main(["convert", str(fixture_dir / "model.safetensors"), str(ours), "--to", "moshivis",
                 "--preset", "tiny"]) == 0
    assert main(["soup", str(ours), str(ours), "--out", str(tmp_path / "soup")]) == 0
    assert "soup of 2 checkpoints" in capsys.readouterr().out
    args = ["--steps", "6", "--json", "--text-temperature", "0", "--audio-temperature", "0"]
    r = run_json(capsys, ["generate", "--checkpoint", str(ours), *args])
    s = run_json(capsys, ["generate", "--checkpoint", str(tmp_path / "soup" / "model.safetensors"), *args])
    assert s["text_tokens"] == r["text_tokens"]
    assert main(["soup", str(ours), str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err


def test_errors_are_one_line(capsys, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    assert main(["generate", "--checkpoint", str(bad), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.safetensors" in err
    assert main(["info", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_eval_score_easy_vqa(tmp_path, capsys):
    from moshivis.eval.benchmarks import load_benchmark

    items = list(load_benchmark("easy-vqa").items)
    preds = tmp_path / "p.jsonl"
    # Right on even items, a fixed wrong answer on odd ones: accuracy = share right.
    rows = [{"id": it.id, "answer": it.answers[0] if i % 2 == 0 else "purple", "prompt": "text"}
            for i, it in enumerate(items)]
    preds.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["eval", "score", "--benchmark", "easy-vqa", "--predictions", str(preds), "--out",
                 str(tmp_path / "rep"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    acc = out["prompts"]["text"]["headline"]
    expected = 100 * sum(1 for i in range(len(items)) if i % 2 == 0) / len(items)
    assert acc is not None and abs(acc - expected) < 0.01, (acc, expected)
    assert (tmp_path / "rep" / "report.md").is_file()


def test_tinyworld_build_refuses_subframe_phases_without_jitter(tmp_path, capsys):
    """--subframe-phases picks the jitter's phases: alone (or negative) it is refused before any stage runs."""
    work = tmp_path / "w"
    assert main(["tinyworld", "build", "--smoke", "--work", str(work), "--subframe-phases", "4"]) == 2
    assert "--subframe-phases 4" in capsys.readouterr().err
    assert main(["tinyworld", "build", "--smoke", "--work", str(work), "--subframe-jitter", "--subframe-phases",
                 "-1"]) == 2
    assert "--subframe-phases -1" in capsys.readouterr().err
    assert not work.exists()


def test_tinyworld_chain_recipe_set_errors_are_named(tmp_path, capsys):
    """`--recipe-set` values that are not FIELD=VALUE, or fields RecipeConfig lacks, stop before any step."""
    work = tmp_path / "w"
    assert main(["tinyworld", "chain", "--smoke", "--work", str(work), "--recipe-set", "centroid_input"]) == 2
    err = capsys.readouterr().err
    assert "--recipe-set" in err and "expected FIELD=VALUE" in err
    assert main(["tinyworld", "chain", "--smoke", "--work", str(work), "--recipe-set", "centroid_inputs=true"]) == 2
    err = capsys.readouterr().err
    assert "--recipe-set" in err and "centroid_inputs" in err and len(err.strip().splitlines()) == 1
    assert not work.exists()
