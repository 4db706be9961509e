"""The embedded model's recipe: every piece trained by the project's own code, on CPU, in stages.

    codec        tiny codec (Whisper-distilled semantic codebook + log-mel RVQ), `moshivis.audio.tiny`
    vision       small SigLIP tower pre-trained on easy-vqa, then frozen (`vision_pretrain`)
    tokenizer    SentencePiece on the text of every dialogue the recipe will speak
    init         the `tinyworld` model with the pre-trained tower in place (random LM, fresh adapters)
    base_data    audio-only spoken dialogues (no image): arithmetic, counting, colours of things, yes/no
    image_data   easy-vqa train dialogues with paraphrases: image-speech + speechless + audio-only + concat
    base         "tiny Moshi": `full` training on base_data, spoken and as text, and on image_data with the
                 images dropped (the image is never shown: the base learns the language and the priors)
    base_listen  the base's second phase: whole spoken dialogues, image ones still without their images
    adapter_data the adapters' dialogues: image_data's generator again with seed + adapter_data_seed_offset
                 (default 1): dialogues the frozen base never heard (0: image_data's own)
    adapters     the paper's recipe: base frozen, adapters trained on the mixture of adapter_data
    bundle       model + tokenizer + codec spec in `tinyworld/bundle` (what `moshivis ask/demo` load)

`base_data` and `image_data` need only the codec and tokenizer, so they run side by side in two processes
(`parallel`, one core each). `adapter_data` with its own seed reads nothing of image_data: it goes to the
first of the two workers to be free, and the base's two phases (which need base_data and image_data) train
beside it in the build's own process on one thread instead of waiting for it; the adapters wait for it.

Each stage records `done.json` (settings, seconds) in its work folder and is skipped when that exists with
the same settings, so an interrupted build resumes at the stage it was in. `smoke=True` runs every stage
at toy sizes (CI).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .markers import DONE, StepMarkers, as_json

REPO = Path(__file__).resolve().parents[2]
STAGES = ("codec", "vision", "tokenizer", "init", "base_data", "image_data", "base", "base_listen", "adapter_data",
          "adapters", "bundle")


@dataclass
class RecipeConfig:
    work: str = "runs/tinyworld"  # intermediate data and checkpoints
    artefacts: str = str(REPO / "tinyworld")  # shipped: codec/, vision/, bundle/
    seed: int = 0
    smoke: bool = False
    reuse_shipped: bool = False  # codec/vision: keep the artefacts already in `artefacts` instead of retraining
    parallel: bool = True  # the data stages in two processes (see the module docstring)
    codec_minutes: float = 12.0
    # N > 0: refit the codec's codebook 0 on N utterances of its own sentences and easy-vqa questions in
    # training wordings (`audio.tiny.refit`; stop 26: a reader of the refitted codes understood 93.8% of
    # seen-wording spoken questions against 86.8%); the refitted codec goes to work/codec_refit and every
    # later stage uses it. 0: the codec as trained (or shipped).
    codec_refit_utterances: int = 0
    vision_minutes: float = 10.0
    tokenizer_vocab: int = 1000
    base_dialogues: int = 6000  # single exchanges: stop 9's 800 dialogues were memorised, not generalised
    base_max_pairs: int = 1
    base_steps: int = 2400
    base_text_weight: float = 0.5  # text-only copies of the base dialogues in the base's mixture (vs 1 spoken)
    # The image dialogues WITHOUT their images in the base's mixture: the base learns their language and
    # answer priors (the blind baseline), so the frozen base can say what adapters will make it see.
    base_image_dialogues: float = 0.5
    # A second base phase on whole spoken dialogues (no text-only copies, image dialogues spoken only, still
    # without images): the first phase's mixture leaves the spoken image questions ~1/8 of its samples, and
    # the frozen base then mistook spoken easy-vqa questions for its small-talk ones (stop 11). 0: none.
    listen_steps: int = 600
    # Loss weight of yes/no verdict pieces (right after " so" in evidence-first answers) in both base phases
    # (`optim.key_weight`). 1: off. A loss on verdicts alone taught the base the comparison (README, stop 15).
    verdict_weight: float = 1.0
    image_rows: int | None = None  # easy-vqa train images, one dialogue each (None: all 4,000)
    max_turns: int = 4
    speech_fraction: float = 0.5
    audio_only: int = 200
    p_concat: float = 0.2
    paraphrase_prob: float = 0.5
    # easy-vqa yes/no answers say what the image shows before the verdict (TemplateConfig.evidence_first).
    # Off: stop 14's rebuild with it (listen_steps 300) got colour 98% typed but 62.1% in all, against the
    # shipped 66.7% (README).
    evidence_first: bool = False
    # easy-vqa dialogues also ask yes/no about the image's own colour and shape (TemplateConfig.present_questions),
    # so "present" verdicts are no longer 12% of them. Off: stop 15's rebuild with both options got 57.8% typed
    # (yes/no 47.9): the verdict followed the answer's own evidence only 53% of the time (README).
    present_questions: bool = False
    # With evidence_first: yes/no answers first echo what was asked ("A red shape? The shape is blue, so no, ...",
    # TemplateConfig.echo_question), so the verdict compares two words a few pieces apart in Moshi's own text.
    echo_question: bool = False
    # Chance that an image dialogue opens with "What do you see?"-like openers when one fits
    # (TemplateConfig.opener_prob). At 1, easy-vqa yes/no questions almost never come first, as results asks them.
    opener_prob: float = 1.0
    # The adapters' image dialogues: image_data's generator again with seed + this offset (0: image_data
    # itself). The base trains on image_data (images dropped) for thousands of steps and memorises its
    # spoken dialogues: on them the frozen base alone said 88% of the colour/shape/yes-no words, on fresh
    # ones 44% (stop 12), so adapters trained on them got little signal to look when the question is spoken.
    adapter_data_seed_offset: int = 1
    adapter_steps: int = 1200
    adapter_warmup_steps: int = 50
    # The audio part of the adapters' loss, relative to the text part. On fresh dialogues Moshi's audio
    # loss is about twice that on memorised ones and took the adapters' capacity: with weight 1 typed
    # accuracy fell to 61.7%, with 0.1 it was 66.7% and spoken 46.0% (2,000 questions, stop 12/13).
    adapter_audio_weight: float = 0.1
    batch_size: int = 16
    max_frames: int = 160
    held_out_voices: tuple[str, ...] = ("flite:slt",)  # never used in training: the unseen-voice family
    # The model's inputs: the semantic codebook of each side only (LMConfig.user/model_input_codebooks).
    user_input_codebooks: int | None = 1
    model_input_codebooks: int | None = 1
    # Codebook 0 also enters as a linear map of its codes' centroids from the first step of the base
    # (`models/centroid_input.py`; the recipe's codec). Off in every build so far (stop 31: added to the
    # shipped base late, it changed nothing; a reader trained with it from the start heard better, stop 30).
    centroid_input: bool = False
    segment_codes: bool = True  # synth: encode each turn once and cache it (1.3x faster on 90 dialogues)
    # Spoken user turns start at a random phase inside their 80-ms frame (SynthConfig.user_subframe_jitter),
    # not always on the grid: the stop-13 bundle's spoken answers changed with a question's phase (README).
    subframe_jitter: bool = False
    # With the jitter: 0, any phase (every user turn encoded afresh); P > 0, one of P phases, each encoding of
    # a (voice, text) cached (SynthConfig.user_subframe_phases), for builds large enough to repeat turns.
    subframe_phases: int = 0
    # Spoken samples of base_listen and adapters: Moshi's text this many frames ahead of its audio
    # (`data.text_lead`), and in base_listen the share of them whose Moshi audio the transformer does not see
    # (`data.hide_moshi_audio`). Without them Moshi's text learnt to read its words off Moshi's own recorded
    # voice instead of hearing the user: an asked word right 71% with that voice, 27% without (stop 19/20).
    text_lead: int = 0
    hide_moshi_audio: float = 0.0
    # base_listen's loss weight on what hearing decides in an echo answer: the colour/shape words and the
    # answer's opening piece ("A ..." / "Not a ...": the question's polarity). 1: off. With the words alone
    # weighted, the opening was right 41% of the time on fresh questions (58% are plain); stop 21.
    listen_key_weight: float = 1.0
    # base_listen: share of the user's frames hidden from the inputs of spoken samples, redrawn each step
    # (`data.user_frame_dropout`), so the base cannot recall whole question code sequences. Stop 22: at 0.2, no
    # gain in the listening probe beyond its noise.
    listen_user_dropout: float = 0.0
    # adapters: share of the image-free spoken dialogues given a batch neighbour's image (`data.lend_images`),
    # so the adapters learn to leave unrelated talk alone while an image is loaded. Stop 22, at 1.0 with image-free
    # exchanges in the adapters' data: unrelated spoken questions 43.0 adapted vs 41.0 base; 35.0 without the
    # lending (stop 21: 17.0 vs 25.0).
    adapter_lend_images: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Here, not only in SynthConfig.validate: a bad value is refused before any stage runs.
        if not 0.0 <= self.opener_prob <= 1.0:
            raise ValueError(f"--opener-prob {self.opener_prob} (opener_prob): must be in [0, 1]")
        if self.codec_refit_utterances < 0:
            raise ValueError(f"--codec-refit {self.codec_refit_utterances} (codec_refit_utterances): give N > 0 "
                             "utterances, or 0 for no refit")
        if self.echo_question and not self.evidence_first:
            raise ValueError("--echo-question (echo_question) needs --evidence-first (evidence_first): the echo "
                             "opens an evidence-first answer")
        if self.text_lead < 0:
            raise ValueError(f"--text-lead {self.text_lead} (text_lead): must be >= 0 frames")
        if not 0.0 <= self.hide_moshi_audio <= 1.0:
            raise ValueError(f"--hide-moshi-audio {self.hide_moshi_audio} (hide_moshi_audio): must be in [0, 1]")
        if not 0.0 <= self.listen_user_dropout < 1.0:
            raise ValueError(f"--listen-user-dropout {self.listen_user_dropout} (listen_user_dropout): "
                             "must be in [0, 1)")
        if not 0.0 <= self.adapter_lend_images <= 1.0:
            raise ValueError(f"--adapter-lend-images {self.adapter_lend_images} (adapter_lend_images): "
                             "must be in [0, 1]")
        if self.listen_key_weight != 1.0 and self.verdict_weight != 1.0:
            raise ValueError("--listen-key-weight (listen_key_weight) and --verdict-weight (verdict_weight) both set: "
                             "a training stage weighs one set of key pieces; keep one at 1")
        if self.subframe_phases < 0 or (self.subframe_phases and not self.subframe_jitter):
            raise ValueError(f"--subframe-phases {self.subframe_phases} (subframe_phases): give N >= 1 together with "
                             "--subframe-jitter (subframe_jitter; 0: any phase)")

    def scaled(self) -> "RecipeConfig":
        """Toy sizes for CI (`smoke`): every stage runs, in seconds."""
        if not self.smoke:
            return self
        return dataclasses.replace(self, reuse_shipped=False, base_dialogues=6, base_steps=3, image_rows=4, audio_only=2,
                                   listen_steps=2, adapter_steps=3, batch_size=2, max_frames=200, codec_minutes=0.5,
                                   vision_minutes=0.3, tokenizer_vocab=200,
                                   codec_refit_utterances=min(self.codec_refit_utterances, 6))


# What each stage's output depends on: its own recipe fields and the stages it reads. A stage is redone
# when these change (its settings, transitively), and only then: a longer adapter run keeps the base.
_COMMON = ("seed", "smoke", "work", "artefacts")
# What the image dialogues' generator reads (image_data and adapter_data make them alike).
_IMAGE_DIALOGUES = ("image_rows", "max_turns", "speech_fraction", "audio_only", "p_concat", "paraphrase_prob",
                    "evidence_first", "present_questions", "echo_question", "opener_prob", "held_out_voices",
                    "segment_codes", "subframe_jitter", "subframe_phases")
DEPENDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "codec": (("codec_minutes", "reuse_shipped", "codec_refit_utterances"), ()),
    "vision": (("vision_minutes", "reuse_shipped"), ()),
    "tokenizer": (("tokenizer_vocab", "base_dialogues", "image_rows"), ()),
    "init": (("user_input_codebooks", "model_input_codebooks", "centroid_input"), ("codec", "vision", "tokenizer")),
    "base_data": (("base_dialogues", "base_max_pairs", "segment_codes", "subframe_jitter", "subframe_phases"),
                  ("codec", "tokenizer")),
    "base": (("base_steps", "base_text_weight", "base_image_dialogues", "batch_size", "max_frames", "verdict_weight",
              "extra"),
             ("init", "base_data", "image_data")),
    "image_data": (_IMAGE_DIALOGUES, ("codec", "tokenizer")),
    "base_listen": (("listen_steps", "batch_size", "verdict_weight", "text_lead", "hide_moshi_audio",
                     "listen_key_weight", "listen_user_dropout", "extra"), ("base", "image_data")),
    "adapter_data": ((*_IMAGE_DIALOGUES, "adapter_data_seed_offset"), ("codec", "tokenizer", "image_data")),
    "adapters": (("adapter_steps", "adapter_warmup_steps", "adapter_audio_weight", "batch_size", "max_frames",
                  "text_lead", "adapter_lend_images", "extra"), ("base_listen", "adapter_data")),
    "bundle": ((), ("adapters",)),
}


# Fields added after builds were recorded, with the value those builds had: at that value a field is left
# out of the settings, so a finished stage stays done (a resumed build does not retrain the base for it).
ADDED_LATER: dict[str, Any] = {"evidence_first": False, "present_questions": False, "echo_question": False,
                               "opener_prob": 1.0, "verdict_weight": 1.0, "subframe_jitter": False,
                               "subframe_phases": 0, "text_lead": 0, "hide_moshi_audio": 0.0,
                               "listen_key_weight": 1.0, "listen_user_dropout": 0.0, "adapter_lend_images": 0.0,
                               "codec_refit_utterances": 0, "centroid_input": False}


def stage_settings(cfg: "RecipeConfig", name: str) -> dict[str, Any]:
    """The recipe fields `name` depends on, with those of the stages upstream of it."""
    fields, upstream = DEPENDS[name]
    values = {f: getattr(cfg, f) for f in (*_COMMON, *fields)}
    values = {f: v for f, v in values.items() if not (f in ADDED_LATER and v == ADDED_LATER[f])}
    return {"stage": name, "fields": values, "upstream": {u: stage_settings(cfg, u) for u in upstream}}


def stage_result(work: str | Path, name: str) -> dict[str, Any]:
    """What stage `name` of the build in `work` recorded when it finished (FileNotFoundError if it has not)."""
    marker = Path(work) / name / DONE
    if not marker.is_file():
        raise FileNotFoundError(f"{marker}: the recipe's {name!r} stage is not done; run "
                                f"`moshivis tinyworld build --work {work}` first")
    return json.loads(marker.read_text())["result"]


class Stage:
    """A named stage with a work folder and its resume markers (`markers.StepMarkers`)."""

    def __init__(self, cfg: RecipeConfig, name: str) -> None:
        self.cfg, self.name = cfg, name
        self.dir = Path(cfg.work) / name

    def settings(self) -> dict[str, Any]:
        return as_json(stage_settings(self.cfg, self.name))

    def markers(self) -> StepMarkers:
        return StepMarkers(self.dir, self.settings())

    def is_done(self) -> bool:
        return self.markers().is_done()

    def finish(self, seconds: float, result: dict[str, Any]) -> None:
        self.markers().finish(seconds, result)


PARALLEL = ("base_data", "image_data")  # the synth stages run side by side, two processes on two cores


def die_with_parent(parent: int) -> None:
    """In a stage worker: exit when the build process that started it dies. A killed build (SIGTERM,
    SIGKILL) used to leave its synth workers running and holding their shard folders' locks, so the next
    build could not resume them. Linux: the kernel signals us (PR_SET_PDEATHSIG); elsewhere a watcher
    thread polls the parent id."""
    import signal
    import threading

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGTERM, 0, 0, 0) == 0:  # 1 = PR_SET_PDEATHSIG
            if os.getppid() != parent:  # it died before the call: no signal will come
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def parallel_group(cfg: RecipeConfig, stages: tuple[str, ...]) -> tuple[str, ...]:
    """The stages the build hands to its two worker processes: those of PARALLEL asked for, and adapter_data
    when asked for and drawing its own dialogues (seed offset != 0 reads nothing of image_data), queued for
    whichever worker is free first (the one whose stage was already done, on a rebuild of the image data)."""
    extra = ("adapter_data",) if cfg.adapter_data_seed_offset != 0 else ()
    return tuple(s for s in (*PARALLEL, *extra) if s in stages)


def _stage_fn(name: str) -> Callable[[Stage], dict[str, Any]]:
    from . import stages as S  # the stage bodies, one function each

    return getattr(S, f"stage_{name}")


def _run_in_child(cfg: RecipeConfig, name: str, force: bool) -> tuple[dict[str, Any], list[str]]:
    """One stage in a worker process, on one core (two stages share the machine's two); its log lines
    come back to the parent's `log`."""
    import torch

    torch.set_num_threads(1)
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)
    return run_stage(cfg, name, _stage_fn(name), force, log), lines


