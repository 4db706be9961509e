"""easy-vqa meanings and wordings: every meaning in every wording reads back as itself."""

from __future__ import annotations

from moshivis.data.easy_vqa_wordings import easy_vqa_meanings, fill_wording, parse_easy_vqa_question, wording_split


def test_every_meaning_in_every_wording_parses_back_to_itself():
    meanings = easy_vqa_meanings()
    assert len(meanings) == len(set(meanings)) == 35
    split = wording_split()
    for intent, value in meanings:
        for template in split.wordings(intent, "all"):
            parsed = parse_easy_vqa_question(fill_wording(template, intent, value))
            assert (parsed.intent, parsed.value, parsed.template) == (intent, value, template)
