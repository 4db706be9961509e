"""One question about one image, streamed in real time: spoken (user audio stream) or typed (text stream).

Spoken: the question's codec frames play on the user's stream, then the codec's silence; Moshi answers
on its own streams. Typed: as in speechless training samples, the question's tokens are forced on the
text stream and every audio stream is -1 (no audio); Moshi's answer is its text stream.
The answer is Moshi's text from its first word after the question until `end_pad_frames` frames of padding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer
from ..models.moshivis import MoshiVis
from .generator import Generator, SamplingConfig


@dataclass
class AskConfig:
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(0, 0, 0, 0))
    lead_frames: int = 2  # silence (spoken) or padding (typed) before the question
    gap_frames: int = 2  # typed: padding after the question, as in speechless samples
    max_answer_frames: int = 150  # 12 s
    end_pad_frames: int = 10  # this many padding frames after a word end the answer
    xa_start: int = 0
    seed: int = 0


@dataclass
class AskResult:
    answer: str
    pieces: list[tuple[str, float]]  # (text piece, gate strength 0..1) per answer token
    gate_mean: float
    audio: np.ndarray | None  # Moshi's spoken answer, float32 at the codec's sample rate
    frames: int
    ms_per_frame: float

    def to_json(self, audio_path: str | None = None) -> dict[str, object]:
        return {"answer": self.answer, "gate_mean": round(self.gate_mean, 4), "audio": audio_path,
                "frames": self.frames, "ms_per_frame": round(self.ms_per_frame, 2),
                "pieces": [[p, round(g, 3)] for p, g in self.pieces]}


def _answer_done(text: list[int], start: int, end_pad: int) -> bool:
    """True once a word has been said after `start` and the last `end_pad` tokens are padding."""
    tail = text[start:]
    said = any(t not in (TEXT_PAD, TEXT_EPAD) for t in tail)
    return said and len(tail) >= end_pad and all(t in (TEXT_PAD, TEXT_EPAD) for t in tail[-end_pad:])


@torch.no_grad()
def ask(model: MoshiVis, tokenizer: TextTokenizer, codec, image_embeds: torch.Tensor | None,
        question_audio: np.ndarray | None = None, question_text: str | None = None,
        cfg: AskConfig | None = None) -> AskResult:
    """image_embeds: [1, N, dim] from `model.encode_image` (None: no image). Exactly one of
    question_audio ([S] float32 at the codec's rate) and question_text."""
    if (question_audio is None) == (question_text is None):
        raise ValueError("give exactly one of question_audio and question_text")
    cfg = cfg or AskConfig()
    dev = model.lm.device
    gen = Generator(model, cfg.sampling, xa_start=cfg.xa_start, seed=cfg.seed)
    K = model.cfg.lm.dep_q
    typed = question_text is not None
    if typed:
        q_tokens = tokenizer.encode(question_text)
        forced = [TEXT_PAD] * cfg.lead_frames + q_tokens + [TEXT_PAD] * (cfg.gap_frames - 1) + [TEXT_EPAD]
        user = torch.full((1, K, len(forced) + cfg.max_answer_frames), -1, dtype=torch.long)
        question_end = len(forced)
    else:
        wav = torch.as_tensor(question_audio, dtype=torch.float32).view(1, 1, -1)
        q_codes = codec.encode(wav)[:, :K]  # [1, K, Tq]
        silence = codec.silence_codes(cfg.lead_frames + cfg.max_answer_frames)[None, :K].to(q_codes)
        user = torch.cat([silence[..., :cfg.lead_frames], q_codes, silence[..., cfg.lead_frames:]], dim=-1)
        forced = []
        question_end = cfg.lead_frames + q_codes.shape[-1]
    text_out: list[int] = []
    audio_out: list[torch.Tensor] = []
    gates: list[float] = []
    t0 = time.perf_counter()
    steps = 0
    with gen.streaming(1):
        if image_embeds is not None:
            gen.set_image(image_embeds.to(dev))
        for t in range(user.shape[-1]):
            force_text = torch.tensor([forced[t]]) if t < len(forced) else None
            force_audio = torch.full((1, K), -1) if typed else None
            out = gen.step(user[:, :, t:t + 1].to(dev), force_text=force_text, force_audio=force_audio)
            steps += 1
            gates.append(float(gen.gate_weight()[0]))
            if out is None:
                continue
            text_out.append(int(out[0, 0, 0]))
            audio_out.append(out[0, 1:, 0].cpu())
            if len(text_out) > question_end and _answer_done(text_out, question_end, cfg.end_pad_frames):
                break
    ms = (time.perf_counter() - t0) * 1000 / max(1, steps)
    answer_tokens = text_out[question_end:]
    # Output j holds the text sampled at step j (max_delay = 1 step behind), so its gate is gates[j].
    pieces = [(p, gates[question_end + i]) for i, tok in enumerate(answer_tokens)
              if tok not in (TEXT_PAD, TEXT_EPAD) and (p := tokenizer.piece(tok))]
    answer = tokenizer.decode(answer_tokens).strip()
    audio = None
    if not typed and audio_out:
        codes = torch.stack(audio_out[question_end:] or audio_out, dim=-1)[None]  # [1, K, T]
        audio = codec.decode(codes.clamp(min=0)).reshape(-1).numpy().astype(np.float32)
    gate_mean = float(np.mean([g for _, g in pieces])) if pieces else 0.0
    return AskResult(answer, pieces, gate_mean, audio, steps, ms)
