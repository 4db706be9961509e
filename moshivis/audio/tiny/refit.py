"""Refit a trained tiny codec's semantic codebook (codebook 0) on other speech, keeping everything else.

Why (`scripts/listening_ceiling.py`, docs/TINYWORLD_LOG.md stop 26): a small reader of the shipped codebook 0
understands 86.8% of spoken easy-vqa questions in training wordings, 99.0% from the same Whisper states
before quantisation, and 96.2% from a k-means of the same size fitted on speech of the tiny world's own
questions. Fitting on more of the codec's general sentences did not help (86.8). So the codebook's
centroids must sit where the embedded model's speech lives: this module refits them on a mix of the codec's
sentences and easy-vqa questions in their TRAINING wordings, spoken by the training voices (the held-out
wordings and the held-out voice family are never used).

Only codebook 0 changes: the acoustic codebooks 1-7, the decoder, the Whisper window and its reference
level stay, so decoded audio is identical and the causal states are the same; a model trained on the old
codebook 0 must be retrained (its input and its own predicted codebook 0 change meaning).

    python -m moshivis.audio.tiny.refit --codec tinyworld/codec --out runs/codec_refit [--utterances 2400]
        [--easy-vqa-share 0.5] [--k K (default: the codec's own)] [--save-states states.pt]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .codec import TinyCodec
from .features import pad_to_frames, whisper_log10mel
from .kmeans import kmeans
from .semantic import ENCODER_DIM, causal_features
from .sentences import sentences
from .train import pad_silence, synthesize
from .voices import VoiceDraw, draw_voice


def easy_vqa_training_questions(n: int, seed: int = 0) -> list[str]:
    """n easy-vqa questions in TRAINING wordings (`wording_split().train`): a meaning (intent x value)
    uniformly, then one of its training wordings."""
    from ...data.easy_vqa_wordings import easy_vqa_meanings, fill_wording, wording_split

    meanings = easy_vqa_meanings()
    split, rng = wording_split(), random.Random(f"refit-easy-vqa:{seed}")
    out = []
    for _ in range(n):
        intent, value = rng.choice(meanings)
        text = fill_wording(rng.choice(split.wordings(intent, "train")), intent, value)
        out.append(text[0].upper() + text[1:])
    return out


def domain_texts(n: int, easy_vqa_share: float, seed: int = 0) -> list[str]:
    """n texts: a share of easy-vqa training-worded questions, the rest the codec's own training sentences,
    shuffled together."""
    if not 0.0 <= easy_vqa_share <= 1.0:
        raise ValueError(f"easy_vqa_share must be in [0, 1], got {easy_vqa_share}")
    k = round(n * easy_vqa_share)
    texts = easy_vqa_training_questions(k, seed) + sentences(n - k, seed, "train")
    random.Random(f"refit-mix:{seed}").shuffle(texts)
    return texts


def semantic_states(codec: TinyCodec, audios: Sequence[np.ndarray], progress: bool = True) -> torch.Tensor:
    """Causal pooled Whisper states of every codec frame of the audios, exactly as `codec.encode` computes
    them before quantisation -> [N frames, 384] float32."""
    cfg, out = codec.config, []
    for a in tqdm(audios, desc="semantic states", disable=not progress):
        raw = whisper_log10mel(pad_to_frames(torch.from_numpy(np.asarray(a, np.float32))[None]))
        with torch.no_grad():
            out.append(causal_features(codec.whisper, raw, cfg.whisper_window, cfg.whisper_ref_max)[0])
    return torch.cat(out) if out else torch.zeros(0, ENCODER_DIM)


def refit_semantic(codec: TinyCodec, states: torch.Tensor, k: int, iters: int = 20, seed: int = 0,
                   note: dict | None = None) -> TinyCodec:
    """A new codec: `codec`'s acoustic part, decoder and Whisper settings, codebook 0 = k-means (k) of
    states [N, 384]. `note` is recorded in `config.training["semantic_refit"]`."""
    if states.dim() != 2 or states.shape[1] != ENCODER_DIM:
        raise ValueError(f"states must be [N, {ENCODER_DIM}], got {tuple(states.shape)}")
    if states.shape[0] < k:
        raise ValueError(f"{states.shape[0]} states cannot fit {k} centroids")
    t0 = time.monotonic()
    centroids = kmeans(states.float(), k, iters, seed)
    training = dict(codec.config.training)
    training["semantic_refit"] = {"k": k, "states": int(states.shape[0]), "iters": iters, "seed": seed,
                                  "kmeans_seconds": round(time.monotonic() - t0, 1), **(note or {})}
    config = dataclasses.replace(codec.config, semantic_k=k, training=training)
    return TinyCodec(config, codec.acoustic, centroids, codec.whisper)


def build(codec_dir: str | Path, out_dir: str | Path, utterances: int = 2400, easy_vqa_share: float = 0.5,
          k: int | None = None, seed: int = 0, workers: int = 2, log: Callable[[str], None] = print,
          progress: bool = True, save_states: str | Path | None = None) -> TinyCodec:
    """Synthesize the mix (training voices, as the codec's trainer draws them), take its causal states, refit
    codebook 0 (k centroids; None: as many as the codec has now), save the new codec in out_dir.
    save_states: also write the states [N, 384] (float16 torch file), e.g. for `tinyworld.semantic_remap
    --states`, which carries a model trained on the old codebook 0 over to the new one."""
    t0 = time.monotonic()
    codec = TinyCodec.load(codec_dir)
    k = codec.config.semantic_k if k is None else k
    texts = domain_texts(utterances, easy_vqa_share, seed)
    rng = random.Random(f"refit-voices:{seed}")
    draws: list[VoiceDraw] = [draw_voice(rng) for _ in texts]
    audios = [pad_silence(a, rng) for a in synthesize(list(zip(texts, draws)), workers)]
    t_synth = time.monotonic() - t0
    log(f"synthesised {len(audios)} utterances ({sum(map(len, audios)) / 24000:.0f} s) in {t_synth:.0f} s")
    states = semantic_states(codec, audios, progress)
    t_states = time.monotonic() - t0 - t_synth
    new = refit_semantic(codec, states, k, seed=seed, note={
        "from": str(codec_dir), "utterances": utterances, "easy_vqa_share": easy_vqa_share,
        "seconds": {"synthesis": round(t_synth, 1), "states": round(t_states, 1)}})
    new.save(out_dir)
    if save_states is not None:
        Path(save_states).parent.mkdir(parents=True, exist_ok=True)
        torch.save(states.half().contiguous(), str(save_states))
    log(f"codebook 0 refitted: K={k} on {states.shape[0]} states; saved {out_dir}")
    return new


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--codec", default="tinyworld/codec")
    p.add_argument("--out", required=True)
    p.add_argument("--utterances", type=int, default=2400)
    p.add_argument("--easy-vqa-share", type=float, default=0.5)
    p.add_argument("--k", type=int, default=None, help="codebook-0 size (default: the codec's own, 512 shipped)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--save-states", default=None,
                   help="also save the Whisper states it fitted on (float16 torch file [N, 384], about 0.8 kB per "
                        "frame), for `python -m moshivis.tinyworld.semantic_remap --states`")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    codec = build(a.codec, a.out, a.utterances, a.easy_vqa_share, a.k, a.seed, a.workers,
                  save_states=a.save_states)
    print(json.dumps(codec.config.training["semantic_refit"], indent=2))


if __name__ == "__main__":
    main()
