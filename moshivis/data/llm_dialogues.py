"""Dialogues written by two LLMs, as in the paper: a "user" model that only knows the image's caption
asks questions of a given type; an "assistant" model plays Moshi and answers as if it saw the image
(it gets the same caption as a stand-in for the image). They take turns for N turns.

Any OpenAI-compatible endpoint works (vLLM, llama.cpp server, Ollama, OpenAI...): `POST
{base_url}/chat/completions` with {model, messages, temperature[, max_tokens]}, Bearer key optional.
Standard library only (urllib), so it runs wherever the rest of the pipeline does. Transient failures
(timeouts, connection errors, 408/429/5xx, malformed bodies) are retried with exponential backoff; what
still fails becomes RowError("llm error", detail) for that row, never an exception out of the run.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from moshivis.data.sources import SourceRow
from moshivis.data.templates import QUESTION_TYPES, most_common_answer
from moshivis.data.types import Dialogue, RowError, Turn

LLM_ERROR = "llm error"
NO_CAPTION = "no caption"

QUESTION_TYPE_INSTRUCTIONS: dict[str, str] = {
    "properties": "Ask about properties of what is in the image: colours, shapes, materials, sizes, textures, "
    "what the objects are.",
    "location": "Ask where things are in the image and how they are placed relative to each other.",
    "counting": "Ask how many there are of some kind of thing in the image.",
    "misleading": "Ask misleading questions: questions that assume something false about the image (a wrong "
    "colour, an object that is not there, a wrong number), so that the assistant has to correct you.",
    "teacher_student": "You are a student: first ask the assistant to quiz you about the image, then answer its "
    "questions as well as you can (sometimes wrongly, since you cannot see the image) and react to its feedback.",
    "mixed": "Mix kinds of questions: properties, locations, counting, and now and then a misleading question "
    "that assumes something false.",
}

USER_SYSTEM_PROMPT = (
    "You are a person having a spoken conversation with a voice assistant called Moshi about an image. "
    "You cannot see the image, but here is a description of it:\n<description>\n{caption}\n</description>\n"
    "Question type: {question_type}. {instruction}\n"
    "Speak naturally and briefly: one short turn at a time (one question or remark, under 25 words). "
    "Never mention the description. Output only what you say, without quotes or a speaker name."
)
MOSHI_SYSTEM_PROMPT = (
    "You are Moshi, a friendly voice assistant looking at an image together with the user. This is what you "
    "see in the image:\n<image>\n{caption}\n</image>\n"
    "Answer as if you saw the image yourself; never mention a description or a caption. Keep answers short "
    "and spoken: one to three sentences, no lists, no markdown. If a question assumes something that is not "
    "in the image, politely correct it.{extra}"
)
MOSHI_TEACHER_EXTRA = (
    " The user wants to be quizzed: ask them one question about the image at a time, tell them whether "
    "each answer is right, and give the right answer when it is not."
)
KICKOFF = "(The conversation starts now. Say your first line.)"


@dataclass
class LLMConfig:
    """Where and how to call the chat endpoint. `base_url` includes the API prefix, e.g.
    "http://localhost:8000/v1"; `user_model` defaults to `model` (one model can play both roles)."""

    base_url: str
    model: str
    api_key: str | None = None
    user_model: str | None = None
    temperature: float = 0.8
    max_tokens: int | None = 200
    timeout_s: float = 60.0
    max_retries: int = 3  # retries after the first try
    backoff_s: float = 1.0  # first wait; doubles each retry, with +-25% jitter against thundering herds
    max_backoff_s: float = 30.0
    extra_body: dict[str, Any] = field(default_factory=dict)  # e.g. {"top_p": 0.9}


class LLMError(Exception):
    """A chat completion that failed for good (after retries), with what went wrong."""


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ChatClient:
    """A minimal OpenAI-compatible chat completions client (blocking; thread-safe: no shared state)."""

    def __init__(self, config: LLMConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self._sleep = sleep  # injectable so tests need not wait through backoffs

    def complete(self, messages: list[dict[str, str]], model: str | None = None,
                 temperature: float | None = None) -> str:
        """The assistant message's text for `messages`; LLMError when every try failed."""
        cfg = self.config
        body: dict[str, Any] = {
            "model": model or cfg.model,
            "messages": messages,
            "temperature": cfg.temperature if temperature is None else temperature,
        }
        if cfg.max_tokens is not None:
            body["max_tokens"] = cfg.max_tokens
        body.update(cfg.extra_body)
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if cfg.api_key:
            headers["Authorization"] = f"Bearer {cfg.api_key}"
        last = "no attempt"
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                wait = min(cfg.max_backoff_s, cfg.backoff_s * 2 ** (attempt - 1))
                self._sleep(wait * random.uniform(0.75, 1.25))
            req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:200].decode("utf-8", "replace")
                last = f"HTTP {e.code}: {detail}"
                if e.code not in _RETRY_STATUS:
                    raise LLMError(last) from e  # 400/401/404...: asking again will not help
                continue
            except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, short reads
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
                continue
            try:
                return _content(raw)
            except LLMError as e:
                last = str(e)  # a garbled body can be a proxy hiccup: worth another try
        raise LLMError(f"{last} (after {cfg.max_retries + 1} tries)")


