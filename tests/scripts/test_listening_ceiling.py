"""scripts/listening_ceiling.py: the meaning table, item drawing by wording split, the reader (causal and
two-way), augmentation, and that training learns a label the input carries (and not one it does not)."""

from __future__ import annotations

import random
import sys

import pytest
import torch
from testkit import load_script

from moshivis.data.easy_vqa_wordings import parse_easy_vqa_question, wording_split


def load():
    return load_script("scripts/listening_ceiling.py")


def test_meanings_are_the_35_distinct_intents_and_values():
    m = load()
    table = m.easy_vqa_meanings()
    assert len(table) == len(set(table)) == 35
    assert ("not_color", "teal") in table and ("shape", None) in table


def test_items_use_only_their_wording_split_and_carry_their_meaning():
    m = load()
    split = wording_split()
    for which in ("train", "heldout"):
        items = m.draw_items(200, which, ["flite:kal"], random.Random(1))
        for it in items:
            parsed = parse_easy_vqa_question(it.text)
            assert (parsed.intent, parsed.value) == m.easy_vqa_meanings()[it.label]
            assert parsed.template in split.wordings(parsed.intent, which)
            assert it.voice == "flite:kal" and it.resample == 1.0
    drawn = m.draw_items(50, "train", None, random.Random(2))
    assert all(not it.voice.startswith("flite:slt") for it in drawn)  # the held-out family never trains


def test_causal_reader_ignores_the_future_and_padding():
    m = load()
    torch.manual_seed(0)
    r = m.Reader(20, 0, 5, dim=32, layers=2, causal=True).eval()
    x = torch.randint(0, 20, (1, 9))
    full = torch.ones(1, 9, dtype=torch.bool)
    with torch.no_grad():
        # the state read at position 5 of a 6-long prefix equals that of the same prefix padded with junk
        a = r(x[:, :6], full[:, :6])
        padded = torch.cat([x[:, :6], torch.randint(0, 20, (1, 3))], 1)
        b = r(padded, torch.tensor([[True] * 6 + [False] * 3]))
    assert torch.allclose(a, b, atol=1e-5)
    two_way = m.Reader(20, 0, 5, dim=32, layers=2).eval()
    with torch.no_grad():
        c = two_way(padded, torch.tensor([[True] * 6 + [False] * 3]))
        d = two_way(torch.cat([x[:, :6], torch.randint(0, 20, (1, 3))], 1), torch.tensor([[True] * 6 + [False] * 3]))
    assert torch.allclose(c, d, atol=1e-5)  # padding is masked in the two-way reader too


def test_centroid_inputs_read_a_code_as_its_centroid_and_padding_as_nothing():
    m = load()
    cents = torch.randn(5, 384)
    r = m.Reader(5, 384, 35, dim=16, layers=1, centroids=cents)
    assert torch.equal(r.cent[:5], cents) and not r.cent[5].any()  # id 5 (= vocab) is the pad / mask id
    x, mask = m.batchify([torch.tensor([0, 4, 2]), torch.tensor([1])], 5)
    assert r(x, mask).shape == (2, 35)
    assert m.Reader(5, 384, 35, dim=16, layers=1).cent is None


def test_augment_masks_about_p_and_crops_at_most_two_each_side():
    m = load()
    g = torch.Generator().manual_seed(0)
    s = torch.arange(100)
    outs = [m.augment(s, 999, g, p=0.2) for _ in range(50)]
    assert all(96 <= len(o) <= 100 for o in outs)
    share = sum(int((o == 999).sum()) for o in outs) / sum(len(o) for o in outs)
    assert 0.15 < share < 0.25


def test_training_learns_a_carried_label_and_not_noise():
    m = load()
    g = torch.Generator().manual_seed(0)
    # label = which of 3 marker tokens appears somewhere in a random sequence of other tokens
    xs, ys = [], []
    for _ in range(240):
        seq = torch.randint(3, 30, (int(torch.randint(6, 12, (1,), generator=g)),), generator=g)
        y = int(torch.randint(0, 3, (1,), generator=g))
        seq[int(torch.randint(0, len(seq), (1,), generator=g))] = y
        xs.append(seq)
        ys.append(y)
    y = torch.tensor(ys)
    model = m.train_reader(xs[:200], y[:200], 30, 0, seed=0, epochs=15, batch=32)
    assert m.accuracy(model, xs[200:], y[200:], 30) > 90
    noise = torch.randint(0, 3, (240,), generator=g)
    model = m.train_reader(xs[:200], noise[:200], 30, 0, seed=0, epochs=15, batch=32)
    assert m.accuracy(model, xs[200:], noise[200:], 30) < 60


