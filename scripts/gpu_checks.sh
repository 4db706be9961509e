#!/usr/bin/env bash
# The GPU figures of the README, in one run on a lent GPU machine (its own python3 with CUDA PyTorch):
#   step latency with / without the image (small and the 7B preset), training throughput adapters vs full
#   (small), real 7B adapters training memory + speed vs the dry run's prediction, and CUDA graph replay
#   (its tests, then eager vs graphed step latency for small and the 7B preset).
# ONLY="graph_tests graph_small" runs just the named checks (all by default).
# Writes one JSON file per benchmark into ${OUT:-gpu_results}. Each benchmark runs on its own: one failing
# does not stop the others.
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
  "$@" > "$OUT/$name.json" 2> "$OUT/$name.err" || { echo "!! $name failed"; tail -5 "$OUT/$name.err"; }
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
