"""The embedded model's whole training chain as one resumable command (`moshivis tinyworld chain`).

The shipped weights are not one `tinyworld build`: sessions 18-29 trained on from the recipe's bundle step by
step (typed echo answers, spoken ones, listening phases, polarity weights, image-free exchanges, fresh
adapters, a soup of training seeds). `tinyworld/chain.yaml` writes that chain down as data, and this module
runs it:

    recipe   `tinyworld build` into WORK/recipe (its codec, tower, tokenizer, base, adapters, bundle)
    data     spoken or typed dialogues through the recipe's generators, codec, tokenizer and voices
    train    `moshivis train` from the recipe's bundle or an earlier step, on earlier data steps
    soup     the mean of several train steps' weights (`train.soup`)
    bundle   base + adapters + the recipe's tokenizer and codec, like the shipped `tinyworld/bundle`

Steps refer to earlier ones by name. Each records `done.json` with its settings (and those of every step it
reads) in WORK/<name>; a finished step whose settings are unchanged is skipped, so an interrupted chain
resumes where it stopped, and a changed step is redone with everything downstream of it. Consecutive data
steps run side by side in two processes (one core each), as the recipe's synth stages do. `smoke` runs every
step at toy sizes (CI): at most 3 rows per data step, 2 steps per training run, batch 2.

Key pieces for the loss weight (`optim.key_tokens`) are named, not numbered, and looked up in the recipe's
tokenizer: `verdict` (" so" and the pieces that open a verdict), `words` (the first piece of every easy-vqa
colour and shape word, and the verdict openings, anywhere), `polarity` (`words` and the echo's opening "A" /
"Not"). With the shipped tokenizer they are the lists the chain's scripts spelled out (tested).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .markers import StepMarkers
from .recipe import REPO, RecipeConfig, build, die_with_parent, stage_result

DEFAULT_SPEC = REPO / "tinyworld" / "chain.yaml"
KINDS = ("data", "train", "soup", "bundle")
KEY_SETS = ("verdict", "words", "polarity")
SMOKE_STEPS, SMOKE_BATCH = 2, 2


class ChainError(ValueError):
    """A malformed chain spec: names the step and the field."""


@dataclass
class ChainConfig:
    spec: str = str(DEFAULT_SPEC)
    work: str = "runs/chain"
    smoke: bool = False
    reuse_shipped: bool = False  # the recipe keeps the shipped codec and SigLIP tower (copied into WORK)
    parallel: bool = True  # consecutive data steps in two processes
    until: str | None = None  # stop after this step
    # An existing (or to be made) `tinyworld build` work folder to start from, built with `tinyworld build`'s
    # own settings (its artefacts go where that command puts them). None: a private recipe in WORK/recipe,
    # whose codec, tower and bundle stay in WORK/recipe/artefacts.
    recipe_work: str | None = None
    # RecipeConfig fields set over the spec's `recipe` (`--recipe-set centroid_input=true`): a variant of the
    # chain without a copy of its spec. They are part of the recipe step's settings.
    recipe_set: dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    name: str
    kind: str
    body: dict[str, Any]
    refs: list[str] = field(default_factory=list)  # earlier steps it reads


def parse_recipe_set(items: list[str]) -> dict[str, Any]:
    """["centroid_input=true", "listen_steps=300"] -> {"centroid_input": True, "listen_steps": 300} (values read
    as YAML). Field names are checked against RecipeConfig when the chain starts."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: expected FIELD=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"{item!r}: the value is not YAML ({e.__class__.__name__})") from None
    return out


# ----------------------------------------------------------------------------------------------- the spec
def load_spec(path: str | os.PathLike) -> dict[str, Any]:
    """The spec as a dict: `recipe` (RecipeConfig fields), `train_common` ({group: [key=value, ...]}), `steps`."""
    import yaml

    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ChainError(f"{path}: no such chain spec") from None
    except yaml.YAMLError as e:
        raise ChainError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), list):
        raise ChainError(f"{path}: a chain spec is a mapping with a `steps` list")
    return spec


