#!/usr/bin/env bash
# Stop 25 (README, docs/TINYWORLD_LOG.md): does a transcript target teach the base to hear new wordings?
# 840 single spoken exchanges with the user's words on Moshi's text stream (synth transcribe_user), the same
# shards without them as the control, 400 listening steps from the shipped base each (then 600 more, seed 1),
# the shipped adapters on top, spoken rows on the first 300 of the results sample. About 1.5 h on 2 cores.
#   bash scripts/transcript_experiment.sh [WORK]   (default runs/sp)
set -euo pipefail
W=${1:-runs/sp}
source "$(dirname "$0")/tinyworld_lib.sh"
recipe_work "$W"
xsynth() {  # ROWS SEED OUT TRANSCRIBE: single spoken exchanges, properties only, the user's words on Moshi's text if 1
  local tr=false; [ "$4" = 1 ] && tr=true
  python -m moshivis.tinyworld.generate --recipe-work "$TW" --out "$3" "{generator: image, rows: $1, seed: $2,
    audio_only: 0, speech_fraction: 1.0, p_concat: 0.0, transcribe_user: $tr, gap_s: [0.4, 1.0],
    dialogues: {question_types: [properties], min_turns: 2, max_turns: 2, paraphrase_prob: 0.5, evidence_first: true,
    present_questions: true, echo_question: true, opener_prob: 0.0}}"
}
[ -f $W/x61/report.json ] || { xsynth 420 61 $W/x61 1 & xsynth 420 62 $W/x62 1; wait; }
for s in 61 62; do [ -f $W/x${s}s/manifest.json ] || python scripts/strip_user_transcripts.py $W/x$s $W/x${s}s; done
[ -d runs/echo/o5 ] || $M data synth --config configs/experiments/echo_speechless.yaml --seed 5 --out runs/echo/o5 --quiet
[ -d $W/basetext ] || base_text $W/basetext
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
bundle() {  # NAME RUN: RUN's last checkpoint with the shipped adapters
  $M bundle --base $W/$2 --adapters $W/adc_shipped.safetensors --tokenizer tinyworld/bundle/tokenizer.model \
    --codec tinyworld/codec --out $W/$1
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
