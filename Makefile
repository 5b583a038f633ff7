# hvbackup — the two commands a newcomer needs:
#   make demo   runs the main job on the embedded default and says where to look
#   make test   installs what the tests need, then runs ruff, mypy and pytest
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest services venv clean bench bench-dashboard bench-agents

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

services:
	@bash scripts/test-services.sh

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

pytest: venv services
	$(BIN)/pytest

test: lint typecheck pytest

demo: venv
	@bash scripts/demo.sh

bench: venv services
	@command -v restic >/dev/null && command -v borg >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup)
	$(BIN)/python bench/store_bench.py $(BENCH_ARGS)

bench-dashboard: venv services
	$(BIN)/python bench/dashboard_bench.py $(BENCH_ARGS)

bench-agents: venv services
	$(BIN)/python bench/agents_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-state demo-site-durand .pytest_cache .mypy_cache .ruff_cache
