# `make run` starts the dashboard; `make test` installs what is missing and runs the whole suite;
# `make test-fast` runs the fast lane (tests not marked slow).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

PACKS ?= ../shared/data

.PHONY: run test test-fast data lint format clean

$(STAMP): requirements.txt requirements-dev.txt requirements-ref.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-ref.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP) data
	$(PY) -m streamlit run Home.py

# Extract the offline dataset packs into ./data when they are beside the checkout (once).
data: $(STAMP)
	@if [ -d $(PACKS) ]; then $(PY) -m abn data prepare --packs $(PACKS); \
	else echo "no dataset packs at $(PACKS): the dashboard runs without data"; fi

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

# The fast lane for local work: no real data, subprocesses, browser or long tests (-m "not slow").
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format . && $(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
