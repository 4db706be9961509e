"""Dialogue generation: templates per question type, easy-vqa paraphrases and wording split, the LLM
generator against a local stub server, concat augmentation and audio-only dialogues."""

from __future__ import annotations

import json
import random
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from moshivis.data.augment import audio_only_dialogues, concat_augment, smalltalk_dialogue
from moshivis.data.llm_dialogues import ChatClient, LLMConfig, generate_llm_dialogue, generate_llm_dialogues
from moshivis.data.sources import SourceRow, read_easy_vqa
from moshivis.data.templates import (
    EASY_ORIGINALS,
    EASY_PARAPHRASES,
    QUESTION_TYPES,
    TemplateConfig,
    easy_vqa_attributes,
    make_dialogue,
    number_to_words,
    paraphrase,
    parse_easy_vqa_question,
    spoken_answer,
    validate_dialogue,
    wording_split,
)
from moshivis.data.types import Dialogue, ImageRef, RowError, Turn


@pytest.fixture(scope="module")
def easy_rows() -> list[SourceRow]:
    rows = [r for r in read_easy_vqa("train", limit=20) if isinstance(r, SourceRow)]
    assert len(rows) == 20
    return rows


CAPTION_ROW = SourceRow("42", ImageRef("42", "/nowhere/42.jpg"), "coco", captions=[
    "A brown dog is sitting on the red couch next to two cats.", "A dog and two cats resting on a sofa."])
VQA_ROW = SourceRow("7", ImageRef("7", "/nowhere/7.jpg"), "vqav2", qa=[
    ("What color is the bus?", ["red"] * 6 + ["maroon"] * 4), ("How many people are there?", ["3", "3", "4"]),
    ("Is there a dog?", ["no"] * 10), ("Where is the man standing?", ["on sidewalk"] * 10),
    ("Is it raining?", ["yes"] * 8 + ["no"] * 2)])


def texts(d: Dialogue) -> list[tuple[str, str]]:
    return [(t.speaker, t.text) for t in d.turns]


# ------------------------------------------------------------------------------------------ templates


@pytest.mark.parametrize("qtype", QUESTION_TYPES)
def test_templates_every_type(qtype: str, easy_rows: list[SourceRow]) -> None:
    cfg = TemplateConfig(min_turns=2, max_turns=12)
    for row in [easy_rows[0], easy_rows[1], CAPTION_ROW, VQA_ROW]:
        d = make_dialogue(row, qtype, seed=5, config=cfg)
        assert isinstance(d, Dialogue), d
        assert validate_dialogue(d) == [], texts(d)
        assert 2 <= len(d.turns) <= 12 and len(d.turns) % 2 == 0
        assert d.question_type == qtype and d.image == row.image and d.source == row.source
        assert all(t.about_image for t in d.turns)
        # Deterministic per seed ...
        assert texts(make_dialogue(row, qtype, seed=5, config=cfg)) == texts(d)
    # ... and the seed matters.
    variants = {tuple(texts(make_dialogue(easy_rows[0], qtype, seed=s, config=cfg))) for s in range(8)}
    assert len(variants) > 1


