#!/usr/bin/env bash
# Stop 19's spoken-side experiment (README): stop 18's typed echo base (scripts/typed_echo_experiment.sh,
# its WORK folder) learns spoken echoed dialogues, fresh adapters, then a listening phase on single spoken
# exchanges that open with the question; spoken and typed rows of the results sample and the listening
# probe. About 2 h on 2 cores (synth 55 min of it), plus about 2 h for stop 20's steps 5 and 6 and 1.5 h for
# stop 21's step 7. The measured runs were driven step by step with these settings; this script collects them
# and was not run end to end.
#   bash scripts/spoken_echo_experiment.sh [TYPED_WORK] [WORK]   (defaults runs/echo, runs/sp)
set -euo pipefail
T=${1:-runs/echo}
W=${2:-runs/sp}
source "$(dirname "$0")/tinyworld_lib.sh"
recipe_work "$W"  # the recipe's codec, vision and tokenizer stages, which the generators read

# Spoken data: the recipe's image-dialogue generator and voices (`synth` in tinyworld_lib.sh), echoed
# evidence-first answers; one worker each, two at a time.
# (the measured single-exchange runs, seeds 41/42, were stopped after 864 and 800 dialogues: limits here)
[ -f "$W/a31/report.json" ] || { synth 360 31 $W/a31 100 0.3 4 & synth 380 32 $W/b32 40 0.3 4; wait; }
[ -f "$W/l41/report.json" ] || { synth 864 41 $W/l41 0 0.0 2 & synth 800 42 $W/l42 0 0.0 2; wait; }
# The base's image-free dialogues as text (seconds).
[ -d "$W/basetext" ] || base_text "$W/basetext"

COMMON=(model.preset=tinyworld seed=0 batch_size=16 tensorboard=false data.pad_to_max=false data.bucket_window=32
        data.max_frames=240 data.crop=start)
VERDICT="optim.key_tokens=[244,12,5,73,71]"
WORDS="optim.key_tokens=[-1,34,53,37,79,91,89,107,47,54,45,52,12,5,73,71]"
ckpt() { python -c "import sys; from moshivis.train.checkpoint import latest_checkpoint; print(latest_checkpoint(sys.argv[1]))" "$1"; }

# 1. The typed echo base hears spoken echoed dialogues (500 steps, verdict 30x).
$M train out_dir=$W/ft "${COMMON[@]}" mode=full model.checkpoint=$(ckpt $T/kwo)/model.safetensors \
  "data.shards=[$W/a31,$T/o5,$W/basetext]" data.image_samples=1.0 data.p_audio=0.5 data.drop_images=true \
  data.audio_only=0.2 data.text_only=0.2 steps=500 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 \
  "$VERDICT" save_every=100 --resume
# 2. Fresh adapters on dialogues the base never heard (800 steps, words 10x).
$M train out_dir=$W/ad "${COMMON[@]}" mode=adapters model.fresh_adapters=true model.checkpoint=$(ckpt $W/ft)/model.safetensors \
  "data.shards=[$W/b32,$T/o7]" data.p_audio=0.4 data.audio_only=0.1 steps=800 optim.lr=2e-3 optim.warmup_steps=50 \
  optim.audio_weight=0.1 optim.key_weight=10 "$WORDS" save_every=200 --resume
# 3. Listening phase: single spoken exchanges, colour/shape/verdict pieces 30x (400 steps).
$M train out_dir=$W/lft "${COMMON[@]}" mode=full model.checkpoint=$(ckpt $W/ft)/model.safetensors \
  "data.shards=[$W/a31,$W/l41,$W/l42,$T/o5,$W/basetext]" data.image_samples=1.0 data.p_audio=0.7 data.drop_images=true \
  data.audio_only=0.1 data.text_only=0.1 steps=400 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 \
  "$WORDS" save_every=100 --resume

# 4. Bundles (fp16) and the rows: typed 2,000 and spoken 200 of the results sample, and the listening probe.
for nb in "bundle ft" "bundle_l lft"; do
  set -- $nb
  $M bundle --base $W/$2 --adapters $W/ad --tokenizer tinyworld/bundle/tokenizer.model --codec tinyworld/codec --out $W/$1
