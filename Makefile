# make demo  — install, build the built-in corpus, train ~2 minutes, sample
# make test  — install, run the test suite (make test-fast: the tests not marked slow)
# make docs  — regenerate docs/cli.md from every command's --help
# make bench — performance figures (bench/results.jsonl)
# PYTHON and VENV pick the interpreter and its virtual environment (.ci/run also runs
#   make test PYTHON=/usr/bin/python3 VENV=.venv-deb: Debian 12's 3.11.2, the oldest supported)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_TIME ?= 2m

.PHONY: install demo corpus test test-fast lint bench docs clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,lstmvis,serve,onnx,hub]'
	@touch $(STAMP)

install: $(STAMP)

# The built-in corpus: a slice of this Python's own standard library (~1.2 MB of source code),
# present on every machine with no download. A char-rnn classic, like Karpathy's Linux-source model.
corpus: $(STAMP)
	@STDLIB=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))'); \
	$(BIN)/charrnn prep $$STDLIB/json $$STDLIB/email $$STDLIB/http $$STDLIB/asyncio $$STDLIB/collections \
		--glob '*.py' -o corpora/pystdlib

demo: corpus
	$(BIN)/charrnn train corpora/pystdlib --time-budget $(DEMO_TIME) --out runs/demo --overwrite
	@echo '--- sample (temperature 0.8) ---' >&2
	$(BIN)/charrnn sample runs/demo/best.ckpt --seed 'def ' --temp 0.8 --length 800

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

lint: $(STAMP)
	$(BIN)/ruff check charrnn tests bench tools
	$(BIN)/ruff format --check charrnn tests bench tools

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# The CLI reference; tests/test_docs.py fails when it is stale.
docs: $(STAMP)
	$(BIN)/python -m charrnn.cli.reference > docs/cli.md.tmp && mv docs/cli.md.tmp docs/cli.md

clean:
	rm -rf $(VENV) runs corpora/pystdlib .pytest_cache
