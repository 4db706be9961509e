"""Compare training arms, each run at several seeds, on the same spoken (or typed) easy-vqa questions.

One seed moves held-out wordings by 8-15 points (stop 28), so an LM change is judged by arms of at least
3 seeds each. Per arm this prints the mean accuracy over its seeds with the range (all, seen wording,
held-out wording, by question type), then two tests of each arm against the first:

    seeds     Welch's t-test over the arms' per-seed accuracies (what varies between training runs)
    paired    a permutation test over questions of the per-question accuracy averaged over an arm's seeds
              (what varies between questions; 20,000 sign flips of the per-question differences)

    python scripts/compare_arms.py --questions runs/pol/dev_yn.jsonl \
        --arm control runs/pol/C0.yn.jsonl runs/pol/C1.yn.jsonl runs/pol/C2.yn.jsonl \
        --arm centroid runs/pol/K0.yn.jsonl runs/pol/K1.yn.jsonl runs/pol/K2.yn.jsonl [--json out.json]

Only questions every file answered count (a run cut short compares on what it reached). Files are read by
`eval.question_file` and `eval.score`, whose errors name the file and line of a bad row.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path

from moshivis.data.easy_vqa_wordings import parse_easy_vqa_question
from moshivis.eval.easy_vqa_metric import extract_answer

KINDS = ("color", "shape", "yes/no")


def question_kind(question: str) -> str:
    """'color' / 'shape' / 'yes/no' for an easy-vqa question in any known wording."""
    intent = parse_easy_vqa_question(question).intent
    if intent.startswith(("has_", "not_")):
        return "yes/no"
    return "shape" if intent in ("shape", "shape_of_color") else "color"


def correctness(path: Path, questions: dict[str, dict], gold: dict[str, set[str]]) -> dict[str, bool]:
    """id -> whether the file's answer is right, for the ids of `questions` (rows read by `eval.score`)."""
    from moshivis.eval.score import PredictionsError, read_predictions

    try:
        rows = read_predictions(path)
    except PredictionsError as e:
        raise ValueError(f"{path}: {e}") from None
    return {r.id: extract_answer(questions[r.id]["question"], r.answer) in gold[r.id]
            for r in rows if r.id in questions}


def welch_p(a: list[float], b: list[float]) -> float:
    """Two-sided p of Welch's t-test (Student t via the regularised incomplete beta); 1.0 when undefined."""
    if len(a) < 2 or len(b) < 2:
        return 1.0
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return 1.0 if statistics.mean(a) == statistics.mean(b) else 0.0
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return _betainc(df / 2, 0.5, df / (df + t * t))


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta I_x(a, b) by its continued fraction (Numerical Recipes' Lentz form)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)) / a
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > 1e-30 else 1e-30)
        c = 1.0 + num / (c if abs(c) > 1e-30 else 1e-30)
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def paired_permutation_p(diffs: list[float], rounds: int = 20000, seed: int = 0) -> float:
    """Two-sided p that the mean of per-question differences is 0 (random sign flips; exact when all 0)."""
    observed = abs(sum(diffs))
    if observed == 0:
        return 1.0
    rng = random.Random(seed)
    hits = sum(abs(sum(d if rng.random() < 0.5 else -d for d in diffs)) >= observed - 1e-12 for _ in range(rounds))
    return (hits + 1) / (rounds + 1)


def compare(questions: dict[str, dict], gold: dict[str, set[str]], arms: list[tuple[str, list[Path]]]) -> dict:
    runs = {name: [correctness(p, questions, gold) for p in files] for name, files in arms}
    common = set(questions)
    for name, files in arms:
        for p, r in zip(files, runs[name]):
            if not r:
                raise ValueError(f"{p}: answers none of the questions")
            common &= set(r)
    ids = sorted(common)
    groups = {"all": ids, "seen": [i for i in ids if questions[i].get("wording") == "seen"],
              "held-out": [i for i in ids if questions[i].get("wording") == "held-out"]}
    groups.update({k: [i for i in ids if question_kind(questions[i]["question"]) == k] for k in KINDS})
    out: dict = {"questions": len(ids), "arms": {}}
    base_name = arms[0][0]
    for name, _ in arms:
        row: dict = {"seeds": len(runs[name])}
        for g, sel in groups.items():
            accs = [100.0 * sum(r[i] for i in sel) / len(sel) for r in runs[name]] if sel else []
            row[g] = {"mean": round(statistics.mean(accs), 2) if accs else None,
                      "min": round(min(accs), 2) if accs else None, "max": round(max(accs), 2) if accs else None,
                      "seeds": [round(a, 2) for a in accs]}
        if name != base_name:
            per_q = {n: {i: sum(r[i] for r in runs[n]) / len(runs[n]) for i in ids} for n in (base_name, name)}
            for g, sel in groups.items():
                if sel:
                    row[g]["p_seeds"] = round(welch_p(out["arms"][base_name][g]["seeds"], row[g]["seeds"]), 4)
                    row[g]["p_paired"] = round(paired_permutation_p([per_q[name][i] - per_q[base_name][i]
                                                                     for i in sel]), 4)
        out["arms"][name] = row
    return out


def table(result: dict) -> str:
    cols = ["all", "seen", "held-out", *KINDS]
    head = (f"{result['questions']} questions answered by every file; mean over seeds (range); p against the "
            "first arm: seeds (Welch) / questions (paired permutation)")
    lines = [head, "",
             "| arm | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, row in result["arms"].items():
        cells = []
        for c in cols:
            v = row[c]
            if v["mean"] is None:
                cells.append("-")
                continue
            cell = f"{v['mean']:.1f} ({v['min']:.1f}-{v['max']:.1f})"
            if "p_seeds" in v:
                cell += f" p={v['p_seeds']:.2g}/{v['p_paired']:.2g}"
            cells.append(cell)
        lines.append(f"| {name} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, required=True, help="an eval question file: JSONL {id, question?, wording}")
    ap.add_argument("--arm", nargs="+", action="append", required=True, metavar=("NAME", "FILE"),
                    help="an arm's name, then its eval run JSONL files (one per seed); the first arm is the base")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    arms = []
    for spec in args.arm:
        if len(spec) < 2:
            ap.error(f"--arm {spec[0]}: give the arm's name and at least one predictions file")
        files = [Path(f) for f in spec[1:]]
        for f in files:
            if not f.is_file():
                ap.error(f"--arm {spec[0]}: no such file {f}")
        arms.append((spec[0], files))
    from moshivis.eval.benchmarks import load_benchmark  # the benchmark's gold answers (slow import)
    from moshivis.eval.question_file import select_questions

    # The question file's items in its wordings (errors name its file and line, e.g. an id easy-vqa lacks).
    items = select_questions(load_benchmark("easy-vqa").items, args.questions)
    questions = {it.id: {"question": it.question, "wording": it.meta.get("wording")} for it in items}
    gold = {it.id: set(it.answers) for it in items}
    result = compare(questions, gold, arms)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
