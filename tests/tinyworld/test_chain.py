"""The shipped weights' training chain as one command (`moshivis tinyworld chain`, tinyworld/chain.yaml):
the spec is checked with the step and field named, its key sets are the ones the chain's scripts spelled out,
and at toy sizes every step of the real spec runs, from the recipe's smoke build to a bundle that answers;
a rerun skips everything, and a changed step is redone with what depends on it, nothing else."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import easy_vqa
import pytest
import yaml

from moshivis.tinyworld.chain import DEFAULT_SPEC, Chain, ChainConfig, ChainError, key_tokens, load_spec, parse_steps

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TOKENIZER = REPO / "tinyworld" / "bundle" / "tokenizer.model"


def _scripted(name: str) -> list[int]:
    """A key list as scripts/spoken_echo_experiment.sh spells it (VERDICT, WORDS, POL)."""
    text = (REPO / "scripts" / "spoken_echo_experiment.sh").read_text()
    line = next(x for x in text.splitlines() if x.startswith(f'{name}="optim.key_tokens=['))
    return json.loads(line.split("=", 2)[2].rstrip('"'))


def test_key_sets_are_the_scripts_lists_with_the_shipped_tokenizer() -> None:
    assert key_tokens(SHIPPED_TOKENIZER, "verdict") == _scripted("VERDICT") == [244, 12, 5, 73, 71]
    assert key_tokens(SHIPPED_TOKENIZER, "words") == _scripted("WORDS")
    assert key_tokens(SHIPPED_TOKENIZER, "polarity") == _scripted("POL")
    with pytest.raises(ChainError, match="key set 'colours'"):
        key_tokens(SHIPPED_TOKENIZER, "colours")


def test_the_shipped_spec_leads_to_the_shipped_bundle() -> None:
    steps = parse_steps(load_spec(DEFAULT_SPEC))
    by = {s.name: s for s in steps}
    assert steps[-1].kind == "bundle" and steps[-1].body == {"base": "lc", "adapters": "adc"}

    def lineage(name: str) -> list[str]:
        start = by[name].body["from"]
        return [name] if start == "recipe" else [*lineage(start), name]
    assert lineage("lc") == ["ft", "kw", "kwo", "sft", "hft", "hft2", "hft3", "hp", "hp2", "hp3", "lb", "lc"]
    # training steps as in tinyworld/PROVENANCE.md: 600 + 800 + 400 typed, 500 spoken, 400 x 3, 200 + 400 + 600,
    # 300 + 400; adapters 800
    assert [by[n].body["steps"] for n in lineage("lc")] == [600, 800, 400, 500, 400, 400, 400, 200, 400, 600, 300, 400]
    assert by["adc"].body["steps"] == 800 and "model.fresh_adapters=true" in by["adc"].body["overrides"]


@pytest.mark.parametrize(("steps", "match"), [
    ([{"name": "a"}], r"step 'a' \(steps\[0\]\): give exactly one of data, train"),
    ([{"name": "a", "data": {"generator": "image", "seed": 0}, "train": {}}], "exactly one"),
    ([{"name": "a", "data": {"generator": "speech", "seed": 0}}], r"`data.generator` is 'speech'"),
    ([{"name": "a", "data": {"generator": "base", "seed": 0}}], r"`data.n` \(how many image-free exchanges\) is missing"),
    ([{"name": "t", "train": {"from": "x", "shards": [], "steps": 1}}], r"step 't'.*refers to 'x'"),
    ([{"name": "d", "data": {"generator": "image", "seed": 0}},
      {"name": "d", "data": {"generator": "image", "seed": 1}}], r"step 'd' \(steps\[1\]\): the name is used twice"),
    ([{"name": "t", "train": {"from": "recipe", "shards": [], "steps": 1, "keys": "colours"}}], "train.keys"),
    ([{"name": "t", "train": {"from": "recipe", "shards": [], "steps": 1, "common": "nope"}}], "train.common"),
    ([{"name": "t", "train": {"from": "recipe", "shards": [], "steps": 1, "overrides": ["steps"]}}], "key=value"),
    ([{"name": "b", "bundle": {"base": "recipe"}}], r"`bundle.adapters` is missing"),
])
def test_bad_specs_name_the_step_and_field(steps, match) -> None:
    with pytest.raises(ChainError, match=match):
        parse_steps({"steps": steps, "train_common": {"typed": []}})


def test_bad_spec_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ChainError, match="no such chain spec"):
        load_spec(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("steps: [\n")
    with pytest.raises(ChainError, match="bad.yaml: not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ChainError, match="a mapping with a `steps` list"):
        load_spec(tmp_path / "list.yaml")
    (tmp_path / "r.yaml").write_text("recipe: {base_stepz: 3}\nsteps: []\n")
    with pytest.raises(ChainError, match="RecipeConfig does not have"):
        Chain(ChainConfig(spec=str(tmp_path / "r.yaml"), work=str(tmp_path / "w")))
    with pytest.raises(ChainError, match="--until 'nope'"):
        Chain(ChainConfig(work=str(tmp_path / "w"), until="nope"))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                    reason="the recipe's user voices need flite and espeak-ng (Debian packages)")
def test_smoke_chain_runs_every_step_resumes_and_redoes_what_changed(tmp_path: Path, smoke) -> None:
    from moshivis.inference.ask import AskConfig, ask
    from moshivis.inference.bundle import load_bundle
    from moshivis.models.vision import preprocess_images

    recipe_cfg = smoke[0]
    cfg = ChainConfig(work=str(tmp_path / "chain"), smoke=True, parallel=False, recipe_work=recipe_cfg.work)
    logs: list[str] = []
    out = Chain(cfg, logs.append).run()
    names = [s.name for s in parse_steps(load_spec(DEFAULT_SPEC))]
    assert list(out["steps"]) == names  # every step ran, in order

    # The bundle answers a question about an image.
    bundle = load_bundle(tmp_path / "chain" / "bundle_c" / "bundle")
    embeds = bundle.model.encode_image(preprocess_images(easy_vqa.get_test_image_paths()[0],
                                                         bundle.model.cfg.vision.image_size))
    got = ask(bundle.model, bundle.tokenizer, bundle.codec, embeds, question_text="what color is the shape",
              cfg=AskConfig(max_answer_frames=6))
    assert got.frames > 0
    # A train step got its start, data, steps and key pieces from the spec (toy sizes last).
    chain = Chain(cfg)
    lc = chain.train_overrides(chain.by_name["lc"])
    assert f"model.checkpoint={chain.model_file('lb')}" in lc and "data.user_frame_dropout=0.2" in lc
    assert any(o.startswith("optim.key_tokens=[-1,") for o in lc) and lc[-4:][0] == "steps=2"
    assert json.loads((tmp_path / "chain" / "a31" / "done.json").read_text())["result"]["samples"]

    # A rerun finds everything done.
    again: list[str] = []
    assert Chain(cfg, again.append).run()["steps"] == {}
    assert sum("done before, skipped" in line for line in again if line.startswith("[chain]")) == len(names)

    # One step changed: it and what reads it are redone, nothing upstream or beside it.
    spec = yaml.safe_load(DEFAULT_SPEC.read_text())
    next(s for s in spec["steps"] if s["name"] == "lb")["train"]["steps"] = 250
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(spec))
    redo = Chain(ChainConfig(spec=str(changed), work=cfg.work, smoke=True, parallel=False,
                             recipe_work=recipe_cfg.work), again.append).run()
    assert list(redo["steps"]) == ["lb", "lc", "adc", "bundle_c"]
