"""The exchanges a row supports, per question type: a user question and Moshi's reply
(`ExchangeBuilder.properties` / `location` / `counting` / `misleading`), and quiz items for
teacher_student dialogues (`ExchangeBuilder.quiz_items`). `templates.make_dialogue` picks and orders them."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moshivis.data.caption_facts import (
    CAPTION_COLORS,
    DETERMINERS,
    NOUNS,
    SEEN_STARTS,
    SINGULAR,
    SWAP_COLORS,
    as_seen,
    caption_facts,
    swap_word,
)
from moshivis.data.easy_vqa_answers import (
    EasyVqaAttributes,
    easy_thing,
    easy_vqa_attributes,
    easy_vqa_layout,
    easy_vqa_spoken_answer,
)
from moshivis.data.easy_vqa_drills import YES_NO_INTENTS, drill_wordings, parse_drill, polarity_twins
from moshivis.data.easy_vqa_frames import frame_wordings
from moshivis.data.easy_vqa_wordings import (
    EASY_COLORS,
    EASY_ORIGINALS,
    EASY_SHAPES,
    EasyVqaQuestion,
    paraphrase,
    parse_easy_vqa_question,
    wording_split,
)
from moshivis.data.sources import SourceRow
from moshivis.data.spoken_answers import article_for, as_sentence, most_common_answer, parse_number, spoken_answer

if TYPE_CHECKING:
    from moshivis.data.templates import TemplateConfig


@dataclass
class Exchange:
    """A user turn and Moshi's reply (teacher_student builds its own chain instead)."""

    kind: str
    user: str
    moshi: str
    opener: bool = False  # a natural first question ("What do you see?"): goes first when drawn
    correction: bool = False  # Moshi corrects a false premise
    paraphrased: bool = False
    # the same question with its polarity flipped, asked right after this one (TemplateConfig.polarity_twins)
    twin: "Exchange | None" = None


@dataclass
class QuizItem:
    question: str
    answer: str  # the short correct answer, as a student would say it
    spoken: str  # Moshi's full sentence
    distractors: list[str]


def _distractors(answer: str, palette: Sequence[str], rng: random.Random) -> list[str]:
    a = answer.strip().lower()
    if a in ("yes", "no"):
        return ["no" if a == "yes" else "yes"]
    if (n := parse_number(a)) is not None:
        return [str(m) for m in sorted({max(0, n + d) for d in (-2, -1, 1, 2)} - {n})]
    for pal in (EASY_SHAPES, palette, SWAP_COLORS):
        if a in pal:
            return [x for x in pal if x != a]
    return []  # nothing plausible: the student says "I'm not sure"


