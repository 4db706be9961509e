"""The bodies of the tinyworld recipe's stages (see `recipe.py`), one function each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .recipe import RecipeConfig, Stage, stage_result

MOSHI_VOICE = "piper:joe"


def _artefact(stage: Stage, name: str) -> Path:
    """Shipped artefacts go to `artefacts/<name>`; a smoke build keeps everything in its work folder."""
    cfg = stage.cfg
    return Path(cfg.work) / "artefacts" / name if cfg.smoke else Path(cfg.artefacts) / name


def _done(stage: Stage, name: str) -> dict[str, Any]:
    """The recorded result of an earlier stage."""
    return stage_result(stage.cfg.work, name)


def user_voices() -> list[str]:
    """Training user voices: every flite voice but the held-out family, espeak-ng accents x variants."""
    from ..audio.tiny.voices import ESPEAK_BASES, FLITE_VOICES

    voices = [f"flite:{v}" for v in FLITE_VOICES]
    voices += [f"espeak:{b}" + (f"+{v}" if v else "") for b in ESPEAK_BASES[:5] for v in ("", "f2", "m3", "f4", "m7")]
    return voices


def stage_codec(stage: Stage) -> dict[str, Any]:
    from ..audio.tiny.train import train_tiny_codec

    cfg, out = stage.cfg, _artefact(stage, "codec")
    if cfg.reuse_shipped and (out / "tiny_codec.safetensors").is_file():
        result: dict[str, Any] = {"codec": str(out), "reused": True}
    else:
        kw: dict[str, Any] = dict(n_sentences=1200, minutes_budget=cfg.codec_minutes)
        if cfg.smoke:
            kw = dict(n_sentences=10, minutes_budget=cfg.codec_minutes, semantic_k=8, acoustic_k=8, pca_dim=16,
                      semantic_utterances=6, kmeans_iters=2, workers=1)
        train_tiny_codec(out, seed=cfg.seed, **kw)
        result = {"codec": str(out)}
    if cfg.codec_refit_utterances:
        from ..audio.tiny.refit import build as refit_codebook0

        # Into the work folder, never over the codec it refits (with reuse_shipped that is the shipped one).
        refit = Path(cfg.work) / "codec_refit"
        refit_codebook0(out, refit, utterances=cfg.codec_refit_utterances, seed=cfg.seed,
                        workers=1 if cfg.smoke else 2, log=lambda s: None, progress=not cfg.smoke)
        result = {**result, "codec": str(refit), "refit_of": str(out)}
    return result


def stage_vision(stage: Stage) -> dict[str, Any]:
    from .vision_pretrain import pretrain_vision

    cfg, out = stage.cfg, _artefact(stage, "vision")
    if cfg.reuse_shipped and (out / "tower.safetensors").is_file():
        import json

        results = json.loads((out / "report.json").read_text()).get("results", {})
        return {"vision": str(out), "reused": True,
                "zero_shot_colour": results.get("zero_shot_color", {}).get("accuracy"),
                "zero_shot_shape": results.get("zero_shot_shape", {}).get("accuracy")}
    steps, batch = (3, 16) if cfg.smoke else (2000, 128)
    report = pretrain_vision(out, steps=steps, batch_size=batch, seed=cfg.seed, minutes_budget=cfg.vision_minutes,
                             progress=False, evaluate_model=not cfg.smoke)
    results = report.get("results", {})
    return {"vision": str(out), "zero_shot_colour": results.get("zero_shot_color", {}).get("accuracy"),
            "zero_shot_shape": results.get("zero_shot_shape", {}).get("accuracy")}


def _dialogue_texts(cfg: Any) -> list[str]:
    """Every text the recipe's dialogues can say (image and audio-only), for the tokenizer."""
    import random

    from ..data.augment import audio_only_dialogues
    from ..data.sources import SourceRow, read_easy_vqa
    from ..data.templates import QUESTION_TYPES, TemplateConfig, make_dialogue

    texts: list[str] = []
    for d in audio_only_dialogues(n=max(50, cfg.base_dialogues), seed=cfg.seed, numbers_as_words=True):
        texts += [t.text for t in d.turns]
    tcfg = TemplateConfig(paraphrase_prob=0.5, numbers_as_words=True)
    rng = random.Random(cfg.seed)
    for row in read_easy_vqa("train", limit=cfg.image_rows or 1000):
        if isinstance(row, SourceRow):
            d = make_dialogue(row, rng.choice(QUESTION_TYPES), seed=rng.randrange(1 << 30), config=tcfg)
            texts += [t.text for t in getattr(d, "turns", [])]
    return texts