def parse_steps(spec: dict[str, Any]) -> list[Step]:
    """The steps in order, each checked: one kind, known fields, references to earlier steps only."""
    steps: list[Step] = []
    names: set[str] = {"recipe"}
    common = spec.get("train_common") or {}
    for i, raw in enumerate(spec["steps"]):
        where = f"steps[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ChainError(f"{where}: each step is a mapping with a `name`")
        name = raw["name"]
        where = f"step {name!r} ({where})"
        if name in names:
            raise ChainError(f"{where}: the name is used twice (or is 'recipe')")
        kinds = [k for k in KINDS if k in raw]
        extra = sorted(set(raw) - {"name", *KINDS})
        if len(kinds) != 1 or extra:
            raise ChainError(f"{where}: give exactly one of {', '.join(KINDS)} (got {kinds}; unknown {extra})")
        kind = kinds[0]
        body = raw[kind]
        if not isinstance(body, dict):
            raise ChainError(f"{where}: `{kind}` must be a mapping")
        refs = _refs(kind, body, where, common)
        for ref in refs:
            if ref not in names:
                raise ChainError(f"{where}: refers to {ref!r}, which is not an earlier step")
        steps.append(Step(name, kind, body, refs))
        names.add(name)
    return steps


def _refs(kind: str, body: dict[str, Any], where: str, common: dict[str, Any]) -> list[str]:
    def need(key: str, types: type | tuple[type, ...]) -> Any:
        if key not in body or not isinstance(body[key], types):
            raise ChainError(f"{where}: `{kind}.{key}` is missing or not {types}")
        return body[key]

    if kind == "data":
        from .generate import DataBodyError, check_body

        try:
            check_body(body, where, prefix="data.")
        except DataBodyError as e:
            raise ChainError(str(e)) from None
        return []
    if kind == "train":
        start = need("from", str)
        shards = need("shards", list)
        need("steps", int)
        keys = body.get("keys")
        if keys is not None and keys not in KEY_SETS:
            raise ChainError(f"{where}: `train.keys` is {keys!r}; use one of {', '.join(KEY_SETS)} or leave it out")
        group = body.get("common")
        if group is not None and group not in common:
            raise ChainError(f"{where}: `train.common` {group!r} is not in train_common ({', '.join(common)})")
        if not all(isinstance(o, str) and "=" in o for o in body.get("overrides", [])):
            raise ChainError(f"{where}: `train.overrides` must be key=value strings")
        return [start, *shards]
    if kind == "soup":
        return list(need("runs", list))
    return [need("base", str), need("adapters", str)]


