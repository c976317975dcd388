# Quick start: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml scripts/system-deps | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml scripts/system-deps
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found"; exit 2; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null \
		|| scripts/system-deps python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)
	$(BIN)/attpcdaq demo

system-deps:
	scripts/system-deps

# Everything on SQLite, then the database-touching tests again on a throwaway PostgreSQL.
test: $(STAMP) system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadfile
	scripts/with-postgres $(BIN)/pytest -n 2 --dist loadfile tests/daq tests/engine

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