def stage_tokenizer(stage: Stage) -> dict[str, Any]:
    from ..data.tokenizer import train_tokenizer

    tok = train_tokenizer(_dialogue_texts(stage.cfg), stage.dir / "spm", vocab_size=stage.cfg.tokenizer_vocab)
    return {"tokenizer": str(tok.path), "vocab_size": tok.vocab_size}


def stage_init(stage: Stage) -> dict[str, Any]:
    """The tinyworld model with the pre-trained, frozen tower in place."""
    from safetensors.torch import load_file

    from ..config import preset
    from ..models.loaders import build_model, save_checkpoint

    from ..audio.registry import load_codec

    torch.manual_seed(stage.cfg.seed)
    mc = preset("tinyworld")
    # The vocabularies follow what the earlier stages made: the codec's codebook size, the tokenizer's.
    mc.lm.audio_card = load_codec(f"tiny:{_done(stage, 'codec')['codec']}").cardinality
    mc.lm.text_card = max(mc.lm.text_card, _done(stage, "tokenizer")["vocab_size"])
    mc.lm.user_input_codebooks = stage.cfg.user_input_codebooks
    mc.lm.model_input_codebooks = stage.cfg.model_input_codebooks
    model = build_model(mc)
    if stage.cfg.centroid_input:
        from ..audio.tiny.codec import read_semantic_centroids
        from ..models.centroid_input import attach_centroid_input

        attach_centroid_input(model, read_semantic_centroids(_done(stage, "codec")["codec"]))
    vision = Path(_done(stage, "vision")["vision"])
    model.vision.tower.load_state_dict(load_file(str(vision / "tower.safetensors")), strict=True)
    path = stage.dir / "model.safetensors"
    save_checkpoint(model, path)
    return {"checkpoint": str(path)}


def _synth(stage: Stage, out: Path, **kw: Any) -> dict[str, Any]:
    from ..data.synth import DialogueConfig, SynthConfig, run_synth

    cfg = stage.cfg
    codec_dir = _done(stage, "codec")["codec"]
    source = kw.pop("source")
    dialogues = kw.pop("dialogues", DialogueConfig(question_types=["mixed"], max_turns=6))
    seed = kw.pop("seed", cfg.seed)
    sc = SynthConfig(out_dir=str(out), source=source, dialogues=dialogues, seed=seed,
                     moshi_voice=MOSHI_VOICE, user_voices=user_voices(), codec=f"tiny:{codec_dir}",
                     tokenizer=_done(stage, "tokenizer")["tokenizer"], max_frames=1000,
                     segment_codes=cfg.segment_codes, user_subframe_jitter=cfg.subframe_jitter,
                     user_subframe_phases=cfg.subframe_phases, **kw)
    result = run_synth(sc, resume=out.exists(), progress=not cfg.smoke)
    from ..data.shards import read_manifest

    # The manifest counts every stored sample; the report only those this (possibly resumed) run wrote.
    kinds = read_manifest(out).get("kinds", {})
    return {"shards": str(out), "report": str(out / "report.json"), "written_now": result.report.written,
            "samples": {k: v["samples"] for k, v in kinds.items()}}


def _base_dialogues(stage: Stage, out: Path, n: int, seed: int, **kw: Any) -> dict[str, Any]:
    """The base's image-free dialogues (kw: e.g. audio_only_as="text" for the same ones as text only)."""
    from ..data.synth import SourceConfig

    return _synth(stage, out, source=SourceConfig(kind="easy-vqa", split="train", limit=0), audio_only=n,
                  audio_only_max_pairs=stage.cfg.base_max_pairs, speech_fraction=0.0, p_concat=0.0, seed=seed, **kw)


