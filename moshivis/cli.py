"""`moshivis` command line: argument parsing only; the work lives in the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from .models.loaders import CheckpointError


def _add_model_args(p: argparse.ArgumentParser, default_preset: str = "tiny") -> None:
    p.add_argument("--preset", default=None, help=f"size preset (tiny, small, moshika-vis-7b); default {default_preset} "
                   "for random weights, required for released/moshi files")
    p.add_argument("--checkpoint", default=None, help="file, folder or hub id (org/name); random weights if omitted")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])


def _load(args: argparse.Namespace, default_preset: str = "tiny"):
    import torch

    from .config import preset
    from .models.loaders import build_model, load_model

    dtype = getattr(torch, args.dtype)
    if args.checkpoint:
        return load_model(args.checkpoint, args.preset, device=args.device, dtype=dtype)
    torch.manual_seed(args.seed if hasattr(args, "seed") else 0)
    return build_model(preset(args.preset or default_preset), device=args.device, dtype=dtype).eval()


def cmd_info(args: argparse.Namespace) -> int:
    from .config import preset
    from .models.loaders import build_model, describe
    from .models.summary import parameter_report

    if args.checkpoint and not args.preset:
        report = describe(args.checkpoint)
    else:
        t0 = time.perf_counter()
        model = build_model(preset(args.preset or "moshika-vis-7b"), init=False)  # meta: no memory, seconds
        report = parameter_report(model)
        report["build_seconds"] = round(time.perf_counter() - t0, 3)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:>26}: {v:,}" if isinstance(v, int) else f"{k:>26}: {v}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .inference.run import run_streaming

    model = _load(args)
    result = run_streaming(model, steps=args.steps, image=args.image, seed=args.seed,
                           text_temperature=args.text_temperature, audio_temperature=args.audio_temperature,
                           xa_start=args.xa_start)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["summary"])
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .inference.bundle import EMBEDDED_BUNDLE

    bundle = args.bundle or (EMBEDDED_BUNDLE if (EMBEDDED_BUNDLE / "bundle.json").is_file() else None)
    if bundle is None or args.checkpoint or args.preset:
        if bundle is None and not args.json:
            print("(the embedded model is not built yet: `moshivis tinyworld build`; streaming the `tiny` preset "
                  "with random weights instead)")
        return cmd_generate(args)
    from .inference.demo import DEFAULT_QUESTION, run_demo

    def show(piece: str, gate: float) -> None:  # the answer as it streams, each piece with its gate 0-10
        print(f"{piece.replace(chr(9601), ' ')}[{round(10 * gate)}]", end="", flush=True)
    if not args.json:
        print("streaming Moshi's answer in real time (piece[gate 0-10]):\n  ", end="", flush=True)
    demo = run_demo(bundle, image=args.image, question=args.question or DEFAULT_QUESTION, out_wav=args.out,
                    realtime=not args.fast, on_piece=None if args.json else show)
    if not args.json:
        print()
    if args.json:
        print(json.dumps({"image": demo.image, "question": demo.question, **demo.result.to_json(demo.wav)}))
    else:
        print(demo.transcript())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .inference.bundle import EMBEDDED_BUNDLE, load_bundle
    from .inference.generator import SamplingConfig
    from .server.app import serve
    from .server.config import ServerConfig

    bundle_dir = args.checkpoint or EMBEDDED_BUNDLE
    if not (Path(bundle_dir) / "bundle.json").is_file():
        print(f"error: {bundle_dir}: no bundle.json (a model bundle folder: model, tokenizer, codec)", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("MOSHIVIS_TOKEN") or None
    cfg = ServerConfig(host=args.host, port=args.port, token=token, max_sessions=args.max_sessions)
    sampling = SamplingConfig(args.text_temperature, args.text_top_k, args.audio_temperature, args.audio_top_k)
    serve(load_bundle(bundle_dir, device=args.device), cfg, sampling)
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .models.loaders import load_model, save_checkpoint, save_kyuteye, save_moshi

    model = load_model(args.source, args.preset)
    {"moshivis": lambda: save_checkpoint(model, args.dest),
     "adapters": lambda: save_checkpoint(model, args.dest, adapters_only=True),
     "kyuteye": lambda: save_kyuteye(model, args.dest),
     "moshi": lambda: save_moshi(model, args.dest)}[args.to]()
    print(f"wrote {args.dest} ({args.to})")
    return 0


def cmd_soup(args: argparse.Namespace) -> int:
    from .train.soup import make_soup

    out = make_soup(args.sources, args.out, args.weights)
    print(f"soup of {len(args.sources)} checkpoints -> {out}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from .inference.bundle import assemble_bundle, bundle_codec_spec
    from .train.soup import resolve_model_file

    out = assemble_bundle(args.out, resolve_model_file(args.base), resolve_model_file(args.adapters),
                          args.tokenizer, bundle_codec_spec(args.codec))
    print(f"bundle -> {out} (try: moshivis ask --checkpoint {out} --image IMG --text QUESTION)")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train.config import load_config

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not os.path.isfile(config):
        config, overrides = None, [config, *overrides]  # `moshivis train key=value ...` without a file
    cfg = load_config(config, overrides)
    if args.dry_run:
        from .train.memory import format_table, training_memory

        report = training_memory(cfg, gpus=args.gpus, gpu_memory_gb=args.gpu_memory)
        print(json.dumps(report, indent=2) if args.json else format_table(report))
        return 0
    from .train.trainer import Trainer

    history = Trainer(cfg).run(resume=args.resume, stop_at=args.stop_at)
    if history:
        last = history[-1]
        print(f"step {last.step}: loss {last.loss:.4f} (text {last.text_loss:.4f}, audio {last.audio_loss:.4f})")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .data.synth import SynthConfig, load_config, run_synth

    cfg = load_config(args.config) if args.config else SynthConfig()
    src, dlg = cfg.source, cfg.dialogues
    # Flags override the file only when given (their defaults are None).
    for target, attr, value in (
        (src, "kind", args.source), (src, "paths", args.paths), (src, "image_root", args.image_root),
        (src, "split", args.split), (src, "limit", args.limit), (cfg, "out_dir", args.out),
        (cfg, "speech_fraction", args.speech_fraction), (cfg, "audio_only", args.audio_only),
        (cfg, "p_concat", args.p_concat), (cfg, "codec", args.codec), (cfg, "moshi_voice", args.moshi_voice),
        (cfg, "user_voices", args.user_voices), (cfg, "tokenizer", args.tokenizer), (cfg, "aligner", args.aligner),
        (cfg, "seed", args.seed), (cfg, "max_frames", args.max_frames),
        (cfg, "samples_per_shard", args.samples_per_shard), (dlg, "question_types", args.question_types),
        (dlg, "min_turns", args.min_turns), (dlg, "max_turns", args.max_turns),
    ):
        if value is not None:
            setattr(target, attr, value)
    if args.out is None and not args.config:
        raise ValueError("--out is required (or out_dir in --config)")
    try:
        result = run_synth(cfg, resume=args.resume, progress=not args.quiet, console=Console(stderr=True))
    except FileExistsError as e:  # reported like the other user errors, one line and exit code 2
        raise ValueError(str(e)) from e
    print(json.dumps({"out_dir": str(result.out_dir), "written": dict(result.report.written),
                      "skipped": dict(result.report.skipped), "errors": result.report.errors_by_reason(),
                      **{k: result.report.throughput()[k] for k in ("samples_per_min", "tts_rtf", "codec_rtf")}}))
    return 0


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .data.inspect import inspect_shards

    inspect_shards(args.shards, index=args.index, sample_id=args.id, wav=args.wav, tokenizer=args.tokenizer,
                   console=Console(width=args.width))
    return 0


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="make and inspect training data (synthetic spoken dialogues -> shards)")
    dsub = p.add_subparsers(dest="data_command", required=True)

    s = dsub.add_parser("synth", help="source rows -> dialogues -> speech -> codec tokens -> shards")
    s.add_argument("--config", default=None, help="YAML file of SynthConfig fields (flags override it)")
    s.add_argument("--source", default=None, choices=["easy-vqa", "coco", "captions-jsonl", "vqav2", "ocr-vqa"])
    s.add_argument("--paths", nargs="+", default=None, help="source files (see SourceConfig)")
    s.add_argument("--image-root", default=None)
    s.add_argument("--split", default=None)
    s.add_argument("--limit", type=int, default=None, help="source rows to read")
    s.add_argument("--out", default=None, help="output shard folder")
    s.add_argument("--speech-fraction", type=float, default=None, help="share of dialogues also spoken (0.5)")
    s.add_argument("--audio-only", type=int, default=None, help="image-less dialogues to add (0)")
    s.add_argument("--p-concat", type=float, default=None, help="share with an unrelated dialogue glued on (0.2)")
    s.add_argument("--codec", default=None, help="mimi (random weights) | mimi:PATH | py:module:Class")
    s.add_argument("--moshi-voice", default=None, help="TTS spec of Moshi's voice (piper:joe)")
    s.add_argument("--user-voices", nargs="+", default=None, help="TTS specs of the user voice pool")
    s.add_argument("--tokenizer", default=None, help="SentencePiece model (default: train one into --out)")
    s.add_argument("--aligner", default=None, choices=["auto", "piper", "whisper"])
    s.add_argument("--question-types", nargs="+", default=None)
    s.add_argument("--min-turns", type=int, default=None)
    s.add_argument("--max-turns", type=int, default=None)
    s.add_argument("--max-frames", type=int, default=None)
    s.add_argument("--samples-per-shard", type=int, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--resume", action="store_true", help="continue an interrupted run of the same config")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_data_synth)

    i = dsub.add_parser("inspect", help="manifest summary + one sample's dialogue, aligned words and audio")
    i.add_argument("shards", help="shard folder")
    which = i.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=None, help="sample number in shard order (default 0)")
    which.add_argument("--id", default=None, help="sample id")
    i.add_argument("--wav", default=None, help="decode the sample's audio to this WAV (left Moshi, right user)")
    i.add_argument("--tokenizer", default=None, help="default: the one the manifest records")
    i.add_argument("--width", type=int, default=120, help="table width")
    i.set_defaults(func=cmd_data_inspect)


def cmd_ask(args: argparse.Namespace) -> int:
    # audio.io (soundfile) is imported only for spoken questions: typed ones run where it is not installed
    from .inference.ask import AskConfig, ask
    from .inference.bundle import EMBEDDED_BUNDLE, load_bundle
    from .inference.generator import SamplingConfig
    from .models.vision import preprocess_images

    bundle = load_bundle(args.checkpoint or EMBEDDED_BUNDLE, device=args.device)
    model = bundle.model
    pixels = preprocess_images(args.image, model.cfg.vision.image_size)
    embeds = model.encode_image(pixels.to(model.lm.device))
    audio = None
    if args.audio:
        from .audio.io import load_audio

        audio = load_audio(args.audio, target_sr=bundle.codec.sample_rate)[0]
    cfg = AskConfig(sampling=SamplingConfig(args.text_temperature, 25, args.audio_temperature, 250),
                    xa_start=args.xa_start, seed=args.seed)
    result = ask(model, bundle.tokenizer, bundle.codec, embeds, question_audio=audio, question_text=args.text,
                 cfg=cfg)
    out = None
    if result.audio is not None and args.out:
        from .audio.io import save_wav

        out = str(save_wav(args.out, result.audio, bundle.codec.sample_rate))
    if args.json:
        print(json.dumps(result.to_json(out)))
    else:
        shown = " ".join(f"{p.strip()}[{round(10 * g)}]" for p, g in result.pieces)
        print(f"answer: {result.answer}\nwords [gate 0-10]: {shown}\nmean gate {result.gate_mean:.3f}; "
              f"{result.ms_per_frame:.1f} ms per 80 ms frame" + (f"; audio: {out}" if out else ""))
    return 0


def cmd_tinyworld(args: argparse.Namespace) -> int:
    from .tinyworld.recipe import STAGES, RecipeConfig, build

    cfg = RecipeConfig(work=args.work, smoke=args.smoke, seed=args.seed, reuse_shipped=args.reuse_shipped,
                       parallel=not args.serial, adapter_data_seed_offset=args.adapter_data_seed_offset,
                       evidence_first=args.evidence_first, present_questions=args.present_questions,
                       echo_question=args.echo_question, opener_prob=args.opener_prob,
                       verdict_weight=args.verdict_weight, subframe_jitter=args.subframe_jitter,
                       subframe_phases=args.subframe_phases, text_lead=args.text_lead,
                       hide_moshi_audio=args.hide_moshi_audio, listen_key_weight=args.listen_key_weight,
                       listen_user_dropout=args.listen_user_dropout, adapter_lend_images=args.adapter_lend_images,
                       codec_refit_utterances=args.codec_refit, centroid_input=args.centroid_input,
                       **({} if args.listen_steps is None else {"listen_steps": args.listen_steps}))
    stages = tuple(args.stages) if args.stages else STAGES
    result = build(cfg, stages=stages, force=args.force)
    print(json.dumps({k: {"seconds": v.get("seconds"), **v.get("result", {})} for k, v in result.items()},
                     indent=2, default=str))
    return 0


def cmd_tinyworld_chain(args: argparse.Namespace) -> int:
    from .tinyworld.chain import ChainConfig, parse_recipe_set, run_chain

    try:
        recipe_set = parse_recipe_set(args.recipe_set or [])
    except ValueError as e:
        print(f"error: --recipe-set: {e}", file=sys.stderr)
        return 2
    cfg = ChainConfig(work=args.work, smoke=args.smoke, reuse_shipped=args.reuse_shipped, parallel=not args.serial,
                      until=args.until, recipe_work=args.recipe_work, recipe_set=recipe_set,
                      **({"spec": args.spec} if args.spec else {}))
    print(json.dumps(run_chain(cfg), indent=2))
    return 0


def cmd_tinyworld_results(args: argparse.Namespace) -> int:
    from .tinyworld.results import ResultsConfig, evaluate, markdown

    cfg = ResultsConfig(out=args.out, questions=args.questions, unrelated=args.unrelated, switching=args.switching,
                        asr_answers=args.asr_answers, batch_size=args.batch_size, offgrid=args.offgrid)
    if args.bundle:
        cfg.bundle = args.bundle
    if args.conditions:
        cfg.conditions = tuple(args.conditions)  # evaluate checks the names first (main: exit 2)
    print(markdown(evaluate(cfg)))
    return 0


def cmd_tinyworld_card(args: argparse.Namespace) -> int:
    from .inference.bundle import EMBEDDED_BUNDLE
    from .tinyworld.card import write_model_card

    try:
        print(write_model_card(args.work, args.results, args.bundle or EMBEDDED_BUNDLE, args.provenance))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_tinyworld_ablations(args: argparse.Namespace) -> int:
    from .tinyworld.ablations import AblationConfig, markdown, run_ablations

    cfg = AblationConfig(work=args.work, steps=args.steps, questions=args.questions, unrelated=args.unrelated,
                         switching=args.switching, data_stage=args.data_stage, base=args.base, shards=args.shards,
                         tokenizer=args.tokenizer, codec=args.codec, out=args.out, extra=list(args.extra))
    if args.variants:
        cfg.variants = tuple(args.variants)
    print(markdown(run_ablations(cfg), cfg))
    return 0


def cmd_eval_probe(args: argparse.Namespace) -> int:
    import itertools

    from .data.shards import ShardReader
    from .eval.turn_probe import probe
    from .models.loaders import load_model

    model = load_model(args.checkpoint).eval()
    samples = (s.codes for s in ShardReader(args.shards, load_images=False))
    result = probe(model.lm, itertools.islice(samples, args.limit), hide_user_acoustic=args.hide_user_acoustic)
    print(json.dumps({"checkpoint": args.checkpoint, **result.to_dict()}))
    return 0


def _voice_pool(specs: list[str] | None) -> tuple[str, ...]:
    """TTS voices for spoken prompts; `tinyworld-train` stands for the embedded model's training voices."""
    from .inference.ask import QUESTION_VOICE

    out: list[str] = []
    for spec in specs or [QUESTION_VOICE]:
        if spec == "tinyworld-train":
            from .tinyworld.stages import user_voices

            out += user_voices()
        else:
            out.append(spec)
    return tuple(out)


