"""One batch of tiny-world training data from the recipe's generators, as a chain `data` step makes it.

The chain (`tinyworld/chain.yaml`) and the experiment scripts (`scripts/*_experiment.sh`,
`scripts/ablations_shipped_base.sh`) both make spoken and typed dialogues through the recipe's codec,
tokenizer, voices and dialogue generators. The body is the chain's `data` mapping:

    generator  "image": easy-vqa image dialogues (`stages._synth`); "base": the base's image-free spoken
               exchanges (`stages._base_dialogues`)
    seed       the generator's seed
    image:     rows (easy-vqa train rows; default all), audio_only (image-free exchanges mixed in),
               dialogues ({DialogueConfig field: value}), and any other SynthConfig field
               (speech_fraction, p_concat, gap_s, transcribe_user, ...)
    base:      n (exchanges), and SynthConfig fields (e.g. audio_only_as: text)

From a shell, the body is one YAML flow mapping:

    python -m moshivis.tinyworld.generate --recipe-work runs/abl/recipe --out runs/abl/b32 \\
        "{generator: image, rows: 380, seed: 32, audio_only: 40, speech_fraction: 1.0, p_concat: 0.2,
          dialogues: {question_types: [properties, mixed, misleading], max_turns: 4, min_turns: 2, ...}}"

The recipe work folder must hold finished codec and tokenizer stages (`moshivis tinyworld build --work W
--reuse-shipped --stages codec vision tokenizer`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from .recipe import RecipeConfig, Stage

GENERATORS = ("image", "base")
# SynthConfig fields the recipe sets itself (its codec, tokenizer, voices, sizes): not a body's to give
RECIPE_SET = frozenset({"out_dir", "source", "dialogues", "seed", "moshi_voice", "user_voices", "codec", "tokenizer",
                        "max_frames", "segment_codes", "user_subframe_jitter", "user_subframe_phases",
                        "samples_per_shard"})
BASE_SET = frozenset({"audio_only", "audio_only_max_pairs", "speech_fraction", "p_concat"})  # fixed for "base"
SMOKE_ROWS = 3  # at most this many rows / exchanges a data step when toy (CI)


class DataBodyError(ValueError):
    """A malformed data body: names the field."""


def check_body(body: Any, where: str = "body", prefix: str = "") -> dict[str, Any]:
    """The body as a dict, or a DataBodyError naming the bad field (before any synthesis starts). where:
    what the body is (e.g. a chain step); prefix: put before field names (the chain's "data.")."""
    from ..data.synth import DialogueConfig, SynthConfig

    if not isinstance(body, dict):
        raise DataBodyError(f"{where}: a data body is a mapping, got {type(body).__name__}")
    gen = body.get("generator")
    if gen not in GENERATORS:
        raise DataBodyError(f"{where}: `{prefix}generator` is {gen!r}; use one of {', '.join(GENERATORS)}")
    if not isinstance(body.get("seed"), int):
        raise DataBodyError(f"{where}: `{prefix}seed` is missing or not an integer")
    own = {"generator", "seed", *(("n",) if gen == "base" else ("rows", "audio_only", "dialogues"))}
    if gen == "base" and not isinstance(body.get("n"), int):
        raise DataBodyError(f"{where}: `{prefix}n` (how many image-free exchanges) is missing or not an integer")
    synth_fields = {f.name for f in dataclasses.fields(SynthConfig)} - RECIPE_SET
    if gen == "base":
        synth_fields -= BASE_SET
    unknown = sorted(set(body) - own - synth_fields)
    if unknown:
        raise DataBodyError(f"{where}: unknown field(s) {unknown} for generator {gen!r}")
    dialogues = body.get("dialogues", {})
    if not isinstance(dialogues, dict):
        raise DataBodyError(f"{where}: `{prefix}dialogues` must be a mapping of DialogueConfig fields")
    bad = sorted(set(dialogues) - {f.name for f in dataclasses.fields(DialogueConfig)})
    if bad:
        raise DataBodyError(f"{where}: `{prefix}dialogues` has unknown field(s) {bad}")
    return dict(body)


def make_data(recipe_cfg: RecipeConfig, body: dict[str, Any], out: Path, toy: bool = False) -> dict[str, Any]:
    """Synthesise `body`'s data into `out` (shards, manifest, report) with the recipe's codec, tokenizer and
    voices. toy: at most SMOKE_ROWS rows / exchanges. -> the synth report."""
    from ..data.synth import DialogueConfig, SourceConfig
    from . import stages as S

    body = check_body(body)
    stage = Stage(recipe_cfg, "image_data")
    if body.pop("generator") == "base":
        n = body.pop("n")
        return S._base_dialogues(stage, out, min(n, SMOKE_ROWS) if toy else n, body.pop("seed"),
                                 samples_per_shard=64, **body)
    rows = body.pop("rows", None)
    rows = min(rows or SMOKE_ROWS, SMOKE_ROWS) if toy else rows
    audio_only = body.pop("audio_only", 0)
    dialogues = DialogueConfig(**body.pop("dialogues", {}))
    if "gap_s" in body:  # a YAML list -> the tuple SynthConfig takes
        body["gap_s"] = tuple(body["gap_s"])
    return S._synth(stage, out, source=SourceConfig(kind="easy-vqa", split="train", limit=rows),
                    dialogues=dialogues, audio_only=min(audio_only, SMOKE_ROWS) if toy else audio_only,
                    seed=body.pop("seed"), samples_per_shard=64, **body)


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m moshivis.tinyworld.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe-work", required=True,
                    help="a `tinyworld build` work folder (codec, tokenizer stages done)")
    ap.add_argument("--out", required=True, help="output folder (shards, manifest.json, report.json)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (piper follows them); 1: one core")
    ap.add_argument("--smoke", action="store_true", help=f"toy sizes: at most {SMOKE_ROWS} rows / exchanges")
    ap.add_argument("body", help="the data body, one YAML flow mapping (see above)")
    args = ap.parse_args(argv)
    try:
        body = check_body(yaml.safe_load(args.body), "body")
    except yaml.YAMLError as e:
        ap.error(f"body: not valid YAML: {e}")
    except DataBodyError as e:
        ap.error(str(e))
    import torch

    torch.set_num_threads(args.threads)
    cfg = RecipeConfig(work=args.recipe_work, reuse_shipped=True, smoke=args.smoke).scaled()
    print(json.dumps(make_data(cfg, body, Path(args.out), toy=args.smoke), default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
