"""Diagnostic (README, stop 17): how much do a codec's codes change when the same speech starts a little
later, off the 80-ms frame grid, as live microphone audio does?

For each (voice, sentence), the sentence is encoded after 2 frames of silence, then again `s` samples
later, and the codes of the speech frames are compared frame by frame (a shift of whole frames is
compared with its frames realigned, so a time-invariant codec gives 1.0 there). Prints JSON: the share of
equal codes per codebook and shift.

`--variants` also measures pooling variants of codebook 0 (the Whisper states behind the semantic
tokens): how many of the newest encoder states are averaged, and how far back from the window's end,
each with its own k-means (512) fitted on these utterances. In-sample, so only the comparison between
variants means anything, not the absolute agreement.

    python scripts/codec_phase.py [--codec tiny:tinyworld/codec] [--voices 8] [--variants]
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from moshivis.audio.tiny.phase import SENTENCES, code_agreement, pooling_variants  # noqa: E402


def main() -> None:
    from moshivis.audio.registry import load_codec
    from moshivis.audio.tts import make_tts
    from moshivis.tinyworld.stages import user_voices

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", default="tiny:tinyworld/codec")
    ap.add_argument("--voices", type=int, default=8, help="every k-th training voice, this many")
    ap.add_argument("--shifts", type=int, nargs="+", default=[96, 240, 480, 960, 1440, 1920])
    ap.add_argument("--variants", action="store_true", help="also the codebook-0 pooling variants")
    args = ap.parse_args()
    torch.set_num_threads(2)
    codec = load_codec(args.codec)
    pool = user_voices()
    voices = pool[::max(1, len(pool) // args.voices)][:args.voices]
    utterances = []
    for v in voices:
        tts = make_tts(v)
        utterances += [np.asarray(tts.synthesize(s)[0], np.float32).reshape(-1) for s in SENTENCES]
    report: dict[str, object] = {"codec": args.codec, "voices": voices, "utterances": len(utterances),
                                 "codes_equal": code_agreement(codec, utterances, args.shifts)}
    if args.variants:
        report["codebook0_pooling"] = pooling_variants(codec, utterances, [s for s in args.shifts if s % codec.frame_size])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
