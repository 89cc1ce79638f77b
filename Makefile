# Latent Lab: `make run` starts the app, `make test` runs every test (browser tests included).
# Both install what they need first (scripts/setup.sh; quick when nothing changed).

VENV    ?= .venv
PY      := $(VENV)/bin/python
PORT    ?= 8501
ADDRESS ?= 127.0.0.1
# pytest arguments, e.g. make test PYTEST_ARGS="-m 'not slow' -x"
PYTEST_ARGS ?=

.PHONY: run test lint bench screenshots setup setup-test clean

run: setup
	$(PY) -m streamlit run app.py --server.address $(ADDRESS) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

# ruff first (seconds), then the whole suite.
test: setup-test lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup-test
	$(VENV)/bin/ruff check .

# Benchmarks print speed ratios against a reference measured in the same run (no assertions).
bench: setup
	@set -e; found=0; for f in bench/bench_*.py; do \
		[ -e "$$f" ] || continue; found=1; \
		echo "== $$f"; $(PY) "$$f"; \
	done; [ $$found = 1 ] || echo "no benchmarks in bench/"

# The README's screenshots: the browser tests, writing their page shots to docs/screenshots/ instead of
# test-results/screenshots/ (where `make test` leaves them).
screenshots: setup-test
	LATENT_LAB_SCREENSHOTS=docs/screenshots $(PY) -m pytest -m browser tests/browser $(PYTEST_ARGS)

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

# Removes caches only; runs/ (your trained models) and .venv are kept.
clean:
	rm -rf .pytest_cache test-results
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