def test_vqa_answers_are_spoken(easy_rows: list[SourceRow]) -> None:
    d = make_dialogue(VQA_ROW, "properties", seed=0, config=TemplateConfig(min_turns=6, max_turns=16))
    pairs = dict(zip([t.text for t in d.turns[::2]], [t.text for t in d.turns[1::2]]))
    assert pairs["What color is the bus?"] == "The bus is red."  # most common answer, not "maroon"
    assert pairs["Is there a dog?"] == "No, there isn't."
    assert pairs["Is it raining?"] == "Yes, it is."
    assert spoken_answer("How many people are there?", "3", random.Random(0)) in (
        "There are 3.", "I count 3.", "The answer is 3.")
    assert spoken_answer("Do you see a cat?", "no") == "No, I don't."
    assert spoken_answer("Are the people walking?", "yes") == "Yes, they are."
    assert spoken_answer("Who wrote this book?", "Jane Doe") == "It was written by Jane Doe."
    # easy-vqa: each real question appears with an answer consistent with the data set's.
    row = easy_rows[0]
    attrs = easy_vqa_attributes(row.qa)
    assert (attrs.shape, attrs.color) == ("rectangle", "blue")
    d = make_dialogue(row, "properties", seed=1, config=TemplateConfig(min_turns=16, max_turns=16))
    said = dict(zip([t.text.lower() for t in d.turns[::2]], [t.text for t in d.turns[1::2]]))
    for q, (a,) in row.qa:
        if q in said and a in ("yes", "no"):
            negated = " not " in q or " no " in q
            present = (a == "yes") != negated
            assert said[q].startswith(("Yes", "Actually") if present else ("No", "That's right")), (q, a, said[q])
    # evidence_first: what the image shows first (this image's known colour or shape), then the verdict.
    d = make_dialogue(row, "properties", seed=1, config=TemplateConfig(min_turns=16, max_turns=16, evidence_first=True))
    said = dict(zip([t.text.lower() for t in d.turns[::2]], [t.text for t in d.turns[1::2]]))
    checked = 0
    for q, (a,) in row.qa:
        if q in said and a in ("yes", "no"):
            negated = " not " in q or " no " in q
            present = (a == "yes") != negated
            about_color = parse_easy_vqa_question(q).intent.endswith("color")
            seen = "The shape is blue, so " if about_color else "The shape is a rectangle, so "
            verdict = ("yes", "actually") if present else ("no", "that's right")
            assert said[q].startswith(seen) and said[q][len(seen):].startswith(verdict), (q, a, said[q])
            checked += 1
    assert checked
    # echo_question: the question's colour or shape (and its negation) repeated first, then the same answer.
    echoed = make_dialogue(row, "properties", seed=1, config=TemplateConfig(min_turns=16, max_turns=16,
                                                                           evidence_first=True, echo_question=True))
    for plain, echo in zip(d.turns[1::2], echoed.turns[1::2]):
        q = echoed.turns[echoed.turns.index(echo) - 1].text
        p = parse_easy_vqa_question(q)
        if p is None or p.intent not in ("has_color", "not_color", "has_shape", "not_shape"):
            assert echo.text == plain.text
            continue
        asked, _, rest = echo.text.partition("? ")
        assert rest == plain.text and p.value in asked.lower(), (q, echo.text)
        assert asked.startswith("Not ") == p.intent.startswith("not"), (q, echo.text)


def test_present_questions_ask_about_what_the_image_shows(easy_rows: list[SourceRow]) -> None:
    """`present_questions`: yes/no questions about the image's own colour and shape join its QA pairs, with
    the verdict "present" (easy-vqa's own rarely have it); off, only the row's own questions are asked."""
    row = easy_rows[0]  # a blue rectangle
    base = TemplateConfig(min_turns=16, max_turns=16)
    on = TemplateConfig(min_turns=16, max_turns=16, present_questions=True)
    found = []
    for seed in range(20):
        d = make_dialogue(row, "properties", seed=seed, config=on)
        for q, a in zip([t.text for t in d.turns[::2]], [t.text for t in d.turns[1::2]]):
            p = parse_easy_vqa_question(q.lower())
            if p is not None and p.intent.startswith(("has_", "not_")) and p.value in ("blue", "rectangle"):
                assert a.startswith("Yes" if p.intent.startswith("has_") else "Actually"), (q, a)
                found.append(p.intent)
    assert {"has_color", "not_color", "has_shape", "not_shape"} <= set(found)
    own = {q.lower() for q, _ in row.qa}
    for seed in range(20):  # off: only the row's own questions are asked
        d = make_dialogue(row, "properties", seed=seed, config=base)
        asked = {t.text.lower() for t in d.turns[::2] if parse_easy_vqa_question(t.text.lower()) is not None}
        assert asked <= own, asked - own


def test_opener_prob_lets_easy_vqa_questions_open_dialogues(easy_rows: list[SourceRow]) -> None:
    """`opener_prob` 1 (default): every properties dialogue opens with "What do you see?"-like openers, and
    the dialogues are those made before the option existed (no extra random draw); 0: an easy-vqa question
    opens every one; 0.5: about half."""
    def first_is_easy_vqa(prob: float, seed: int, row: SourceRow) -> bool:
        d = make_dialogue(row, "properties", seed=seed, config=TemplateConfig(max_turns=6, opener_prob=prob))
        return parse_easy_vqa_question(d.turns[0].text.lower()) is not None

    pairs = [(seed, row) for seed in range(10) for row in easy_rows]
    assert not any(first_is_easy_vqa(1.0, s, r) for s, r in pairs)
    assert all(first_is_easy_vqa(0.0, s, r) for s, r in pairs)
    assert 0.3 < sum(first_is_easy_vqa(0.5, s, r) for s, r in pairs) / len(pairs) < 0.7
    same = make_dialogue(easy_rows[0], "properties", seed=3, config=TemplateConfig(max_turns=6))
    assert same.turns == make_dialogue(easy_rows[0], "properties", seed=3,
                                       config=TemplateConfig(max_turns=6, opener_prob=1.0)).turns


