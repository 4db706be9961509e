"""The embedded model's recipe at toy sizes (what CI can afford): every stage runs for real (codec
training, SigLIP pre-training, tokenizer, spoken data synthesis with the new codec, base pre-training,
adapter training, bundle), the bundle answers through `ask`, and a rerun skips finished stages."""

from __future__ import annotations

import shutil
from pathlib import Path

import easy_vqa
import pytest

from moshivis.inference.ask import AskConfig, ask
from moshivis.inference.bundle import load_bundle
from moshivis.models.vision import preprocess_images
from moshivis.tinyworld.recipe import STAGES, RecipeConfig, build

pytestmark = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                reason="the recipe's user voices need flite and espeak-ng (Debian packages)")


# The `smoke` build (config, build result, log lines) is a session fixture in conftest.py: the chain's
# test (test_chain.py) starts from the same build.


@pytest.fixture(scope="module")
def smoke_bundle(smoke) -> str:
    return smoke[1]["bundle"]["result"]["bundle"]


def test_smoke_build_end_to_end(tmp_path, smoke):
    cfg, result, logs = smoke
    assert list(result) == list(STAGES)
    bundle = load_bundle(result["bundle"]["result"]["bundle"])
    assert bundle.model.cfg.name == "tinyworld"
    image = easy_vqa.get_test_image_paths()[0]
    embeds = bundle.model.encode_image(preprocess_images(image, bundle.model.cfg.vision.image_size))
    out = ask(bundle.model, bundle.tokenizer, bundle.codec, embeds, question_text="what shape is in the image",
              cfg=AskConfig(max_answer_frames=10))
    assert out.frames > 0 and isinstance(out.answer, str)
    # The base's probe ran on its training dialogues and on new ones (another seed).
    probe = result["base"]["result"]["probe"]
    assert set(probe) == {"train", "heldout"} and all(p["samples"] == 2 and p["word_starts"] > 0 for p in probe.values())
    # `moshivis demo` on that bundle: a spoken question by piper, an answer streamed and written to WAV.
    from moshivis.cli import main

    wav = tmp_path / "answer.wav"
    assert main(["demo", "--bundle", result["bundle"]["result"]["bundle"], "--out", str(wav), "--json"]) == 0
    assert wav.stat().st_size > 44
    # A second build finds every stage done with the same settings.
    again: list[str] = []
    build(cfg, log=again.append)
    assert all("skipped" in line for line in again) and len(again) == len(STAGES)


def test_model_card_is_written_from_the_records(smoke, smoke_bundle):
    """`moshivis tinyworld card`: files with sizes, the model's inputs, every stage's seconds, the probe."""
    from moshivis.cli import main

    cfg = smoke[0]
    assert main(["tinyworld", "card", "--work", cfg.work, "--bundle", smoke_bundle]) == 0
    card = (Path(smoke_bundle) / "README.md").read_text()
    assert "| `model.safetensors` |" in card and "audio streams [0, 8]" in card
    for name in STAGES:
        assert f"| {name} | " in card and f"not built" not in card
    assert "its training dialogues" in card and "| base_listen | new dialogues" in card
    assert "| base | " in card and f"{cfg.scaled().base_steps} steps x batch {cfg.scaled().batch_size}" in card


def test_model_card_with_provenance_replaces_the_recipe_table(tmp_path, smoke_bundle, capsys):
    """Weights `tinyworld build` did not make: the card says how they were made, not the recipe's stages;
    a missing provenance or results file is an error that names it (exit 2), and the old card stays."""
    import shutil

    from moshivis.cli import main

    bundle = tmp_path / "bundle"
    shutil.copytree(smoke_bundle, bundle)
    prov = tmp_path / "PROVENANCE.md"
    prov.write_text("Made by `scripts/chain.sh`, steps 1-8.\n")
    assert main(["tinyworld", "card", "--work", str(tmp_path / "nowhere"), "--bundle", str(bundle),
                 "--provenance", str(prov)]) == 0
    card = (bundle / "README.md").read_text()
    assert "## How these weights were made" in card and "`scripts/chain.sh`, steps 1-8." in card
    assert "## Recipe" not in card and "not built" not in card and "| `model.safetensors` |" in card
    for missing in (["--provenance", str(tmp_path / "gone.md")], ["--results", str(tmp_path / "gone.json")]):
        assert main(["tinyworld", "card", "--bundle", str(bundle), *missing]) == 2
        assert "gone." in capsys.readouterr().err
        assert (bundle / "README.md").read_text() == card


