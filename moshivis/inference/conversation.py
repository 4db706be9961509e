"""Several spoken questions in ONE conversation (one stream, one image), for the switching test: does the
model stop looking at the image when the user changes the subject?

Each conversation's user track is: `lead_frames` of silence, question 1, `answer_frames` of silence,
question 2, `answer_frames` of silence, ..., encoded by the codec as one stream. Moshi's text between the end of question i and the start of
question i+1 (or the end) is its answer to question i; the gate is averaged over that answer's words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer
from ..models.moshivis import MoshiVis
from .cuda_graph import make_generator
from .generator import SamplingConfig


@dataclass
class TurnAnswer:
    answer: str
    gate_mean: float  # over the answer's word pieces; 0.0 when nothing was said


@torch.no_grad()
def converse_batch(model: MoshiVis, tokenizer: TextTokenizer, codec, image_embeds: torch.Tensor | None,
                   questions: list[list[np.ndarray]], answer_frames: int = 60, lead_frames: int = 2,
                   sampling: SamplingConfig | None = None, seed: int = 0) -> list[list[TurnAnswer]]:
    """questions[b]: conversation b's spoken questions ([S] float32 at the codec's rate, in order).
    image_embeds [B, N, dim] or None. Returns each conversation's answers, one per question."""
    K = model.cfg.lm.dep_q
    B = len(questions)
    F = codec.frame_size
    waves: list[np.ndarray] = []
    spans: list[list[tuple[int, int]]] = []  # per question: (first answer frame, frame after the answer)
    for qs in questions:
        # Whole frames per question, so every question starts on a frame boundary; the track is encoded
        # as ONE stream (as in training: codes after speech carry the codec's trailing context).
        parts = [np.zeros(lead_frames * F, np.float32)]
        t = lead_frames
        these = []
        for q in qs:
            q = np.asarray(q, np.float32).reshape(-1)
            n = -(-len(q) // F)
            parts += [np.pad(q, (0, n * F - len(q))), np.zeros(answer_frames * F, np.float32)]
            t += n
            these.append((t, t + answer_frames))
            t += answer_frames
        waves.append(np.concatenate(parts))
        spans.append(these)
    length = max(len(w) for w in waves)
    batch = torch.from_numpy(np.stack([np.pad(w, (0, length - len(w))) for w in waves]))[:, None]
    user = codec.encode(batch)[:, :K]  # [B, K, T]
    length = user.shape[-1]
    gen = make_generator(model, sampling or SamplingConfig(0, 0, 0, 0), seed=seed)
    text = torch.full((B, length), TEXT_PAD, dtype=torch.long)
    gates = torch.zeros(B, length)
    with gen.streaming(B):
        if image_embeds is not None:
            gen.set_image(image_embeds.to(model.lm.device))
        produced = 0
        for t in range(length):
            out = gen.step(user[:, :, t:t + 1].to(model.lm.device))
            gates[:, t] = gen.gate_weight().cpu()
            if out is None:
                continue
            # Output j is the text sampled at step j (as in `ask_batch`), so it pairs with gates[:, j].
            text[:, produced] = out[:, 0, 0].cpu()
            produced += 1
    results: list[list[TurnAnswer]] = []
    for b in range(B):
        answers = []
        for start, end in spans[b]:
            toks = [int(x) for x in text[b, start:end]]
            words = [(i, tok) for i, tok in enumerate(toks) if tok not in (TEXT_PAD, TEXT_EPAD)]
            gate = float(gates[b, [start + i for i, _ in words]].mean()) if words else 0.0
            answers.append(TurnAnswer(tokenizer.decode([tok for _, tok in words]).strip(), gate))
        results.append(answers)
    return results
