#!/usr/bin/env bash
# Stop 29 (README "Ablations on the shipped base"): the paper's ablations from the shipped base (lc, read from
# the shipped bundle, whose adapters are replaced by fresh ones), on the shipped adapters' kinds of data made
# again with the chain's generators: b32 (380 spoken image dialogues, seed 32), o7 (4,000 typed, seed 7),
# image-free spoken exchanges bs0 (448, seed 0) and bs1m (400, seed 1). adc's adapter settings, p_audio from
# the variant (reference 0.5); 200 steps each. About 20 min of synthesis (two processes) and 60 min of
# ablations on 2 cores.
#   bash scripts/ablations_shipped_base.sh [WORK]   (default runs/abl)
set -euo pipefail
W=${1:-runs/abl}
source "$(dirname "$0")/tinyworld_lib.sh"
recipe_work "$W"
[ -f $W/b32/report.json ] || synth 380 32 $W/b32 40 0.3 4 &
{ [ -d $W/o7 ] || $M data synth --config configs/experiments/echo_speechless.yaml --seed 7 --out $W/o7 --quiet
  [ -f $W/bs0/report.json ] || base_dialogues 448 0 $W/bs0
  [ -f $W/bs1m/report.json ] || base_dialogues 400 1 $W/bs1m; } &
wait
$M tinyworld ablations --base tinyworld/bundle/model.safetensors \
  --shards $W/b32 $W/o7 $W/bs0 $W/bs1m --tokenizer tinyworld/bundle/tokenizer.model --codec tinyworld/codec \
  --out $W/table --steps 200 --questions 120 --unrelated 60 --switching 30 \
  --variants reference no_gate unshared_xa p_audio_0 p_audio_25 p_audio_100 \
  --extra data.max_frames=240 data.crop=start data.audio_only=0.15 data.lend_images=1.0 optim.key_weight=10 \
    "optim.key_tokens=[-1,34,53,37,79,91,89,107,47,54,45,52,12,5,73,71]" data.text_lead=2