def test_results_harness_runs_every_condition_and_resumes(tmp_path, smoke_bundle):
    """`moshivis tinyworld results` on a smoke bundle: every condition produces its table row, and a rerun
    answers nothing again (predictions are resumed, not recomputed)."""
    from moshivis.tinyworld.results import ResultsConfig, evaluate

    cfg = ResultsConfig(bundle=smoke_bundle, out=str(tmp_path / "res"), questions=4,
                        unrelated=2, switching=2, asr_answers=2, batch_size=4, progress=False,
                        max_answer_frames=12, switching_answer_frames=8)
    res = evaluate(cfg)
    for key in ("text", "audio_train", "audio_heldout", "blind", "majority"):
        assert res[key]["all"]["n"] == 4 and res[key]["seen"]["n"] == 2 and res[key]["held-out"]["n"] == 2
    assert res["spoken_answers"]["n"] == 2
    assert res["unrelated"]["base"]["accuracy"] >= 0
    # A toy model may say nothing in 12 frames; an answer with words has gates (sigmoid > 0), one without adds 0.
    import json

    said = [json.loads(line)["answer"] for line in (tmp_path / "res" / "unrelated_adapted.jsonl").open()]
    gate = res["unrelated"]["adapted"]["gate_mean"]
    assert gate > 0 if any(a.strip() for a in said) else gate >= 0, (said, gate)
    assert res["switching"]["unrelated_q3"]["n"] == 2
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "res").glob("*.jsonl")}
    assert len(sizes) == 9  # 8 conditions + the sample itself (questions.jsonl)
    evaluate(cfg)
    assert {p.name: p.stat().st_size for p in (tmp_path / "res").glob("*.jsonl")} == sizes
    assert "| text prompt, image |" in (tmp_path / "res" / "results.md").read_text()


def test_ablation_variants_train_from_the_base_and_are_scored(smoke):
    """Two architecture ablations (no gate, unshared cross-attention) from the smoke base: fresh adapters
    of the new kind, the base LM and tower untouched, a row of scores each."""
    import torch

    from moshivis.models.loaders import load_model
    from moshivis.tinyworld.ablations import AblationConfig, ablation_dir, run_ablations

    cfg, result, _ = smoke
    acfg = AblationConfig(work=cfg.work, steps=2, variants=("no_gate", "unshared_xa"), questions=2, unrelated=2,
                          switching=1, batch_size=2, max_frames=64, progress=False, max_answer_frames=6,
                          switching_answer_frames=4)
    rows = run_ablations(acfg)
    assert set(rows) == {"no_gate", "unshared_xa"}
    base = load_model(result["base_listen"]["result"]["checkpoint"])  # the frozen base: after its last phase
    for name, adapters in (("no_gate", {"gate": "none"}), ("unshared_xa", {"shared_xa": False})):
        model = load_model(ablation_dir(acfg) / name / "bundle" / "model.safetensors")
        for k, v in adapters.items():
            assert getattr(model.cfg.adapters, k) == v
        for k, v in base.lm.state_dict().items():
            assert torch.equal(model.lm.state_dict()[k], v), k
    md = (ablation_dir(acfg) / "ablations.md").read_text()
    assert "| no_gate |" in md and "adapter_data stage" in md