def run_stage(cfg: RecipeConfig, name: str, fn: Callable[[Stage], dict[str, Any]], force: bool = False,
              log: Callable[[str], None] = print, threads: int | None = None) -> dict[str, Any]:
    """Run `fn` as stage `name` unless it is done with the same settings. threads: torch threads for the
    whole run, restored after (None: as set)."""
    stage = Stage(cfg, name)
    markers = stage.markers()
    if markers.is_done() and not force:
        log(f"[tinyworld] {name}: done before, skipped")
        return markers.record()
    # Done (or begun) with other settings, or forced: its outputs are stale, and start() clears them. A
    # stage interrupted with the same settings resumes from what it wrote.
    why = markers.start(force)
    if why is not None:
        log(f"[tinyworld] {name}: forced, rebuilding" if why == "forced" else
            f"[tinyworld] {name}: settings changed since it was built, rebuilding")
    log(f"[tinyworld] {name} ...")
    t0 = time.monotonic()
    if threads is None:
        result = fn(stage)
    else:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        log(f"[tinyworld] {name}: {threads} thread(s), beside a data stage still running")
        try:
            result = fn(stage)
        finally:
            torch.set_num_threads(before)
    markers.finish(time.monotonic() - t0, result)
    log(f"[tinyworld] {name}: {time.monotonic() - t0:.0f} s")
    return markers.record()