def cmd_eval_reliance(args: argparse.Namespace) -> int:
    from .data.shards import ShardReader
    from .eval.image_reliance import image_reliance
    from .inference.bundle import EMBEDDED_BUNDLE, load_bundle

    bundle = load_bundle(args.checkpoint or EMBEDDED_BUNDLE)
    res = image_reliance(bundle.model.eval(), ShardReader(args.shards), bundle.tokenizer.piece, args.per_kind)
    print(json.dumps({"checkpoint": str(args.checkpoint or EMBEDDED_BUNDLE), "shards": args.shards,
                      "key_word_accuracy": res.to_dict()}))
    return 0


def cmd_eval_verdict(args: argparse.Namespace) -> int:
    from .data.shards import ShardReader
    from .eval.verdict_probe import verdict_probe
    from .inference.bundle import EMBEDDED_BUNDLE, load_bundle
    from .train.images import ImageFeatureStore

    bundle = load_bundle(args.checkpoint or EMBEDDED_BUNDLE)
    model = bundle.model.eval()
    conditions = ("none", "image") if args.image else ("none",)
    store = ImageFeatureStore(model) if args.image else None
    res = verdict_probe(model, ShardReader(args.shards), bundle.tokenizer, args.limit, conditions,
                        image_features=(lambda s: store.features(s.image)) if store is not None else None)
    print(json.dumps({"checkpoint": str(args.checkpoint or EMBEDDED_BUNDLE), "shards": args.shards,
                      "verdict": res.to_dict()}))
    return 0