def test_ablation_on_a_given_base(tmp_path, smoke):
    """`--base` etc.: the variants start from any checkpoint (here the smoke bundle, whose adapters are
    replaced), on the given shards, with extra overrides after the recipe's adapter settings."""
    import torch

    from moshivis.models.loaders import load_model
    from moshivis.tinyworld.ablations import AblationConfig, ablation_dir, run_ablations
    from moshivis.tinyworld.recipe import stage_result

    cfg, result, _ = smoke
    bundle = Path(result["bundle"]["result"]["bundle"])
    acfg = AblationConfig(base=str(bundle / "model.safetensors"), shards=[stage_result(cfg.work, "adapter_data")["shards"],
                                                                         stage_result(cfg.work, "base_data")["shards"]],
                          tokenizer=stage_result(cfg.work, "tokenizer")["tokenizer"],
                          codec=stage_result(cfg.work, "codec")["codec"], out=str(tmp_path / "abl"), steps=2,
                          variants=("p_audio_0",), questions=2, unrelated=2, switching=1, batch_size=2, max_frames=64,
                          progress=False, max_answer_frames=6, switching_answer_frames=4,
                          extra=["data.lend_images=1.0", "data.text_lead=1"])
    assert ablation_dir(acfg) == tmp_path / "abl" / "2"
    rows = run_ablations(acfg)
    assert set(rows) == {"p_audio_0"}
    run_cfg = (ablation_dir(acfg) / "p_audio_0" / "run" / "config.yaml").read_text()
    assert "lend_images: 1.0" in run_cfg and "text_lead: 1" in run_cfg and "p_audio: 0.0" in run_cfg
    base = load_model(bundle / "model.safetensors")
    model = load_model(ablation_dir(acfg) / "p_audio_0" / "bundle" / "model.safetensors")
    for k, v in base.lm.state_dict().items():
        assert torch.equal(model.lm.state_dict()[k], v), k
    assert "| p_audio_0 |" in (ablation_dir(acfg) / "ablations.md").read_text()
    with pytest.raises(ValueError, match="also needs --shards, --tokenizer, --codec, --out"):
        AblationConfig(base="x")


def test_stage_settings_follow_dependencies():
    """Changing the adapter steps redoes adapters and bundle only; the base data settings redo the base."""
    import dataclasses

    from moshivis.tinyworld.recipe import stage_settings

    a = RecipeConfig(work="w")
    changed = {n for n in STAGES if stage_settings(a, n) != stage_settings(dataclasses.replace(a, adapter_steps=7), n)}
    assert changed == {"adapters", "bundle"}
    changed = {n for n in STAGES if stage_settings(a, n) != stage_settings(dataclasses.replace(a, base_max_pairs=a.base_max_pairs + 1), n)}
    assert changed == {"base_data", "base", "base_listen", "adapters", "bundle"}
    changed = {n for n in STAGES if stage_settings(a, n) != stage_settings(dataclasses.replace(a, listen_steps=1), n)}
    assert changed == {"base_listen", "adapters", "bundle"}
    changed = {n for n in STAGES
               if stage_settings(a, n) != stage_settings(dataclasses.replace(a, adapter_audio_weight=1.0), n)}
    assert changed == {"adapters", "bundle"}
    # the answer format changes both image dialogue sets and everything trained on them
    for field, value in (("evidence_first", True), ("present_questions", True), ("echo_question", True),
                         ("opener_prob", 0.5)):
        b = dataclasses.replace(a, **{field: value}, **({"evidence_first": True} if field == "echo_question" else {}))
        changed = {n for n in STAGES if stage_settings(a, n) != stage_settings(b, n)}
        assert changed == {"image_data", "base", "base_listen", "adapter_data", "adapters", "bundle"}, field
    # the verdict weight retrains the base; at its default it is not in the settings, so builds recorded
    # before the field existed stay done
    changed = {n for n in STAGES if stage_settings(a, n) != stage_settings(dataclasses.replace(a, verdict_weight=5.0), n)}
    assert changed == {"base", "base_listen", "adapters", "bundle"}
    from moshivis.tinyworld.recipe import ADDED_LATER

    for field in ADDED_LATER:  # e.g. stop 13's build, recorded before evidence_first existed, stays done
        assert all(field not in stage_settings(a, n)["fields"] for n in STAGES), field


def test_verdict_weight_reaches_both_base_phases(smoke, tmp_path):
    """`verdict_weight` != 1 gives both base phases `optim.key_*` with the recipe tokenizer's ' so' and
    verdict openings (here the shipped 1,000-piece tokenizer); at 1 they get none; a tokenizer that cannot
    write ' so' as one piece (the smoke build's 200) is refused by name."""
    import dataclasses
    import json

    from moshivis.data.tokenizer import TextTokenizer
    from moshivis.eval.verdict_probe import verdict_openings
    from moshivis.inference.bundle import EMBEDDED_BUNDLE
    from moshivis.tinyworld.recipe import Stage
    from moshivis.tinyworld.stages import verdict_overrides
    from moshivis.train.config import load_config

    shipped = EMBEDDED_BUNDLE / "tokenizer.model"
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "done.json").write_text(json.dumps({"result": {"tokenizer": str(shipped)}}))
    cfg = RecipeConfig(work=str(tmp_path), verdict_weight=8.0)
    cue, openings = verdict_openings(TextTokenizer(shipped))
    for name in ("base", "base_listen"):
        got = verdict_overrides(Stage(cfg, name))
        assert got == ["optim.key_weight=8.0", f"optim.key_tokens=[{','.join(map(str, [cue, *openings]))}]"]
    assert load_config(None, got).optim.key_tokens == (cue, *openings)
    assert verdict_overrides(Stage(dataclasses.replace(cfg, verdict_weight=1.0), "base")) == []
    with pytest.raises(ValueError, match="'so' must be one token"):
        verdict_overrides(Stage(dataclasses.replace(smoke[0], verdict_weight=8.0), "base"))


