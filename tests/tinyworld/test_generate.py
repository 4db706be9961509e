"""`python -m moshivis.tinyworld.generate`: one batch of tiny-world data from the recipe's generators, the
chain's `data` step as a command. Bad bodies are refused before any synthesis, naming the field; the
experiment scripts' bodies are valid; a smoke run writes shards with the recipe's codec and tokenizer."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from moshivis.tinyworld.generate import DataBodyError, check_body, main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("body, match", [
    ([1, 2], "a data body is a mapping"),
    ({"generator": "speech", "seed": 0}, r"`generator` is 'speech'"),
    ({"generator": "image"}, r"`seed` is missing"),
    ({"generator": "base", "seed": 0}, r"`n` \(how many image-free exchanges\) is missing"),
    ({"generator": "image", "seed": 0, "rowz": 3}, r"unknown field\(s\) \['rowz'\]"),
    ({"generator": "image", "seed": 0, "codec": "tiny:x"}, r"unknown field\(s\) \['codec'\]"),  # the recipe's own
    ({"generator": "base", "seed": 0, "n": 3, "rows": 3}, r"unknown field\(s\) \['rows'\] for generator 'base'"),
    ({"generator": "image", "seed": 0, "dialogues": [1]}, "`dialogues` must be a mapping"),
    ({"generator": "image", "seed": 0, "dialogues": {"max_turn": 2}},
     r"`dialogues` has unknown field\(s\) \['max_turn'\]"),
])
def test_bad_bodies_name_the_field(body, match):
    with pytest.raises(DataBodyError, match=match):
        check_body(body)


def test_cli_refuses_bad_yaml_and_bad_bodies(capsys, tmp_path):
    for body, match in (("{generator: image, seed: [", "body: not valid YAML"),
                        ("{generator: image, seed: 0, rowz: 1}", "unknown field")):
        with pytest.raises(SystemExit) as e:
            main(["--recipe-work", str(tmp_path), "--out", str(tmp_path / "o"), body])
        assert e.value.code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _generator_defs(text: str) -> str:
    """The shell functions in `text` that call the generator."""
    return "\n".join(m.group(0) for m in re.finditer(r"^\w+\(\) \{[^\n]*\n(?:.*\n)*?\}\n", text, flags=re.M)
                     if "moshivis.tinyworld.generate" in m.group(0))


def _script_bodies() -> list[tuple[str, str]]:
    """(script, body) for every generator call the experiment scripts make, with their real arguments: the
    shared functions (scripts/tinyworld_lib.sh) and each script's own run in bash with `python` replaced by
    one that prints its last argument."""
    lib = _generator_defs((REPO / "scripts" / "tinyworld_lib.sh").read_text())
    assert lib.count("() {") == 3  # synth, base_dialogues, base_text
    out = []
    for script in ("ablations_shipped_base.sh", "spoken_echo_experiment.sh", "transcript_experiment.sh"):
        text = (REPO / "scripts" / script).read_text()
        assert 'source "$(dirname "$0")/tinyworld_lib.sh"' in text, script
        names = "x?synth|drills|base_dialogues|base_text"
        calls = [c.strip() for c in re.findall(rf"(?:\{{ |\|\| |^)((?:{names}) [^&;\n}}]+)", text, flags=re.M)
                 if "${" not in c]  # a loop's calls: the others stand for them
        assert calls, script
        shell = ('python() { printf "%s\\n" "${@: -1}"; }\nTW=tw W=w\n' + lib + "\n" + _generator_defs(text) + "\n"
                 + "\n".join(calls))
        printed = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=True).stdout
        bodies = re.findall(r"^\{generator:.*?\}\}?$", printed.replace("\n    ", " "), flags=re.M)
        assert len(bodies) == len(calls), (script, printed)
        out += [(script, b) for b in bodies]
    return out


def test_the_scripts_bodies_are_valid():
    bodies = _script_bodies()
    assert len(bodies) >= 12
    for script, body in bodies:
        check_body(yaml.safe_load(body), f"{script}: {body}")


def test_smoke_generation_writes_shards(tmp_path, smoke, capsys):
    cfg, _, _ = smoke
    out = tmp_path / "g"
    assert main(["--recipe-work", cfg.work, "--out", str(out), "--smoke",
                 "{generator: image, rows: 2, seed: 3, audio_only: 1, speech_fraction: 1.0, p_concat: 0.0, "
                 "dialogues: {question_types: [properties], min_turns: 2, max_turns: 2, echo_question: true}}"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert report and manifest["num_samples"] > 0
    kinds = {k for k, d in manifest["kinds"].items() if d["samples"]}
    assert {"image_speech", "audio_only"} <= kinds, manifest["kinds"]
