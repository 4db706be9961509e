# Sourced by the tinyworld experiment scripts (scripts/*_experiment.sh, ablations_shipped_base.sh): the set-up
# they share and the recipe's data generators as shell functions (python -m moshivis.tinyworld.generate, one
# core each; `&` runs two side by side). Needs bash with `set -euo pipefail` in the caller.
export NO_TORCH_COMPILE=1 HF_HUB_OFFLINE=1
M=moshivis

# recipe_work WORK: the recipe's codec, vision and tokenizer stages in WORK/recipe (the shipped codec and
# tower; the tokenizer the shipped bundle's), which the generators read; exports TW.
recipe_work() {
  mkdir -p "$1"
  export TW=$1/recipe
  $M tinyworld build --work "$TW" --reuse-shipped --stages codec vision tokenizer
}

# synth ROWS SEED OUT AUDIO_ONLY OPENER_PROB MAX_TURNS: spoken image dialogues with echoed evidence-first
# answers (the chain's a31/b32 kind; MAX_TURNS 2: single exchanges, no concatenation)
synth() {
  local concat=0.2; [ "$6" = 2 ] && concat=0.0
  python -m moshivis.tinyworld.generate --recipe-work "$TW" --out "$3" "{generator: image, rows: $1, seed: $2,
    audio_only: $4, speech_fraction: 1.0, p_concat: $concat, dialogues: {question_types: [properties, mixed, misleading],
    min_turns: 2, max_turns: $6, paraphrase_prob: 0.5, evidence_first: true, present_questions: true,
    echo_question: true, opener_prob: $5}}"
}

# base_dialogues N SEED OUT: the recipe's image-free spoken exchanges
base_dialogues() {
  python -m moshivis.tinyworld.generate --recipe-work "$TW" --out "$3" "{generator: base, n: $1, seed: $2}"
}

# base_text OUT: the base's 6,000 image-free dialogues as text only (seconds)
base_text() {
  python -m moshivis.tinyworld.generate --recipe-work "$TW" --out "$1" "{generator: base, n: 6000, seed: 0, audio_only_as: text}"
}
