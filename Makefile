# ML Models control plane. `make run` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8080
STAGE ?= dev
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: run token test test-fast lint bench bench-recommend bench-tuning package clean

# The venv is rebuilt when a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt trainer/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# Benchmark-only packages (datasets for the recommender benchmark).
$(BENCH_STAMP): $(STAMP) bench/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $(BENCH_STAMP)

## Start the whole local stack: moto server (embedded AWS), tables and buckets, the token issuer,
## API on :$(PORT). `AUTH=off make run` serves the local stage without authentication.
run: $(STAMP)
	PORT=$(PORT) AUTH=$(AUTH) $(PY) -m scripts.local_stack

## One bearer token for the running local stack, on stdout:
##   make token PROJECT=proj-123 [ROLE=viewer|editor|admin]   (ROLE=admin needs no PROJECT)
## No venv dependency here: a rebuild would print onto stdout; `make run` has made it.
token:
	@PROJECT="$(PROJECT)" ROLE="$(ROLE)" $(PY) -m scripts.token

# The console's browser tests (tests/console/) drive Debian's chromium through Playwright: the system
# browser, never one Playwright downloads. Installed here when missing (CI runs as root; sudo otherwise).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## All test tiers (unit, functional, integration, trainer, the console in a browser) plus the linter.
test: $(STAMP) $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## Benchmarks: results are written to docs/BENCHMARKS.md (each script replaces its own section).
bench: $(BENCH_STAMP)
	$(PY) -m scripts.package --stage $(STAGE)
	$(PY) -m bench.bench_cold_start
	$(PY) -m bench.bench_api
	$(PY) -m bench.bench_faults
	$(PY) -m bench.bench_fuzz
	$(PY) -m bench.bench_training
	$(PY) -m bench.bench_trainer
	$(PY) -m bench.bench_trainer_start
	$(PY) -m bench.bench_trainer_scale
	$(PY) -m bench.bench_predictions
	$(PY) -m bench.bench_recommend
	$(PY) -m bench.bench_tuning

## Only the recommender's quality and sampling-cost benchmark.
bench-recommend: $(BENCH_STAMP)
	$(PY) -m bench.bench_recommend

## Only the tuning benchmark: the recommended type tuned for 60 s vs its defaults vs FLAML given 20 s.
bench-tuning: $(BENCH_STAMP)
	$(PY) -m bench.bench_tuning

package: $(STAMP)
	$(PY) -m scripts.package --stage $(STAGE)

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
