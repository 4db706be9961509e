# `make demo` and `make test` are the two commands of the README; both set up .venv on first use.
VENV := .venv
STAMP := $(VENV)/.installed
export NO_TORCH_COMPILE := 1
export HF_HUB_OFFLINE := 1

$(STAMP): requirements.txt pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

.PHONY: setup demo test bench
setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/moshivis demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/step_latency.py --preset small --json
