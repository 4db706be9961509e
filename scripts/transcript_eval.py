"""Spoken easy-vqa eval of a model that transcribes the question on its text stream (synth `transcribe_user`).

`eval run` reads an answer from the end of the spoken question; a transcribing model's transcript runs past
that point, and its answer can start before it. Here the text is read from the question's start, and the
answer is what follows the transcript (everything after the first '?'); answers end after 16 padding
frames. The transcripts go to OUT.transcripts.jsonl in item order, with their word error rate (the
project's `eval.asr_metric`) and the yes/no polarity word's agreement printed at the end, by wording.

    python scripts/transcript_eval.py BUNDLE OUT.jsonl [LIMIT]   (the first LIMIT of tinyworld/results/questions.jsonl)
    python scripts/transcript_eval.py --score-only OUT.jsonl [LIMIT]   (the transcript figures of a finished run)
    moshivis eval score --benchmark easy-vqa --predictions OUT.jsonl \
        --questions tinyworld/results/questions.jsonl --only-predicted
"""

from __future__ import annotations

import json
import os
import sys

from moshivis.eval.asr_metric import WordErrors, word_errors
from moshivis.eval.benchmarks import load_benchmark
from moshivis.eval.items import EvalItem
from moshivis.eval.question_file import select_questions
from moshivis.eval.text_norm import spoken_tokens

QUESTIONS = "tinyworld/results/questions.jsonl"
NEGATIONS = {"not", "no", "nothing", "lack", "free", "without", "absent", "missing"}


def split_transcript(text: str) -> tuple[str, str]:
    """The whole text stream of one answer -> (transcript up to its first '?', the answer after it)."""
    cut = text.find("?")
    return (text[:cut + 1], text[cut + 1:].strip()) if cut >= 0 else ("", text)


def answer(bundle_dir: str, items: list[EvalItem], out: str) -> None:
    """Ask every item spoken, scoring what follows each transcript; transcripts to OUT.transcripts.jsonl."""
    from moshivis.eval import run as R
    from moshivis.eval.easy_vqa_metric import extract_answer
    from moshivis.inference import ask as A
    from moshivis.inference.bundle import load_bundle
    from moshivis.tinyworld.stages import user_voices

    if os.path.exists(out):  # the transcripts pair with the items by order
        raise SystemExit(f"{out} exists: start a fresh output file")
    schedule, ask_batch = A._schedule, R.ask_batch

    def from_question_start(q, tok, codec, K, cfg):  # noqa: ANN001, ANN202
        user, forced, end = schedule(q, tok, codec, K, cfg)
        return user, forced, (cfg.lead_frames if q.audio is not None else end)

    with open(out + ".transcripts.jsonl", "w") as side:
        def after_transcript(*a, **k):  # noqa: ANN002, ANN003, ANN202
            results = ask_batch(*a, **k)
            for r in results:
                full = r.answer
                transcript, r.answer = split_transcript(full)
                side.write(json.dumps({"transcript": transcript, "full": full}) + "\n")
            side.flush()
            return results

        A._schedule, R.ask_batch = from_question_start, after_transcript  # this script's process only
        cfg = R.RunConfig(prompt="audio", batch_size=8, voices=tuple(user_voices()), ask=A.AskConfig(end_pad_frames=16))
        print(R.run_benchmark(load_bundle(bundle_dir), items, out, cfg,
                              correct=lambda it, a: float(extract_answer(it.question, a) in it.answers)))


def transcript_figures(items: list[EvalItem], out: str) -> None:
    """Corpus WER of the transcripts against the questions, and the yes/no polarity word's agreement."""
    rows = [json.loads(line) for line in open(out)]
    transcripts = [json.loads(line) for line in open(out + ".transcripts.jsonl")]
    by_id = {str(it.id): it for it in items}
    for wording in ("seen", "held-out"):
        errors, agree, yes_no = WordErrors(), 0, 0
        for r, t in zip(rows, transcripts):
            it = by_id[r["id"]]
            if it.meta.get("wording") != wording:
                continue
            errors += word_errors(it.question, t["transcript"])
            if it.question_type == "yes/no":
                yes_no += 1
                agree += bool(NEGATIONS & set(spoken_tokens(it.question))) == \
                    bool(NEGATIONS & set(spoken_tokens(t["transcript"])))
        if errors.reference_words:
            print(f"{wording}: transcript WER {errors.wer:.3f}; yes/no polarity word agrees {agree}/{yes_no}")


def main(argv: list[str]) -> int:
    score_only = argv[:1] == ["--score-only"]
    args = argv[1:] if score_only else argv
    out_index = 0 if score_only else 1
    out = args[out_index]
    limit = int(args[out_index + 1]) if len(args) > out_index + 1 else 300
    items = select_questions(list(load_benchmark("easy-vqa", split="test").items), QUESTIONS)[:limit]
    if not score_only:
        answer(args[0], items, out)
    transcript_figures(items, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
