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
export NO_TORCH_COMPILE=1 HF_HUB_OFFLINE=1 TW=$W/recipe
M=moshivis
mkdir -p "$W"
$M tinyworld build --work $TW --reuse-shipped --stages codec vision tokenizer
synth() {  # ROWS SEED OUT AUDIO_ONLY OPENER MAX_TURNS: the chain's spoken image dialogues (a31/b32 kind)
  python - "$@" <<'PY'
import os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from moshivis.data.synth import DialogueConfig, SourceConfig
from moshivis.tinyworld import stages as S
from moshivis.tinyworld.recipe import RecipeConfig, Stage
rows, seed, out, audio_only, opener, max_turns = sys.argv[1:7]
cfg = RecipeConfig(work=os.environ["TW"], reuse_shipped=True)
print(S._synth(Stage(cfg, "image_data"), Path(out), source=SourceConfig(kind="easy-vqa", split="train", limit=int(rows)),
               dialogues=DialogueConfig(question_types=["properties", "mixed", "misleading"], min_turns=2,
                                        max_turns=int(max_turns), paraphrase_prob=0.5, evidence_first=True,
                                        present_questions=True, echo_question=True, opener_prob=float(opener)),
               audio_only=int(audio_only), speech_fraction=1.0, p_concat=0.0 if max_turns == "2" else 0.2,
               seed=int(seed), samples_per_shard=64))
PY
}
base_dialogues() {  # N SEED OUT: the recipe's image-free spoken exchanges
  python - "$@" <<'PY'
import os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from moshivis.tinyworld import stages as S
from moshivis.tinyworld.recipe import RecipeConfig, Stage
n, seed, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
print(S._base_dialogues(Stage(RecipeConfig(work=os.environ["TW"], reuse_shipped=True), "base"), out, n, seed,
                        samples_per_shard=64))
PY
}
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