class ExchangeBuilder:
    """Collects the exchanges a row supports, per question type."""

    def __init__(self, row: SourceRow, rng: random.Random, config: TemplateConfig) -> None:
        self.row, self.rng, self.config = row, rng, config
        self.easy = row.source.startswith("easy-vqa")
        self.qa = [(q.strip(), most_common_answer(a)) for q, a in row.qa if q.strip() and a]
        self.facts = caption_facts(row.captions) if row.captions else None
        self.attrs = easy_vqa_attributes(row.qa) if self.easy else EasyVqaAttributes()
        if self.easy:
            for key in ("shape", "color"):  # a reader may know better (meta set by a caller)
                if isinstance(row.meta.get(key), str):
                    setattr(self.attrs, key, row.meta[key])
        self._layout: tuple[str, str, str, float] | None | bool = False  # False: not read yet

    # -- helpers
    def layout(self) -> tuple[str, str, str, float] | None:
        if self._layout is False:
            self._layout = None
            if self.config.read_images:
                try:
                    self._layout = easy_vqa_layout(self.row.image.path)
                except Exception:  # unreadable image: no location facts, the caller reports it
                    self._layout = None
        return self._layout if self._layout is not False else None

    def _easy_qa(self) -> list[tuple[EasyVqaQuestion, str, str]]:
        out = []
        for q, a in self.qa:
            if (p := parse_easy_vqa_question(q)) is not None:
                out.append((p, q, a))
        if self.config.present_questions:
            asked = {q.lower() for _, q, _ in out}
            out += [x for x in self._present_qa() if x[1].lower() not in asked]
        return out

    def _present_qa(self) -> list[tuple[EasyVqaQuestion, str, str]]:
        """Yes/no questions about what the image DOES show (its own colour, its own shape), in one of the
        data set's wordings, asked plainly or negated. easy-vqa's own have the colour present in only 12% of
        has/not-colour questions, and a base trained on them learned "absent" as the verdict's prior (stop 14:
        0 of 322 typed answers said "yes" after naming the colour asked about)."""
        out = []
        for has, negated, value in (("has_color", "not_color", self.attrs.color),
                                    ("has_shape", "not_shape", self.attrs.shape)):
            if not value:
                continue
            intent = self.rng.choice((has, negated))
            template = self.rng.choice(EASY_ORIGINALS[intent])
            p = EasyVqaQuestion(intent, value, template)
            out.append((p, p.fill(template), "yes" if intent == has else "no"))
        return out

    def _maybe_paraphrase(self, question: str) -> tuple[str, bool]:
        cfg = self.config
        if cfg.drill_prob > 0 and self.rng.random() < cfg.drill_prob:
            parsed = parse_easy_vqa_question(question)
            if parsed is not None and parsed.intent in YES_NO_INTENTS:
                drills = drill_wordings(cfg.heldout_fraction, cfg.split_seed)[parsed.intent]
                return parsed.fill(self.rng.choice(drills)), True
        if cfg.frame_prob > 0 and self.rng.random() < cfg.frame_prob:
            parsed = parse_easy_vqa_question(question)
            if parsed is not None:
                frames = frame_wordings(cfg.heldout_fraction, cfg.split_seed)[parsed.intent]
                return parsed.fill(self.rng.choice(frames)), True
        if cfg.paraphrase_prob > 0 and self.rng.random() < cfg.paraphrase_prob:
            split = wording_split(cfg.heldout_fraction, cfg.split_seed)
            return paraphrase(question, self.rng, cfg.wordings, split), True
        return question, False

    def _polarity_twin(self, p: EasyVqaQuestion, asked: str, answer: str) -> Exchange | None:
        """With chance `polarity_twins`, a yes/no question's twin: the same frame with the negation toggled
        ("is there a red shape?" -> "is there not a red shape?"), in a training or drill wording, answered
        the other way. No draw at 0, so dialogues made before the option stay the same."""
        cfg = self.config
        if cfg.polarity_twins <= 0 or p.intent not in YES_NO_INTENTS or answer not in ("yes", "no"):
            return None
        if self.rng.random() >= cfg.polarity_twins:
            return None
        # the wording `asked` was drawn from: a table wording, or a drill wording (which the table parser skips)
        if (parsed := parse_easy_vqa_question(asked)) is not None:
            template: str | None = parsed.template
        else:
            drill = parse_drill(asked, cfg.heldout_fraction, cfg.split_seed)
            template = drill[2] if drill is not None else None
        twins = polarity_twins(template, p.intent, cfg.heldout_fraction, cfg.split_seed) if template else ()
        if not twins:
            return None
        flipped = EasyVqaQuestion(YES_NO_INTENTS[p.intent], p.value, self.rng.choice(twins))
        other = "no" if answer == "yes" else "yes"
        said = easy_vqa_spoken_answer(flipped, other, self.attrs, self.rng, cfg.evidence_first, cfg.echo_question)
        return Exchange("properties", as_sentence(flipped.fill(flipped.template)), said, paraphrased=True)

    # -- per type
    def properties(self) -> list[Exchange]:
        out: list[Exchange] = []
        rng = self.rng
        if self.easy:
            if self.attrs.shape or self.attrs.color:
                out.append(Exchange("properties", rng.choice(["What do you see in this picture?",
                                                               "Can you describe the image?"]),
                                     f"I see {easy_thing(self.attrs)} on a plain background.", opener=True))
            for p, q, a in self._easy_qa():
                q2, para = self._maybe_paraphrase(q)
                said = easy_vqa_spoken_answer(p, a, self.attrs, rng, self.config.evidence_first, self.config.echo_question)
                out.append(Exchange("properties", as_sentence(q2), said, paraphrased=para,
                                    twin=self._polarity_twin(p, q2, a)))
        else:
            for q, a in self.qa:
                ql = q.lower()
                if not (ql.startswith(("how many", "where")) or _is_location_question(ql)):
                    out.append(Exchange("properties", as_sentence(q), spoken_answer(q, a, rng)))
        if self.facts is not None:
            f = self.facts
            out.append(Exchange("properties", rng.choice(["What do you see in this picture?",
                                                           "What is in this image?", "What's in the picture?"]),
                                 as_seen(f.sentences[0] if f.sentences else f.captions[0]), opener=True))
            if len(f.sentences) > 1 or len(f.captions[0]) > 60:
                out.append(Exchange("properties", rng.choice(["Can you describe it in detail?",
                                                               "Tell me more about it.", "Can you describe it more?"]),
                                     as_sentence(f.captions[0])))
            for other in f.captions[1:3]:
                out.append(Exchange("properties", rng.choice(["What else can you tell me about it?",
                                                               "Can you say it another way?"]), as_seen(other)))
            for noun, color in f.colors:
                verb = "are" if noun != SINGULAR[noun] else "is"
                out.append(Exchange("properties", f"What colour {verb} the {noun}?",
                                     rng.choice([f"The {noun} {verb} {color}.", f"{'They are' if verb == 'are' else 'It is'} {color}."])))
        return out

    def location(self) -> list[Exchange]:
        out: list[Exchange] = []
        if self.easy and (lay := self.layout()) is not None:
            vert, horiz, phrase, area = lay
            name = self.attrs.shape or "shape"
            desc = easy_thing(self.attrs).split(" ", 1)[1]  # "blue circle"
            out.append(Exchange("location", f"Where is the {name}?", f"The {desc} is {phrase}.", opener=True))
            out.append(Exchange("location", "Is it on the left or on the right?",
                                 "It's roughly in the middle." if horiz == "center" else f"It's on the {horiz}."))
            out.append(Exchange("location", "Is it closer to the top or to the bottom?",
                                 "Neither, it's about halfway down." if vert == "middle" else f"It's near the {vert}."))
            size = "small" if area < 0.08 else "medium-sized" if area < 0.25 else "large"
            out.append(Exchange("location", "How big is it?", f"It's {size}, it covers about {round(area * 100)} percent of the picture."))
        elif not self.easy:
            for q, a in self.qa:
                if q.lower().startswith("where") or _is_location_question(q.lower()):
                    out.append(Exchange("location", as_sentence(q), spoken_answer(q, a, self.rng)))
        if self.facts is not None:
            for noun, loc in self.facts.locations:
                plural = noun != SINGULAR[noun]
                out.append(Exchange("location", f"Where {'are' if plural else 'is'} the {noun}?",
                                     f"The {noun} {'are' if plural else 'is'} {loc}."))
        return out

    def counting(self) -> list[Exchange]:
        out: list[Exchange] = []
        rng = self.rng
        if self.easy:
            out.append(Exchange("counting", rng.choice(["How many shapes are there?", "How many shapes do you see?"]),
                                 f"There is just one shape, {easy_thing(self.attrs)}.", opener=True))
            if self.attrs.shape:
                other = rng.choice([s for s in EASY_SHAPES if s != self.attrs.shape])
                for s in rng.sample([self.attrs.shape, other], 2):
                    out.append(Exchange("counting", f"How many {s}s are in the picture?",
                                         f"There is one {s}." if s == self.attrs.shape else f"There are no {s}s."))
            if self.attrs.color:
                other = rng.choice([c for c in EASY_COLORS if c != self.attrs.color])
                for c in rng.sample([self.attrs.color, other], 2):
                    out.append(Exchange("counting", f"How many {c} shapes can you see?",
                                         f"I see one {c} shape." if c == self.attrs.color else f"There are no {c} shapes."))
        else:
            for q, a in self.qa:
                if q.lower().startswith("how many"):
                    out.append(Exchange("counting", as_sentence(q), spoken_answer(q, a, rng)))
        if self.facts is not None:
            for noun, n in self.facts.counts:
                plural = NOUNS[noun][0]
                said = f"There is one {noun}." if n == 1 else f"There are {n} {plural}."
                out.append(Exchange("counting", f"How many {plural} are there?", said))
        return out

    def misleading(self) -> list[Exchange]:
        out: list[Exchange] = []
        rng = self.rng

        def add(user: str, moshi: str) -> None:
            out.append(Exchange("misleading", user, moshi, correction=True))

        if self.easy:
            shape, color = self.attrs.shape, self.attrs.color
            if shape:
                wrong = rng.choice([s for s in EASY_SHAPES if s != shape])
                add(f"What color is the {wrong}?",
                    f"The only shape is {easy_thing(self.attrs)}, so there is no {wrong} in this picture."
                    if self.config.evidence_first else
                    f"There is no {wrong} in this picture. The only shape is {easy_thing(self.attrs)}.")
            if shape and color:
                wrong_c = rng.choice([c for c in EASY_COLORS if c != color])
                if self.config.evidence_first:  # what the image shows first (easy_vqa_spoken_answer)
                    add(f"Why is the {shape} {wrong_c}?", f"The {shape} is {color}, not {wrong_c}.")
                    add(f"What is the {wrong_c} shape?",
                        f"The only shape is {easy_thing(self.attrs)}, so there's no {wrong_c} shape here.")
                else:
                    add(f"Why is the {shape} {wrong_c}?", f"Actually, the {shape} isn't {wrong_c}, it's {color}.")
                    add(f"What is the {wrong_c} shape?",
                        f"There's no {wrong_c} shape here. The only shape is {easy_thing(self.attrs)}.")
            add(rng.choice(["What are the two shapes in the picture?", "Which of the three shapes is the biggest?"]),
                f"Actually, there is only one shape: {easy_thing(self.attrs)}.")
        else:
            for q, a in self.qa:
                if ex := _misleading_from_qa(q, a, rng):
                    add(*ex)
        if self.facts is not None:
            f = self.facts
            for noun, color in f.colors:
                true = color.split()[0]
                wrong = rng.choice([c for c in SWAP_COLORS if c not in color.split() and not (true == "grey" and c == "gray")])
                verb = "are" if noun != SINGULAR[noun] else "is"
                add(f"Why {verb} the {noun} {wrong}?", f"Actually, the {noun} {verb}n't {wrong}, {'they are' if verb == 'are' else 'it is'} {color}.")
            for noun, n in f.counts:
                wrong_n = n + rng.choice([1, 2])
                plural = NOUNS[noun][0]
                add(f"What are the {wrong_n} {plural} doing?",
                    f"Actually, I can only see {'one ' + noun if n == 1 else f'{n} {plural}'}, not {wrong_n}.")
            # Swap a word in one sentence (DOCCI descriptions run to a paragraph; the claim stays short).
            swaps = [(sent, sw) for sent in f.sentences if (sw := swap_word(sent, rng, f.nouns))]
            if swaps:
                true_sentence, (new_sentence, kind, true, false) = rng.choice(swaps)
                claim = new_sentence.strip().rstrip(".")
                if claim.split()[0].lower() in SEEN_STARTS | DETERMINERS:
                    claim = claim[0].lower() + claim[1:]
                if claim.split()[0] in SEEN_STARTS and not re.search(r"\b(is|are|was|were|has|have)\b", claim):
                    user = rng.choice([f"So this is {claim}, right?", f"Is it true that this shows {claim}?"])
                else:  # a full sentence of its own: "the mug has a gray stripe"
                    user = rng.choice([f"I think {claim}. Is that right?", f"Someone told me that {claim}. Is that true?"])
                if kind == "color":
                    moshi = f"Not quite: it's {true}, not {false}. {as_sentence(true_sentence)}"
                else:
                    moshi = (f"No, there is no {false} here, it's {article_for(true)} {true}. "
                             f"{as_sentence(true_sentence)}")
                add(user, moshi)
        return out

    def quiz_items(self) -> list[QuizItem]:
        items: list[QuizItem] = []
        rng = self.rng
        if self.easy:
            for p, q, a in self._easy_qa():
                q2, _ = self._maybe_paraphrase(q)
                said = easy_vqa_spoken_answer(p, a, self.attrs, rng, self.config.evidence_first, self.config.echo_question)
                items.append(QuizItem(as_sentence(q2), a, said, _distractors(a, EASY_COLORS, rng)))
        else:
            for q, a in self.qa:
                items.append(QuizItem(as_sentence(q), a, spoken_answer(q, a, rng), _distractors(a, SWAP_COLORS, rng)))
        if self.facts is not None:
            f = self.facts
            for noun, color in f.colors:
                verb = "are" if noun != SINGULAR[noun] else "is"
                items.append(QuizItem(f"What colour {verb} the {noun}?", color, f"The {noun} {verb} {color}.",
                                       _distractors(color.split()[0], SWAP_COLORS, rng)))
            for noun, n in f.counts:
                plural = NOUNS[noun][0]
                items.append(QuizItem(f"How many {plural} can you see?", str(n),
                                       f"There is one {noun}." if n == 1 else f"There are {n} {plural}.",
                                       _distractors(str(n), (), rng)))
            for noun in sorted(f.nouns)[:3]:
                items.append(QuizItem(f"Is there {article_for(noun)} {noun} in the picture?", "yes",
                                       f"Yes, there is {article_for(noun)} {noun}.", ["no"]))
        return items


