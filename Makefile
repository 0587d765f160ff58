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
	# The pip that venv bundles (23.x) backtracks for minutes between boto3 and prefect-aws's
	# aiobotocore; pip 25+ resolves the same in seconds.
	$(BIN)/python -m pip install -q --upgrade "pip>=25" 2>&1 | $(PIP_QUIET)
	$(BIN)/pip install -q -e ".[dev]" 2>&1 | $(PIP_QUIET)
	$(BIN)/python -c "import prefect, av, moto, sandbox, runninghub, rh_extend"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PREFECT_HOME=$(CURDIR)/.demo/prefect $(BIN)/rh-extend demo --workdir .demo

lint: $(STAMP)
	$(BIN)/ruff check runninghub sandbox rh_extend flows tasks deployments tests benchmarks scripts
	$(BIN)/mypy runninghub
	$(BIN)/mypy sandbox rh_extend
	$(BIN)/lint-imports --no-cache

# PostgreSQL's binaries, installed when missing: the tests' Prefect API, `bench` and `scale-out`
# run on throwaway local clusters (rh_extend/local_servers/postgres.py).
.PHONY: postgres
postgres:
	ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null || \
		{ apt-get update && apt-get install -y --no-install-recommends postgresql; }

test: lint postgres
	$(BIN)/pytest -q -p no:cacheprovider --durations=10

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache

# Scale-out check, not part of `make test`: Prefect server on PostgreSQL (a local cluster on
# 127.0.0.1) and two workers of the video-extend pool share two racing batches of 12 videos.
.PHONY: scale-out
scale-out: $(STAMP) postgres
	$(BIN)/python scripts/scale_out.py

# Clean-worker check, not part of `make test`: a worker venv with only prefect==3.8.8, started in
# an empty directory, runs extend-video twice from a git clone of HEAD (prefect.yaml's pull), with
# results in an S3 result storage block (docs/operations.md, "A worker from nothing").
.PHONY: clean-worker
clean-worker: $(STAMP)
	$(BIN)/python scripts/clean_worker.py

# The browser check of docs/observability.md: one run against a local `prefect server start`,
# its artifact photographed by headless Chromium into docs/img/.
.PHONY: screenshot
screenshot: $(STAMP)
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y --no-install-recommends chromium; } || { echo "needs chromium: apt-get install -y --no-install-recommends chromium" >&2; exit 1; }
	$(BIN)/python scripts/screenshot_run.py --out-dir docs/img

# Benchmarks, not part of `make test`: rh-extend vs a plain asyncio + httpx + boto3 script, on
# this machine; writes docs/benchmarks.md. P1 needs PostgreSQL (installed here when missing).
.PHONY: bench
bench: $(STAMP) postgres
	command -v curl >/dev/null || { apt-get update && apt-get install -y --no-install-recommends curl; }
	PYTHONPATH=$(CURDIR) $(BIN)/python -m benchmarks.run $(BENCH_ARGS)