def test_polarity_accuracy_counts_yes_no_questions_only():
    m = load()
    table = m.easy_vqa_meanings()
    has_red, not_red = table.index(("has_color", "red")), table.index(("not_color", "red"))
    has_blue, shape = table.index(("has_color", "blue")), table.index(("shape", None))
    ys = torch.tensor([has_red, not_red, has_red, shape])
    pred = torch.tensor([has_blue, has_red, shape, has_red])  # right, wrong, not yes/no, ignored
    assert abs(m.polarity_accuracy(pred, ys) - 100 / 3) < 1e-6


def test_quantizer_variants_parse_fit_and_offset_their_stages():
    m = load()
    assert m.quantizer_spec("km2048") == (1, 2048) and m.quantizer_spec("rvq2x512") == (2, 512)
    assert m.quantizer_spec("codes") is None
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(int(n), 384, generator=g) for n in torch.randint(5, 15, (20,), generator=g)]
    books = m.fit_quantizer(feats, 2, 8)
    assert books.shape == (2, 8, 384)
    ids = m.quantize(feats[:3], books)
    assert [t.shape for t in ids] == [(len(f), 2) for f in feats[:3]]
    assert ids[0][:, 0].max() < 8 and ids[0][:, 1].min() >= 8 and ids[0][:, 1].max() < 16
    r = m.Reader(16, 0, 5, dim=32, layers=1).eval()
    x, mask = m.batchify(ids, 16)
    assert r(x, mask).shape == (3, 5)


def test_corpus_items_are_codec_training_sentences_by_training_voices():
    m = load()
    items = m.corpus_items(30)
    assert len(items) == 30 and all(it.voice.split(":")[0] in ("piper", "flite", "espeak") for it in items)
    assert all(not it.voice.startswith("flite:slt") for it in items)
    assert m.quantizer_spec("ckm2048") == (1, 2048) and m.quantizer_spec("crvq2x512") == (2, 512)


def test_main_runs_every_kind_of_view_from_a_cache(tmp_path, monkeypatch, capsys):
    """The whole script on a cache of made-up codes and states (no TTS, no codec): each view trains, scores
    every split and lands in the summary."""
    m = load()
    g = torch.Generator().manual_seed(0)
    sizes = {"train": 40, "seen_train_voices": 6, "heldout_train_voices": 6, "seen_slt": 6, "heldout_slt": 6}

    def row():
        n = int(torch.randint(5, 12, (1,), generator=g))
        return {"codes": torch.randint(0, 512, (n,), generator=g), "feats": torch.randn(n, 384, generator=g).half(),
                "utt_codes": torch.randint(0, 512, (n,), generator=g)}

    torch.save({k: [row() for _ in range(n)] for k, n in sizes.items()}, tmp_path / "encoded_40_6.pt")
    # cent*: the shipped codec's centroids
    variants = ["codes_causal", "feats", "text", "km8", "cent_causal", "centemb"]
    monkeypatch.setattr(sys, "argv", ["listening_ceiling.py", "--out", str(tmp_path), "--train", "40", "--test", "6",
                                      "--seeds", "1", "--epochs", "1", "--variants", *variants])
    m.main()
    summary = __import__("json").loads((tmp_path / f"summary_{'_'.join(variants)}.json").read_text())
    assert set(summary["accuracy_mean"]) == set(variants)
    for r in summary["accuracy_mean"].values():
        assert 0 <= r["seen_train_voices"] <= 100 and "polarity_heldout_slt" in r
    assert "| km8 |" in capsys.readouterr().out
    # accuracy per wording template, seen and held-out, each a share of that template's test items
    tmpl = summary["by_template"]["feats"]
    assert any(k.startswith("heldout: ") for k in tmpl) and any(k.startswith("seen: ") for k in tmpl)
    assert all(0 <= v <= 100 for v in tmpl.values())
    # a share of the training wordings, then the same number of renderings: its own summary, fewer items
    monkeypatch.setattr(sys, "argv", ["listening_ceiling.py", "--out", str(tmp_path), "--train", "40", "--test", "6",
                                      "--seeds", "1", "--epochs", "1", "--variants", "codes", "--wording-fraction",
                                      "0.5", "--train-subset", "5"])
    m.main()
    half = __import__("json").loads((tmp_path / "summary_codes_w0.5_n5.json").read_text())
    assert half["train_items"] == 5 and half["wording_fraction"] == 0.5
    # the CTC auxiliary, with corpus sentences (a made-up corpus cache) read by the same views
    torch.save([row() for _ in range(8)], tmp_path / "corpus_8.pt")
    monkeypatch.setattr(sys, "argv", ["listening_ceiling.py", "--out", str(tmp_path), "--train", "40", "--test", "6",
                                      "--seeds", "1", "--epochs", "1", "--variants", "codes", "feats", "km8",
                                      "--corpus", "8", "--ctc", "0.5", "--ctc-corpus", "4"])
    m.main()
    ctc = __import__("json").loads((tmp_path / "summary_codes_feats_km8_ctc0.5c4.json").read_text())
    assert ctc["ctc"] == 0.5 and ctc["ctc_corpus"] == 4 and set(ctc["accuracy_mean"]) == {"codes", "feats", "km8"}
    monkeypatch.setattr(sys, "argv", ["listening_ceiling.py", "--out", str(tmp_path), "--train", "40", "--test", "6",
                                      "--variants", "text", "--ctc", "0.5"])
    with pytest.raises(SystemExit):
        m.main()  # CTC reads text off speech: a text view is refused


