"""scripts/compare_arms.py: per-arm means over seeds, the two tests against the first arm, and named errors.

The statistics are checked against values worked out by hand (Student t with 1 and 2 degrees of freedom has
closed forms), the comparison on the shipped bundle's dev answers against arms made from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testkit import load_script

REPO = Path(__file__).resolve().parents[2]
DEV = REPO / "tinyworld" / "results" / "dev"


def load():
    return load_script("scripts/compare_arms.py")


def test_welch_p_matches_closed_forms() -> None:
    m = load()
    # t with 1 df is Cauchy: P(|t| > 1) = 0.5; with 2 df, P(|t| > t0) = 1 - t0 / sqrt(2 + t0^2).
    assert m._betainc(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-9)
    assert m._betainc(1.0, 0.5, 2 / (2 + 4.0)) == pytest.approx(1 - 2 / 6 ** 0.5, abs=1e-9)
    # Equal variances and sizes: Welch's df = 2n - 2; two arms of [0, 2] and [1, 3] give t = -1/sqrt(2), df 2.
    t0 = 2 ** -0.5
    assert m.welch_p([0, 2], [1, 3]) == pytest.approx(1 - t0 / (2 + t0 * t0) ** 0.5, abs=1e-9)
    assert m.welch_p([1, 1], [1, 1]) == 1.0 and m.welch_p([1], [2, 3]) == 1.0


def test_question_kinds_follow_the_results_table() -> None:
    """The same split as the results table's question types, on the dev sample's own wordings."""
    m = load()
    from moshivis.eval.benchmarks import load_benchmark

    types = {it.id: it.question_type for it in load_benchmark("easy-vqa").items}
    rows = [json.loads(line) for line in (DEV / "questions_1001_2000.jsonl").read_text().splitlines()]
    assert all(m.question_kind(r["question"]) == types[r["id"]] for r in rows)
    assert {m.question_kind(r["question"]) for r in rows} == {"color", "shape", "yes/no"}


def test_paired_permutation_p() -> None:
    m = load()
    assert m.paired_permutation_p([0.0] * 10) == 1.0
    assert m.paired_permutation_p([1.0] * 30, rounds=2000) < 0.001  # every question better: no flip reaches it
    assert m.paired_permutation_p([1.0, -1.0] * 15, rounds=2000) == 1.0


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_arms_on_the_shipped_dev_answers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Arm A: the shipped answers three times (seeds that agree); arm B: the same with the first 100
    questions' answers blanked in every file, so B loses exactly the right answers among them."""
    m = load()
    answers = [json.loads(line) for line in (DEV / "shipped_audio_1001_2000.jsonl").read_text().splitlines()]
    shipped = DEV / "shipped_audio_1001_2000.jsonl"
    blank = _write(tmp_path / "b.jsonl", [dict(r, answer="") if i < 100 else r for i, r in enumerate(answers)])
    out_json = tmp_path / "r.json"
    assert m.main(["--questions", str(DEV / "questions_1001_2000.jsonl"), "--arm", "A", str(shipped), str(shipped),
                   str(shipped), "--arm", "B", str(blank), str(blank), str(blank), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    r = json.loads(out_json.read_text())
    a, b = r["arms"]["A"], r["arms"]["B"]
    assert r["questions"] == 1000 and a["seeds"] == 3
    assert a["all"]["mean"] == 60.8  # the shipped bundle's dev score (README, stop 29)
    assert a["seen"]["mean"] == 72.8 and a["held-out"]["mean"] == 48.8
    lost = a["all"]["mean"] - b["all"]["mean"]
    assert 0 < lost <= 10.0  # at most the 100 blanked questions, all of them right before
    assert b["all"]["p_paired"] < 0.001  # every changed question went one way
    assert b["all"]["p_seeds"] == 0.0  # no spread within either arm, different means
    assert "| A | 3 | 60.8 (60.8-60.8)" in out and "p=" in out


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    m = load()
    q = _write(tmp_path / "q.jsonl", [{"id": "test/0", "question": "what color is the shape?"}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "test/0", "answer": "red"}\n{"id": "test/1"\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl: 1 malformed prediction rows:\n  line 2: invalid JSON"):
        m.main(["--questions", str(q), "--arm", "A", str(bad)])
    nofield = _write(tmp_path / "nf.jsonl", [{"id": "test/0"}])
    with pytest.raises(ValueError, match=r"nf\.jsonl: 1 malformed prediction rows:\n  line 1: 'answer' must be a string"):
        m.main(["--questions", str(q), "--arm", "A", str(nofield)])
    with pytest.raises(SystemExit):
        m.main(["--questions", str(q), "--arm", "A", str(tmp_path / "absent.jsonl")])
    other = _write(tmp_path / "o.jsonl", [{"id": "test/5", "answer": "red"}])
    with pytest.raises(ValueError, match="answers none of the questions"):
        m.main(["--questions", str(q), "--arm", "A", str(other)])
