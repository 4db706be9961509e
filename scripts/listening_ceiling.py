"""How well can a small dedicated model understand spoken easy-vqa questions from the codec's tokens, in
wordings it never heard? The ceiling the embedded base could reach from the same input (issue 5).

The embedded model hears the user only through the tiny codec's semantic codebook (codebook 0: k-means over
causal Whisper tiny.en states). Spoken, it answers 73% of seen-wording questions and 52% of held-out-wording
ones right, where typed it gets 99.6 / 94.0 (README). This script separates the two suspects:
- the INPUT: do the codes carry a new wording's meaning at all?
- the LEARNER: the language model's training on a few thousand spoken questions.

It renders spoken questions (the project's TTS voices), encodes them with the shipped codec, and trains the
same small transformer classifier (35 meanings: intent x colour / shape) on several views of the same
utterances, training wordings only, then scores it on new renderings of training wordings and of held-out
wordings, by the evaluation's training voices and by the held-out voice (flite slt):
    codes        codebook 0 as the LM gets it (causal, quantised)
    feats        the same causal Whisper states before k-means (what quantisation loses)
    utt_codes    codebook 0 from one bidirectional pass over the utterance (what causality loses)
    text         the question's SentencePiece pieces (what the typed model reads: the wording ceiling)
    codes_mask   codes, with 15% of training frames masked and random crops (augmentation)
    codes_causal codes, read as a language model reads them: causal attention, the last frame's state
    text_causal  text pieces, the same causal reader
    feats_causal the continuous states, the same causal reader
    kmK / rvqSxK other semantic codebooks for the same causal states, fitted here on the training renderings'
                 states: k-means with K codes, or an S-stage residual VQ with K codes a stage (the reader
                 sums one embedding per stage). What a different codebook 0 would keep.
    ckmK / crvqSxK the same, fitted on the codec's own training corpus instead (`--corpus N` general sentences
                 of `audio.tiny.sentences` by the codec's training voices): a codebook a codec could ship,
                 knowing nothing of this task
    alt          codebook 0 of another codec (`--alt-codec DIR`, e.g. one from `moshivis.audio.tiny.refit`, which
                 keeps the Whisper window and reference level, so the cached states stay valid)
    mkmK         k-means fitted on both: the codec's corpus and the training renderings (a tiny-world codec
                 whose codebook 0 has heard the tiny world's training wordings and voices, nothing held out)
    cent / cent_causal  codebook 0's codes replaced by their centroids (the 384-d Whisper state each code
                 stands for), read through a linear layer: what the LM would get from an input embedding that
                 knows which codes sound alike, where a learned table knows only the codes it saw often
    centemb / centemb_causal  both summed: a learned table plus a linear map of the centroids (an LM's
                 codebook-0 embedding initialised from, and kept tied to, the centroids)

    python scripts/listening_ceiling.py --out runs/ceiling [--train 3000] [--test 300] [--workers 2] [--variants ...]
        [--train-subset N] [--wording-fraction F] [--extra drills:N|train:N|frames:N|trainall:N] [--alt-codec DIR]
        [--ctc W [--ctc-corpus N]]

Encoded utterances are cached in --out, so later runs with other variants only train readers (about 2 min
each on one thread). --train-subset and --wording-fraction give learning-curve points: fewer renderings, or
renderings of fewer training wordings; --extra adds yes/no renderings in new (drill) wordings, or renderings
of any meaning in new sentence frames, or the same number in training wordings as the control. --ctc W adds
an auxiliary loss (weight W) that reads the question's text pieces off every position of the speech (CTC),
and --ctc-corpus N trains that head on N general sentences of the codec's corpus too (no meaning label):
does naming words wherever they stand help the reader with new wordings?
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from moshivis.data.easy_vqa_wordings import (EASY_ORIGINALS, easy_vqa_meanings, fill_wording,
                                             parse_easy_vqa_question, wording_split)

# --extra kinds: (the wordings drawn, yes/no meanings only). "train" / "trainall" are the controls of
# "drills" / "frames": the same number of renderings in training wordings. "framesc": the frames less the
# negated ones that use a negating word no table has (easy_vqa_frames.NEW_NEGATIONS); "framesp": the yes/no
# frames in polarity pairs (easy_vqa_frames.PAIRED_FRAMES).
EXTRA_KINDS: dict[str, tuple[str, bool]] = {"drills": ("drills", True), "train": ("train", True),
                                            "frames": ("frames", False), "trainall": ("train", False),
                                            "framesc": ("frames_closed", False), "framesp": ("frames_paired", False)}
SPLITS = ("seen_train_voices", "heldout_train_voices", "seen_slt", "heldout_slt")
VARIANTS = ("codes", "feats", "utt_codes", "text", "codes_mask", "codes_causal", "text_causal", "feats_causal")


@dataclass
class Item:
    text: str
    label: int  # index into easy_vqa_meanings()
    voice: str  # a make_tts spec
    resample: float  # apply_resample factor (1: none)
    lead_s: float  # silence before the question


YES_NO = ("has_color", "not_color", "has_shape", "not_shape")


def draw_items(n: int, wordings: str, voices: list[str] | None, rng: random.Random,
               yes_no_only: bool = False) -> list[Item]:
    """n questions: a meaning uniformly (only yes/no ones if `yes_no_only`), then one of its `wordings`
    uniformly: "train" / "heldout" (`wording_split`), "drills" (`data.easy_vqa_drills`: yes/no wordings
    rebuilt from the training wordings' parts) or "frames" (`data.easy_vqa_frames`: new sentence frames, every
    intent); both at least 2 word edits from every held-out wording. Voices
    cycled from `voices` at nominal settings, or drawn like the codec's training voices (None)."""
    from moshivis.audio.tiny.voices import draw_voice
    from moshivis.data.easy_vqa_drills import drill_wordings
    from moshivis.data.easy_vqa_frames import frame_wordings, paired_frame_wordings

    table, split = easy_vqa_meanings(), wording_split()
    if wordings == "drills" and not yes_no_only:
        raise ValueError("drill wordings exist for yes/no intents only: draw them with yes_no_only=True")
    labels = [i for i, (intent, _) in enumerate(table) if intent in YES_NO]
    out = []
    for i in range(n):
        label = rng.choice(labels) if yes_no_only else rng.randrange(len(table))
        intent, value = table[label]
        if wordings == "drills":
            templates = drill_wordings()[intent]
        elif wordings == "frames_paired":
            templates = paired_frame_wordings()[intent]
        elif wordings in ("frames", "frames_closed"):
            templates = frame_wordings(closed_negation=wordings == "frames_closed")[intent]
        else:
            templates = split.wordings(intent, wordings)
        text = fill_wording(rng.choice(templates), intent, value)
        parsed = parse_easy_vqa_question(text)
        if wordings not in ("train", "heldout"):  # drills and frames are new wordings
            assert parsed is None, f"a {wordings} wording must be in no table: {text}"
        else:
            assert parsed is not None and (parsed.intent, parsed.value) == (intent, value), text
        if voices is None:
            d = draw_voice(rng)
            spec, factor = d.spec, d.resample_factor
        else:
            spec, factor = voices[i % len(voices)], 1.0
        out.append(Item(text, label, spec, factor, round(rng.uniform(0.16, 0.6), 3)))
    return out