def build(cfg: RecipeConfig, stages: tuple[str, ...] = STAGES, force: bool = False,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the stages in order (each skipped when already done with the same settings). With `parallel`, the
    data stages of `parallel_group` run in two worker processes, and a stage of this process waits only for
    the worker stages before it in STAGES (so the base trains while adapter_data is synthesised)."""
    cfg = cfg.scaled()
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    out: dict[str, Any] = {}
    group = parallel_group(cfg, stages)
    side_by_side = cfg.parallel and len(group) > 1  # e.g. image_data | adapter_data without base_data
    pool = None
    pending: dict[str, Any] = {}  # worker stages submitted and not yet collected
    try:
        for name in STAGES:
            if name not in stages or name in out:
                continue
            if side_by_side and name in group:
                if pool is None:
                    import multiprocessing as mp
                    from concurrent.futures import ProcessPoolExecutor

                    # spawn: a fresh interpreter per stage, no forked torch/CTranslate2 thread pools. Stages
                    # beyond two queue for the first worker free.
                    pool = ProcessPoolExecutor(len(PARALLEL), mp_context=mp.get_context("spawn"),
                                               initializer=die_with_parent, initargs=(os.getpid(),))
                    pending = {n: pool.submit(_run_in_child, cfg, n, force) for n in group}
                out[name], lines = pending.pop(name).result()
                if log is not print:  # print: the child printed them already
                    for line in lines:
                        log(line)
                continue
            # A worker still synthesising holds one core: this stage gets the other
            busy = any(not f.done() for f in pending.values())
            out[name] = run_stage(cfg, name, _stage_fn(name), force, log, threads=1 if busy else None)
    except BaseException:
        if pool is not None:  # do not wait an hour for a data stage of a build that failed
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return {name: out[name] for name in STAGES if name in out}


def clean(cfg: RecipeConfig) -> None:
    shutil.rmtree(cfg.work, ignore_errors=True)