def test_turn_limits_and_numbers(easy_rows: list[SourceRow]) -> None:
    lengths = set()
    for seed in range(30):
        d = make_dialogue(easy_rows[2], "mixed", seed=seed, config=TemplateConfig(min_turns=4, max_turns=8))
        assert isinstance(d, Dialogue) and 4 <= len(d.turns) <= 8
        lengths.add(len(d.turns))
    assert lengths == {4, 6, 8}
    d = make_dialogue(CAPTION_ROW, "counting", seed=0, config=TemplateConfig(min_turns=8, numbers_as_words=True))
    assert not re.search(r"\d", " ".join(t.text for t in d.turns))
    assert "There are two cats." in [t.text for t in d.turns]
    assert number_to_words(21) == "twenty-one" and number_to_words(305) == "three hundred and five"
    # Nothing to say of that kind: an error with a reason, not an exception.
    bare = SourceRow("x", ImageRef("x", "/x.jpg"), "coco", captions=["Abstract art."])
    err = make_dialogue(bare, "location", seed=0)
    assert isinstance(err, RowError) and err.reason == "no template" and err.row == "x"


def test_misleading_has_corrections(easy_rows: list[SourceRow]) -> None:
    for row in [*easy_rows[:5], CAPTION_ROW, VQA_ROW]:
        d = make_dialogue(row, "misleading", seed=3, config=TemplateConfig(min_turns=4, max_turns=10))
        assert isinstance(d, Dialogue)
        corrections = d.meta["corrections"]
        assert corrections and all(d.turns[i].speaker == "moshi" for i in corrections)
        for i in corrections:
            assert re.search(r"\b(no|not|isn't|aren't|only|actually)\b", d.turns[i].text, re.I), d.turns[i].text
    # The correction names the truth: easy-vqa's colour, the caption's colour / count.
    d = make_dialogue(easy_rows[0], "misleading", seed=0, config=TemplateConfig(min_turns=16, max_turns=16))
    assert all("blue" in d.turns[i].text or "rectangle" in d.turns[i].text for i in d.meta["corrections"])
    d = make_dialogue(CAPTION_ROW, "misleading", seed=0, config=TemplateConfig(min_turns=16, max_turns=16))
    moshi = " ".join(d.turns[i].text for i in d.meta["corrections"])
    assert "it is brown" in moshi or "it is red" in moshi or "2 cats" in moshi


def test_teacher_student(easy_rows: list[SourceRow]) -> None:
    d = make_dialogue(easy_rows[0], "teacher_student", seed=2, config=TemplateConfig(min_turns=8, max_turns=8))
    assert isinstance(d, Dialogue) and len(d.turns) == 8 and validate_dialogue(d) == []
    quiz = d.meta["quiz"]
    assert len(quiz) == 3
    assert quiz[0]["question"] in d.turns[1].text  # Moshi asks the first question
    for k, item in enumerate(quiz):
        feedback = d.turns[3 + 2 * k].text
        good = feedback.startswith(("That's right", "Well done", "Correct"))
        assert good == (item["verdict"] == "right"), (item, feedback)


# -------------------------------------------------------------------------------- easy-vqa wordings