def _encode_worker(args: tuple[list[Item], str]) -> list[dict[str, torch.Tensor]]:
    """Render and encode a chunk of items in one process (one thread): causal codes and states, and the
    bidirectional pass's codes."""
    items, codec_dir = args
    torch.set_num_threads(1)
    from moshivis.audio.tiny.codec import TinyCodec
    from moshivis.audio.tiny.features import pad_to_frames, whisper_log10mel
    from moshivis.audio.tiny.semantic import causal_features, utterance_features
    from moshivis.audio.tiny.train import synthesize
    from moshivis.audio.tiny.voices import VoiceDraw
    from moshivis.audio.tts import SAMPLE_RATE as sr

    codec = TinyCodec.load(codec_dir)
    cfg, out = codec.config, []
    audios = synthesize([(it.text, VoiceDraw(it.voice, it.resample)) for it in items])
    for it, audio in zip(items, audios):
        wav = np.concatenate([np.zeros(int(it.lead_s * sr), np.float32), audio, np.zeros(int(0.4 * sr), np.float32)])
        x = pad_to_frames(torch.from_numpy(wav)[None].float())
        with torch.no_grad():
            raw = whisper_log10mel(x)
            feats = causal_features(codec.whisper, raw, cfg.whisper_window, cfg.whisper_ref_max)[0]
            utt = utterance_features(codec.whisper, raw, cfg.whisper_ref_max)[0]
            out.append({"codes": codec.semantic_codes(feats), "feats": feats.half(),
                        "utt_codes": codec.semantic_codes(utt)})
    return out