def test_wording_subset_keeps_a_share_of_each_intents_training_wordings():
    m = load()
    split = wording_split()
    half = m.wording_subset(0.5)
    for intent in ("shape", "color", "has_color", "not_shape"):
        train = split.wordings(intent, "train")
        kept = [t for t in train if t in half]
        assert len(kept) == max(1, round(0.5 * len(train)))
    assert not half & {t for i in ("has_color", "not_color") for t in split.wordings(i, "heldout")}
    assert m.wording_subset(0.5) == half and m.wording_subset(0.5, seed=1) != half


def test_extra_yes_no_items_in_drill_or_training_wordings():
    m = load()
    from moshivis.data.easy_vqa_drills import drill_wordings

    drills = m.draw_items(60, "drills", None, random.Random(0), yes_no_only=True)
    for it in drills:
        intent, value = m.easy_vqa_meanings()[it.label]
        assert intent in m.YES_NO and parse_easy_vqa_question(it.text) is None  # in no wording table
        assert any(m.fill_wording(t, intent, value) == it.text for t in drill_wordings()[intent])
    assert {m.easy_vqa_meanings()[it.label][0] for it in drills} == set(m.YES_NO)
    control = m.draw_items(60, "train", None, random.Random(0), yes_no_only=True)
    assert all(m.easy_vqa_meanings()[it.label][0] in m.YES_NO and parse_easy_vqa_question(it.text) for it in control)
    with pytest.raises(ValueError, match="yes/no"):
        m.draw_items(3, "drills", None, random.Random(0))  # drill wordings exist for yes/no intents only


def test_extra_items_in_new_sentence_frames_cover_every_intent():
    m = load()
    from moshivis.data.easy_vqa_frames import parse_frame

    wordings, yes_no = m.EXTRA_KINDS["frames"]
    items = m.draw_items(200, wordings, None, random.Random(0), yes_no_only=yes_no)
    intents = set()
    for it in items:
        intent, value = m.easy_vqa_meanings()[it.label]
        assert parse_easy_vqa_question(it.text) is None and parse_frame(it.text)[:2] == (intent, value), it.text
        intents.add(intent)
    assert intents == set(m.EASY_ORIGINALS)
    wordings, yes_no = m.EXTRA_KINDS["trainall"]
    control = m.draw_items(200, wordings, None, random.Random(0), yes_no_only=yes_no)
    assert {parse_easy_vqa_question(it.text).intent for it in control} == set(m.EASY_ORIGINALS)


def test_ctc_head_trains_on_unlabelled_items_and_needs_its_targets():
    m = load()
    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(0, 20, (10,), generator=g) for _ in range(120)]
    ys = torch.tensor([int(x[0]) % 35 for x in xs])
    ys[80:] = -1  # corpus sentences: no meaning, CTC only
    targets = [x[:3].clone() for x in xs]
    model = m.train_reader(xs, ys, 20, 384, 0, epochs=2, ctc_targets=targets, ctc_vocab=25, ctc_weight=0.5)
    logits, logp = model.forward_both(*m.batchify(xs[:4], 20))
    assert logits.shape == (4, 35) and logp.shape == (4, 10, 26)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(4, 10), atol=1e-5)
    assert m.train_reader(xs, ys, 20, 384, 0, epochs=1).ctc_head is None  # off by default
    with pytest.raises(ValueError, match="one target per training item"):
        m.train_reader(xs, ys, 20, 384, 0, epochs=1, ctc_weight=0.5)