def test_paraphrase_and_wording_split() -> None:
    from easy_vqa import get_test_questions

    questions = sorted(set(get_test_questions()[0]))
    assert len(questions) == 107 and all(parse_easy_vqa_question(q) for q in questions)
    split = wording_split()
    for intent in EASY_ORIGINALS:
        assert not set(split.train[intent]) & set(split.heldout[intent])
        assert split.heldout[intent] and set(EASY_ORIGINALS[intent]) <= set(split.train[intent])
        assert set(split.train[intent]) | set(split.heldout[intent]) == \
            set(EASY_ORIGINALS[intent]) | set(EASY_PARAPHRASES[intent])
    assert wording_split() == wording_split(0.3, 0)  # deterministic
    rng = random.Random(0)
    heldout_texts = set()
    for q in questions:
        orig = parse_easy_vqa_question(q)
        for which in ("train", "heldout", "all"):
            p = paraphrase(q, rng, which)
            assert p != q
            parsed = parse_easy_vqa_question(p)
            assert parsed is not None and (parsed.intent, parsed.value) == (orig.intent, orig.value)
            if which != "all":
                assert parsed.template in getattr(split, which)[orig.intent]
            if which == "heldout":
                heldout_texts.add(p)
    assert not heldout_texts & set(questions)  # held-out wordings never occur in the data set
    with pytest.raises(ValueError):
        paraphrase("what is the meaning of life?", rng)


def test_heldout_dialogues(easy_rows: list[SourceRow]) -> None:
    split = wording_split()
    cfg = TemplateConfig(min_turns=16, max_turns=16, paraphrase_prob=1.0, wordings="heldout")
    d = make_dialogue(easy_rows[3], "properties", seed=0, config=cfg)
    assert d.meta["paraphrased"] and d.meta["wordings"] == "heldout"
    for i in d.meta["paraphrased"]:
        p = parse_easy_vqa_question(d.turns[i].text)
        assert p is not None and p.template in split.heldout[p.intent]


# ----------------------------------------------------------------------------------- LLM generator


@dataclass
class Stub:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0  # answer this many requests with HTTP 500 first
    malformed: bool = False


@pytest.fixture
def stub() -> Iterator[Stub]:
    state = Stub(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
            if state.fail_first > 0:
                state.fail_first -= 1
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"overloaded")
                return
            system = body["messages"][0]["content"]
            n = len(state.requests)
            content = f"User: What colour is the dog? ({n})" if "You cannot see the image" in system \
                else f"\"The dog is brown. ({n})\""
            reply = {"id": "x"} if state.malformed else \
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield state
    server.shutdown()
    server.server_close()


def client(stub: Stub, **kw: Any) -> ChatClient:
    cfg = LLMConfig(base_url=stub.url, model="assist-7b", user_model="user-7b", api_key="sk-test",
                    timeout_s=5, backoff_s=0.001, **kw)
    return ChatClient(cfg)


def test_llm_dialogue_against_stub(stub: Stub) -> None:
    d = generate_llm_dialogue(CAPTION_ROW, "counting", client(stub), num_turns=4, seed=1)
    assert isinstance(d, Dialogue), d
    assert texts(d) == [("user", "What colour is the dog? (1)"), ("moshi", "The dog is brown. (2)"),
                        ("user", "What colour is the dog? (3)"), ("moshi", "The dog is brown. (4)")]
    assert d.image == CAPTION_ROW.image and d.question_type == "counting" and d.meta["model"] == "assist-7b"
    assert len(stub.requests) == 4
    for i, req in enumerate(stub.requests):
        assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
        body = req["body"]
        assert body["temperature"] == 0.8 and body["messages"][0]["role"] == "system"
        system = body["messages"][0]["content"]
        assert CAPTION_ROW.captions[0] in system  # both sides know the caption
        roles = [m["role"] for m in body["messages"][1:]]
        assert roles[0] == "user" and all(a != b for a, b in zip(roles, roles[1:])) and roles[-1] == "user"
        if i % 2 == 0:  # user side: its own model, told the question type, its own lines as "assistant"
            assert body["model"] == "user-7b" and "counting" in system and "how many" in system.lower()
            assert len(body["messages"]) == 2 + i
        else:  # Moshi side: answers as if it saw the image
            assert body["model"] == "assist-7b" and "see in the image" in system
            assert body["messages"][-1]["content"] == d.turns[i - 1].text
    last_user_side = stub.requests[2]["body"]["messages"]
    assert [m["content"] for m in last_user_side[2:]] == [d.turns[0].text, d.turns[1].text]