def cmd_eval_run(args: argparse.Namespace) -> int:
    from .eval.benchmarks import load_benchmark
    from .eval.run import RunConfig, run_benchmark
    from .eval.text_norm import normalize_spoken
    from .inference.bundle import EMBEDDED_BUNDLE, load_bundle

    bundle = load_bundle(args.checkpoint or EMBEDDED_BUNDLE, device=args.device)
    bench = load_benchmark(args.benchmark, args.data, split=args.split,
                           limit=None if args.questions else args.limit)
    if sum(bench.report.errors.values()):
        print(bench.report.summary(), file=sys.stderr)  # what could not be loaded, by reason
    items = list(bench.items)
    if args.questions:  # a sample and its wordings (e.g. the results table's questions.jsonl)
        from .eval.question_file import select_questions

        items = select_questions(items, args.questions)[: args.limit]

    def correct(item, answer: str) -> float:  # running score: normalised match with any reference
        if item.benchmark == "easy-vqa":  # sentences: read the answer word back (eval.easy_vqa_metric)
            from .eval.easy_vqa_metric import extract_answer

            return float(extract_answer(item.question, answer) in item.answers)
        return float(normalize_spoken(answer) in {normalize_spoken(a) for a in item.answers})

    from .inference.ask import AskConfig

    ask_cfg = AskConfig(seed=args.seed)
    if args.end_pad_frames is not None:
        ask_cfg.end_pad_frames = ask_cfg.typed_end_pad_frames = args.end_pad_frames
    if args.max_answer_frames is not None:
        ask_cfg.max_answer_frames = args.max_answer_frames
    if args.lead_samples < 0:
        print(f"error: --lead-samples must be >= 0, got {args.lead_samples}", file=sys.stderr)
        return 2
    ask_cfg.lead_samples = args.lead_samples
    cfg = RunConfig(prompt=args.prompts, batch_size=args.batch_size, keep_wav=args.keep_wav,
                    voices=_voice_pool(args.voices), ask=ask_cfg)
    summary = run_benchmark(bundle, items, args.out, cfg, correct=correct)
    print(json.dumps({**summary, "predictions": args.out}))
    return 0