def test_adapter_data_is_synthesised_beside_the_other_data_stages(smoke):
    """With its own seed, adapter_data reads nothing of image_data, so the build hands it to the two data
    workers (it ran before the base, not after base_listen), and the base's phases train beside it instead of
    waiting for it; with offset 0 it must wait for image_data."""
    import dataclasses

    from moshivis.tinyworld.recipe import parallel_group

    cfg, _, logs = smoke
    assert parallel_group(cfg, STAGES) == ("base_data", "image_data", "adapter_data")
    assert parallel_group(dataclasses.replace(cfg, adapter_data_seed_offset=0), STAGES) == ("base_data", "image_data")
    assert parallel_group(cfg, tuple(s for s in STAGES if s != "adapter_data")) == ("base_data", "image_data")
    # Only the stages asked for: a rebuild of the image-side data runs its two stages side by side.
    assert parallel_group(cfg, ("image_data", "adapter_data")) == ("image_data", "adapter_data")
    assert parallel_group(cfg, ("base_data", "base")) == ("base_data",)
    # adapter_data began first (a worker took it as soon as one data stage ended)...
    began = {n: (Path(cfg.work) / n / "started.json").stat().st_mtime for n in ("adapter_data", "base")}
    assert began["adapter_data"] < began["base"], began
    # ...and the build did not wait for it before the base: a worker's log lines reach the build's log when
    # its result is collected, which now happens after both base phases, just before the adapters
    started = [line.split()[1] for line in logs if line.endswith(" ...")]
    assert started.index("base") < started.index("base_listen") < started.index("adapter_data") \
        < started.index("adapters"), started


def test_adapters_stage_trains_with_the_recipe_settings(smoke):
    """The adapters stage's run: fresh adapters, the audio loss at the recipe's weight (0.1), its warm-up,
    on adapter_data's shards (read back from the config the trainer wrote)."""
    import yaml

    cfg, result, _ = smoke
    run = yaml.safe_load((Path(result["adapters"]["result"]["run"]) / "config.yaml").read_text())
    assert run["mode"] == "adapters" and run["model"]["fresh_adapters"] is True
    assert run["optim"]["audio_weight"] == cfg.adapter_audio_weight == 0.1
    assert run["optim"]["warmup_steps"] == cfg.adapter_warmup_steps
    assert run["data"]["shards"] == [result["adapter_data"]["result"]["shards"]]


def test_image_reliance_probe_on_the_smoke_build(smoke, smoke_bundle, capsys):
    """`moshivis eval reliance`: answer-word accuracy with the image, none and a wrong one, per kind, on the
    recipe's own adapter dialogues (toy model: only the bookkeeping is checked, not the values)."""
    import json

    from moshivis.cli import main

    shards = smoke[1]["adapter_data"]["result"]["shards"]
    assert main(["eval", "reliance", "--checkpoint", smoke_bundle, "--shards", shards, "--per-kind", "2"]) == 0
    acc = json.loads(capsys.readouterr().out)["key_word_accuracy"]
    assert set(acc) == {"image_speech", "speechless"}
    for block in acc.values():
        assert block["samples"] == 2 and block["tokens"] > 0
        assert all(0.0 <= block[c] <= 1.0 for c in ("image", "none", "wrong"))