def wording_subset(fraction: float, seed: int = 0) -> set[str]:
    """A seeded share of each intent's TRAINING wordings (at least one per intent): the templates kept."""
    split, kept = wording_split(), set()
    for intent in EASY_ORIGINALS:
        order = sorted(split.wordings(intent, "train"))
        random.Random(f"listening-ceiling-wordings|{seed}|{intent}").shuffle(order)
        kept.update(order[:max(1, round(fraction * len(order)))])
    return kept


def encode_items(items: list[Item], codec_dir: str, workers: int, desc: str) -> list[dict[str, torch.Tensor]]:
    chunks = [items[i:i + 25] for i in range(0, len(items), 25)]
    if workers <= 1:
        return [r for c in tqdm(chunks, desc=desc) for r in _encode_worker((c, codec_dir))]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        parts = list(tqdm(pool.imap(_encode_worker, [(c, codec_dir) for c in chunks]), total=len(chunks), desc=desc))
    return [r for p in parts for r in p]


class Reader(torch.nn.Module):
    """A small pre-LN transformer encoder over one input view -> 35 meaning logits. Inputs: token ids
    [B, T] (vocab > 0) or vectors [B, T, in_dim] (vocab 0); mask [B, T] True on real positions (a right-padded
    prefix). causal: each position sees only the past, and the last real position's state is read (as an LM
    would hold the question at its end); otherwise attention is two-way and the states are averaged."""

    def __init__(self, vocab: int, in_dim: int, n_out: int, dim: int = 128, layers: int = 3, max_len: int = 128,
                 causal: bool = False, ctc_vocab: int = 0, centroids: torch.Tensor | None = None) -> None:
        super().__init__()
        self.causal = causal
        # ctc_vocab > 0: a second head reads the question's text pieces off every position (CTC, blank =
        # ctc_vocab): an auxiliary task that names words wherever they stand, in any sentence frame
        self.ctc_head = torch.nn.Linear(dim, ctc_vocab + 1) if ctc_vocab else None
        self.inp = torch.nn.Embedding(vocab + 1, dim) if vocab else torch.nn.Linear(in_dim, dim)
        # centroids [vocab, D]: codes also enter as a linear map of their centroid (the pad/mask id maps to 0)
        self.register_buffer("cent", None if centroids is None else
                             torch.cat([centroids, torch.zeros(1, centroids.shape[1])]))
        if centroids is not None:
            self.cent_proj = torch.nn.Linear(centroids.shape[1], dim)
        self.pos = torch.nn.Parameter(torch.randn(max_len, dim) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(dim, 4, 4 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.enc = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(dim, n_out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_both(x, mask)[0]

    def forward_both(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (meaning logits [B, n_out], CTC log-probs [B, T, ctc_vocab + 1] or None)."""
        h = self.inp(x)
        if self.cent is not None:
            h = h + self.cent_proj(self.cent[x])
        if h.dim() == 4:  # several codebooks a frame [B, T, S] (ids offset per stage): one summed embedding
            h = h.sum(2)
        h = h + self.pos[: x.shape[1]]
        if self.causal:
            t = x.shape[1]
            h = self.enc(h, mask=torch.nn.Transformer.generate_square_subsequent_mask(t), is_causal=True)
            out = self.head(h[torch.arange(len(h)), mask.sum(1) - 1])
        else:
            h = self.enc(h, src_key_padding_mask=~mask)
            m = mask[..., None].float()
            out = self.head((h * m).sum(1) / m.sum(1).clamp_min(1.0))
        return out, (self.ctc_head(h).log_softmax(-1) if self.ctc_head is not None else None)


def batchify(seqs: list[torch.Tensor], pad: float | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [T_i] or [T_i, D] sequences -> ([B, T, ...], mask [B, T])."""
    t = max(len(s) for s in seqs)
    x = torch.full((len(seqs), t, *seqs[0].shape[1:]), pad, dtype=seqs[0].dtype)
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, s in enumerate(seqs):
        x[i, : len(s)], mask[i, : len(s)] = s, True
    return x, mask


def augment(s: torch.Tensor, mask_token: int, rng: torch.Generator, p: float = 0.15) -> torch.Tensor:
    """Codes [T]: drop up to 2 frames at each end and replace a share p of frames by mask_token."""
    a = int(torch.randint(0, 3, (1,), generator=rng))
    b = int(torch.randint(0, 3, (1,), generator=rng))
    s = s[a: len(s) - b] if len(s) > a + b + 4 else s
    hit = torch.rand(len(s), generator=rng) < p
    return torch.where(hit, torch.full_like(s, mask_token), s)


def train_reader(train_x: list[torch.Tensor], train_y: torch.Tensor, vocab: int, in_dim: int, seed: int,
                 epochs: int = 30, batch: int = 64, aug: bool = False, causal: bool = False, dim: int = 96,
                 layers: int = 2, ctc_targets: list[torch.Tensor] | None = None, ctc_vocab: int = 0,
                 ctc_weight: float = 0.0, centroids: torch.Tensor | None = None) -> Reader:
    """AdamW, cosine schedule, label smoothing 0.05 (as the feasibility study's reader). A label -1 has no
    meaning loss (a sentence that is no easy-vqa question). ctc_weight > 0: plus that weight times the CTC
    loss of `ctc_targets` (piece ids [L_i] per item, ids < ctc_vocab) read off every position."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    use_ctc = ctc_weight > 0
    if use_ctc and (ctc_targets is None or len(ctc_targets) != len(train_x) or ctc_vocab <= 0):
        raise ValueError("ctc_weight > 0 needs one target per training item and ctc_vocab > 0")
    model = Reader(vocab, in_dim, len(easy_vqa_meanings()), dim=dim, layers=layers, causal=causal,
                   ctc_vocab=ctc_vocab if use_ctc else 0, centroids=centroids)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = epochs * math.ceil(len(train_x) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=g)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch].tolist()
            seqs = [augment(train_x[j], vocab, g) if aug else train_x[j] for j in idx]
            x, m = batchify(seqs, vocab if vocab else 0.0)
            logits, logp = model.forward_both(x, m)
            y = train_y[idx]
            loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.05, ignore_index=-1) \
                if bool((y >= 0).any()) else logits.sum() * 0.0
            if use_ctc:
                tg = [ctc_targets[j] for j in idx]
                loss = loss + ctc_weight * torch.nn.functional.ctc_loss(
                    logp.transpose(0, 1), torch.cat(tg), m.sum(1), torch.tensor([len(t) for t in tg]),
                    blank=ctc_vocab, zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def predict(model: Reader, xs: list[torch.Tensor], vocab: int) -> torch.Tensor:
    """-> predicted meaning index per sequence [N]."""
    out = []
    for i in range(0, len(xs), 128):
        x, m = batchify(xs[i:i + 128], vocab if vocab else 0.0)
        out.append(model(x, m).argmax(-1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def accuracy(model: Reader, xs: list[torch.Tensor], ys: torch.Tensor, vocab: int) -> float:
    return 100.0 * float((predict(model, xs, vocab) == ys).float().mean()) if len(xs) else 0.0


def polarity_accuracy(pred: torch.Tensor, ys: torch.Tensor) -> float:
    """Among yes/no questions (has_* / not_*), the share whose predicted meaning has the right polarity
    (and is a yes/no meaning at all): the part of the meaning the embedded model gets wrong most."""
    table = easy_vqa_meanings()
    pol = {i: ("not" if intent.startswith("not_") else "has") for i, (intent, _) in enumerate(table)
           if intent.startswith(("has_", "not_"))}
    rows = [i for i, y in enumerate(ys.tolist()) if y in pol]
    if not rows:
        return float("nan")
    return 100.0 * sum(pol.get(int(pred[i])) == pol[int(ys[i])] for i in rows) / len(rows)


def template_counts(items: list[Item], pred: torch.Tensor, ys: torch.Tensor) -> dict[str, tuple[int, int]]:
    """Per wording template of the test items: (right, count) of full-meaning predictions."""
    out: dict[str, tuple[int, int]] = {}
    for it, p, y in zip(items, pred.tolist(), ys.tolist()):
        parsed = parse_easy_vqa_question(it.text)
        t = parsed.template if parsed is not None else "(no table wording)"
        r, n = out.get(t, (0, 0))
        out[t] = (r + (p == y), n + 1)
    return out


def quantizer_spec(variant: str) -> tuple[int, int] | None:
    """"km2048" / "ckm2048" -> (1, 2048); "rvq2x512" / "crvq2x512" -> (2, 512); other variants -> None."""
    if m := re.fullmatch(r"[cm]?km(\d+)", variant):
        return 1, int(m[1])
    if m := re.fullmatch(r"c?rvq(\d+)x(\d+)", variant):
        return int(m[1]), int(m[2])
    return None


def corpus_items(n: int, seed: int = 0) -> list[Item]:
    """n of the codec's training sentences (`audio.tiny.sentences`, train side), voices drawn as the codec's
    training draws them; label unused (0)."""
    from moshivis.audio.tiny.sentences import sentences
    from moshivis.audio.tiny.voices import draw_voice

    rng = random.Random(f"listening-ceiling-corpus:{seed}")
    out = []
    for text in sentences(n, seed, "train"):
        d = draw_voice(rng)
        out.append(Item(text, 0, d.spec, d.resample_factor, round(rng.uniform(0.16, 0.6), 3)))
    return out


def fit_quantizer(train_feats: list[torch.Tensor], stages: int, k: int, seed: int = 0,
                  max_vectors: int = 120_000) -> torch.Tensor:
    """k-means (stages 1) or greedy RVQ on the training renderings' causal states -> books [S, K, 384]."""
    from moshivis.audio.tiny.kmeans import train_rvq

    x = torch.cat(train_feats).float()
    if len(x) > max_vectors:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_vectors]]
    return train_rvq(x, k, stages, iters=20, seed=seed)


def quantize(feats: list[torch.Tensor], books: torch.Tensor) -> list[torch.Tensor]:
    """states [T, 384] -> ids [T, S], stage s offset by s K (one embedding table for all stages)."""
    from moshivis.audio.tiny.kmeans import rvq_encode

    s, k = books.shape[:2]
    offset = torch.arange(s) * k
    return [rvq_encode(f.float(), books) + offset for f in feats]


def view(rows: list[dict[str, torch.Tensor]], items: list[Item], variant: str, sp) -> list[torch.Tensor]:  # noqa: ANN001
    if variant.startswith("text"):
        return [torch.tensor(sp.encode(it.text), dtype=torch.long) for it in items]
    key = {"codes_mask": "codes", "codes_causal": "codes", "feats_causal": "feats"}.get(variant, variant)
    return [r[key].float() if key == "feats" else r[key].long() for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/ceiling")
    ap.add_argument("--codec", default="tinyworld/codec")
    ap.add_argument("--tokenizer", default="tinyworld/bundle/tokenizer.model")
    ap.add_argument("--train", type=int, default=3000)
    ap.add_argument("--test", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--alt-codec", default=None, help="codec folder for the alt variant")
    ap.add_argument("--corpus", type=int, default=2400, help="codec-corpus utterances for the ckm / crvq variants")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--extra", default="",
                    help="drills:N or train:N: add N yes/no renderings in drill wordings (data.easy_vqa_drills) "
                         "or in training wordings (the control) to the training set; frames:N or trainall:N: N "
                         "renderings of any meaning in new sentence frames (data.easy_vqa_frames), or the control")
    ap.add_argument("--wording-fraction", type=float, default=1.0,
                    help="train only on renderings of this share of each intent's training wordings (seeded); "
                         "with --train-subset, compare with all wordings at the same number of renderings")
    ap.add_argument("--train-subset", type=int, default=0,
                    help="train the readers on the first N training renderings only (a learning-curve point)")
    ap.add_argument("--ctc", type=float, default=0.0,
                    help="weight of an auxiliary CTC loss that reads the text pieces off the speech (not for text views)")
    ap.add_argument("--ctc-corpus", type=int, default=0,
                    help="with --ctc: also train on the first N codec-corpus sentences (CTC only, no meaning)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the readers' training")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from moshivis.audio.tiny.voices import EVAL_HELD_OUT_VOICES, EVAL_TRAIN_VOICES

    rng = random.Random(0)
    sets = {"train": draw_items(args.train, "train", None, rng),
            "seen_train_voices": draw_items(args.test, "train", list(EVAL_TRAIN_VOICES), rng),
            "heldout_train_voices": draw_items(args.test, "heldout", list(EVAL_TRAIN_VOICES), rng),
            "seen_slt": draw_items(args.test, "train", list(EVAL_HELD_OUT_VOICES), rng),
            "heldout_slt": draw_items(args.test, "heldout", list(EVAL_HELD_OUT_VOICES), rng)}
    cache = out / f"encoded_{args.train}_{args.test}.pt"
    if cache.exists():
        encoded = torch.load(cache)
    else:
        encoded = {k: encode_items(v, args.codec, args.workers, f"encode {k}") for k, v in sets.items()}
        torch.save(encoded, cache)
    if "alt" in args.variants and not args.alt_codec:
        ap.error("the alt variant needs --alt-codec DIR")
    if args.ctc < 0 or args.ctc_corpus < 0 or (args.ctc_corpus and not args.ctc) or args.ctc_corpus > args.corpus:
        ap.error("--ctc must be >= 0; --ctc-corpus N needs --ctc and 0 <= N <= --corpus")
    if args.ctc and any(v.startswith("text") for v in args.variants):
        ap.error("--ctc reads text off speech: drop the text variants")
    if args.ctc_corpus or any(v.startswith(("c", "m")) and quantizer_spec(v) for v in args.variants):
        corpus_cache = out / f"corpus_{args.corpus}.pt"
        if corpus_cache.exists():
            corpus = torch.load(corpus_cache)
        else:
            corpus = encode_items(corpus_items(args.corpus), args.codec, args.workers, "encode corpus")
            torch.save(corpus, corpus_cache)
    extra_name = ""
    if args.extra:
        kind, _, count = args.extra.partition(":")
        if kind not in EXTRA_KINDS or not count.isdigit():
            ap.error(f"--extra takes {' | '.join(k + ':N' for k in EXTRA_KINDS)}, got {args.extra!r}")
        extra_items = draw_items(int(count), EXTRA_KINDS[kind][0], None,
                                 random.Random(f"listening-ceiling-extra:{kind}"), yes_no_only=EXTRA_KINDS[kind][1])
        extra_cache = out / f"extra_{kind}_{count}.pt"
        if extra_cache.exists():
            extra_rows = torch.load(extra_cache)
        else:
            extra_rows = encode_items(extra_items, args.codec, args.workers, f"encode extra {kind}")
            torch.save(extra_rows, extra_cache)
        extra_name = f"_x{kind}{count}"
    if args.wording_fraction < 1.0:
        if not 0.0 < args.wording_fraction < 1.0:
            ap.error("--wording-fraction must be in (0, 1]")
        kept = wording_subset(args.wording_fraction)
        keep = [i for i, it in enumerate(sets["train"]) if parse_easy_vqa_question(it.text).template in kept]
        sets["train"], encoded["train"] = [sets["train"][i] for i in keep], [encoded["train"][i] for i in keep]
        print(f"--wording-fraction {args.wording_fraction}: {len(keep)} training renderings kept", flush=True)
    if args.train_subset:
        if not 0 < args.train_subset <= len(sets["train"]):
            ap.error(f"--train-subset must be in 1..{len(sets['train'])}")
        sets["train"], encoded["train"] = sets["train"][:args.train_subset], encoded["train"][:args.train_subset]
    if args.extra:  # after the subsets: they select among the main training renderings only
        sets["train"], encoded["train"] = sets["train"] + extra_items, encoded["train"] + extra_rows
    import sentencepiece

    torch.set_num_threads(args.threads)
    sp = sentencepiece.SentencePieceProcessor(model_file=args.tokenizer)
    ys = {k: torch.tensor([it.label for it in v]) for k, v in sets.items()}
    frames = [len(r["codes"]) for r in encoded["train"]]
    # CTC targets (the same for every view): the training questions' pieces, then the corpus sentences'
    ctc_corpus = corpus_items(args.corpus)[:args.ctc_corpus] if args.ctc_corpus else []
    ctc_targets = [torch.tensor(sp.encode(it.text.lower()), dtype=torch.long) for it in sets["train"] + ctc_corpus] \
        if args.ctc else None
    results: dict[str, dict[str, list[float]]] = {}
    by_template: dict[str, dict[str, list[int]]] = {}  # variant -> "seen|heldout: template" -> [right, n]
    for variant in args.variants:
        vocab = sp.get_piece_size() if variant.startswith("text") else (0 if variant.startswith("feats") else 512)
        if variant == "alt":
            from moshivis.audio.tiny.codec import TinyCodec

            alt = TinyCodec.load(args.alt_codec)
            ref = TinyCodec.load(args.codec)
            if (alt.config.whisper_window, alt.config.whisper_ref_max) != (ref.config.whisper_window,
                                                                           ref.config.whisper_ref_max):
                raise ValueError(f"{args.alt_codec}: its Whisper window / reference level differ from {args.codec}'s, "
                                 "so the cached states do not apply")
            vocab = alt.semantic.shape[0]
            xs = {k: [alt.semantic_codes(r["feats"].float()) for r in encoded[k]] for k in sets}
        elif (q := quantizer_spec(variant)) is not None:
            if variant.startswith("c"):
                fit_on = corpus
            elif variant.startswith("m"):
                fit_on = corpus + encoded["train"]
            else:
                fit_on = encoded["train"]
            books = fit_quantizer([r["feats"] for r in fit_on], *q)
            vocab = q[0] * q[1]
            xs = {k: quantize([r["feats"] for r in encoded[k]], books) for k in sets}
        elif variant.startswith("cent"):
            from moshivis.audio.tiny.codec import TinyCodec

            books = TinyCodec.load(args.codec).semantic
            if variant.startswith("centemb"):
                xs = {k: view(encoded[k], sets[k], "codes", sp) for k in sets}
            else:  # the centroid vectors themselves, continuous
                vocab = 0
                xs = {k: [books[c] for c in view(encoded[k], sets[k], "codes", sp)] for k in sets}
        else:
            xs = {k: view(encoded[k], sets[k], variant, sp) for k in sets}
        train_x, train_y = xs["train"], ys["train"]
        if args.ctc_corpus:  # the corpus sentences in this view, with no meaning label
            rows = corpus[:args.ctc_corpus]
            if variant == "alt":
                cx = [alt.semantic_codes(r["feats"].float()) for r in rows]
            elif quantizer_spec(variant) is not None:
                cx = quantize([r["feats"] for r in rows], books)
            else:
                cx = view(rows, ctc_corpus, variant, sp)
            train_x = train_x + cx
            train_y = torch.cat([train_y, torch.full((len(cx),), -1, dtype=torch.long)])
        results[variant] = {k: [] for k in ("train", *SPLITS, *(f"polarity_{s}" for s in SPLITS))}
        by_template[variant] = {}
        for seed in tqdm(range(args.seeds), desc=variant):
            model = train_reader(train_x, train_y, vocab, 384, seed, args.epochs, aug=variant == "codes_mask",
                                 causal=variant.endswith("_causal"), dim=args.dim, layers=args.layers,
                                 ctc_targets=ctc_targets, ctc_vocab=sp.get_piece_size(), ctc_weight=args.ctc,
                                 centroids=books if variant.startswith("centemb") else None)
            for k in ("train", *SPLITS):
                pred = predict(model, xs[k], vocab)
                results[variant][k].append(100.0 * float((pred == ys[k]).float().mean()))
                if k != "train":
                    results[variant][f"polarity_{k}"].append(polarity_accuracy(pred, ys[k]))
                    for t, (right, n) in template_counts(sets[k], pred, ys[k]).items():
                        acc = by_template[variant].setdefault(f"{k.split('_')[0]}: {t}", [0, 0])
                        acc[0], acc[1] = acc[0] + right, acc[1] + n
        print(variant, {k: round(float(np.mean(v)), 1) for k, v in results[variant].items()}, flush=True)
    summary = {"train_items": len(sets["train"]), "ctc": args.ctc, "ctc_corpus": args.ctc_corpus, "wording_fraction": args.wording_fraction, "test_items": args.test, "seeds": args.seeds, "epochs": args.epochs,
               "reader": {"dim": args.dim, "layers": args.layers},
               "mean_frames": float(np.mean(frames)), "meanings": len(easy_vqa_meanings()),
               "accuracy_mean": {v: {k: round(float(np.mean(a)), 1) for k, a in r.items()} for v, r in results.items()},
               "accuracy_runs": results,
               "by_template": {v: {t: round(100.0 * r / n, 1) for t, (r, n) in sorted(d.items())}
                               for v, d in by_template.items()}}
    subset = (f"_w{args.wording_fraction:g}" if args.wording_fraction < 1.0 else "") + \
        (f"_n{args.train_subset}" if args.train_subset else "") + extra_name + \
        (f"_ctc{args.ctc:g}c{args.ctc_corpus}" if args.ctc else "")
    (out / f"summary_{'_'.join(args.variants)}{subset}.json").write_text(json.dumps(summary, indent=1))
    cols = ("train", *SPLITS, "polarity_heldout_train_voices")
    print("| view | " + " | ".join(cols) + " |")
    for v, r in summary["accuracy_mean"].items():
        print(f"| {v} | " + " | ".join(f"{r[k]:.1f}" for k in cols) + " |")


if __name__ == "__main__":
    sys.exit(main())
