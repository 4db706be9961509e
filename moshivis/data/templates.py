"""Offline template dialogues: a `SourceRow` -> a multi-turn `Dialogue` about its image, no LLM needed.

The paper generates its dialogues with two LLMs (see `llm_dialogues`); templates are the cheap,
deterministic stand-in: they make every question type of the paper from what a row already holds.

- VQA rows (VQAv2, OCR-VQA): the real QA pairs, answer = most common annotator answer, said as a short
  spoken sentence (`spoken_answer`, in `spoken_answers`).
- Caption rows (COCO, DOCCI, PixMo-Cap): questions derived from the caption: what is seen, details,
  colours / counts / locations of known nouns, and misleading premises made by swapping a colour or noun
  (`caption_facts`).
- easy-vqa rows: the package's own questions, parsed into a structured intent so answers can be phrased
  (`easy_vqa_answers`) and questions reworded (`paraphrase`) from a wording table split into train /
  held-out wordings (`wording_split`), so a model can later be scored on wordings it never heard
  (`easy_vqa_wordings`).

This module is the entry point: `TemplateConfig`, `make_dialogue` (which picks and orders the exchanges
`template_exchanges.ExchangeBuilder` offers, or runs a teacher_student quiz) and `validate_dialogue`. It
re-exports the public names of the modules above (`__all__`), so `from moshivis.data.templates import X`
keeps working.

Question types (`QUESTION_TYPES`): properties, location, counting, misleading, teacher_student, mixed.
Randomness: one `random.Random` per (seed, row, type), so a dialogue depends only on those and not on
the order rows are processed in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from moshivis.data.caption_facts import CAPTION_COLORS, CaptionFacts, caption_facts
from moshivis.data.easy_vqa_answers import (
    EasyVqaAttributes,
    easy_vqa_attributes,
    easy_vqa_layout,
    easy_vqa_spoken_answer,
)
from moshivis.data.easy_vqa_wordings import (
    EASY_COLORS,
    EASY_ORIGINALS,
    EASY_PARAPHRASES,
    EASY_SHAPES,
    EasyVqaQuestion,
    WordingSet,
    WordingSplit,
    paraphrase,
    paraphrase_template_count,
    parse_easy_vqa_question,
    wording_split,
)
from moshivis.data.sources import SourceRow
from moshivis.data.spoken_answers import (
    as_sentence,
    most_common_answer,
    number_to_words,
    numbers_in_words,
    spoken_answer,
)
from moshivis.data.template_exchanges import Exchange, ExchangeBuilder
from moshivis.data.types import Dialogue, RowError, Turn

__all__ = [
    "CAPTION_COLORS", "EASY_COLORS", "EASY_ORIGINALS", "EASY_PARAPHRASES", "EASY_SHAPES", "NO_TEMPLATE",
    "QUESTION_TYPES", "CaptionFacts", "EasyVqaAttributes", "EasyVqaQuestion", "TemplateConfig", "WordingSet",
    "WordingSplit", "caption_facts", "easy_vqa_attributes", "easy_vqa_layout", "easy_vqa_spoken_answer",
    "make_dialogue", "most_common_answer", "number_to_words", "numbers_in_words", "paraphrase",
    "paraphrase_template_count", "parse_easy_vqa_question", "spoken_answer", "validate_dialogue", "wording_split",
]

QUESTION_TYPES: tuple[str, ...] = ("properties", "location", "counting", "misleading", "teacher_student", "mixed")
NO_TEMPLATE = "no template"  # RowError reason: the row holds nothing to ask that kind of question about


@dataclass
class TemplateConfig:
    """Knobs of `make_dialogue`. Turn counts are even (user first, Moshi last) and are an upper bound
    drawn uniformly in [min_turns, max_turns]: a row with few facts gives a shorter dialogue, never
    repeated questions; fewer than `min_turns` possible turns is a RowError."""

    min_turns: int = 2
    max_turns: int = 16
    numbers_as_words: bool = False  # "3" -> "three" in every turn (what a TTS voice says anyway)
    paraphrase_prob: float = 0.0  # easy-vqa: share of questions reworded with `paraphrase`
    wordings: WordingSet = "train"  # which wording set paraphrases draw from
    # easy-vqa yes/no: share of questions asked in a polarity drill wording (`easy_vqa_drills`: training
    # wordings with the negation toggled or a place swapped), drawn before `paraphrase_prob`
    drill_prob: float = 0.0
    # easy-vqa, any intent: share of questions asked in a new sentence frame (`easy_vqa_frames`: training-only
    # structures none of the tables has), drawn after `drill_prob`, before `paraphrase_prob`; no draw at 0
    frame_prob: float = 0.0
    # easy-vqa yes/no: chance that a question is followed at once by its polarity twin (same frame, negation
    # toggled, answered the other way); the twin comes on top of max_turns
    polarity_twins: float = 0.0
    heldout_fraction: float = 0.3
    split_seed: int = 0
    read_images: bool = True  # easy-vqa location facts come from the image's pixels (64x64, cheap)
    p_correct: float = 0.6  # teacher_student: how often the "student" answers right
    evidence_first: bool = False  # easy-vqa yes/no + misleading answers: what the image shows, then the verdict
    present_questions: bool = False  # easy-vqa: also ask yes/no about the image's own colour and shape
    echo_question: bool = False  # with evidence_first: yes/no answers first repeat what was asked ("A red shape? ...")
    # Chance that a fitting opener ("What do you see?") opens a dialogue; otherwise it has no opener and a
    # primary exchange (e.g. an easy-vqa question) goes first. At 1 easy-vqa yes/no questions almost
    # never open a dialogue (11 of 4,000, stop 18), yet evaluation asks each one first in a fresh conversation.
    opener_prob: float = 1.0


# ---------------------------------------------------------------------------------------- assembly

_OPEN_QUIZ = ("Can you quiz me about this picture?", "Let's play a game: ask me questions about the image.",
              "I want to practise. Ask me something about this picture.")
_NEXT = ("Next question: {q}", "Here's another one. {q}", "{q}")
_RIGHT = ("That's right! {s}", "Well done! {s}", "Correct. {s}")
_WRONG = ("Not quite. {s}", "Good try, but no. {s}", "Hmm, not really. {s}")
_UNSURE = ("That's okay. {s}", "No worries. {s}")
_MIX_KINDS = ("properties", "location", "counting", "misleading")


def make_dialogue(row: SourceRow, question_type: str = "mixed", seed: int = 0,
                  config: TemplateConfig | None = None) -> Dialogue | RowError:
    """A template dialogue about `row`'s image of `question_type` (one of QUESTION_TYPES), or a RowError
    ("no template") when the row holds nothing to ask that kind of question about. Deterministic in
    (seed, row.source, row.row, question_type, config)."""
    cfg = config or TemplateConfig()
    if question_type not in QUESTION_TYPES:
        raise ValueError(f"question_type must be one of {QUESTION_TYPES}, got {question_type!r}")
    if cfg.min_turns < 2 or cfg.max_turns < cfg.min_turns:
        raise ValueError(f"need 2 <= min_turns <= max_turns, got {cfg.min_turns}, {cfg.max_turns}")
    rng = random.Random(f"{seed}|{row.source}|{row.row}|{question_type}")
    lo, hi = (cfg.min_turns + 1) // 2, cfg.max_turns // 2
    n_pairs = rng.randint(lo, max(lo, hi))
    builder = ExchangeBuilder(row, rng, cfg)
    meta: dict[str, object] = {"seed": seed, "row": row.row, "requested_turns": 2 * n_pairs}
    if question_type == "teacher_student":
        result = _quiz(builder, max(n_pairs, 2), meta)
    else:
        result = _assemble(builder, question_type, n_pairs, meta)
    if isinstance(result, RowError):
        return result
    turns = result
    if len(turns) < cfg.min_turns:
        return RowError(row.source, row.row, NO_TEMPLATE,
                        f"{question_type}: only {len(turns)} turns possible, min_turns={cfg.min_turns}")
    if cfg.numbers_as_words:
        turns = [Turn(t.speaker, numbers_in_words(t.text), t.about_image) for t in turns]
    return Dialogue(id=f"{row.source}:{row.row}:{question_type}:{seed}", turns=turns, image=row.image,
                    source=row.source, question_type=question_type, meta=meta)


def _assemble(b: ExchangeBuilder, qtype: str, n_pairs: int, meta: dict[str, object]) -> list[Turn] | RowError:
    rng = b.rng
    if qtype == "mixed":
        pools = {k: getattr(b, k)() for k in _MIX_KINDS}
        primary = [ex for k in _MIX_KINDS for ex in pools[k]]
        filler: list[Exchange] = []
    else:
        primary = getattr(b, qtype)()
        # Few facts of one kind: pad with plain property questions, as a real conversation would.
        filler = b.properties() if qtype != "properties" else []
    if not primary:
        return RowError(b.row.source, b.row.row, NO_TEMPLATE, f"{qtype}: nothing to ask about this row")
    openers = [ex for ex in primary + filler if ex.opener]
    rest_primary = [ex for ex in primary if not ex.opener]
    rest_filler = [ex for ex in filler if not ex.opener]
    rng.shuffle(rest_primary)
    rng.shuffle(rest_filler)
    chosen: list[Exchange] = []
    # The first exchange: an opener when one fits the type, else a primary one.
    own_openers = [ex for ex in openers if ex.kind == qtype or qtype == "mixed"]
    # (no draw at opener_prob 1: the dialogues of builds made before the option stay the same)
    if own_openers and b.config.opener_prob < 1.0 and rng.random() >= b.config.opener_prob:
        own_openers = openers = []
    if own_openers:
        chosen.append(rng.choice(own_openers))
    elif openers and rest_primary and rng.random() < 0.5:
        chosen.append(rng.choice(openers))
    body = rest_primary[: n_pairs - len(chosen)]
    body += rest_filler[: n_pairs - len(chosen) - len(body)]
    if not any(ex in primary for ex in chosen + body):
        body = [rng.choice(primary)] + body[:-1]
    # Keep primary exchanges spread through the dialogue rather than bunched at its start.
    rng.shuffle(body)
    chosen += body
    turns: list[Turn] = []
    corrections, paraphrased = [], []
    for ex in chosen:
        if ex.correction:
            corrections.append(len(turns) + 1)
        for e in (ex, ex.twin) if ex.twin is not None else (ex,):
            if e.paraphrased:
                paraphrased.append(len(turns))
            turns += [Turn("user", as_sentence(e.user)), Turn("moshi", as_sentence(e.moshi))]
    meta["exchange_types"] = [e.kind for ex in chosen for e in (ex, ex.twin) if e is not None]
    if corrections:
        meta["corrections"] = corrections  # indices of Moshi turns that correct a false premise
    if paraphrased:
        meta["paraphrased"] = paraphrased  # indices of user turns reworded by `paraphrase`
    if b.easy:
        meta["wordings"] = b.config.wordings if b.config.paraphrase_prob > 0 else "original"
    return turns


def _quiz(b: ExchangeBuilder, n_pairs: int, meta: dict[str, object]) -> list[Turn] | RowError:
    """teacher_student: the user asks to be quizzed; Moshi asks, the user answers (right, wrong or
    unsure), Moshi gives feedback and asks the next one. Turns = 2 + 2 * rounds."""
    rng = b.rng
    items = b.quiz_items()
    rng.shuffle(items)
    rounds = min(len(items), n_pairs - 1)
    if rounds < 1:
        return RowError(b.row.source, b.row.row, NO_TEMPLATE, "teacher_student: nothing to quiz about")
    items = items[:rounds]
    turns = [Turn("user", rng.choice(_OPEN_QUIZ)), Turn("moshi", f"{rng.choice(['Sure!', 'Okay!', 'Of course.'])} {items[0].question}")]
    log = []
    for k, item in enumerate(items):
        if rng.random() < b.config.p_correct:
            given, verdict = item.answer, "right"
        elif item.distractors:
            given, verdict = rng.choice(item.distractors), "wrong"
        else:
            given, verdict = "", "unsure"
        user = _student_says(given, rng)
        feedback = rng.choice({"right": _RIGHT, "wrong": _WRONG, "unsure": _UNSURE}[verdict]).format(s=item.spoken)
        if k + 1 < len(items):
            feedback += " " + rng.choice(_NEXT).format(q=items[k + 1].question)
        else:
            feedback += " " + rng.choice(["That's all for now, well done!", "Thanks for playing!"])
        turns += [Turn("user", user), Turn("moshi", feedback)]
        log.append({"question": item.question, "expected": item.answer, "given": given, "verdict": verdict})
    meta["quiz"] = log
    meta["exchange_types"] = ["teacher_student"] * len(items)
    return turns


def _student_says(answer: str, rng: random.Random) -> str:
    if not answer:
        return rng.choice(["I'm not sure.", "I don't know."])
    if answer.lower() in ("yes", "no"):
        yes = answer.lower() == "yes"
        return rng.choice(["Yes.", "Yes, I think so."] if yes else ["No.", "No, I don't think so."])
    return as_sentence(rng.choice(["{a}", "I think it's {a}.", "{a}?"]).format(a=answer))


def validate_dialogue(d: Dialogue) -> list[str]:
    """Problems with a dialogue's shape (empty list: fine): user first, strict alternation, no empty
    turn, Moshi last."""
    problems = []
    if not d.turns:
        return ["no turns"]
    for i, t in enumerate(d.turns):
        want = "user" if i % 2 == 0 else "moshi"
        if t.speaker != want:
            problems.append(f"turn {i}: {t.speaker}, expected {want}")
        if not t.text.strip():
            problems.append(f"turn {i}: empty text")
    if d.turns[-1].speaker != "moshi":
        problems.append("last turn is the user's")
    return problems
