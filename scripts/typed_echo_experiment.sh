#!/usr/bin/env bash
# Stop 18's typed-side experiment (README): from the shipped bundle, teach the frozen base echoed
# evidence-first yes/no answers on speechless dialogues only (no TTS, no codec), make the verdict follow the
# evidence with a loss weight on the verdict pieces, let easy-vqa questions open dialogues, then train fresh
# adapters and score typed questions. About 75 min on 2 cores. The base hears no speech here, so the result
# says nothing of spoken questions: it is a test of the answer form, not a bundle to ship.
#   bash scripts/typed_echo_experiment.sh [WORK]   (default runs/echo)
set -euo pipefail
W=${1:-runs/echo}
CFG=configs/experiments/echo_speechless.yaml
export NO_TORCH_COMPILE=1 HF_HUB_OFFLINE=1
mkdir -p "$W"

# Data: seeds 0, 2, 3 with the shipped recipe's openers (opener_prob 1), seeds 5, 6 and 7 with easy-vqa
# questions opening 70% of dialogues. 4,000 dialogues each, seconds each.
sed 's/opener_prob: 0.3/opener_prob: 1.0/' $CFG > "$W/openers.yaml"
for s in 0 2 3; do
  [ -d "$W/d$s" ] || moshivis data synth --config "$W/openers.yaml" --seed $s --out "$W/d$s" --quiet
done
for s in 5 6 7; do
  [ -d "$W/o$s" ] || moshivis data synth --config $CFG --seed $s --out "$W/o$s" --quiet
done
COMMON=(model.preset=tinyworld seed=0 batch_size=16 data.max_frames=160 tensorboard=false data.crop=random
        data.pad_to_max=false data.bucket_window=32 data.audio_only=0)
BASE_FT=(mode=full data.image_samples=1.0 data.p_audio=0.0 data.drop_images=true)
# " so" and the four verdict openings of the shipped tokenizer (eval.verdict_probe.verdict_openings).
VERDICT="optim.key_tokens=[244,12,5,73,71]"
# Every colour and shape word, and the verdict openings, wherever they stand (key_tokens after = -1).
WORDS="optim.key_tokens=[-1,34,53,37,79,91,89,107,47,54,45,52,12,5,73,71]"
ckpt() { python -c "import sys; from moshivis.train.checkpoint import latest_checkpoint; print(latest_checkpoint(sys.argv[1]))" "$1"; }

# The starting point is the stop-13 bundle (the recipe's build), which was shipped until stop 23: since
# then tinyworld/bundle holds this chain's end, so its weights come from git history (92314df).
[ -f "$W/stop13.safetensors" ] || git show 92314df:tinyworld/bundle/model.safetensors > "$W/stop13.safetensors"
# 1. The base learns the new answer form (600 steps), 2. its verdicts are weighted 30x (800 steps).
moshivis train out_dir=$W/ft "${COMMON[@]}" "${BASE_FT[@]}" model.checkpoint=$W/stop13.safetensors \
  "data.shards=[$W/d0,$W/d2,$W/d3]" steps=600 optim.lr=5e-4 optim.warmup_steps=50 save_every=200 --resume
moshivis train out_dir=$W/kw "${COMMON[@]}" "${BASE_FT[@]}" model.checkpoint=$(ckpt $W/ft)/model.safetensors \
  "data.shards=[$W/d0,$W/d2,$W/d3]" steps=800 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 \
  "$VERDICT" save_every=100 --resume
# 3. The same, on dialogues that often open with an easy-vqa question (400 steps).
moshivis train out_dir=$W/kwo "${COMMON[@]}" "${BASE_FT[@]}" model.checkpoint=$(ckpt $W/kw)/model.safetensors \
  "data.shards=[$W/o5,$W/o6]" steps=400 optim.lr=5e-4 optim.warmup_steps=30 optim.key_weight=30 \
  "$VERDICT" save_every=100 --resume
# 4. Fresh adapters on dialogues the base never saw, colour/shape/verdict words weighted 10x (800 steps).
moshivis train out_dir=$W/adapters "${COMMON[@]}" mode=adapters model.fresh_adapters=true \
  model.checkpoint=$(ckpt $W/kwo)/model.safetensors "data.shards=[$W/o7]" data.p_audio=0.0 steps=800 \
  optim.lr=2e-3 optim.warmup_steps=50 optim.key_weight=10 "$WORDS" save_every=200 --resume

# 5. A bundle (fp16, like the shipped one) and its typed row of the results table (2,000 questions).
moshivis bundle --base $W/kwo --adapters $W/adapters --tokenizer tinyworld/bundle/tokenizer.model \
  --codec tinyworld/codec --out $W/bundle
moshivis eval verdict --checkpoint $W/bundle --shards $W/o7 --limit 300
moshivis tinyworld results --bundle $W/bundle --out $W/results --conditions text
