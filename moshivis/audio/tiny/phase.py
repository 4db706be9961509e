"""Phase stability of a codec's codes: the same speech encoded `s` samples later, off the 80-ms frame grid
(as live microphone audio is cut), compared frame by frame. A time-invariant codec gives 1.0 for whole
frames of shift; what it gives below one frame decides how much a model trained on one phase per rendering
must generalise (README, stop 17). CLI: `scripts/codec_phase.py`."""

from __future__ import annotations

import numpy as np
import torch

SENTENCES = ("What color is the shape?", "Is there a red circle in the image?",
             "Does this image not contain a triangle?", "What shape is drawn here?", "Is there a green shape?",
             "How many sides does a square have?", "What is three plus four?", "Is the picture free of blue shapes?")
# (states back from the window's end, states averaged): 4 states = one 80-ms codec frame
VARIANTS = {"newest 4 (shipped)": (0, 4), "newest 8": (0, 8), "newest 12": (0, 12),
            "one frame back, 4": (4, 4), "one frame back, 8": (4, 8)}


def placed(audio: np.ndarray, frame_size: int, shift: int) -> tuple[torch.Tensor, int]:
    """wav [1, 1, S]: 2 frames + `shift` samples of silence, `audio`, then silence; and the frame after the
    speech's last one on the unshifted grid (frames 2..end hold speech)."""
    end = 2 + -(-len(audio) // frame_size)
    wav = np.zeros((end + 1) * frame_size + shift, np.float32)
    wav[2 * frame_size + shift:2 * frame_size + shift + len(audio)] = audio
    return torch.from_numpy(wav)[None, None], end


def speech_codes(codec, audio: np.ndarray, shift: int) -> tuple[torch.Tensor, int]:
    """Codes [8, T] of `audio` placed as `placed` does, and the speech's end frame."""
    wav, end = placed(audio, codec.frame_size, shift)
    return codec.encode(wav)[0], end


def code_agreement(codec, utterances: list[np.ndarray], shifts: list[int]) -> dict[str, list[float]]:
    """{shift: [share of equal codes per codebook]} over the speech frames of every utterance."""
    F = codec.frame_size
    sums = {s: np.zeros(codec.num_codebooks) for s in shifts}
    for audio in utterances:
        base, end = speech_codes(codec, audio, 0)
        for s in shifts:
            codes, _ = speech_codes(codec, audio, s)
            k = s // F  # whole frames of shift: compare the realigned frames
            sums[s] += (base[:, 2:end] == codes[:, 2 + k:end + k]).float().mean(1).numpy()
    return {str(s): [round(float(v / len(utterances)), 3) for v in sums[s]] for s in shifts}


def pooling_variants(codec, utterances: list[np.ndarray], shifts: list[int]) -> dict[str, dict[str, float]]:
    """Codebook-0 agreement per pooling variant (own k-means each) and the cosine of the pooled states."""
    from moshivis.audio.tiny.features import whisper_log10mel
    from moshivis.audio.tiny.kmeans import kmeans, nearest
    from moshivis.audio.tiny.semantic import encode_windows, sliding_windows

    states: dict[int, list[torch.Tensor]] = {s: [] for s in [0, *shifts]}  # per utterance [T, 100, 384]
    for audio in utterances:
        for s in states:
            wav, end = placed(audio, codec.frame_size, s)
            raw = whisper_log10mel(codec._check_wav(wav))
            st = encode_windows(codec.whisper, sliding_windows(raw, codec.config.whisper_window),
                                codec.config.whisper_ref_max)
            states[s].append(st[2:end].float())
    out: dict[str, dict[str, float]] = {}
    for name, (back, width) in VARIANTS.items():
        pooled = {s: [st[:, st.shape[1] - back - width:st.shape[1] - back].mean(1) for st in v]
                  for s, v in states.items()}
        cents = kmeans(torch.cat([torch.cat(v) for v in pooled.values()]), 512, iters=20, seed=0)
        tok = {s: [nearest(p, cents)[0] for p in v] for s, v in pooled.items()}
        row = {f"codes equal, shift {s}": round(float(torch.cat([a == b for a, b in zip(tok[0], tok[s])]).float().mean()), 3)
               for s in shifts}
        row.update({f"cosine, shift {s}": round(float(torch.cat(
            [torch.nn.functional.cosine_similarity(a, b, dim=-1) for a, b in zip(pooled[0], pooled[s])]).mean()), 3)
            for s in shifts})
        out[name] = row
    return out
