"""Diagnostic (README, stop 16): does the answer to one spoken question change with where the question
falls on the 80-ms frame grid? Asks each easy-vqa test image's first colour question, spoken by one voice,
after several lead-in silences and sub-frame shifts, greedy, and prints how many answers were right.

    python scripts/phase_probe.py [--bundle DIR] [--images 0 1 2] [--voice flite:kal16] [--shift-step 320]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    import easy_vqa

    from moshivis.audio.tts import make_tts
    from moshivis.eval.easy_vqa_metric import extract_answer
    from moshivis.inference.ask import AskConfig, ask
    from moshivis.inference.bundle import EMBEDDED_BUNDLE, load_bundle
    from moshivis.models.vision import preprocess_images

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=str(EMBEDDED_BUNDLE))
    ap.add_argument("--images", type=int, nargs="+", default=[0, 1, 2], help="easy-vqa test image indices")
    ap.add_argument("--voice", default="flite:kal16")
    ap.add_argument("--leads", type=float, nargs="+", default=[0.5, 1.0, 1.5], help="silence before, seconds")
    ap.add_argument("--shift-step", type=int, default=320, help="sub-frame shifts: 0, step, ... < one frame")
    args = ap.parse_args()

    b = load_bundle(args.bundle)
    m, F, sr = b.model, b.codec.frame_size, b.codec.sample_rate
    questions = list(zip(*easy_vqa.get_test_questions()))
    paths = easy_vqa.get_test_image_paths()
    tts = make_tts(args.voice)
    for img in args.images:
        found = [(q, a) for q, a, i in questions if i == img and "color" in q]
        if not found:
            print(f"image {img}: no colour question")
            continue
        q, a = found[0]
        emb = m.encode_image(preprocess_images(paths[img], m.cfg.vision.image_size))
        audio = tts.synthesize(q)[0]
        rows = []
        for lead in args.leads:
            for shift in range(0, F, args.shift_step):
                x = np.concatenate([np.zeros(int(lead * sr) + shift, np.float32), audio])
                r = ask(m, b.tokenizer, b.codec, emb, question_audio=torch.from_numpy(x)[None], cfg=AskConfig())
                rows.append((lead, shift, (int(lead * sr) + shift) % F, extract_answer(q, r.answer) == a, r.answer))
        print(f"image {img}: {q!r} -> {a}: right {sum(r[3] for r in rows)} / {len(rows)}")
        for lead, shift, phase, ok, ans in rows:
            print(f"   lead {lead:.1f} s + {shift:4d} (phase {phase:4d}): {'right' if ok else 'wrong'}  {ans[:70]}")


if __name__ == "__main__":
    main()