def _is_location_question(q: str) -> bool:
    return bool(re.search(r"\b(left|right|which side|on top of|behind|in front of)\b", q))


def _misleading_from_qa(question: str, answer: str, rng: random.Random) -> tuple[str, str] | None:
    """A false premise made from a true QA pair, with Moshi's correction; None if the pair gives none."""
    q = question.strip().lower().rstrip("?").strip()
    a = answer.strip().lower()
    if (m := re.match(r"what colou?r (is|are) the (.+)", q)) and a in CAPTION_COLORS:
        verb, subj = m.groups()
        wrong = rng.choice([c for c in SWAP_COLORS if c != a])
        return f"Why {verb} the {subj} {wrong}?", f"Actually, the {subj} {verb}n't {wrong}, {'they are' if verb == 'are' else 'it is'} {a}."
    if (m := re.match(r"how many (.+?) (?:are|is|can|do|does|in|on)\b", q)) and (n := parse_number(a)) is not None:
        thing = m.group(1)
        wrong = n + rng.choice([1, 2])
        return f"Why are there {wrong} {thing}?", f"Actually, there are {n} {thing}, not {wrong}."
    if (m := re.match(r"is there (?:a|an|any) (.+?)(?: in (?:the|this) (?:image|picture|photo))?$", q)) and a == "no":
        thing = m.group(1)
        if len(thing.split()) <= 4:
            return f"Tell me about the {thing} in this picture.", f"Actually, I don't see any {thing} in this picture."
    if (m := re.match(r"is this (?:a|an) (.+)$", q)) and a == "no" and len(m.group(1).split()) <= 4:
        thing = m.group(1)
        return f"Tell me more about this {thing}.", f"Actually, this isn't {article_for(thing)} {thing}."
    return None
