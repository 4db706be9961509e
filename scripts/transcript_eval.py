"""Spoken easy-vqa eval of a model that transcribes the question on its text stream (synth `transcribe_user`).

`eval run` reads an answer from the end of the spoken question; a transcribing model's transcript runs past
that point, and its answer can start before it. Here the text is read from the question's start, and the
answer is what follows the transcript (everything after the first '?'); answers end after 16 padding
frames. The transcripts go to OUT.transcripts.jsonl in item order, with their word error rate and the
yes/no polarity word's agreement printed at the end, by wording (seen / held-out).

    python scripts/transcript_eval.py BUNDLE OUT.jsonl [LIMIT]   (the first LIMIT of tinyworld/results/questions.jsonl)
    moshivis eval score --benchmark easy-vqa --predictions OUT.jsonl --questions tinyworld/results/questions.jsonl --only-predicted
"""
import sys, json, dataclasses
from moshivis.inference import ask as A
from moshivis.eval import run as R
from moshivis.eval.benchmarks import load_benchmark
from moshivis.eval.question_file import select_questions
from moshivis.eval.easy_vqa_metric import extract_answer
from moshivis.inference.bundle import load_bundle
from moshivis.tinyworld.stages import user_voices
bundle_dir, out = sys.argv[1:3]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 300
orig_schedule, orig_batch = A._schedule, R.ask_batch
def schedule(q, tok, codec, K, cfg):
    user, forced, end = orig_schedule(q, tok, codec, K, cfg)
    return user, forced, (cfg.lead_frames if q.audio is not None else end)
side = open(out + ".transcripts.jsonl", "a")
def batch(*a, **k):
    res = orig_batch(*a, **k)
    for r in res:
        full = r.answer
        cut = full.find("?")
        side.write(json.dumps({"transcript": full[:cut + 1] if cut >= 0 else "", "full": full}) + "\n")
        side.flush()
        r.answer = full[cut + 1:].strip() if cut >= 0 else full
    return res
A._schedule, R.ask_batch = schedule, batch
b = load_bundle(bundle_dir)
items = select_questions(list(load_benchmark("easy-vqa", split="test").items), "tinyworld/results/questions.jsonl")[:limit]
ask_cfg = A.AskConfig(end_pad_frames=16)
cfg = R.RunConfig(prompt="audio", batch_size=8, voices=tuple(user_voices()), ask=ask_cfg)
import os
assert not os.path.exists(out), "transcripts pair with items by order: start a fresh output file"
print(R.run_benchmark(b, items, out, cfg, correct=lambda it, a: float(extract_answer(it.question, a) in it.answers)))

import re
from moshivis.eval.asr_metric import edit_distance

rows = [json.loads(line) for line in open(out)]
transcripts = [json.loads(line) for line in open(out + ".transcripts.jsonl")]
by_id = {str(it.id): it for it in items}
words = lambda t: re.sub(r"[^a-z' ]", " ", t.lower()).split()  # noqa: E731
negations = {"not", "no", "nothing", "lack", "free", "without", "absent", "missing"}
for wording in ("seen", "held-out"):
    errors = n = agree = yes_no = 0
    for r, t in zip(rows, transcripts):
        it = by_id[r["id"]]
        if it.meta.get("wording") != wording:
            continue
        ref, hyp = words(it.question), words(t["transcript"])
        errors, n = errors + edit_distance(ref, hyp), n + len(ref)
        if it.question_type == "yes/no":
            yes_no += 1
            agree += bool(negations & set(ref)) == bool(negations & set(hyp))
    if n:
        print(f"{wording}: transcript WER {errors / n:.3f}; yes/no polarity word agrees {agree}/{yes_no}")