def stage_base_data(stage: Stage) -> dict[str, Any]:
    return _base_dialogues(stage, stage.dir / "shards", stage.cfg.base_dialogues, stage.cfg.seed)


PROBE_DIALOGUES = 60  # per side (training / held-out) of the base's probe
PROBE_SEED_OFFSET = 777  # held-out dialogues: the same generator and voices, another seed
LISTEN_MAX_FRAMES = 1000  # base_listen trains on whole dialogues: the synth's longest is 1,000 frames


def base_probe(stage: Stage, checkpoint: str) -> dict[str, Any]:
    """Teacher-forced first-word-of-turn accuracy (`eval.turn_probe`) of the base on its first training
    dialogues and on as many new ones from the same generator (another seed): memorising vs generalising."""
    import itertools

    from ..data.shards import ShardReader
    from ..eval.turn_probe import probe
    from ..models.loaders import load_model

    n = 2 if stage.cfg.smoke else PROBE_DIALOGUES
    # One set of new dialogues for every probe (base, base_listen): made once, in the base stage's folder.
    heldout = Path(stage.cfg.work) / "base" / "heldout"
    if not _has_shards(heldout):
        _base_dialogues(stage, heldout, n, stage.cfg.seed + PROBE_SEED_OFFSET)
    lm = load_model(checkpoint).eval().lm
    out: dict[str, Any] = {}
    for name, src in (("train", _done(stage, "base_data")["shards"]), ("heldout", str(heldout))):
        samples = (s.codes for s in ShardReader(src, load_images=False))
        out[name] = probe(lm, itertools.islice(samples, n)).to_dict()
    return out


def run_overrides(run: Path, seed: int, batch_size: int, max_frames: int, save_every: int) -> list[str]:
    """Training settings every tinyworld run shares (base, adapters, ablations), as `key=value` overrides."""
    return [f"out_dir={run}", "model.preset=tinyworld", f"seed={seed}", f"batch_size={batch_size}",
            f"data.max_frames={max_frames}", f"save_every={save_every}", "tensorboard=false", "data.crop=random",
            "data.pad_to_max=false", "data.bucket_window=32"]


def adapter_overrides(base: str, shards: str, steps: int, warmup_steps: int, audio_weight: float) -> list[str]:
    """The adapter stage's recipe on the image data (the ablations start from it and change one thing).
    Adapters start fresh (seeded), not from whatever the base checkpoint carried."""
    from ..data.shards import read_manifest

    # `shards`: one folder, or several as a comma list (any with image-free spoken dialogues counts)
    has = any("audio_only" in read_manifest(x).get("kinds", {}) for x in shards.split(","))
    audio_only = 0.1 if has else 0.0
    return ["mode=adapters", f"model.checkpoint={base}", "model.fresh_adapters=true", f"data.shards=[{shards}]",
            "data.p_audio=0.5", f"data.audio_only={audio_only}", f"steps={steps}", "optim.lr=2e-3",
            f"optim.warmup_steps={warmup_steps}", f"optim.audio_weight={audio_weight}"]


def _train(stage: Stage, overrides: list[str]) -> dict[str, Any]:
    from ..train.config import load_config
    from ..train.trainer import Trainer

    cfg = stage.cfg
    run = stage.dir / "run"
    tc = load_config(None, [*run_overrides(run, cfg.seed, cfg.batch_size, cfg.max_frames, 1 if cfg.smoke else 500),
                            *overrides])
    history = Trainer(tc).run(resume=True, show_progress=not cfg.smoke)
    last = sorted((run / "checkpoints").iterdir())[-1] / "model.safetensors"
    return {"checkpoint": str(last), "final_loss": history[-1].loss if history else None, "run": str(run)}


def _has_shards(folder: Path) -> bool:
    from ..data.shards import ShardError, read_manifest

    try:
        return bool(read_manifest(folder))
    except (FileNotFoundError, ShardError):
        return False


