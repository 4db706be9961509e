#!/usr/bin/env bash
# Stop 25 (README, docs/TINYWORLD_LOG.md): does a transcript target teach the base to hear new wordings?
# 840 single spoken exchanges with the user's words on Moshi's text stream (synth transcribe_user), the same
# shards without them as the control, 400 listening steps from the shipped base each (then 600 more, seed 1),
# the shipped adapters on top, spoken rows on the first 300 of the results sample. About 1.5 h on 2 cores.
#   bash scripts/transcript_experiment.sh [WORK]   (default runs/sp)
set -euo pipefail
W=${1:-runs/sp}
export NO_TORCH_COMPILE=1 HF_HUB_OFFLINE=1 TW=$W/recipe
M=moshivis
mkdir -p "$W"
$M tinyworld build --work $TW --reuse-shipped --stages codec vision tokenizer
synth() {  # ROWS SEED OUT TRANSCRIBE
  python - "$@" <<'PY'
import os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from moshivis.data.synth import DialogueConfig, SourceConfig
from moshivis.tinyworld import stages as S
from moshivis.tinyworld.recipe import RecipeConfig, Stage
rows, seed, out, tr = sys.argv[1:5]
print(S._synth(Stage(RecipeConfig(work=os.environ["TW"], reuse_shipped=True), "image_data"), Path(out),
               source=SourceConfig(kind="easy-vqa", split="train", limit=int(rows)),
               dialogues=DialogueConfig(question_types=["properties"], min_turns=2, max_turns=2, paraphrase_prob=0.5,
                                        evidence_first=True, present_questions=True, echo_question=True,
                                        opener_prob=0.0),
               audio_only=0, speech_fraction=1.0, p_concat=0.0, seed=int(seed), samples_per_shard=64,
               transcribe_user=bool(int(tr)), gap_s=(0.4, 1.0)))
PY
}
[ -f $W/x61/report.json ] || { synth 420 61 $W/x61 1 & synth 420 62 $W/x62 1; wait; }
for s in 61 62; do [ -f $W/x${s}s/manifest.json ] || python scripts/strip_user_transcripts.py $W/x$s $W/x${s}s; done
[ -d runs/echo/o5 ] || $M data synth --config configs/experiments/echo_speechless.yaml --seed 5 --out runs/echo/o5 --quiet
[ -d $W/basetext ] || python - $W/basetext <<'PY'
import os, sys
from pathlib import Path
from moshivis.tinyworld import stages as S
from moshivis.tinyworld.recipe import RecipeConfig, Stage
print(S._base_dialogues(Stage(RecipeConfig(work=os.environ["TW"], reuse_shipped=True), "base"), Path(sys.argv[1]),
                        6000, 0, audio_only_as="text"))
PY
# The shipped adapters as an adapter-only file (the bundle holds base + adapters in one file).
[ -f $W/adc_shipped.safetensors ] || python -c "
import torch; from moshivis.models.loaders import load_model, save_checkpoint
save_checkpoint(load_model('tinyworld/bundle/model.safetensors', dtype=torch.float32), '$W/adc_shipped.safetensors', adapters_only=True)"
POL="optim.key_tokens=[-1,34,53,37,79,91,89,107,47,54,45,52,12,5,73,71,21,63]"
COMMON=(model.preset=tinyworld batch_size=16 tensorboard=false data.pad_to_max=false data.bucket_window=32
        data.max_frames=240 data.crop=start)
ckpt() { python -c "import sys; from moshivis.train.checkpoint import latest_checkpoint; print(latest_checkpoint(sys.argv[1]))" "$1"; }
listen() {  # RUN FROM SHARDS STEPS SEED
  $M train out_dir=$W/$1 "${COMMON[@]}" seed=$5 mode=full model.checkpoint=$2 \
    "data.shards=[$3]" data.image_samples=1.0 data.p_audio=0.7 data.drop_images=true data.audio_only=0.0 \
    data.text_only=0.1 steps=$4 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 "$POL" save_every=100 \
    data.text_lead=2 data.hide_moshi_audio=0.5 data.user_frame_dropout=0.2 --resume
}
bundle() {  # NAME RUN
  python - "$W" "$@" <<'PY'
import sys
from pathlib import Path
from moshivis.inference.bundle import assemble_bundle
from moshivis.train.checkpoint import latest_checkpoint
w, name, base = Path(sys.argv[1]), *sys.argv[2:4]
assemble_bundle(w / name, latest_checkpoint(w / base) / "model.safetensors", w / "adc_shipped.safetensors",
                "tinyworld/bundle/tokenizer.model", f"tiny:{Path('tinyworld/codec').resolve()}")
PY
}
T="$W/x61,$W/x62,runs/echo/o5,$W/basetext"; C="$W/x61s,$W/x62s,runs/echo/o5,$W/basetext"
listen lt tinyworld/bundle/model.safetensors "$T" 400 0
listen lu tinyworld/bundle/model.safetensors "$C" 400 0
listen lt2 $(ckpt $W/lt)/model.safetensors "$T" 600 1
listen lu2 $(ckpt $W/lu)/model.safetensors "$C" 600 1
QS="--questions tinyworld/results/questions.jsonl"
for r in lt lu lt2 lu2; do bundle bundle_$r $r; done
for r in lt lt2; do  # transcribing models: the answer follows the transcript
  [ -f $W/$r.t.audio300.jsonl ] || python scripts/transcript_eval.py $W/bundle_$r $W/$r.t.audio300.jsonl 300
  $M eval score --benchmark easy-vqa --predictions $W/$r.t.audio300.jsonl $QS --only-predicted --out $W/$r.t.audio300
done
for r in bundle_lu bundle_lu2 shipped; do
  b=$W/$r; [ $r = shipped ] && b=tinyworld/bundle
  $M eval run --checkpoint $b --benchmark easy-vqa $QS --limit 300 --prompts audio --voices tinyworld-train --out $W/$r.audio300.jsonl
  $M eval score --benchmark easy-vqa --predictions $W/$r.audio300.jsonl $QS --only-predicted --out $W/$r.audio300
done