def _content(raw: bytes) -> str:
    """choices[0].message.content of a completion body, cleaned; LLMError if absent or empty."""
    try:
        obj = json.loads(raw)
        content = obj["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise LLMError(f"malformed response: {type(e).__name__} in {raw[:120]!r}") from e
    if not isinstance(content, str):
        raise LLMError(f"malformed response: content is {type(content).__name__}")
    text = clean_utterance(content)
    if not text:
        raise LLMError("malformed response: empty content")
    return text


def clean_utterance(text: str) -> str:
    """One spoken line from a model's output: no surrounding quotes, no "Moshi:"/"User:" label, no
    markdown emphasis, whitespace collapsed. TTS would read all of those aloud."""
    text = text.strip()
    text = re.sub(r"^(?:\*\*)?(moshi|user|assistant|person|student|teacher)(?:\*\*)?\s*:\s*", "", text, flags=re.I)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    text = text.replace("**", "").replace("__", "")
    return re.sub(r"\s+", " ", text).strip()


def _row_description(row: SourceRow) -> str:
    """What both models know of the image: the captions, else the QA pairs as facts."""
    if row.captions:
        return "\n".join(row.captions)
    if row.qa:
        return "\n".join(f"Q: {q} A: {most_common_answer(a)}" for q, a in row.qa if a)
    return ""


def user_messages(system: str, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The history as the user-side model sees it: its own lines are "assistant", Moshi's are "user"
    (chat models continue as the assistant). A kickoff line opens it so it starts with a user message."""
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": KICKOFF}]
    msgs += [{"role": "assistant" if t.speaker == "user" else "user", "content": t.text} for t in turns]
    return msgs


def moshi_messages(system: str, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The history as the Moshi-side model sees it: the user's lines are "user", its own "assistant"."""
    return [{"role": "system", "content": system}] + [
        {"role": "user" if t.speaker == "user" else "assistant", "content": t.text} for t in turns
    ]


def generate_llm_dialogue(
    row: SourceRow,
    question_type: str,
    client: ChatClient,
    num_turns: int = 8,
    seed: int = 0,
) -> Dialogue | RowError:
    """A dialogue of `num_turns` (even, >= 2) alternating user / Moshi turns about `row`'s image, one
    chat call per turn. RowError("llm error") when a call fails for good, ("no caption") when the row
    gives the models nothing to know the image by."""
    if question_type not in QUESTION_TYPES:
        raise ValueError(f"question_type must be one of {QUESTION_TYPES}, got {question_type!r}")
    if num_turns < 2 or num_turns % 2:
        raise ValueError(f"num_turns must be even and >= 2, got {num_turns}")
    caption = _row_description(row)
    if not caption:
        return RowError(row.source, row.row, NO_CAPTION, "row has neither captions nor QA pairs")
    cfg = client.config
    user_system = USER_SYSTEM_PROMPT.format(caption=caption, question_type=question_type,
                                            instruction=QUESTION_TYPE_INSTRUCTIONS[question_type])
    extra = MOSHI_TEACHER_EXTRA if question_type == "teacher_student" else ""
    moshi_system = MOSHI_SYSTEM_PROMPT.format(caption=caption, extra=extra)
    turns: list[Turn] = []
    try:
        for i in range(num_turns):
            if i % 2 == 0:
                text = client.complete(user_messages(user_system, turns), model=cfg.user_model or cfg.model)
                turns.append(Turn("user", text))
            else:
                text = client.complete(moshi_messages(moshi_system, turns), model=cfg.model)
                turns.append(Turn("moshi", text))
    except LLMError as e:
        return RowError(row.source, row.row, LLM_ERROR, f"turn {len(turns)}: {e}")
    return Dialogue(
        id=f"{row.source}:{row.row}:{question_type}:llm{seed}",
        turns=turns,
        image=row.image,
        source=row.source,
        question_type=question_type,
        meta={"generator": "llm", "model": cfg.model, "user_model": cfg.user_model or cfg.model, "seed": seed},
    )


def generate_llm_dialogues(
    rows: Iterable[SourceRow],
    client: ChatClient,
    question_types: Sequence[str] = QUESTION_TYPES,
    min_turns: int = 8,
    max_turns: int = 16,
    seed: int = 0,
    workers: int = 4,
) -> Iterator[Dialogue | RowError]:
    """`generate_llm_dialogue` over many rows, `workers` rows in flight at once (the endpoint batches
    them), results in input order. Type and turn count per row come from a per-row seeded RNG, so a
    rerun asks the same things of the same rows (paper: 8-16 turns)."""

    def one(row: SourceRow) -> Dialogue | RowError:
        rng = random.Random(f"{seed}|{row.source}|{row.row}|llm")
        qtype = rng.choice(list(question_types))
        n = 2 * rng.randint((min_turns + 1) // 2, max_turns // 2)
        return generate_llm_dialogue(row, qtype, client, n, seed)

    # Bounded window of futures: `Executor.map` would submit every row up front, and rows can be millions.
    window = 2 * max(1, workers)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[Future[Dialogue | RowError]] = deque()
        for row in rows:
            pending.append(pool.submit(one, row))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