def base_text_shards(cfg: Any) -> Path | None:
    """The base dialogues as text only (the typed format adapters will use): made by the base stage when
    `base_text_weight` > 0, trained on again by `base_listen`; None when the recipe has none."""
    return Path(cfg.work) / "base" / "text_shards" if cfg.base_text_weight > 0 else None


def verdict_overrides(stage: Stage) -> list[str]:
    """`optim.key_*` for `RecipeConfig.verdict_weight` (none at 1): the recipe tokenizer's " so" and the
    pieces that open a verdict after it."""
    if stage.cfg.verdict_weight == 1.0:
        return []
    from ..data.tokenizer import TextTokenizer
    from ..eval.verdict_probe import verdict_openings

    cue, openings = verdict_openings(TextTokenizer(_done(stage, "tokenizer")["tokenizer"]))
    return [f"optim.key_weight={stage.cfg.verdict_weight}", f"optim.key_tokens=[{','.join(map(str, [cue, *openings]))}]"]


def listen_key_overrides(stage: Stage) -> list[str]:
    """`optim.key_*` for `RecipeConfig.listen_key_weight` (none at 1): the recipe tokenizer's first piece of
    every easy-vqa colour and shape word, and of the answer openings "A" and "Not" (an echo answer's first
    piece says which polarity was heard)."""
    if stage.cfg.listen_key_weight == 1.0:
        return []
    from ..data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES
    from ..data.tokenizer import TextTokenizer

    tok = TextTokenizer(_done(stage, "tokenizer")["tokenizer"])
    words = {tok.encode(f" {w}")[0] for w in (*EASY_COLORS, *EASY_SHAPES)}
    ids = sorted(words | {tok.encode(w)[0] for w in ("A", "Not")})
    return [f"optim.key_weight={stage.cfg.listen_key_weight}", f"optim.key_tokens=[{','.join(map(str, [-1, *ids]))}]"]


def spoken_overrides(cfg: RecipeConfig, hide: bool) -> list[str]:
    """`data.text_lead` (and with `hide`, `data.hide_moshi_audio`) when the recipe sets them."""
    out = [f"data.text_lead={cfg.text_lead}"] if cfg.text_lead else []
    return out + ([f"data.hide_moshi_audio={cfg.hide_moshi_audio}"] if hide and cfg.hide_moshi_audio else [])


def stage_base(stage: Stage) -> dict[str, Any]:
    """`full` training on the spoken base dialogues; with weight `base_text_weight` the same dialogues as
    text only (made here: no TTS, seconds), so the base knows the typed format adapters will use; with
    weight `base_image_dialogues` the image dialogues with their images dropped (language and priors)."""
    cfg = stage.cfg
    shards = [_done(stage, "base_data")["shards"]]
    text = base_text_shards(cfg)
    if text is not None:
        _base_dialogues(stage, text, cfg.base_dialogues, cfg.seed, audio_only_as="text")
        shards.append(str(text))
    if cfg.base_image_dialogues > 0:
        shards.append(_done(stage, "image_data")["shards"])
    result = _train(stage, ["mode=full", f"model.checkpoint={_done(stage, 'init')['checkpoint']}",
                            f"data.shards=[{','.join(shards)}]", f"data.image_samples={cfg.base_image_dialogues}",
                            "data.p_audio=0.5", "data.drop_images=true", "data.audio_only=1",
                            f"data.text_only={cfg.base_text_weight}", f"steps={cfg.base_steps}", "optim.lr=1e-3",
                            "optim.warmup_steps=100", *verdict_overrides(stage)])
    return {**result, "probe": base_probe(stage, result["checkpoint"])}


