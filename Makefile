# The two commands a new user needs: `make demo` and `make test`. Both install what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test reliability ui-screenshots chromium lint bench bench-e2e bench-scheduler bench-scale bench-verify restic postgresql install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bingobackup demo

test: $(STAMP) postgresql chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The long crash campaign (tests/reliability): every named crash point and TRIALS seeded random
# offsets per scenario, killed and rerun; prints the table kept in docs/reliability.md.
TRIALS ?= 5
reliability: $(STAMP)
	$(BIN)/python -m tests.reliability --trials $(TRIALS)

# Debian's Chromium for the UI test (tests/ui): Playwright drives it, nothing is downloaded.
chromium:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; } \
		|| echo "chromium could not be installed: the UI test fails saying so"

# The UI test's screenshots, copied into docs/ui for the README's "Operating it".
ui-screenshots: $(STAMP) chromium
	BINGOBACKUP_UI_SCREENSHOTS=docs/ui $(BIN)/python -m pytest tests/ui -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check bingobackup tasks flows catalog deployments tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) restic postgresql
	$(BIN)/python -m benchmarks --scheduler-database $(SCHEDULER_DATABASE) --scheduler-limit $(SCHEDULER_LIMIT)

bench-e2e: $(STAMP) restic
	$(BIN)/python -m benchmarks --e2e-only

# The scheduler row's Prefect server: on PostgreSQL (a throwaway cluster, as a team server
# runs) or on the local server's SQLite file: `make bench-scheduler SCHEDULER_DATABASE=sqlite`.
# SCHEDULER_LIMIT: the work queue limit per backup host (0: none, every run let in at once).
SCHEDULER_DATABASE ?= postgresql
SCHEDULER_LIMIT ?= 0
bench-scheduler: $(STAMP) postgresql
	$(BIN)/python -m benchmarks --scheduler-only --scheduler-database $(SCHEDULER_DATABASE) --scheduler-limit $(SCHEDULER_LIMIT)

# Only the Verify rows: verify vs export-disk on one backup of the image, and restic check --read-data.
bench-verify: $(STAMP) restic
	$(BIN)/python -m benchmarks --verify-only

# restic (Debian package) for the side-by-side rows; without root or apt they are skipped.
restic:
	@command -v restic >/dev/null || { apt-get update && apt-get install -y restic; } \
		|| echo "restic could not be installed: the bench skips its rows"

# PostgreSQL (Debian package) for the multi-host test and the bench's scheduler row, which run
# a Prefect server on it (each starts its own cluster in a temporary folder with initdb/pg_ctl; the package's own
# cluster is not used). Not the pip `pgserver`: its binaries lack pg_trgm, which Prefect's
# schema needs.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
		|| { apt-get update && apt-get install -y --no-install-recommends postgresql; } \
		|| echo "PostgreSQL could not be installed: the multi-host test and bench-scheduler (unless SCHEDULER_DATABASE=sqlite) will fail saying so"

# Only the scale rows of `make bench` (orchestration on the simulator's scale scenario, CLI start cost).
bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks --scale-only

clean:
	rm -rf $(VENV) build *.egg-info
