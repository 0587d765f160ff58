# Two commands: `make demo` and `make test`. Both set up what they need (venv + packages).
SHELL := bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# pip prints a warning per package for index folders that lack it; they are noise here.
PIP_QUIET := { grep -v "is ignored: it is neither a file nor a directory" || true; }

# Nothing here may phone home: this machine has no network beyond package registries.
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install demo test lint unit integration clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[dev]" 2>&1 | $(PIP_QUIET)
	$(BIN)/python -c "import prefect, av, moto, sandbox, runninghub, rh_extend"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.demo/prefect $(BIN)/rh-extend demo --workdir .demo

lint: $(STAMP)
	$(BIN)/ruff check runninghub sandbox rh_extend tests
	$(BIN)/mypy runninghub
	$(BIN)/mypy sandbox rh_extend

test: lint
	$(BIN)/pytest -q -p no:cacheprovider --durations=10

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
