"""Where spoken yes/no answers go wrong (README / docs/TINYWORLD_LOG.md, stop 30).

The embedded model answers an easy-vqa yes/no question as echo, evidence, verdict: "Not a red shape? The
shape is green, so that's right, there is no red shape." For each yes/no answer of an `eval run`, this
classifies the first thing that went wrong:

    echo polarity wrong   "Not a ..." for a plain question, "A ..." for a negated one
    echo word wrong       the echo does not name the asked colour or shape
    no echo               the answer does not open with an echo
    evidence wrong        "The shape is X" disagrees with the image, or is missing or of the other kind
    verdict wrong         echo and evidence right, the verdict contradicts them
    right                 all three right

and prints, per predictions file, the counts by seen / held-out wording, then one comparison row per file:
accuracy, echo polarity right (all, seen, held-out, and per wording template with --template), and a paired
sign test of accuracy against the first file.

    python scripts/yes_no_anatomy.py --questions tinyworld/results/dev/questions_1001_2000.jsonl \\
        tinyworld/results/dev/shipped_audio_1001_2000.jsonl [more.jsonl ...] \\
        [--template "does the picture have a {color} shape?" ...]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass
from math import comb
from pathlib import Path

from moshivis.data.easy_vqa_wordings import EASY_COLORS, EASY_SHAPES, parse_easy_vqa_question
from moshivis.eval.easy_vqa_metric import extract_answer

OUTCOMES = ("right", "echo polarity wrong", "echo word wrong", "no echo", "evidence wrong", "verdict wrong")


@dataclass
class Judged:
    outcome: str
    correct: bool  # the metric's verdict on the whole answer
    polarity_right: bool  # the echo opens with the asked polarity
    wording: str  # "seen" / "held-out" (the question file's field)
    template: str


def echo_polarity(answer: str) -> str | None:
    first = answer.split()[0] if answer.split() else ""
    return "not" if first == "Not" else ("has" if first in ("A", "An") else None)


def judge(question: str, answer: str, gold: str, wording: str) -> Judged | None:
    """One yes/no answer (None for any other question). gold: the data set's "yes" / "no"."""
    parsed = parse_easy_vqa_question(question)
    if parsed is None or not parsed.intent.startswith(("has_", "not_")):
        return None
    asked_pol, asked = parsed.intent.split("_")[0], parsed.value
    vocabulary = EASY_COLORS if asked in EASY_COLORS else EASY_SHAPES
    correct = extract_answer(question, answer) == gold
    echo = echo_polarity(answer)
    head = answer.split("?")[0].lower() if "?" in answer else ""
    named = re.findall(r"[a-z]+", head)
    m = re.search(r"the shape is (?:an? )?(\w+)", answer.lower())
    evidence = m.group(1) if m else None
    present = (gold == "yes") == (asked_pol == "has")  # is the asked colour / shape in the image?
    if echo is None:
        outcome = "no echo"
    elif echo != asked_pol:
        outcome = "echo polarity wrong"
    elif asked not in named:
        outcome = "echo word wrong"
    elif evidence not in vocabulary or (evidence == asked) != present:
        outcome = "evidence wrong"
    else:
        outcome = "right" if correct else "verdict wrong"
    return Judged(outcome, correct, echo == asked_pol, wording, parsed.template)


def judge_file(path: str | Path, questions: dict[str, dict], gold: dict[str, str]) -> dict[str, Judged]:
    """id -> Judged for the yes/no answers of one `eval run` file (rows read by `eval.score`)."""
    from moshivis.eval.score import PredictionsError, read_predictions

    try:
        rows = read_predictions(path)
    except PredictionsError as e:
        raise SystemExit(f"{path}: {e}") from None
    out: dict[str, Judged] = {}
    for row in rows:
        q = questions.get(row.id)
        if q is None:
            raise SystemExit(f"{path}: id {row.id!r} is not in the questions file")
        j = judge(q["question"], row.answer, gold[row.id], q.get("wording") or "seen")
        if j is not None:
            out[row.id] = j
    return out


def sign_test(a: dict[str, Judged], b: dict[str, Judged]) -> tuple[int, int, float]:
    """(b right where a is wrong, the reverse, two-sided exact p) over the ids both answered."""
    up = sum(1 for k in a if k in b and b[k].correct and not a[k].correct)
    down = sum(1 for k in a if k in b and a[k].correct and not b[k].correct)
    n, k = up + down, min(up, down)
    return up, down, (min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0)


def share(rows: list[Judged], attr: str, keep=lambda j: True) -> str:
    sel = [j for j in rows if keep(j)]
    return f"{100 * sum(getattr(j, attr) for j in sel) / len(sel):.1f}" if sel else "-"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("predictions", nargs="+", help="eval run JSONL files ({id, answer}); the first is the baseline")
    ap.add_argument("--questions", required=True, help="the --questions file they answered ({id, question, wording})")
    ap.add_argument("--template", action="append", default=[], help="a wording template to report polarity for")
    args = ap.parse_args(argv)
    from moshivis.eval.benchmarks import load_benchmark
    from moshivis.eval.question_file import select_questions

    items = select_questions(load_benchmark("easy-vqa").items, args.questions)
    questions = {it.id: {"question": it.question, "wording": it.meta.get("wording")} for it in items}
    gold = {it.id: it.answers[0] for it in items}
    judged = [judge_file(p, questions, gold) for p in args.predictions]
    for path, d in zip(args.predictions, judged):
        counts = Counter((j.outcome, j.wording) for j in d.values())
        print(f"\n{path}: {len(d)} yes/no answers\n\n| outcome | seen | held-out |\n|---|---|---|")
        for o in OUTCOMES:
            print(f"| {o} | {counts[(o, 'seen')]} | {counts[(o, 'held-out')]} |")
    heads = ["yes/no %", "seen", "held-out", "echo polarity %", "seen", "held-out", *args.template]
    print("\n| file | n | " + " | ".join(heads) + " | vs first: +/- (p) |")
    print("|---" * (len(heads) + 3) + "|")
    for path, d in zip(args.predictions, judged):
        rows = list(d.values())
        up, down, p = sign_test(judged[0], d)
        cells = [share(rows, "correct"), share(rows, "correct", lambda j: j.wording == "seen"),
                 share(rows, "correct", lambda j: j.wording != "seen"), share(rows, "polarity_right"),
                 share(rows, "polarity_right", lambda j: j.wording == "seen"),
                 share(rows, "polarity_right", lambda j: j.wording != "seen"),
                 *(share(rows, "polarity_right", lambda j, t=t: j.template == t) for t in args.template)]
        print(f"| {Path(path).name} | {len(rows)} | " + " | ".join(cells) + f" | +{up}/-{down} (p={p:.3g}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