def stage_base_listen(stage: Stage) -> dict[str, Any]:
    """The base's second phase, from the first's checkpoint: the image dialogues SPOKEN only (images still
    dropped) at weight 1, the base dialogues spoken (0.5) and as text (0.25), whole dialogues (no crop
    below the synth's 1,000 frames), a lower learning rate. `listen_steps` 0: the first phase is the base."""
    cfg = stage.cfg
    first = _done(stage, "base")["checkpoint"]
    if cfg.listen_steps <= 0:
        return {"checkpoint": first, "steps": 0}
    text = base_text_shards(cfg)
    shards = [_done(stage, "base_data")["shards"], *([str(text)] if text else []), _done(stage, "image_data")["shards"]]
    text_weight = 0.25 if text else 0.0
    result = _train(stage, ["mode=full", f"model.checkpoint={first}", f"data.shards=[{','.join(shards)}]",
                            "data.image_samples=1.0", "data.p_audio=1.0", "data.drop_images=true",
                            "data.audio_only=0.5", f"data.text_only={text_weight}",
                            f"data.max_frames={LISTEN_MAX_FRAMES}",
                            f"steps={cfg.listen_steps}", "optim.lr=5e-4", "optim.warmup_steps=50",
                            *(listen_key_overrides(stage) or verdict_overrides(stage)), *spoken_overrides(cfg, True),
                            *([f"data.user_frame_dropout={cfg.listen_user_dropout}"] if cfg.listen_user_dropout else [])])
    return {**result, "probe": base_probe(stage, result["checkpoint"])}


def frozen_base(work: str | Path) -> str:
    """The checkpoint adapters train on: the base after its last phase (`base_listen`)."""
    from .recipe import stage_result

    return stage_result(work, "base_listen")["checkpoint"]


def _image_dialogues(stage: Stage, seed: int) -> dict[str, Any]:
    from ..data.synth import DialogueConfig, SourceConfig

    cfg = stage.cfg
    return _synth(stage, stage.dir / "shards",
                  source=SourceConfig(kind="easy-vqa", split="train", limit=cfg.image_rows),
                  dialogues=DialogueConfig(question_types=["properties", "mixed", "misleading"], max_turns=cfg.max_turns,
                                           paraphrase_prob=cfg.paraphrase_prob, evidence_first=cfg.evidence_first,
                                           present_questions=cfg.present_questions,
                                           echo_question=cfg.echo_question, opener_prob=cfg.opener_prob),
                  audio_only=cfg.audio_only, speech_fraction=cfg.speech_fraction, p_concat=cfg.p_concat, seed=seed)


def stage_image_data(stage: Stage) -> dict[str, Any]:
    """easy-vqa train dialogues for the base (images dropped: language and priors)."""
    return _image_dialogues(stage, stage.cfg.seed)


def stage_adapter_data(stage: Stage) -> dict[str, Any]:
    """The adapters' dialogues: image_data's when `adapter_data_seed_offset` is 0; otherwise the same
    generator with another seed (other questions, voices, wordings, another half of the images spoken):
    dialogues the frozen base never heard (RecipeConfig says why)."""
    if stage.cfg.adapter_data_seed_offset == 0:
        return {**_done(stage, "image_data"), "same_as": "image_data"}
    return _image_dialogues(stage, stage.cfg.seed + stage.cfg.adapter_data_seed_offset)


def stage_adapters(stage: Stage) -> dict[str, Any]:
    cfg = stage.cfg
    return _train(stage, [*adapter_overrides(frozen_base(cfg.work), _done(stage, "adapter_data")["shards"],
                                             cfg.adapter_steps, cfg.adapter_warmup_steps, cfg.adapter_audio_weight),
                          *spoken_overrides(cfg, False),
                          *([f"data.lend_images={cfg.adapter_lend_images}"] if cfg.adapter_lend_images else [])])


def stage_bundle(stage: Stage) -> dict[str, Any]:
    """Base + trained adapters as one full checkpoint (float16 to keep the repo small), the tokenizer, and
    the codec as a spec relative to the bundle."""
    from ..inference.bundle import assemble_bundle

    out = _artefact(stage, "bundle")
    codec = Path(_done(stage, "codec")["codec"])
    rel = Path("..") / codec.name if codec.parent == out.parent else codec
    assemble_bundle(out, frozen_base(stage.cfg.work), _done(stage, "adapters")["checkpoint"],
                    _done(stage, "tokenizer")["tokenizer"], f"tiny:{rel}")
    return {"bundle": str(out), "bytes": sum(f.stat().st_size for f in out.iterdir())}