def test_llm_retries_and_errors(stub: Stub) -> None:
    stub.fail_first = 2
    d = generate_llm_dialogue(VQA_ROW, "misleading", client(stub, max_retries=3), num_turns=2)
    assert isinstance(d, Dialogue) and len(stub.requests) == 4  # 2 failures + 2 turns
    assert "Q: What color is the bus? A: red" in stub.requests[-1]["body"]["messages"][0]["content"]
    stub.requests.clear()
    stub.fail_first = 10
    err = generate_llm_dialogue(CAPTION_ROW, "mixed", client(stub, max_retries=1), num_turns=2)
    assert isinstance(err, RowError) and err.reason == "llm error" and "500" in err.detail
    stub.fail_first = 0
    stub.malformed = True
    err = generate_llm_dialogue(CAPTION_ROW, "mixed", client(stub, max_retries=1), num_turns=2)
    assert isinstance(err, RowError) and err.reason == "llm error" and "malformed" in err.detail
    dead = ChatClient(LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1, max_retries=0))
    err = generate_llm_dialogue(CAPTION_ROW, "mixed", dead, num_turns=2)
    assert isinstance(err, RowError) and err.reason == "llm error"


def test_llm_many_in_order(stub: Stub) -> None:
    rows = [SourceRow(str(i), ImageRef(str(i), f"/x/{i}.jpg"), "docci", captions=[f"Picture number {i}."])
            for i in range(5)]
    out = list(generate_llm_dialogues(rows, client(stub), min_turns=2, max_turns=4, workers=3))
    assert [d.image.image_id for d in out if isinstance(d, Dialogue)] == ["0", "1", "2", "3", "4"]
    assert all(len(d.turns) in (2, 4) for d in out if isinstance(d, Dialogue))


# ---------------------------------------------------------------------------------------- augment


def test_concat_rate_and_marks(easy_rows: list[SourceRow]) -> None:
    base = make_dialogue(easy_rows[0], "mixed", seed=0, config=TemplateConfig(min_turns=4, max_turns=8))
    assert isinstance(base, Dialogue)
    rng = random.Random(0)
    hits, positions = 0, set()
    for _ in range(1000):
        d = concat_augment(base, rng, p_concat=0.3)
        if d is base:
            continue
        hits += 1
        info = d.meta["concat"]
        positions.add(info["position"])
        n = info["unrelated_turns"]
        extra = d.turns[:n] if info["position"] == "prepend" else d.turns[-n:]
        own = d.turns[n:] if info["position"] == "prepend" else d.turns[:-n]
        assert all(not t.about_image for t in extra) and all(t.about_image for t in own)
        assert [t.text for t in own] == [t.text for t in base.turns]
        assert validate_dialogue(d) == [] and d.image == base.image
    assert abs(hits / 1000 - 0.3) < 0.05
    assert positions == {"prepend", "append"}
    pool = [smalltalk_dialogue(random.Random(i)) for i in range(3)]
    d = concat_augment(base, random.Random(1), p_concat=1.0, unrelated=pool, max_turns=len(base.turns) + 2)
    assert len(d.turns) == len(base.turns) + 2 and d.meta["concat"]["other_id"] in {p.id for p in pool}
    assert concat_augment(base, random.Random(1), p_concat=1.0, max_turns=len(base.turns)) is base


def test_audio_only_dialogues() -> None:
    dialogues = list(audio_only_dialogues(200, seed=0, max_pairs=4))
    assert len(dialogues) == 200
    assert [d.id for d in audio_only_dialogues(5, seed=0)] == [d.id for d in dialogues[:5]]
    assert texts(next(audio_only_dialogues(1, seed=1))) != texts(dialogues[0])
    checked = 0
    ops = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
    for d in dialogues:
        assert d.image is None and d.question_type == "audio_only"
        assert validate_dialogue(d) == [] and all(not t.about_image for t in d.turns)
        for q, a in zip(d.turns[::2], d.turns[1::2]):
            if m := re.search(r"(\d+) (plus|minus|times) (\d+)", q.text):
                x, op, y = int(m.group(1)), m.group(2), int(m.group(3))
                assert a.text == f"{x} {op} {y} is {ops[op](x, y)}."
                checked += 1
    assert checked > 50
    words = next(audio_only_dialogues(1, seed=3, min_pairs=4, numbers_as_words=True))
    assert not re.search(r"\d", " ".join(t.text for t in words.turns))
    # From a text dialogue source: same turns, no image.
    src = [Dialogue("t1", [Turn("user", "Hi"), Turn("moshi", "Hello")], ImageRef("i", "/i.jpg"), "coco")]
    (d,) = audio_only_dialogues(None, source=src)
    assert d.image is None and [t.text for t in d.turns] == ["Hi", "Hello"] and not d.turns[0].about_image