# ----------------------------------------------------------------------------------------------- running
class Chain:
    """Runs a parsed spec in `cfg.work` (see the module docstring)."""

    def __init__(self, cfg: ChainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg, self.log = cfg, log
        self.spec = load_spec(cfg.spec)
        self.steps = parse_steps(self.spec)
        self.by_name = {s.name: s for s in self.steps}
        if cfg.until is not None and cfg.until not in self.by_name and cfg.until != "recipe":
            raise ChainError(f"--until {cfg.until!r}: no such step in {cfg.spec}")
        self.work = Path(cfg.work)
        self._settings: dict[str, dict[str, Any]] = {}  # settings() by step: the spec does not change in a run
        kw: dict[str, Any] = {"work": cfg.recipe_work} if cfg.recipe_work else {
            "work": str(self.work / "recipe"), "artefacts": str(self.work / "recipe" / "artefacts")}
        try:
            self.recipe_cfg = RecipeConfig(smoke=cfg.smoke, reuse_shipped=cfg.reuse_shipped, **kw,
                                           **self.recipe_fields()).scaled()
        except TypeError as e:
            raise ChainError(f"{cfg.spec} `recipe` / --recipe-set: a field RecipeConfig does not have: {e}") from None

    def recipe_fields(self) -> dict[str, Any]:
        """The spec's `recipe` fields with `ChainConfig.recipe_set` over them."""
        return {**(self.spec.get("recipe") or {}), **self.cfg.recipe_set}

    # settings -----------------------------------------------------------------------------------------
    def settings(self, name: str) -> dict[str, Any]:
        """A step's body with the settings of every step it reads, and the toy switch: what its output
        depends on. Computed once per step (each one nests its whole upstream)."""
        if name in self._settings:
            return self._settings[name]
        if name == "recipe":
            out = {"recipe": self.recipe_fields(), "smoke": self.cfg.smoke,
                   "reuse_shipped": self.cfg.reuse_shipped, "recipe_work": self.cfg.recipe_work}
        else:
            step = self.by_name[name]
            extra = {"common": self.spec.get("train_common", {}).get(step.body.get("common"))} \
                if step.kind == "train" else {}
            out = {"kind": step.kind, "body": step.body, **extra, "smoke": self.cfg.smoke,
                   "upstream": {r: self.settings(r)
                                for r in (*step.refs, *(["recipe"] if step.kind != "soup" else []))}}
        self._settings[name] = out
        return out

    def _dir(self, name: str) -> Path:
        return self.work / name

    def markers(self, name: str) -> StepMarkers:
        return StepMarkers(self._dir(name), self.settings(name))

    def is_done(self, name: str) -> bool:
        return self.markers(name).is_done()

    def _finish(self, name: str, seconds: float, result: dict[str, Any]) -> None:
        self.markers(name).finish(seconds, result)

    def result(self, name: str) -> dict[str, Any]:
        if name == "recipe":
            return {"bundle": str(Path(stage_result(self.recipe_cfg.work, "bundle")["bundle"]) / "model.safetensors")}
        markers = self.markers(name)
        if not markers.done_file.is_file():
            raise FileNotFoundError(f"{markers.done_file}: chain step {name!r} is not done")
        return markers.record()["result"]

    def model_file(self, name: str) -> str:
        """The weights a step stands for when another starts from it: a train step's last checkpoint, a
        soup's file, a bundle's model file (the recipe's result already names its file)."""
        r = self.result(name)
        if "checkpoint" in r:
            return r["checkpoint"]
        if "soup" in r:
            return r["soup"]
        if "bundle" in r:
            return r["bundle"] if name == "recipe" else str(Path(r["bundle"]) / "model.safetensors")
        raise ChainError(f"step {name!r} holds no weights to start from")

    # the run ------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        self._recipe()
        times: dict[str, float] = {}
        order = [s.name for s in self.steps]
        stop = order.index(self.cfg.until) + 1 if self.cfg.until in order else len(order)
        if self.cfg.until == "recipe":
            stop = 0
        i = 0
        while i < stop:
            batch = [self.steps[i]]
            if self.steps[i].kind == "data":  # consecutive data steps: one batch, side by side
                while i + len(batch) < stop and self.steps[i + len(batch)].kind == "data":
                    batch.append(self.steps[i + len(batch)])
            todo = [s for s in batch if not self.is_done(s.name)]
            for s in batch:
                if s not in todo:
                    self.log(f"[chain] {s.name}: done before, skipped")
            if len(todo) > 1 and self.cfg.parallel:
                times.update(self._run_parallel(todo))
            else:
                for s in todo:
                    times[s.name] = self._run_one(s)
            i += len(batch)
        total = time.monotonic() - t0
        self.log(f"[chain] {len(times)} steps run in {total / 60:.1f} min")
        return {"steps": times, "seconds": round(total, 1)}

    def _recipe(self) -> None:
        if self.cfg.reuse_shipped and not self.cfg.smoke and not self.cfg.recipe_work:
            # the recipe's reuse reads its own artefacts folder: put the shipped ones there
            for part in ("codec", "vision"):
                dest = Path(self.recipe_cfg.artefacts) / part
                if not dest.exists():
                    shutil.copytree(REPO / "tinyworld" / part, dest)
        self.log("[chain] recipe: `tinyworld build`")
        build(self.recipe_cfg, log=self.log)

    def _prepare(self, step: Step) -> None:
        """Done or begun with other settings: its outputs are stale and cleared; interrupted with the same
        ones: kept, to resume from."""
        if self.markers(step.name).start() is not None:
            self.log(f"[chain] {step.name}: settings changed, redoing")

    def _run_one(self, step: Step) -> float:
        self._prepare(step)
        self.log(f"[chain] {step.name} ({step.kind}) ...")
        t0 = time.monotonic()
        result = getattr(self, f"_{step.kind}")(step)
        seconds = time.monotonic() - t0
        self._finish(step.name, seconds, result)
        self.log(f"[chain] {step.name}: {seconds:.0f} s")
        return seconds

    def _run_parallel(self, steps: list[Step]) -> dict[str, float]:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        for s in steps:
            self._prepare(s)
        self.log(f"[chain] {', '.join(s.name for s in steps)}: two processes")
        times: dict[str, float] = {}
        # spawn: fresh interpreters, no forked torch / CTranslate2 thread pools (as the recipe's build).
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"), initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = {s.name: pool.submit(_data_in_child, self.cfg, s.name) for s in steps}
            for s in steps:
                seconds, result = futures[s.name].result()
                self._finish(s.name, seconds, result)
                times[s.name] = seconds
                self.log(f"[chain] {s.name}: {seconds:.0f} s")
        return times

    # the step kinds -----------------------------------------------------------------------------------
    def _data(self, step: Step) -> dict[str, Any]:
        from .generate import make_data

        return make_data(self.recipe_cfg, step.body, self._dir(step.name) / "shards", toy=self.cfg.smoke)

    def key_tokens(self, which: str) -> list[int]:
        return key_tokens(stage_result(self.recipe_cfg.work, "tokenizer")["tokenizer"], which, self.cfg.smoke)

    def train_overrides(self, step: Step) -> list[str]:
        """The `moshivis train` overrides of a train step, in order: its group's common ones, the start and
        data, the step's own, the key pieces, and (smoke) toy sizes."""
        b = step.body
        run = self._dir(step.name) / "run"
        shards = ",".join(self.result(r)["shards"] for r in b["shards"])
        out = [*self.spec.get("train_common", {}).get(b.get("common"), []), f"out_dir={run}",
               f"model.checkpoint={self.model_file(b['from'])}", f"data.shards=[{shards}]", f"steps={b['steps']}",
               f"seed={b.get('seed', 0)}", *b.get("overrides", [])]
        if b.get("keys"):
            out.append(f"optim.key_tokens=[{','.join(map(str, self.key_tokens(b['keys'])))}]")
        if self.cfg.smoke:
            out += [f"steps={min(b['steps'], SMOKE_STEPS)}", f"batch_size={SMOKE_BATCH}", "save_every=1",
                    "optim.warmup_steps=1"]
        return out

    def _train(self, step: Step) -> dict[str, Any]:
        from ..train.checkpoint import latest_checkpoint
        from ..train.config import load_config
        from ..train.trainer import Trainer

        tc = load_config(None, self.train_overrides(step))
        history = Trainer(tc).run(resume=True, show_progress=not self.cfg.smoke)
        last = latest_checkpoint(tc.out_dir)
        if last is None:
            raise ChainError(f"step {step.name!r}: training wrote no checkpoint in {tc.out_dir}")
        return {"checkpoint": str(last / "model.safetensors"), "run": str(tc.out_dir),
                "final_loss": history[-1].loss if history else None}

    def _soup(self, step: Step) -> dict[str, Any]:
        from ..train.soup import make_soup

        out = make_soup([self.model_file(r) for r in step.body["runs"]], self._dir(step.name) / "model.safetensors",
                        step.body.get("weights"))
        return {"soup": str(out)}

    def _bundle(self, step: Step) -> dict[str, Any]:
        from ..inference.bundle import assemble_bundle

        out = self._dir(step.name) / "bundle"
        codec = Path(stage_result(self.recipe_cfg.work, "codec")["codec"]).resolve()
        assemble_bundle(out, self.model_file(step.body["base"]), self.model_file(step.body["adapters"]),
                        stage_result(self.recipe_cfg.work, "tokenizer")["tokenizer"], f"tiny:{codec}")
        return {"bundle": str(out), "bytes": sum(f.stat().st_size for f in out.iterdir())}


def key_tokens(tokenizer: str | os.PathLike, which: str, lenient: bool = False) -> list[int]:
    """`optim.key_tokens` for a named key set (`verdict`, `words`, `polarity`) in a tokenizer's ids.
    `lenient` (smoke builds): a tokenizer too small to hold " so" as one piece gets stand-in ids."""
    from ..data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES
    from ..data.tokenizer import TextTokenizer
    from ..eval.verdict_probe import verdict_openings

    if which not in KEY_SETS:
        raise ChainError(f"key set {which!r}: use one of {', '.join(KEY_SETS)}")
    tok = TextTokenizer(str(tokenizer))
    try:
        cue, openings = verdict_openings(tok)
    except ValueError:
        if not lenient:
            raise
        # A smoke build's 200-piece tokenizer splits " so": any ids exercise the same code path.
        cue, openings = tok.encode("so")[0], {tok.encode(f" {w}")[0]: w for w in ("yes", "no")}
    if which == "verdict":  # right after " so" only (key_tokens[0] is the cue)
        return [cue, *openings]
    words = [tok.encode(f" {w}")[0] for w in (*EASY_COLORS, *EASY_SHAPES)]
    out = [-1, *words, *openings]  # -1: wherever they stand
    return out + [tok.encode(w)[0] for w in ("A", "Not")] if which == "polarity" else out


def _data_in_child(cfg: ChainConfig, name: str) -> tuple[float, dict[str, Any]]:
    """One data step in a worker process, on one core."""
    import torch

    torch.set_num_threads(1)  # piper follows torch's count
    chain = Chain(cfg)
    t0 = time.monotonic()
    result = chain._data(chain.by_name[name])
    return time.monotonic() - t0, result


def run_chain(cfg: ChainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    return Chain(cfg, log).run()
