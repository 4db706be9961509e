"""One question about one image, streamed in real time: spoken (user audio stream) or typed (text stream).

Spoken: the user's track (a little silence, the question, then silence) is encoded as one stream and
played on the user's stream; Moshi answers on its own streams. Typed: as in speechless training samples, the question's tokens are forced on the
text stream and every audio stream is -1 (no audio); Moshi's answer is its text stream.
The answer is Moshi's text from its first word after the question until `end_pad_frames` frames of padding
(typed: `typed_end_pad_frames`, 1, since a speechless turn has no padding inside it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..data.spoken_answers import as_sentence
from ..data.tokenizer import TEXT_EPAD, TEXT_PAD, TextTokenizer
from ..models.moshivis import MoshiVis
from .cuda_graph import make_generator
from .generator import SamplingConfig


# The voice that speaks a question given as text (the demo, `eval run`): deterministic, because piper samples
# noise (two renderings of one sentence differ in length) and two identical runs of 16 spoken questions
# then agreed on 3 answers with the embedded model (stop 11).
QUESTION_VOICE = "flite:kal16"


@dataclass
class AskConfig:
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(0, 0, 0, 0))
    lead_frames: int = 2  # silence (spoken) or padding (typed) before the question
    # Spoken: this many more samples of silence before the question, so it starts off the 80-ms frame grid
    # (a live microphone's audio is cut into frames at any phase; training turns start on the grid).
    lead_samples: int = 0
    gap_frames: int = 2  # typed: padding after the question, as in speechless samples
    max_answer_frames: int = 150  # 12 s
    end_pad_frames: int = 10  # this many padding frames after a word end the answer
    # Typed (speechless layout): a turn's pieces are packed with no padding between them, and the turn ends
    # with the gap before the next one, so the first padding frame after a word ends the answer.
    typed_end_pad_frames: int = 1
    xa_start: int = 0
    seed: int = 0
    decode_audio: bool = True  # spoken questions: decode Moshi's answer to a waveform (Griffin-Lim costs time)
    realtime: bool = False  # pace the loop at one step per 80 ms of audio, as a live conversation runs
    cuda_graph: bool | None = None  # None: CUDA-graph steps when the model is on a GPU; False: eager there too
    on_piece: Callable[[int, str, float], None] | None = None  # (item, answer text piece, gate) as generated


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


@dataclass
class Question:
    """One question: spoken (`audio`, [S] float32 at the codec's rate) or typed (`text`)."""

    audio: np.ndarray | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if (self.audio is None) == (self.text is None):
            raise ValueError("give exactly one of question_audio and question_text")


def typed_prompt(tokenizer: TextTokenizer, text: str, lead_frames: int = 2, gap_frames: int = 2) -> list[int]:
    """A typed question as text-stream tokens, laid out as in speechless training samples: `lead_frames`
    of padding, the question's pieces, then `gap_frames` of padding, the last one the end-of-padding.
    The question is written as training turns are (`as_sentence`: capitalised, final punctuation): with a
    case-sensitive tokenizer "is there a circle?" is other pieces than "Is there a circle?", and the
    embedded model answered easy-vqa's lower-case yes/no questions right 38% of the time as typed against
    80% once capitalised (128 test questions)."""
    return [TEXT_PAD] * lead_frames + tokenizer.encode(as_sentence(text)) + [TEXT_PAD] * (gap_frames - 1) + [TEXT_EPAD]


def _schedule(q: Question, tokenizer: TextTokenizer, codec, K: int, cfg: AskConfig
              ) -> tuple[torch.Tensor, list[int], int]:
    """User codes [K, L] for every step, forced text tokens (first len(forced) steps), question end."""
    if q.text is not None:
        forced = typed_prompt(tokenizer, q.text, cfg.lead_frames, cfg.gap_frames)
        return torch.full((K, len(forced) + cfg.max_answer_frames), -1, dtype=torch.long), forced, len(forced)
    # The whole user track (silence, question, silence) goes through the codec as ONE stream, as in the
    # training data: a streaming codec's codes just after speech carry its trailing context (the tiny
    # codec's 2-s Whisper window), which pasted-in steady-state silence codes would not.
    F = codec.frame_size
    audio = np.asarray(q.audio, dtype=np.float32).reshape(-1)
    if cfg.lead_samples < 0:
        raise ValueError(f"AskConfig.lead_samples must be >= 0, got {cfg.lead_samples}")
    wav = np.concatenate([np.zeros(cfg.lead_frames * F + cfg.lead_samples, np.float32), audio,
                          np.zeros(cfg.max_answer_frames * F, np.float32)])
    user = codec.encode(torch.from_numpy(wav).view(1, 1, -1))[0, :K]  # [K, T]
    return user, [], cfg.lead_frames + -(-(cfg.lead_samples + len(audio)) // F)


@torch.no_grad()
def ask_batch(model: MoshiVis, tokenizer: TextTokenizer, codec, image_embeds: torch.Tensor | None,
              questions: list[Question], cfg: AskConfig | None = None) -> list[AskResult]:
    """Several questions at once, one batched streaming step for all (each item with its own image row of
    image_embeds [B, N, dim], schedule and end); items that are done idle until the last one ends."""
    cfg = cfg or AskConfig()
    dev = model.lm.device
    K = model.cfg.lm.dep_q
    B = len(questions)
    plans = [_schedule(q, tokenizer, codec, K, cfg) for q in questions]
    length = max(u.shape[-1] for u, _, _ in plans)
    user = torch.full((B, K, length), -1, dtype=torch.long)
    for b, (u, _, _) in enumerate(plans):
        user[b, :, :u.shape[-1]] = u
        if u.shape[-1] < length and questions[b].audio is not None:  # keep a spoken item in silence
            user[b, :, u.shape[-1]:] = codec.silence_codes(length - u.shape[-1])[:K].to(user)
    typed = torch.tensor([q.text is not None for q in questions])
    gen = make_generator(model, cfg.sampling, xa_start=cfg.xa_start, seed=cfg.seed, cuda_graph=cfg.cuda_graph)
    text_out: list[list[int]] = [[] for _ in range(B)]
    audio_out: list[list[torch.Tensor]] = [[] for _ in range(B)]
    gates: list[torch.Tensor] = []
    done = [False] * B
    steps = 0
    compute = 0.0  # seconds of model work (real-time pacing sleeps are not counted)
    frame_s = codec.frame_size / codec.sample_rate
    t_start = time.perf_counter()
    with gen.streaming(B):
        if image_embeds is not None:
            gen.set_image(image_embeds.to(dev))
        for t in range(length):
            if cfg.realtime:  # the user's frame t is only "heard" at (t + 1) * 80 ms
                time.sleep(max(0.0, t_start + (t + 1) * frame_s - time.perf_counter()))
            t0 = time.perf_counter()
            force_text = torch.tensor([f[t] if t < len(f) else -2 for _, f, _ in plans])
            force_audio = torch.where(typed[:, None], -1, -2).expand(B, K)
            out = gen.step(user[:, :, t:t + 1].to(dev), force_text=force_text, force_audio=force_audio)
            compute += time.perf_counter() - t0
            steps += 1
            gates.append(gen.gate_weight().cpu())
            if out is None:
                continue
            for b in range(B):
                done[b] = done[b] or t >= plans[b][0].shape[-1]  # past its own question + answer budget
                if done[b]:
                    continue
                text_out[b].append(int(out[b, 0, 0]))
                audio_out[b].append(out[b, 1:, 0].cpu())
                end = plans[b][2]
                tok = text_out[b][-1]
                if (cfg.on_piece is not None and len(text_out[b]) > end and tok not in (TEXT_PAD, TEXT_EPAD)
                        and (piece := tokenizer.piece(tok))):
                    cfg.on_piece(b, piece, float(gates[len(text_out[b]) - 1][b]))
                end_pad = cfg.typed_end_pad_frames if typed[b] else cfg.end_pad_frames
                done[b] = len(text_out[b]) > end and _answer_done(text_out[b], end, end_pad)
            if all(done):
                break
    ms = compute * 1000 / max(1, steps)
    results = []
    for b, q in enumerate(questions):
        end = plans[b][2]
        tokens = text_out[b][end:]
        # Output j holds the text sampled at step j, so its gate is gates[j].
        pieces = [(p, float(gates[end + i][b])) for i, tok in enumerate(tokens)
                  if tok not in (TEXT_PAD, TEXT_EPAD) and (p := tokenizer.piece(tok))]
        audio = None
        if q.audio is not None and audio_out[b] and cfg.decode_audio:
            codes = torch.stack(audio_out[b][end:] or audio_out[b], dim=-1)[None]  # [1, K, T]
            audio = codec.decode(codes.clamp(min=0)).reshape(-1).numpy().astype(np.float32)
        gate_mean = float(np.mean([g for _, g in pieces])) if pieces else 0.0
        results.append(AskResult(tokenizer.decode(tokens).strip(), pieces, gate_mean, audio, steps, ms))
    return results


def ask(model: MoshiVis, tokenizer: TextTokenizer, codec, image_embeds: torch.Tensor | None,
        question_audio: np.ndarray | None = None, question_text: str | None = None,
        cfg: AskConfig | None = None) -> AskResult:
    """One question. image_embeds: [1, N, dim] from `model.encode_image` (None: no image). Exactly one of
    question_audio ([S] float32 at the codec's rate) and question_text."""
    return ask_batch(model, tokenizer, codec, image_embeds, [Question(question_audio, question_text)], cfg)[0]
