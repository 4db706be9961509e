"""Free-running polarity of echoed yes/no answers: for each spoken yes/no question of an eval run (results
sample), was it echoed with the asked polarity ("Not a ..." for a negated question, "A ..." for a plain one),
and was the answer right; then, per wording, how often a plain question was echoed as negated (README, stop 22).

    python scripts/echo_polarity.py runs/sp/ev_c/on200.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from listening_probe import asked_polarity  # noqa: E402

from moshivis.data.easy_vqa_wordings import parse_easy_vqa_question, wording_split  # noqa: E402
from moshivis.tinyworld.results import _correct, easy_vqa_questions  # noqa: E402


def echoed_polarity(answer: str) -> str | None:
    words = answer.split()
    first = words[0] if words else ""
    return "not" if first == "Not" else ("has" if first in ("A", "An") else None)


def main(paths: list[str]) -> None:
    items = {it.id: it for it in easy_vqa_questions(2000, 0)}
    split = wording_split()
    for path in paths:
        outcome: Counter = Counter()
        plain: Counter = Counter()
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            row = json.loads(line)
            item = items.get(row.get("id"))
            if item is None:
                raise SystemExit(f"{path}:{n}: id {row.get('id')!r} is not in the results sample")
            asked = asked_polarity(item.question)
            if asked is None:
                continue
            echo = echoed_polarity(row["answer"])
            kind = "no echo" if echo is None else ("polarity right" if echo == asked else "polarity wrong")
            outcome[kind, asked, _correct(item, row["answer"]) > 0] += 1
            if asked == "has":
                q = parse_easy_vqa_question(item.question)
                wording = "held-out" if q.template in split.heldout[q.intent] else "seen"
                plain[wording, q.template, echo == "not"] += 1
        print(path)
        for kind, asked in sorted({(k, a) for k, a, _ in outcome}):
            n = outcome[kind, asked, True] + outcome[kind, asked, False]
            print(f"  {kind:15s} asked {asked}: {n:3d} answers, {outcome[kind, asked, True]:3d} right")
        print("  plain questions echoed as negated, per wording:")
        for wording, template in sorted({(w, t) for w, t, _ in plain}):
            heard = plain[wording, template, True]
            total = heard + plain[wording, template, False]
            print(f"    {wording:8s} {heard:3d} / {total:<3d} {template}")


if __name__ == "__main__":
    main(sys.argv[1:])
