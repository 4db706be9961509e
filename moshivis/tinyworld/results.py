"""The embedded model's results table (issue "the embedded model"), measured by one rerunnable command:

    moshivis tinyworld results [--bundle DIR] [--out DIR] [--questions 2000]

On a fixed sample of easy-vqa TEST questions (1,000 images never trained on), half asked in the data
set's own wording ("seen": training used these wordings, on other images) and half in a held-out
paraphrase no training sample ever used:

    text            the question typed on the text stream, with the image
    audio_train     spoken by the training voices (cycled), with the image
    audio_heldout   spoken by the held-out voice family (flite slt), with the image
    audio_offgrid   (opt-in) the first `offgrid` audio_train questions, each starting half a frame (40 ms)
                    off the 80-ms frame grid, as live microphone audio does
    blind           typed, NO image: the frozen base exactly as it was before the adapters
    majority        no model: the most common training answer for the question's type
    spoken answers  Moshi's answer audio (first `asr_answers` of audio_train) through Whisper tiny.en
    unrelated       image-unrelated spoken questions: base (no image) vs adapted (with an image), and the
                    mean gate on them vs on image questions
    switching       one conversation: two image questions, then an unrelated one

Every condition is a resumable JSONL of predictions under `out`; `results.json` and `results.md` hold the
scores. Nothing here trains: ablations are `tinyworld.ablations`.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..eval.easy_vqa_metric import easy_vqa_scores, extract_answer
from ..eval.items import EvalItem
from ..eval.question_file import write_question_file
from ..eval.run import RunConfig, read_rows, run_benchmark
from ..eval.unrelated import key_answer, unrelated_items, unrelated_scores
from ..inference.bundle import EMBEDDED_BUNDLE, Bundle, load_bundle

CONDITIONS = ("text", "audio_train", "audio_heldout", "audio_offgrid", "blind", "asr", "unrelated_base",
              "unrelated_adapted", "switching")
OPT_IN = ("audio_offgrid",)  # measured only when asked for


def check_conditions(conditions: Sequence[str]) -> None:
    """ValueError naming any condition that is not one of CONDITIONS."""
    if unknown := sorted(set(conditions) - set(CONDITIONS)):
        raise ValueError(f"unknown results conditions {unknown}: choose from {' '.join(CONDITIONS)}")


@dataclass
class ResultsConfig:
    bundle: str = str(EMBEDDED_BUNDLE)
    out: str = "runs/tinyworld/results"
    questions: int = 2000
    unrelated: int = 400
    switching: int = 200
    asr_answers: int = 300
    batch_size: int = 16
    seed: int = 0
    held_out_voices: tuple[str, ...] = ("flite:slt",)
    conditions: tuple[str, ...] = tuple(c for c in CONDITIONS if c not in OPT_IN)
    max_answer_frames: int = 150  # an answer not over after this many frames is cut
    # audio_offgrid (opt-in): the first `offgrid` questions of audio_train, each starting half a frame off
    # the 80-ms grid, as live microphone audio does (training turns start on it unless jittered)
    offgrid: int = 400
    switching_answer_frames: int = 60  # frames of silence the user leaves for each answer in a conversation
    progress: bool = True


def easy_vqa_questions(n: int, seed: int = 0) -> list[EvalItem]:
    """A fixed sample of `n` easy-vqa test questions; every second one reworded by a held-out paraphrase
    (`meta["wording"]`: "seen" | "held-out", `meta["original"]`: the data set's question)."""
    from ..data.easy_vqa_wordings import paraphrase
    from ..eval.benchmarks import load_benchmark

    items = list(load_benchmark("easy-vqa", split="test").items)
    rng = random.Random(f"tinyworld-results|{seed}")
    pick = sorted(rng.sample(range(len(items)), min(n, len(items))))
    out = []
    for k, idx in enumerate(pick):
        it = items[idx]
        held = k % 2 == 1
        q = paraphrase(it.question, rng, wordings="heldout") if held else it.question
        out.append(dataclasses.replace(it, question=q, meta={**it.meta, "wording": "held-out" if held else "seen",
                                                             "original": it.question}))
    return out


def majority_answers() -> dict[str, str]:
    """The most common TRAIN answer per question type (shape / color / yes/no): the blind prior."""
    from ..eval.benchmarks import load_benchmark

    counts: dict[str, Counter[str]] = {}
    for it in load_benchmark("easy-vqa", split="train").items:
        counts.setdefault(it.question_type or "", Counter())[it.answers[0]] += 1
    return {k: c.most_common(1)[0][0] for k, c in counts.items()}


def _accuracy_split(rows: dict[str, dict[str, Any]], items: Sequence[EvalItem]) -> dict[str, Any]:
    preds = {k: r["answer"] for k, r in rows.items()}
    out: dict[str, Any] = {}
    for name, subset in (("all", items), ("seen", [i for i in items if i.meta.get("wording") == "seen"]),
                         ("held-out", [i for i in items if i.meta.get("wording") == "held-out"])):
        s = easy_vqa_scores(preds, subset)
        out[name] = {"n": s["n"], "accuracy": round(s["accuracy"], 2), "missing": s["missing"],
                     "unreadable": s["unreadable"],
                     "per_type": {k: round(v["accuracy"], 2) for k, v in s["per_question_type"].items()}}
    gates = [r["gate_mean"] for r in rows.values() if r.get("gate_mean") is not None]
    out["gate_mean"] = round(float(np.mean(gates)), 4) if gates else None
    return out


def _correct(item: EvalItem, answer: str) -> float:
    if item.benchmark == "unrelated":
        return float(key_answer(answer) == key_answer(item.answers[0]))
    return float(extract_answer(item.question, answer) in item.answers)


def _run(bundle: Bundle, items: Sequence[EvalItem], path: Path, cfg: ResultsConfig, prompt: str,
         voices: Sequence[str] = ("piper:joe",), use_image: bool = True, asr: bool = False, lead_samples: int = 0
         ) -> dict[str, dict[str, Any]]:
    from ..inference.ask import AskConfig

    rc = RunConfig(prompt=prompt, batch_size=cfg.batch_size, voices=tuple(voices), use_image=use_image, asr=asr,
                   ask=AskConfig(max_answer_frames=cfg.max_answer_frames, lead_samples=lead_samples))
    run_benchmark(bundle, items, path, rc, correct=_correct, progress=cfg.progress)
    return read_rows(path, prompt)


def _switching(bundle: Bundle, cfg: ResultsConfig, train_voices: Sequence[str], out: Path) -> dict[str, Any]:
    """Two image questions about one image, then an unrelated one, in one spoken conversation."""
    from ..audio.tts import make_tts
    from ..inference.conversation import converse_batch
    from ..models.vision import preprocess_images

    path = out / "switching.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        rows = []
    from ..eval.benchmarks import load_benchmark

    by_image: dict[str, list[EvalItem]] = {}
    for it in load_benchmark("easy-vqa", split="test").items:
        by_image.setdefault(str(it.meta["image_id"]), []).append(it)
    rng = random.Random(f"tinyworld-switching|{cfg.seed}")
    images = sorted(k for k, v in by_image.items() if len(v) >= 2)
    pairs = [rng.sample(by_image[k], 2) for k in rng.sample(images, min(cfg.switching, len(images)))]
    others = unrelated_items(len(pairs), seed=cfg.seed + 7)
    voices = {v: make_tts(v) for v in train_voices}
    model = bundle.model
    done = {r["id"] for r in rows}
    todo = [(k, p, o) for k, (p, o) in enumerate(zip(pairs, others)) if f"conv/{k}" not in done]
    with open(path, "a") as f:
        for i in range(0, len(todo), cfg.batch_size):
            chunk = todo[i:i + cfg.batch_size]
            audio, embeds = [], []
            for k, pair, other in chunk:
                voice = voices[train_voices[k % len(train_voices)]]
                audio.append([voice.synthesize(q.question)[0] for q in pair] + [voice.synthesize(other.question)[0]])
                embeds.append(preprocess_images(pair[0].image.path, model.cfg.vision.image_size))  # type: ignore[union-attr]
            img = model.encode_image(torch.cat(embeds).to(model.lm.device))
            answers = converse_batch(model, bundle.tokenizer, bundle.codec, img, audio, cfg.switching_answer_frames)
            for (k, pair, other), ans in zip(chunk, answers):
                turns = [{"question": q.question, "answer": a.answer, "gate_mean": a.gate_mean,
                          "correct": bool(_correct(q, a.answer))} for q, a in zip([*pair, other], ans)]
                row = {"id": f"conv/{k}", "turns": turns}
                rows.append(row)
                f.write(json.dumps(row) + "\n")
            f.flush()

    def turn_stats(j: int) -> dict[str, Any]:
        ts = [r["turns"][j] for r in rows]
        return {"n": len(ts), "accuracy": round(100 * float(np.mean([t["correct"] for t in ts])), 2) if ts else None,
                "gate_mean": round(float(np.mean([t["gate_mean"] for t in ts])), 4) if ts else None}
    return {"image_q1": turn_stats(0), "image_q2": turn_stats(1), "unrelated_q3": turn_stats(2)}


def evaluate(cfg: ResultsConfig) -> dict[str, Any]:
    """Run every condition in `cfg.conditions` (resumable) and score them; writes results.json/.md."""
    from ..tinyworld.stages import user_voices

    check_conditions(cfg.conditions)  # before any work
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(cfg.bundle)
    items = easy_vqa_questions(cfg.questions, cfg.seed)
    # The sample and its wordings, for `moshivis eval run/score --questions` (the same numbers, by CLI).
    write_question_file(items, out / "questions.jsonl", meta_keys=("wording",))
    train_voices = user_voices()
    previous = out / "results.json"  # conditions measured before (a run of a subset keeps the others)
    res: dict[str, Any] = json.loads(previous.read_text()) if previous.is_file() else {}
    res.update({"bundle": str(cfg.bundle), "questions": len(items), "held_out_voices": list(cfg.held_out_voices),
                "training_voices": len(train_voices)})
    want = set(cfg.conditions)
    if "text" in want:
        res["text"] = _accuracy_split(_run(bundle, items, out / "text.jsonl", cfg, "text"), items)
    if "audio_train" in want:
        res["audio_train"] = _accuracy_split(_run(bundle, items, out / "audio_train.jsonl", cfg, "audio",
                                                  train_voices), items)
    if "audio_heldout" in want:
        res["audio_heldout"] = _accuracy_split(_run(bundle, items, out / "audio_heldout.jsonl", cfg, "audio",
                                                    cfg.held_out_voices), items)
    if "audio_offgrid" in want:  # the first `offgrid` questions of audio_train, half a frame later
        sub = items[: cfg.offgrid]
        half = bundle.codec.frame_size // 2
        res["audio_offgrid"] = _accuracy_split(_run(bundle, sub, out / "audio_offgrid.jsonl", cfg, "audio",
                                                    train_voices, lead_samples=half), sub)
        res["audio_offgrid"]["lead_samples"] = half
    if "blind" in want:
        res["blind"] = _accuracy_split(_run(bundle, items, out / "blind.jsonl", cfg, "text", use_image=False), items)
        major = majority_answers()
        res["majority"] = _accuracy_split({i.id: {"answer": _majority_sentence(i, major)} for i in items}, items)
        res["majority"]["answers"] = major
    if "asr" in want:
        sub = items[: cfg.asr_answers]
        rows = _run(bundle, sub, out / "asr.jsonl", cfg, "audio", train_voices, asr=True)
        res["spoken_answers"] = _spoken_answer_scores(rows, sub)
    if "unrelated_base" in want or "unrelated_adapted" in want:
        un = unrelated_items(cfg.unrelated, seed=cfg.seed + 3)
        block: dict[str, Any] = {"n": len(un)}
        if "unrelated_base" in want:
            rows = _run(bundle, un, out / "unrelated_base.jsonl", cfg, "audio", train_voices, use_image=False)
            block["base"] = _unrelated_block(rows, un)
        if "unrelated_adapted" in want:
            imgs = [i.image for i in items]
            with_img = [dataclasses.replace(u, image=imgs[k % len(imgs)]) for k, u in enumerate(un)]
            rows = _run(bundle, with_img, out / "unrelated_adapted.jsonl", cfg, "audio", train_voices)
            block["adapted"] = _unrelated_block(rows, un)
        res["unrelated"] = block
    if "switching" in want:
        res["switching"] = _switching(bundle, cfg, train_voices, out)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    (out / "results.md").write_text(markdown(res))
    return res


def _majority_sentence(item: EvalItem, major: dict[str, str]) -> str:
    """The majority answer as a sentence the extractor reads back (negated questions answer the fact)."""
    a = major.get(item.question_type or "", "")
    if item.question_type == "yes/no":
        return f"{a.capitalize()}."
    return f"It's {a}."


def _unrelated_block(rows: dict[str, dict[str, Any]], items: Sequence[EvalItem]) -> dict[str, Any]:
    s = unrelated_scores({k: r["answer"] for k, r in rows.items()}, items)
    gates = [r["gate_mean"] for r in rows.values()]
    return {"accuracy": round(s["accuracy"], 2), "per_topic": {k: round(v["accuracy"], 1) for k, v in s["per_topic"].items()},
            "gate_mean": round(float(np.mean(gates)), 4) if gates else None}


def _spoken_answer_scores(rows: dict[str, dict[str, Any]], items: Sequence[EvalItem]) -> dict[str, Any]:
    """Whisper tiny.en transcripts of Moshi's spoken answers against its text answers and the truth.

    `transcript_right` (issue 5's target 3) mixes two failures: the model answering wrong, and its voice
    not saying what its text says. So the voice alone is scored too, on the answers whose TEXT names an
    answer word (`text_readable`): `transcript_matches_readable` is the share of those whose transcript
    gives the same word (stop 28, shipped bundle: 92.2% of 232 readable answers of 300, where the mixed
    figure read 71.3%)."""
    from ..eval.asr_metric import asr_scores

    by_id = {i.id: i for i in items}
    agree = right = n = readable = 0
    pairs = []
    for k, r in rows.items():
        if "asr" not in r or k not in by_id:
            continue
        it = by_id[k]
        n += 1
        said, heard = extract_answer(it.question, r["answer"]), extract_answer(it.question, r["asr"])
        agree += heard is not None and heard == said
        readable += said is not None
        right += heard in it.answers
        pairs.append((k, r["answer"], r["asr"]))
    wer = asr_scores(pairs)["wer"] if pairs else None
    return {"n": n, "transcript_matches_text_answer": round(100 * agree / n, 2) if n else None,
            "transcript_right": round(100 * right / n, 2) if n else None,
            "wer_vs_text_answer_pct": round(wer, 2) if wer is not None else None,
            "text_readable": readable,
            "transcript_matches_readable": round(100 * agree / readable, 2) if readable else None}


def _pct(block: dict[str, Any] | None, key: str = "all") -> str:
    if not block or block.get(key) is None:
        return "-"
    return f"{block[key]['accuracy']:.1f}"


def _per_type_table(res: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Accuracy by question type (colour / shape / yes-no), all wordings: where a change helps or hurts
    hides in the overall number (stop 14: colour up 19 points, shape down 27)."""
    types = sorted({t for key in labels for t in (res.get(key) or {}).get("all", {}).get("per_type", {})})
    if not types:
        return []
    lines = ["", "| by question type (all wordings) | " + " | ".join(types) + " |", "|---" * (len(types) + 1) + "|"]
    for key, label in labels.items():
        per = (res.get(key) or {}).get("all", {}).get("per_type")
        if per:
            lines.append(f"| {label} | " + " | ".join("-" if per.get(t) is None else f"{per[t]:.1f}" for t in types)
                         + " |")
    return lines


def markdown(res: dict[str, Any]) -> str:
    """The results as Markdown tables (README and model card)."""
    lines = [f"easy-vqa test, {res['questions']} questions (half in held-out wordings); accuracy %",
             "", "| condition | all | seen wording | held-out wording | mean gate |", "|---|---|---|---|---|"]
    labels = {"text": "text prompt, image", "audio_train": "audio prompt, training voices, image",
              "audio_heldout": f"audio prompt, held-out voice ({', '.join(res['held_out_voices'])}), image",
              "audio_offgrid": (f"audio prompt, training voices, half a frame off the grid "
                                f"(first {(res.get('audio_offgrid') or {}).get('all', {}).get('n', '-')})"),
              "blind": "blind: frozen base, no image (text)", "majority": "majority answer per question type"}
    for key, label in labels.items():
        b = res.get(key)
        if b:
            g = b.get("gate_mean")
            lines.append(f"| {label} | {_pct(b)} | {_pct(b, 'seen')} | {_pct(b, 'held-out')} | "
                         f"{'-' if g is None else f'{g:.3f}'} |")
    lines += _per_type_table(res, labels)
    if sa := res.get("spoken_answers"):
        readable = ("-" if sa.get("transcript_matches_readable") is None  # results.json files before stop 28
                    else f"{sa['transcript_matches_readable']} (of {sa['text_readable']})")
        lines += ["", ("| spoken answers (Whisper tiny.en) | n | transcript gives the text answer's word % | "
                       "the same, of text answers that name a word | transcript right % | WER vs text answer % |"),
                  "|---|---|---|---|---|---|",
                  (f"| audio prompts, training voices | {sa['n']} | {sa['transcript_matches_text_answer']} | "
                   f"{readable} | {sa['transcript_right']} | {sa['wer_vs_text_answer_pct']} |")]
    if un := res.get("unrelated"):
        lines += ["", f"| image-unrelated spoken questions ({un['n']}) | accuracy % | mean gate |", "|---|---|---|"]
        if "base" in un:
            lines.append(f"| frozen base, no image | {un['base']['accuracy']:.1f} | - |")
        if "adapted" in un:
            lines.append(f"| adapted, with an image | {un['adapted']['accuracy']:.1f} | {un['adapted']['gate_mean']:.3f} |")
        if res.get("audio_train", {}).get("gate_mean") is not None:
            lines.append(f"| (image questions, same voices) | - | {res['audio_train']['gate_mean']:.3f} |")
    if sw := res.get("switching"):
        lines += ["", "| switching test (one conversation) | n | accuracy % | mean gate |", "|---|---|---|---|"]
        for key, label in (("image_q1", "image question 1"), ("image_q2", "image question 2"),
                           ("unrelated_q3", "unrelated question 3")):
            s = sw[key]
            lines.append(f"| {label} | {s['n']} | {s['accuracy']} | {s['gate_mean']} |")
    return "\n".join(lines) + "\n"
