#!/usr/bin/env bash
# The GPU figures of the README, in one run on a lent GPU machine (its own python3 with CUDA PyTorch):
#   step latency with / without the image (small and the 7B preset), training throughput adapters vs full
#   (small), real 7B adapters training memory + speed vs the dry run's prediction, and CUDA graph replay
#   (its tests, then eager vs graphed step latency for small and the 7B preset).
#   The embedded model (tiny_*): its answers on the GPU against this machine's CPU answers (inputs made here by
#   `python scripts/gpu_tiny_check.py prepare --out .gpu/tiny_inputs.pt`; carry .gpu), graphed step latency of
#   its preset, `moshivis ask` and a typed `eval run` on CUDA (these two need the easy-vqa wheel: carry .whl and
#   install it first, see the device README; the GPU machine has no TTS and no Whisper, so spoken questions
#   come only through tiny_check's replayed codes).
# ONLY="graph_tests graph_small" runs just the named checks (all by default).
# Writes one JSON file per benchmark into ${OUT:-gpu_results}, and their stderr into stderr.log there.
# Each benchmark runs on its own: one failing does not stop the others.
set -u
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} NO_TORCH_COMPILE=1 PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
run() {  # name, command...
  local name=$1; shift
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then return 0; fi
  echo "== $name: $*"
  local t0=$SECONDS
  echo "== $name" >> "$OUT/stderr.log"  # one log for all: a call brings back at most 8 files
  "$@" > "$OUT/$name.json" 2> "$OUT/.err" || { echo "!! $name failed"; tail -5 "$OUT/.err"; }
  cat "$OUT/.err" >> "$OUT/stderr.log"; rm -f "$OUT/.err"
  echo "   ($((SECONDS - t0)) s)"; cat "$OUT/$name.json" | tr -d '\n' | head -c 1500; echo
}
run step_small python3 benchmarks/step_latency.py --preset small --steps 100 --warmup 10 --json
run train_small python3 benchmarks/train_throughput.py --preset small --batch 8 --frames 256 --steps 10 --warmup 2 --json
run mem_7b_ckpt_on python3 benchmarks/train_memory.py configs/moshika-vis-7b-adapters.yaml --micro-batch 8 --frames 375 --checkpointing on --steps 4 --json
run mem_7b_ckpt_off python3 benchmarks/train_memory.py configs/moshika-vis-7b-adapters.yaml --micro-batch 8 --frames 375 --checkpointing off --steps 4 --json
run step_7b python3 benchmarks/step_latency.py --preset moshika-vis-7b --steps 60 --warmup 10 --json
run graph_tests python3 -m pytest -q -p no:cacheprovider tests/inference/test_static_and_graphs.py
run graph_small python3 benchmarks/graph_step_latency.py --preset small --steps 100 --warmup 10
run graph_7b python3 benchmarks/graph_step_latency.py --preset moshika-vis-7b --steps 60 --warmup 10
TINY_INPUTS=${TINY_INPUTS:-.gpu/tiny_inputs.pt}
TINY_IMAGE=$(python3 -c "import easy_vqa; print(easy_vqa.get_test_image_paths()[0])" 2>/dev/null)
run tiny_ask python3 -m moshivis.cli ask --device cuda --image "$TINY_IMAGE" --text "what is the red shape?" --json
run tiny_eval_text python3 -m moshivis.cli eval run --device cuda --benchmark easy-vqa --prompts text \
    --questions tinyworld/results/questions.jsonl --limit 256 --batch-size 32 --out "$OUT/tiny_eval_text.jsonl"
run tiny_graph1 python3 benchmarks/graph_step_latency.py --preset tinyworld --dtype float32 --steps 200 --warmup 20
run tiny_graph8 python3 benchmarks/graph_step_latency.py --preset tinyworld --dtype float32 --steps 200 --warmup 20 --batch 8
run tiny_check python3 scripts/gpu_tiny_check.py check --inputs "$TINY_INPUTS" --device cuda --eager-too
