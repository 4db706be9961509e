"""The embedded model on a GPU, checked question by question against this machine's CPU answers.

A lent GPU machine has no TTS voices and no Whisper tiny.en (75 MB, more than a call may carry), so the
spoken questions are synthesised and encoded here, once, and the GPU replays their user codes:

    prepare  (CPU, here) the first N questions of the results sample (`tinyworld/results/questions.jsonl`,
             seen and held-out wordings), typed and spoken (voice picked by id from the training voices, as
             `eval run --voices tinyworld-train` does); images preprocessed; spoken user tracks encoded by the
             codec exactly as `ask` encodes them; then every question answered by the CPU model through
             `ask_batch`, batched as `eval run` batches. Writes one file (inputs + CPU answers).
    check    (any device) the same questions through `ask_batch` with the model on --device: graphed (the
             default on a GPU) and, with --eager-too, eager as well. Prints JSON: answers equal to the CPU's,
             accuracy on both, ms per 80-ms frame per batch, and which generator ran.

    python scripts/gpu_tiny_check.py prepare --n 64 --out .gpu/tiny_inputs.pt
    python scripts/gpu_tiny_check.py check --inputs .gpu/tiny_inputs.pt --device cuda --eager-too
    python scripts/gpu_tiny_check.py check --inputs .gpu/tiny_inputs.pt --device cpu --bundle B   # another bundle
                                                          # with the same codec, on the same questions
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moshivis.eval.easy_vqa_metric import extract_answer  # noqa: E402
from moshivis.inference.ask import AskConfig, Question, _schedule, ask_batch  # noqa: E402
from moshivis.inference.bundle import EMBEDDED_BUNDLE, load_bundle  # noqa: E402
from moshivis.inference.cuda_graph import make_generator  # noqa: E402

SAMPLE = REPO / "tinyworld" / "results" / "questions.jsonl"


class ReplayCodec:
    """Stands in for the codec inside `ask_batch`: `encode` hands back user codes encoded earlier by the real
    codec, in question order (each call checks the track length it was given against the stored one)."""

    def __init__(self, codes: list[torch.Tensor], lengths: list[int], silence: torch.Tensor, frame_size: int,
                 sample_rate: int) -> None:
        self._codes, self._lengths = list(codes), list(lengths)
        self._silence, self.frame_size, self.sample_rate = silence, frame_size, sample_rate

    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [1, 1, S] -> the stored codes [1, K, T] of the next question."""
        if not self._codes:
            raise RuntimeError("ReplayCodec: more tracks asked for than were stored")
        codes, length = self._codes.pop(0), self._lengths.pop(0)
        if wav.shape[-1] != length:
            raise RuntimeError(f"ReplayCodec: track of {wav.shape[-1]} samples, stored one has {length}")
        return codes.long()[None]

    def silence_codes(self, num_frames: int) -> torch.Tensor:
        return self._silence[:, None].expand(-1, num_frames).clone()