def test_adapter_data_with_a_seed_offset_is_new_dialogues(smoke):
    """Offset 1 (the default): the adapters' dialogues are image_data's generator again with another seed,
    so none of them is one the base trained on. Offset 0: image_data's own. (Last in the module: it
    rebuilds the smoke build's adapter_data stage.)"""
    import dataclasses

    from moshivis.data.shards import ShardReader

    cfg, result, _ = smoke
    assert cfg.adapter_data_seed_offset == 1
    shards = result["adapter_data"]["result"]["shards"]
    assert shards != result["image_data"]["result"]["shards"]
    old = {s.id for s in ShardReader(result["image_data"]["result"]["shards"], load_images=False)}
    new = [s for s in ShardReader(shards, load_images=False)]
    assert new and not old & {s.id for s in new}
    assert any(s.kind == "image_speech" for s in new)
    same = build(dataclasses.replace(cfg, adapter_data_seed_offset=0), stages=("adapter_data",), log=lambda _: None)
    assert same["adapter_data"]["result"]["shards"] == result["image_data"]["result"]["shards"]


def test_image_data_stages_pass_the_answer_format_to_the_synth(monkeypatch, tmp_path):
    """`RecipeConfig.evidence_first` / `present_questions` reach the generator of both image dialogue stages."""
    from moshivis.tinyworld import stages as S
    from moshivis.tinyworld.recipe import Stage

    seen: list[tuple[str, bool, bool]] = []
    monkeypatch.setattr(S, "_synth", lambda stage, out, **kw: seen.append(
        (stage.name, kw["dialogues"].evidence_first, kw["dialogues"].present_questions,
         kw["dialogues"].echo_question, kw["dialogues"].opener_prob)) or {})
    for flag in (False, True):
        cfg = RecipeConfig(work=str(tmp_path), evidence_first=flag, present_questions=not flag, echo_question=flag,
                           opener_prob=0.4 if flag else 1.0)
        S.stage_image_data(Stage(cfg, "image_data"))
        S.stage_adapter_data(Stage(cfg, "adapter_data"))
    assert seen == [("image_data", False, True, False, 1.0), ("adapter_data", False, True, False, 1.0),
                    ("image_data", True, False, True, 0.4), ("adapter_data", True, False, True, 0.4)]
    with pytest.raises(ValueError, match="echo_question.*evidence_first"):
        RecipeConfig(work=str(tmp_path), echo_question=True)
    with pytest.raises(ValueError, match="opener_prob"):
        RecipeConfig(work=str(tmp_path), opener_prob=1.5)


def test_subframe_jitter_reaches_every_spoken_data_stage(monkeypatch, tmp_path):
    """`RecipeConfig.subframe_jitter` reaches the synth of base_data, image_data and adapter_data; off, it is
    left out of the stage settings (builds recorded before it existed stay done), on, it redoes the data."""
    from moshivis.tinyworld import stages as S
    from moshivis.tinyworld.recipe import Stage, stage_settings

    captured: list[tuple[str, bool, int]] = []

    def fake_run_synth(sc, resume, progress):  # noqa: ANN001
        captured.append((sc.out_dir, sc.user_subframe_jitter, sc.user_subframe_phases))
        raise StopIteration
    import moshivis.data.synth as synth

    monkeypatch.setattr(synth, "run_synth", fake_run_synth)
    monkeypatch.setattr(S, "_done", lambda stage, name: {"codec": "c", "tokenizer": "t"})
    for flag, phases in ((False, 0), (True, 0), (True, 4)):
        cfg = RecipeConfig(work=str(tmp_path), subframe_jitter=flag, subframe_phases=phases)
        for fn, name in ((S.stage_base_data, "base_data"), (S.stage_image_data, "image_data"),
                         (S.stage_adapter_data, "adapter_data")):
            with pytest.raises(StopIteration):
                fn(Stage(cfg, name))
    assert [(j, p) for _, j, p in captured] == [(False, 0)] * 3 + [(True, 0)] * 3 + [(True, 4)] * 3
    off, on = RecipeConfig(work=str(tmp_path)), RecipeConfig(work=str(tmp_path), subframe_jitter=True)
    four = RecipeConfig(work=str(tmp_path), subframe_jitter=True, subframe_phases=4)
    assert "subframe_jitter" not in stage_settings(off, "image_data")["fields"]
    assert "subframe_phases" not in stage_settings(on, "image_data")["fields"]
    for name in ("base_data", "image_data", "adapter_data", "base", "adapters"):
        assert stage_settings(off, name) != stage_settings(on, name) != stage_settings(four, name), name
