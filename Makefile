# Tollgate: `make demo` runs the site-in-a-box, `make test` runs the whole suite.
# Both create .venv and install what they need on a fresh clone (Python 3.11+).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DURATION ?=
VERBOSE ?=

.PHONY: demo test fuzz bench lint venv clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tollgate needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[edge,cloud,sims,dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP) $(PDF_TOOLS)
	$(BIN)/tollgate-sim demo $(if $(DURATION),--duration $(DURATION)) $(if $(VERBOSE),--verbose)

# The browser test drives Debian's Chromium (no browser download): installed here when we may.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq chromium; \
	else \
		echo "no $(CHROMIUM): the browser test skips (fails under CI=true); apt-get install chromium"; \
	fi

# WeasyPrint (invoice PDFs) needs Pango; the demo and tests look at PDFs as PNGs with pdftoppm.
# (Chromium already pulls in Pango; poppler-utils is the marker that both are here.)
PDF_TOOLS := /usr/bin/pdftoppm
$(PDF_TOOLS):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 poppler-utils; \
	else \
		echo "no $@: apt-get install libpango-1.0-0 libpangoft2-1.0-0 poppler-utils"; \
	fi

# Lint and types first (seconds), then the suite, then schemathesis over the real collector.
test: $(STAMP) $(CHROMIUM) $(PDF_TOOLS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile --durations=30
	$(MAKE) fuzz

# Both backends, one API key per role, a few minutes in all; findings in test-artifacts/.
fuzz: $(STAMP)
	$(BIN)/python -m fuzz --budget 120

bench: $(STAMP) $(PDF_TOOLS)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.collector_ingest --gateways 4
	$(BIN)/python -m bench.copy_ceiling
	$(BIN)/python -m bench.edge_sources
	$(BIN)/python -m bench.billing
	$(BIN)/python -m bench.invoice_workers
	$(BIN)/python -m bench.direct_ingest
	$(BIN)/python -m bench.direct_ingest --batch-size 5000 --rows 20000
	$(BIN)/python -m bench.hostile_bodies
	$(BIN)/python -m bench.webhooks
	$(BIN)/python -m bench.thresholds
	$(BIN)/python -m bench.fleet
	$(BIN)/python -m bench.fleet_ingest
	$(BIN)/python -m bench.documents
	$(BIN)/python -m bench.archive
	$(BIN)/python -m bench.bus_throughput
	$(BIN)/python -m bench.cli_startup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