def codec_digest(codec) -> str:
    """sha256 of the codec's codebooks: replayed codes only mean the same to a bundle with the same codec."""
    h = hashlib.sha256()
    for t in (codec.semantic, codec.acoustic.books):
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _ask_cfg() -> AskConfig:
    # `eval run`'s settings: greedy, spoken answers not decoded (Griffin-Lim is CPU work, not the check)
    return AskConfig(decode_audio=False)


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def prepare(n: int, batch: int, out: Path) -> dict[str, Any]:
    from moshivis.audio.tts import make_tts
    from moshivis.eval.benchmarks import load_benchmark
    from moshivis.eval.question_file import select_questions
    from moshivis.models.vision import preprocess_images
    from moshivis.tinyworld.stages import user_voices  # `--voices tinyworld-train`

    bundle = load_bundle(EMBEDDED_BUNDLE)
    model, tok, codec = bundle.model, bundle.tokenizer, bundle.codec
    items = select_questions(list(load_benchmark("easy-vqa", None, split="test").items), SAMPLE)[:n]
    voices = [make_tts(v) for v in user_voices()]
    cfg, K = _ask_cfg(), model.cfg.lm.dep_q
    pixels = torch.cat([preprocess_images(it.image.path, model.cfg.vision.image_size) for it in items])
    codes, lengths, audio_lens, first_audio = [], [], [], []
    for it in items:
        audio = voices[zlib.crc32(str(it.id).encode()) % len(voices)].synthesize(it.question)[0]
        if len(first_audio) < batch:
            first_audio.append(audio)
        user, _, _ = _schedule(Question(audio=audio), tok, codec, K, cfg)
        codes.append(user.to(torch.int16))
        audio_lens.append(len(audio))
        lengths.append((cfg.lead_frames + cfg.max_answer_frames) * codec.frame_size + cfg.lead_samples + len(audio))
    data = {"ids": [str(it.id) for it in items], "questions": [it.question for it in items],
            "answers": [it.answers for it in items], "pixels": pixels.half(), "codes": codes, "lengths": lengths,
            "audio_lens": audio_lens, "silence": codec.silence_codes(1)[:, 0].clone(),
            "frame_size": codec.frame_size, "sample_rate": codec.sample_rate, "batch": batch,
            "codec": codec_digest(codec)}
    data["cpu"] = run(model, tok, data, cuda_graph=None)
    # The replay must be what `ask` does: the first batch again, spoken through the real codec
    embeds = model.encode_image(pixels[:batch].half().float())
    real = ask_batch(model, tok, codec, embeds, [Question(audio=a) for a in first_audio], cfg)
    same = sum(r.answer == a for r, a in zip(real, data["cpu"]["audio"]["answers"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, out)
    return {"saved": str(out), "questions": len(items), "replay_equals_codec": f"{same}/{len(real)}",
            **summary(data, data["cpu"])}


def run(model, tok, data: dict[str, Any], cuda_graph: bool | None) -> dict[str, Any]:
    """Typed and spoken answers of every question, batched as stored; ms per frame of each batch."""
    dev = model.lm.device
    cfg = dataclasses.replace(_ask_cfg(), cuda_graph=cuda_graph)
    res: dict[str, Any] = {"device": str(dev), "generator": type(make_generator(model, cuda_graph=cuda_graph)).__name__}
    pixels = data["pixels"].float()
    n = len(data["ids"])
    for kind in ("text", "audio"):
        answers, ms, secs = [], [], 0.0
        for rows in _batches(n, data["batch"]):
            t0 = time.perf_counter()
            embeds = model.encode_image(pixels[rows.start:rows.stop].to(dev))
            spoken = rows if kind == "audio" else []  # typed questions never encode: ask_batch reads frame facts
            codec = ReplayCodec([data["codes"][i] for i in spoken], [data["lengths"][i] for i in spoken],
                                data["silence"], data["frame_size"], data["sample_rate"])
            qs = [Question(text=data["questions"][i]) if kind == "text" else
                  Question(audio=np.zeros(data["audio_lens"][i], np.float32)) for i in rows]
            out = ask_batch(model, tok, codec, embeds, qs, cfg)
            secs += time.perf_counter() - t0
            answers += [r.answer for r in out]
            ms.append(out[0].ms_per_frame)
        res[kind] = {"answers": answers, "ms_per_frame_per_batch": [round(m, 2) for m in ms],
                     "seconds": round(secs, 2)}
    return res


def summary(data: dict[str, Any], res: dict[str, Any], ref: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"device": res["device"], "generator": res["generator"]}
    for kind in ("text", "audio"):
        answers = res[kind]["answers"]
        right = [extract_answer(q, a) in refs for q, a, refs in zip(data["questions"], answers, data["answers"])]
        ms = res[kind]["ms_per_frame_per_batch"]
        row = {"accuracy": round(100 * float(np.mean(right)), 1),
               # the first batch's step also records the CUDA graphs and warms the kernels
               "ms_per_frame_median": round(float(np.median(ms[1:] or ms)), 2), "ms_per_frame_first": ms[0],
               "seconds": res[kind]["seconds"]}
        if ref is not None:
            same = [a == b for a, b in zip(answers, ref[kind]["answers"])]
            row["same_answer_as_cpu"] = f"{sum(same)}/{len(same)}"
            row["differ"] = [{"id": data["ids"][i], "cpu": ref[kind]["answers"][i], "here": answers[i]}
                             for i, s in enumerate(same) if not s][:5]
        out[kind] = row
    return out


def check(inputs: Path, device: str, eager_too: bool, bundle_dir: str | None = None) -> dict[str, Any]:
    """The questions of `inputs` with the bundle (default: the embedded one) on `device`, against the answers
    recorded when they were prepared."""
    data = torch.load(inputs, weights_only=False)
    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir or EMBEDDED_BUNDLE, device=device)
    if "codec" in data and codec_digest(bundle.codec) != data["codec"]:
        raise ValueError(f"{bundle_dir or EMBEDDED_BUNDLE}: its codec is not the one {inputs} was encoded with")
    out: dict[str, Any] = {"load_seconds": round(time.perf_counter() - t0, 2), "batch": data["batch"],
                           "questions": len(data["ids"])}
    if device.startswith("cuda"):
        out["card"] = torch.cuda.get_device_name()
    out["cpu_reference"] = summary(data, data["cpu"])
    out["default"] = summary(data, run(bundle.model, bundle.tokenizer, data, None), data["cpu"])
    if eager_too:
        out["eager"] = summary(data, run(bundle.model, bundle.tokenizer, data, False), data["cpu"])
    out["torch"] = torch.__version__
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("check")
    c.add_argument("--inputs", type=Path, required=True)
    c.add_argument("--device", default="cuda")
    c.add_argument("--eager-too", action="store_true")
    c.add_argument("--bundle", default=None, help="model bundle (default: the embedded model)")
    args = ap.parse_args()
    if args.cmd == "prepare":
        result = prepare(args.n, args.batch, args.out)
    else:
        result = check(args.inputs, args.device, args.eager_too, args.bundle)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