def cmd_eval_score(args: argparse.Namespace) -> int:
    from .eval.benchmarks import load_benchmark
    from .eval.report import build_report, markdown_table, write_report
    from .eval.score import score

    gt = load_benchmark(args.benchmark, args.data, split=args.split)
    items = list(gt.items)
    if args.questions:  # score the sample (and wordings) the run asked, e.g. the results table's questions
        from .eval.question_file import select_questions

        items = select_questions(items, args.questions)
    if args.only_predicted:  # a partial run (--limit): score the questions it answered, say so in the report
        from .eval.score import read_predictions

        ids = {p.id for p in read_predictions(args.predictions)}
        items = [i for i in items if i.id in ids]
    result = score(args.benchmark, args.predictions, items)
    if args.questions:
        result["questions"] = args.questions
    if args.only_predicted:
        result["only_predicted"] = True
    report = build_report([result], run={"predictions": args.predictions, "data": args.data})
    if args.out:
        write_report(report, args.out)
    print(json.dumps(result, indent=2, default=str) if args.json else markdown_table(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moshivis", description="Vision-speech models (MoshiVis) toolkit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="parameter counts of a preset (meta build) or a checkpoint")
    p.add_argument("--preset", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    for name, helptext in (("demo", "the main job: a short streaming conversation, printed with timings"),
                           ("generate", "streaming generation with any checkpoint")):
        p = sub.add_parser(name, help=helptext)
        _add_model_args(p)
        p.add_argument("--image", default=None, help="image file (default: a random image)")
        p.add_argument("--steps", type=int, default=50, help="80 ms frames to generate")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--text-temperature", type=float, default=0.7)
        p.add_argument("--audio-temperature", type=float, default=0.8)
        p.add_argument("--xa-start", type=int, default=None)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=cmd_generate)
        if name == "demo":
            p.add_argument("--bundle", default=None, help="model bundle (default: the embedded model)")
            p.add_argument("--question", default=None, help="the spoken question (synthesised by piper)")
            p.add_argument("--out", default="demo_answer.wav", help="the spoken answer")
            p.add_argument("--fast", action="store_true", help="do not pace the stream at real time")
            p.set_defaults(func=cmd_demo)

    p = sub.add_parser("ask", help="one question about one image (spoken or typed); embedded model by default")
    p.add_argument("--image", required=True)
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--audio", help="spoken question (WAV/FLAC, any sample rate)")
    q.add_argument("--text", help="typed question")
    p.add_argument("--out", default=None, help="write the spoken answer here (spoken questions)")
    p.add_argument("--checkpoint", default=None, help="model bundle folder (default: the embedded model)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-temperature", type=float, default=0.0)
    p.add_argument("--audio-temperature", type=float, default=0.0)
    p.add_argument("--xa-start", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("serve", help="WebSocket server + web page: talk about a picture in the browser")
    p.add_argument("--checkpoint", default=None, help="model bundle folder (default: the embedded model)")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    p.add_argument("--port", type=int, default=8998)
    p.add_argument("--token", default=None, help="access token clients must send (or env MOSHIVIS_TOKEN)")
    p.add_argument("--max-sessions", type=int, default=4, help="conversations at once (batched steps)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-temperature", type=float, default=0.0)
    p.add_argument("--text-top-k", type=int, default=25)
    p.add_argument("--audio-temperature", type=float, default=0.0)
    p.add_argument("--audio-top-k", type=int, default=250)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("tinyworld", help="the embedded model's recipe")
    tw = p.add_subparsers(dest="tinyworld_command", required=True)
    b = tw.add_parser("build", help="build (or resume building) the embedded model, stage by stage")
    b.add_argument("--work", default="runs/tinyworld", help="intermediate folder (resumable)")
    b.add_argument("--smoke", action="store_true", help="every stage at toy sizes (CI); artefacts stay in --work")
    b.add_argument("--stages", nargs="*", default=None, help="only these stages (in recipe order)")
    b.add_argument("--force", action="store_true", help="redo the stages even if done")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--reuse-shipped", action="store_true",
                   help="keep the shipped codec and vision tower (tinyworld/codec, tinyworld/vision) instead of "
                        "retraining them")
    b.add_argument("--codec-refit", type=int, default=0, metavar="N",
                   help="N > 0: refit the codec's codebook 0 on N utterances of its sentences and training-worded "
                        "easy-vqa questions (moshivis.audio.tiny.refit; README, stop 26) and build on that codec")
    b.add_argument("--centroid-input", action="store_true",
                   help="codebook 0 also enters the LM as a map of its codes' centroids from the base's first step "
                        "(models/centroid_input.py; not shipped: README, stop 31)")
    b.add_argument("--serial", action="store_true",
                   help="run the synth stages (base_data, image_data, adapter_data) one after the other")
    b.add_argument("--adapter-data-seed-offset", type=int, default=1,
                   help="N > 0 (default 1, shipped): adapters train on dialogues made with seed + N, which the "
                        "frozen base never heard; 0: on image_data itself (README, stop 12)")
    b.add_argument("--evidence-first", action="store_true",
                   help="easy-vqa yes/no answers name what the image shows before the verdict (not shipped: "
                        "README, stop 14)")
    b.add_argument("--echo-question", action="store_true",
                   help="with --evidence-first: yes/no answers first repeat what was asked (\"A red shape? The "
                        "shape is blue, so no, ...\")")
    b.add_argument("--opener-prob", type=float, default=1.0,
                   help="chance that an image dialogue opens with a fitting opener (\"What do you see?\"); below 1, "
                        "easy-vqa questions open the rest, as results asks them (default 1: shipped)")
    b.add_argument("--subframe-jitter", action="store_true",
                   help="spoken user turns start at a random phase inside their 80-ms frame (live audio does)")
    b.add_argument("--subframe-phases", type=int, default=0,
                   help="with --subframe-jitter: one of N evenly spaced phases, so repeated turns are encoded at "
                        "most N times (cached); 0: any sample (default)")
    b.add_argument("--present-questions", action="store_true",
                   help="easy-vqa dialogues also ask yes/no about the image's own colour and shape "
                        "(not shipped: README, stop 15)")
    b.add_argument("--listen-steps", type=int, default=None,
                   help="steps of the base's second phase on spoken image dialogues (default: the recipe's "
                        "600; stop 14's evidence-first build: 300)")
    b.add_argument("--verdict-weight", type=float, default=1.0,
                   help="loss weight of yes/no verdict pieces after ' so' in both base phases (with "
                        "--evidence-first; default 1: off; README, stop 15)")
    b.add_argument("--text-lead", type=int, default=0,
                   help="frames Moshi's text runs ahead of its audio in spoken samples of base_listen and adapters "
                        "(data.text_lead; default 0: shipped; README, stop 20)")
    b.add_argument("--hide-moshi-audio", type=float, default=0.0,
                   help="share of base_listen's spoken samples whose Moshi audio the model does not see "
                        "(data.hide_moshi_audio; default 0: shipped; README, stop 20)")
    b.add_argument("--listen-key-weight", type=float, default=1.0,
                   help="base_listen's loss weight on colour/shape words and on the answer openings 'A'/'Not' "
                        "(default 1: off; README, stop 21)")
    b.add_argument("--listen-user-dropout", type=float, default=0.0,
                   help="share of the user's frames hidden from base_listen's spoken inputs, redrawn each step "
                        "(data.user_frame_dropout; default 0: off; README, stop 22)")
    b.add_argument("--adapter-lend-images", type=float, default=0.0,
                   help="share of the adapters' image-free spoken dialogues given another sample's image "
                        "(data.lend_images; default 0: off; README, stop 22)")
    b.set_defaults(func=cmd_tinyworld)
    ch = tw.add_parser("chain", help="the shipped weights' whole training chain (tinyworld/chain.yaml), resumable")
    ch.add_argument("--spec", default=None, help="chain spec (default: tinyworld/chain.yaml)")
    ch.add_argument("--work", default="runs/chain", help="intermediate folder (resumable)")
    ch.add_argument("--smoke", action="store_true", help="every step at toy sizes (CI)")
    ch.add_argument("--reuse-shipped", action="store_true",
                    help="the recipe keeps the shipped codec and vision tower instead of retraining them")
    ch.add_argument("--serial", action="store_true", help="data steps one after the other, not two at a time")
    ch.add_argument("--until", default=None, help="stop after this step (a name in the spec, or 'recipe')")
    ch.add_argument("--recipe-work", default=None,
                    help="start from this `tinyworld build` work folder (built there first if not done), with that "
                         "command's settings; default: a private recipe in WORK/recipe")
    ch.add_argument("--recipe-set", nargs="+", default=None, metavar="FIELD=VALUE",
                    help="RecipeConfig fields over the spec's `recipe` (YAML values), e.g. centroid_input=true")
    ch.set_defaults(func=cmd_tinyworld_chain)
    r = tw.add_parser("results", help="the embedded model's results table (resumable; results.json + .md)")
    r.add_argument("--bundle", default=None, help="model bundle folder (default: the embedded model)")
    r.add_argument("--out", default="runs/tinyworld/results")
    r.add_argument("--questions", type=int, default=2000, help="easy-vqa test questions (half held-out wordings)")
    r.add_argument("--unrelated", type=int, default=400)
    r.add_argument("--switching", type=int, default=200)
    r.add_argument("--asr-answers", type=int, default=300)
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument("--offgrid", type=int, default=400,
                   help="audio_offgrid: how many of the audio_train questions to ask half a frame off the grid")
    r.add_argument("--conditions", nargs="*", default=None,
                   help="a subset (default: all but audio_offgrid): text audio_train audio_heldout audio_offgrid "
                        "blind asr unrelated_base unrelated_adapted switching")
    r.set_defaults(func=cmd_tinyworld_results)
    c = tw.add_parser("card", help="write the bundle's model card (README.md) from the recorded build and results")
    c.add_argument("--work", default="runs/tinyworld", help="the recipe's work folder")
    c.add_argument("--results", default=None, help="results.json of `moshivis tinyworld results`")
    c.add_argument("--bundle", default=None, help="bundle folder (default: the embedded model)")
    c.add_argument("--provenance", default=None,
                   help="Markdown on how the weights were made, in place of the recipe's stage table (for a "
                        "bundle `tinyworld build` did not make)")
    c.set_defaults(func=cmd_tinyworld_card)
    a = tw.add_parser("ablations", help="the paper's ablations in miniature (gate, shared cross-attention, p_audio)")
    a.add_argument("--work", default="runs/tinyworld", help="the recipe's work folder (base and image_data done)")
    a.add_argument("--steps", type=int, default=250)
    a.add_argument("--variants", nargs="*", default=None, help="a subset of the variants (default: all)")
    a.add_argument("--questions", type=int, default=300)
    a.add_argument("--unrelated", type=int, default=100)
    a.add_argument("--switching", type=int, default=50)
    a.add_argument("--data-stage", default="adapter_data", choices=["adapter_data", "image_data"],
                   help="the adapters' dialogues (image_data: the ones the base heard, as stops 11-12 measured)")
    a.add_argument("--base", default=None,
                   help="a base checkpoint that is not the recipe's (e.g. tinyworld/bundle/model.safetensors: its "
                        "adapters are replaced by fresh ones); needs --shards, --tokenizer, --codec, --out")
    a.add_argument("--shards", nargs="+", default=None, help="with --base: the adapters' shard folders")
    a.add_argument("--tokenizer", default=None, help="with --base: the tokenizer its bundles use")
    a.add_argument("--codec", default=None, help="with --base: the tiny codec folder its bundles use")
    a.add_argument("--out", default=None, help="with --base: the folder of the table (OUT/STEPS)")
    a.add_argument("--extra", nargs="*", default=[],
                   help="training overrides (key=value) for every variant, after the recipe's adapter settings")
    a.set_defaults(func=cmd_tinyworld_ablations)

    p = sub.add_parser("eval", help="evaluation on the paper's benchmarks")
    ev = p.add_subparsers(dest="eval_command", required=True)
    e = ev.add_parser("run", help="answer a benchmark's questions with a model bundle (resumable JSONL)")
    e.add_argument("--benchmark", required=True, help="vqav2 | ocrvqa | coco | easy-vqa | babillage/<config>")
    e.add_argument("--data", default=None)
    e.add_argument("--split", default=None)
    e.add_argument("--prompts", choices=["text", "audio"], default="text")
    e.add_argument("--checkpoint", default=None, help="model bundle (default: the embedded model)")
    e.add_argument("--device", default="cpu",
                   help="where the model runs (cuda: CUDA-graph steps); the codec and TTS stay on the CPU")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--batch-size", type=int, default=8)
    e.add_argument("--keep-wav", default=None, help="folder for the spoken answers")
    e.add_argument("--questions", default=None,
                   help="JSONL {id, question?}: ask only these items, in these words (eval/question_file.py)")
    e.add_argument("--voices", nargs="+", default=None,
                   help="TTS voice pool for audio prompts (engine:voice ...; tinyworld-train = the embedded "
                        "model's training voices); an item's voice is fixed by its id")
    e.add_argument("--end-pad-frames", type=int, default=None,
                   help="the answer ends after this many padding frames (default: 10 spoken, 1 typed)")
    e.add_argument("--max-answer-frames", type=int, default=None, help="cut an answer after this many frames")
    e.add_argument("--lead-samples", type=int, default=0,
                   help="audio prompts: start each question this many samples later, off the 80-ms frame grid "
                        "(960 = half a frame at 24 kHz), as live microphone audio is")
    e.add_argument("--seed", type=int, default=0, help="sampling seed (the default greedy decoding needs none)")
    e.add_argument("--out", default="predictions.jsonl")
    e.set_defaults(func=cmd_eval_run)

    e = ev.add_parser("score", help="score a predictions JSONL against a benchmark's ground truth")
    e.add_argument("--benchmark", required=True, help="vqav2 | ocrvqa | coco | easy-vqa | babillage/<config>")
    e.add_argument("--predictions", required=True, help="JSONL rows {id, answer, prompt: text|audio, asr?}")
    e.add_argument("--data", default=None, help="the benchmark's files (folder or file; not needed for easy-vqa)")
    e.add_argument("--split", default=None)
    e.add_argument("--out", default=None, help="write report.json / report.md / report.png here")
    e.add_argument("--questions", default=None,
                   help="JSONL {id, question?}: score this sample in these words (as `eval run --questions`)")
    e.add_argument("--only-predicted", action="store_true",
                   help="score only the questions that have predictions (partial runs); default: missing = wrong")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval_score)

    e = ev.add_parser("probe", help="teacher-forced first-word-of-turn accuracy on stored dialogues (does a "
                                    "speech model generalise or memorise?)")
    e.add_argument("--checkpoint", required=True, help="model checkpoint (any layout load_model reads)")
    e.add_argument("--shards", required=True, nargs="+", help="shard folder(s) of dialogues")
    e.add_argument("--limit", type=int, default=None, help="first N samples")
    e.add_argument("--hide-user-acoustic", action="store_true", help="the user's codebooks 1..7 set to -1")
    e.set_defaults(func=cmd_eval_probe)
    e = ev.add_parser("reliance", help="teacher-forced answer words with the image, none, and a wrong one "
                                       "(do the adapters look? has the base memorised the answers?)")
    e.add_argument("--checkpoint", default=None, help="model bundle (default: the embedded model)")
    e.add_argument("--shards", required=True, nargs="+", help="shard folder(s) of image dialogues")
    e.add_argument("--per-kind", type=int, default=24, help="samples of each kind (image_speech, speechless)")
    e.set_defaults(func=cmd_eval_reliance)
    e = ev.add_parser("verdict", help="teacher-forced yes/no verdicts of evidence-first answers: does the verdict "
                                      "follow the evidence the answer stated? (README, stop 15)")
    e.add_argument("--checkpoint", default=None, help="model bundle (default: the embedded model)")
    e.add_argument("--shards", required=True, nargs="+", help="shard folder(s) of evidence-first image dialogues")
    e.add_argument("--limit", type=int, default=150, help="speechless samples holding a verdict")
    e.add_argument("--image", action="store_true", help="also with the sample's own image (default: none)")
    e.set_defaults(func=cmd_eval_verdict)

    p = sub.add_parser("train", help="train adapters (or a whole model) from a YAML config")
    p.add_argument("config", nargs="?", default=None, help="YAML config (defaults for every key otherwise)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. optim.lr=1e-4 steps=500")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint of out_dir")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step (schedule unchanged)")
    p.add_argument("--dry-run", action="store_true", help="print the memory per GPU and exit")
    p.add_argument("--gpus", type=int, default=8, help="dry run: GPUs to shard over")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="dry run: GB per GPU")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="convert a checkpoint between layouts")
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument("--to", required=True, choices=["moshivis", "adapters", "kyuteye", "moshi"])
    p.add_argument("--preset", default=None, help="needed for released/moshi sources (they carry no config)")
    p.set_defaults(func=cmd_convert)

    from .train.soup import add_arguments as add_soup_arguments

    p = sub.add_parser("soup", help="average fine-tunes of one start (training seeds) into one model file")
    add_soup_arguments(p)
    p.set_defaults(func=cmd_soup)

    p = sub.add_parser("bundle", help="a model bundle (for ask / demo / eval / serve) from a base and adapters")
    p.add_argument("--base", required=True, help="the base model: a file, a checkpoint folder or a training run")
    p.add_argument("--adapters", required=True, help="adapters: an adapter-only file (what mode=adapters training "
                   "saves; `convert --to adapters` makes one from a full model), its checkpoint folder or run")
    p.add_argument("--tokenizer", required=True, help="the SentencePiece model the base was trained with")
    p.add_argument("--codec", required=True, help="a codec spec (tiny:DIR, mimi:...) or a tiny codec folder")
    p.add_argument("--out", required=True, help="the bundle folder to write")
    p.set_defaults(func=cmd_bundle)

    _add_data_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # `train CONFIG --dry-run key=value`: overrides may come after options
        if args.command == "train" and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (CheckpointError, ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"moshivis {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
