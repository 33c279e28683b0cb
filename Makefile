# Ovozly task runner. `make run` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint typecheck migrate bench test-pyannote clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools<81' wheel
	# The lock is a complete, pinned set: --no-deps keeps pip from re-resolving it
	# (Resemblyzer's own webrtcvad pin would otherwise need a compiler).
	$(BIN)/python -m pip install -q --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m app.warmup
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ovozly dev

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check app tests bench alembic
	$(BIN)/ruff format --check app tests bench alembic

typecheck: $(STAMP)
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/ovozly migrate

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV)