done
QS="--questions $W/questions.jsonl"
python -c "
import sys
from moshivis.eval.question_file import write_question_file
from moshivis.tinyworld.results import easy_vqa_questions
write_question_file(easy_vqa_questions(2000, 0), sys.argv[1], meta_keys=('wording',))" $W/questions.jsonl
for b in bundle bundle_l; do
  $M eval run --checkpoint $W/$b --benchmark easy-vqa $QS --prompts text --out $W/$b.text.jsonl
  $M eval run --checkpoint $W/$b --benchmark easy-vqa $QS --prompts audio --voices tinyworld-train --limit 200 \
    --out $W/$b.audio200.jsonl
  $M eval score --benchmark easy-vqa --predictions $W/$b.audio200.jsonl $QS --only-predicted --out $W/$b.audio200
done
for base in ft lft; do
  python scripts/listening_probe.py --train $W/a31 --test $W/b32 --limit 1000 --checkpoint $(ckpt $W/$base)/model.safetensors
done

# Steps 5-7: the listening phase (Moshi's text 2 frames ahead, Moshi's voice hidden in half of the spoken
# samples), its probe, fresh adapters on a base, and bundles with their spoken rows.
# listen RUN PREV STEPS SHARDS KEYS: STEPS more steps from PREV's last checkpoint, then the probe.
listen() {
  $M train out_dir=$W/$1 "${COMMON[@]}" mode=full model.checkpoint=$(ckpt $W/$2)/model.safetensors \
    "data.shards=[$4]" data.image_samples=1.0 data.p_audio=0.7 data.drop_images=true data.audio_only=0.1 \
    data.text_only=0.1 steps=$3 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 "$5" save_every=100 \
    data.text_lead=2 data.hide_moshi_audio=0.5 --resume
  python scripts/listening_probe.py --train $W/a31 --test $W/b32 --limit 150 --text-lead 2 \
    --checkpoint $(ckpt $W/$1)/model.safetensors
}
# adapters RUN BASE: fresh adapters (800 steps, words 10x) on BASE's last checkpoint, with the text lead.
adapters() {
  $M train out_dir=$W/$1 "${COMMON[@]}" mode=adapters model.fresh_adapters=true model.checkpoint=$(ckpt $W/$2)/model.safetensors \
    "data.shards=[$W/b32,$T/o7]" data.p_audio=0.4 data.audio_only=0.1 steps=800 optim.lr=2e-3 optim.warmup_steps=50 \
    optim.audio_weight=0.1 optim.key_weight=10 "$WORDS" save_every=200 data.text_lead=2 --resume
}
# bundle NAME BASE ADAPTERS: the bundle (fp16) of two runs' last checkpoints, and its spoken row (first 200).
bundle() {
  $M bundle --base $W/$2 --adapters $W/$3 --tokenizer tinyworld/bundle/tokenizer.model --codec tinyworld/codec --out $W/$1
  $M eval run --checkpoint $W/$1 --benchmark easy-vqa $QS --prompts audio --voices tinyworld-train --limit 200 \
    --out $W/$1.audio200.jsonl
  $M eval score --benchmark easy-vqa --predictions $W/$1.audio200.jsonl $QS --only-predicted --out $W/$1.audio200
}

# 5. Stop 20: the listening phase again, with Moshi's text 2 frames ahead of its audio and Moshi's recorded
# voice hidden from the transformer in half of the spoken samples (data.text_lead, data.hide_moshi_audio),
# then fresh adapters on that base with the same text lead; its probe and spoken rows.
listen hft ft 400 "$W/a31,$W/l41,$W/l42,$T/o5,$W/basetext" "$WORDS"
adapters adh hft
bundle bundle_h hft adh

# 6. More listening data (two workers for 35 min made 1,376 + 1,344 single exchanges, seeds 43 and 44), and
# the listening phase continued on all of it, 400 steps at a time (hft2, hft3), with the adapters of step 5.
[ -f "$W/l43/manifest.json" ] || { synth 1376 43 $W/l43 0 0.0 2 & synth 1344 44 $W/l44 0 0.0 2; wait; }
listen hft2 hft 400 "$W/a31,$W/l41,$W/l42,$W/l43,$W/l44,$T/o5,$W/basetext" "$WORDS"
bundle bundle_hft2 hft2 adh
listen hft3 hft2 400 "$W/a31,$W/l41,$W/l42,$W/l43,$W/l44,$T/o5,$W/basetext" "$WORDS"
bundle bundle_hft3 hft3 adh

