# pbxsms: `make run` and `make test` are the two commands a newcomer needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-faults lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# `pbxsms serve` creates config/pbxsms.toml from config/pbxsms.example.toml when missing.
run: $(STAMP)
	$(BIN)/pbxsms serve --config config/pbxsms.toml

# Never writes the fault suite's table into docs/ (tracked), whatever the shell exports.
# The console's browser tests need Debian's chromium and chromium-driver: installed here
# when missing and we are root; otherwise those tests skip and say why.
test: $(STAMP)
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver; } >/dev/null 2>&1; } || \
	  echo "chromium not installed: the console's browser tests will be skipped"
	env -u FAULTS_REPORT -u FAULTS_FULL $(BIN)/python -m pytest -q

# Full-size fault scenarios; rewrites the results table of docs/reliability.md.
test-faults: $(STAMP)
	FAULTS_FULL=1 FAULTS_REPORT=docs/reliability.md $(BIN)/python -m pytest -q -m faults \
	  --timeout=900 tests/faults

lint: $(STAMP)
	$(BIN)/ruff check .
	@# The sources install under `pbxsms.*`; mypy reads them through a link tree that
	@# mirrors the installed layout.
	@rm -rf .typecheck && mkdir -p .typecheck/pbxsms && \
	  for d in core bus plugins sim; do ln -s ../../$$d .typecheck/pbxsms/$$d; done
	MYPYPATH=.typecheck $(BIN)/mypy -p pbxsms.core -p pbxsms.bus -p pbxsms.plugins -p pbxsms.sim
	MYPYPATH=.typecheck $(BIN)/mypy tests docs/examples bench

# wrk is the load generator when it can be installed (Debian: apt-get install wrk);
# otherwise the benchmark says so and uses its Python generator in another process.
bench: $(STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1; } || \
	  echo "wrk not installed: using the Python load generator"
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .typecheck .pytest_cache .mypy_cache .ruff_cache build *.egg-info