# 7. Stop 21: the echo's opening piece ("A" 21 / "Not" 63: the question's polarity) weighted like the words,
# 200 + 400 steps on the data of step 6 plus seeds 45-48 (256 + 224 + 32 + 32 single exchanges, timed kills), then
# 600 steps with seeds 49/50 added (1,184 + 1,312, two workers for 35 min); fresh adapters (step 5's settings).
POL="optim.key_tokens=[-1,34,53,37,79,91,89,107,47,54,45,52,12,5,73,71,21,63]"
for sn in 45:256 46:224 47:32 48:32 49:1184 50:1312; do  # seed:dialogues (the runs' limit was 4000, killed)
  s=${sn%%:*}; [ -f "$W/l$s/manifest.json" ] || synth ${sn##*:} $s $W/l$s 0 0.0 2
done
shards="$W/a31,$W/l41,$W/l42,$W/l43,$W/l44,$W/l45,$W/l46"
listen hp hft3 200 "$shards,$T/o5,$W/basetext" "$POL"
listen hp2 hp 400 "$shards,$T/o5,$W/basetext" "$POL"
listen hp3 hp2 600 "$shards,$W/l47,$W/l48,$W/l49,$W/l50,$T/o5,$W/basetext" "$POL"
adapters adp hp3
bundle bundle_p3 hp3 adp
$M eval run --checkpoint $W/bundle_p3 --benchmark easy-vqa $QS --prompts text --out $W/bundle_p3.text.jsonl
$M eval score --benchmark easy-vqa --predictions $W/bundle_p3.text.jsonl $QS --only-predicted --out $W/bundle_p3.text

# 8. Stop 22: image-free spoken single exchanges back in the listening phase (the chain's base had lost its
# image-free spoken skills: 25% on unrelated questions), and the user's frames dropped at random from the
# inputs (data.user_frame_dropout), then fresh adapters that also see image-free exchanges with a lent image
# (data.lend_images). Two workers made 896 + 800 image-free exchanges (seeds 0 / 1, the first killed at 17 min).
[ -f "$W/bs0/manifest.json" ] || { base_dialogues 896 0 $W/bs0 & base_dialogues 800 1 $W/bs1; wait; }
all="$shards,$W/l47,$W/l48,$W/l49,$W/l50,$T/o5,$W/basetext,$W/bs0,$W/bs1"
# listen2 RUN PREV STEPS AUDIO_ONLY DROPOUT
listen2() {
  $M train out_dir=$W/$1 "${COMMON[@]}" mode=full model.checkpoint=$(ckpt $W/$2)/model.safetensors \
    "data.shards=[$all]" data.image_samples=1.0 data.p_audio=0.7 data.drop_images=true data.audio_only=$4 \
    data.text_only=0.1 steps=$3 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 "$POL" save_every=100 \
    data.text_lead=2 data.hide_moshi_audio=0.5 data.user_frame_dropout=$5 --resume
  python scripts/listening_probe.py --train $W/a31 --test $W/b32 --limit 150 --text-lead 2 \
    --checkpoint $(ckpt $W/$1)/model.safetensors
}
listen2 la hp3 300 0.3 0     # the image-free exchanges alone
listen2 lb hp3 300 0.3 0.2   # ... and 20% of the user's frames dropped
listen2 lc lb 400 0.8 0.2    # more image-free exchanges
$M train out_dir=$W/adc "${COMMON[@]}" mode=adapters model.fresh_adapters=true model.checkpoint=$(ckpt $W/lc)/model.safetensors \
  "data.shards=[$W/b32,$T/o7,$W/bs0,$W/bs1]" data.p_audio=0.4 data.audio_only=0.15 data.lend_images=1.0 steps=800 \
  optim.lr=2e-3 optim.warmup_steps=50 optim.audio_weight=0.1 optim.key_weight=10 "$WORDS" save_every=200 \
  data.text_lead=2 --resume
bundle bundle_c lc adc
# the control: the same adapters without lent images (unrelated spoken questions with an image: 35.0 vs 43.0)
$M train out_dir=$W/adn "${COMMON[@]}" mode=adapters model.fresh_adapters=true model.checkpoint=$(ckpt $W/lc)/model.safetensors \
  "data.shards=[$W/b32,$T/o7,$W/bs0,$W/bs1]" data.p_audio=0.4 data.audio_only=0.15 data.lend_images=0.0 steps=800 \
  optim.lr=2e-3 optim.warmup_steps=50 optim.audio_weight=0.1 optim.key_weight=10 "$WORDS" save_every=200 \
  data.text_lead=2 --resume
$M eval run --checkpoint $W/bundle_c --benchmark easy-vqa $QS --prompts text --out $W/bundle_c.text.jsonl
$M eval score --benchmark easy-vqa --predictions $W/bundle_c.text.jsonl $QS --only-predicted --out $W/bundle_c.text

# 9. Stop 24: polarity drills. New yes/no wordings made from the training wordings' own parts, negation
# toggled or a place swapped (moshivis/data/easy_vqa_drills.py; none within one word of a held-out wording),
# asked in half of the yes/no questions (dialogues.drill_prob 0.5). Two workers made 800 + 800 single
# exchanges in 17 min (seeds 51/52). The listening phase continued from lc for 400 steps on the recent
# listening data plus the drills, stop 22's settings otherwise; fresh adapters on it with adc's settings.
drills() {  # ROWS SEED OUT [TWINS]: single spoken exchanges, properties only, drill wordings for half the yes/no
  python -m moshivis.tinyworld.generate --recipe-work "$TW" --out "$3" "{generator: image, rows: $1, seed: $2,
    audio_only: 0, speech_fraction: 1.0, p_concat: 0.0, dialogues: {question_types: [properties], min_turns: 2,
    max_turns: 2, paraphrase_prob: 0.5, drill_prob: 0.5, polarity_twins: ${4:-0.0}, evidence_first: true,
    present_questions: true, echo_question: true, opener_prob: 0.0}}"
}
[ -f "$W/d51/manifest.json" ] || { drills 800 51 $W/d51 & drills 800 52 $W/d52; wait; }
recent="$W/a31,$W/l45,$W/l46,$W/l47,$W/l48,$W/l49,$W/l50,$W/d51,$W/d52,$T/o5,$W/basetext,$W/bs0,$W/bs1"
listen2_on() {  # RUN PREV STEPS SHARDS: stop 22's lc settings (image-free weight 0.8, user frame dropout 0.2)
  $M train out_dir=$W/$1 "${COMMON[@]}" mode=full model.checkpoint=$(ckpt $W/$2)/model.safetensors \
    "data.shards=[$4]" data.image_samples=1.0 data.p_audio=0.7 data.drop_images=true data.audio_only=0.8 \
    data.text_only=0.1 steps=$3 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 "$POL" save_every=100 \
    data.text_lead=2 data.hide_moshi_audio=0.5 data.user_frame_dropout=0.2 --resume
}
listen2_on ld lc 400 "$recent"
$M train out_dir=$W/add "${COMMON[@]}" mode=adapters model.fresh_adapters=true model.checkpoint=$(ckpt $W/ld)/model.safetensors \
  "data.shards=[$W/b32,$T/o7,$W/bs0,$W/bs1]" data.p_audio=0.4 data.audio_only=0.15 data.lend_images=1.0 steps=800 \
  optim.lr=2e-3 optim.warmup_steps=50 optim.audio_weight=0.1 optim.key_weight=10 "$WORDS" save_every=200 \
  data.text_lead=2 --resume
# Then polarity twins: the same question asked again at once with the negation toggled, answered the other
# way (dialogues.polarity_twins 1.0; 654 of 1,200 dialogues got a twin), 600 + 600 dialogues in 18 min
# (seeds 53/54); two more 400-step continuations with them in the mix (le from ld, lf from le).
[ -f "$W/t53/manifest.json" ] || { drills 600 53 $W/t53 1.0 & drills 600 54 $W/t54 1.0; wait; }
listen2_on le ld 400 "$recent,$W/t53,$W/t54"
listen2_on lf le 400 "$recent,$W/t53,$W/t54"
QS3="--questions tinyworld/results/questions.jsonl --limit 300"  # the first 300 of the shipped bundle's sample
for b in "bundle_ld ld adc" "bundle_add ld add" "bundle_le le adc" "bundle_lf lf adc"; do
  set -- $b
  $M bundle --base $W/$2 --adapters $W/$3 --tokenizer tinyworld/bundle/tokenizer.model --codec tinyworld/codec --out $W/$1
  $M eval run --checkpoint $W/$1 --benchmark easy-vqa $QS3 --prompts audio --voices tinyworld-train --out $W/$1.audio300.jsonl
  python scripts/echo_polarity.py $W/$1.audio300.jsonl
done
