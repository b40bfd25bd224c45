# Roombook operations. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is bootstrapped into .tools/ from PyPI when it is not on PATH.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --locked
PYTEST_ARGS ?=
# The suite runs on this many processes (pytest-xdist); each gets its own test database.
PYTEST_WORKERS ?= 2
# Test runs keep compiled bytecode (and pytest's rewritten test modules) in __pycache__ even
# where PYTHONDONTWRITEBYTECODE is set: every worker and CLI subprocess imports the whole app,
# and recompiling it each time cost several seconds per process.
TEST_ENV := PYTHONDONTWRITEBYTECODE=
DOMAINS := core auth users audit bookings
# `make bench-http BENCH_DURATION=2` is a quick smoke run (seconds per scenario and count).
BENCH_DURATION ?=
BENCH_ARGS ?=
AUDIT_BENCH_ARGS ?=
# The typed client for the SPA (openapi-typescript and openapi-fetch, pinned in its package.json).
CLIENT_DIR := clients/typescript

.PHONY: help install run serve test $(addprefix test-,$(DOMAINS)) check fmt migrate \
	grant-app-role makemigration downgrade db-start db-stop openapi docker-build up down clean \
	create-admin seed audit-verify audit-anchor bench bench-audit bench-explain bench-export bench-http prune fuzz client client-check

help: ## List the targets
	@grep -hE '^[a-zA-Z_%-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

install: $(if $(findstring .tools,$(UV)),.tools/bin/uv) ## Install locked dependencies into .venv
	$(UV) sync --locked

run: install ## Serve with auto-reload on http://127.0.0.1:8000 (embedded DB unless DATABASE__URL)
	$(RUN) python -m app.cli run

serve: install ## Serve like production: no reload, workers from settings, forwarded headers only from trusted proxies
	$(RUN) python -m app.cli serve

test: install ## Run the whole suite with coverage (fails under 90%)
	$(TEST_ENV) $(RUN) pytest -n $(PYTEST_WORKERS) --dist loadgroup --cov=app --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

fuzz: install ## Long Schemathesis run as each role, and the bookings state machine (FUZZ_EXAMPLES, default 200)
	FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),200) $(RUN) pytest tests/core/test_schemathesis.py \
		tests/bookings/test_stateful.py -p no:randomly $(PYTEST_ARGS)

test-%: install ## Run one domain's suite, e.g. make test-auth
	$(TEST_ENV) $(RUN) pytest tests/$* $(PYTEST_ARGS)

check: install ## Lint, format check, strict type check and import contracts
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy app tests migrations benchmarks
	$(RUN) lint-imports

fmt: install ## Format and auto-fix lint findings
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

migrate: install ## Apply migrations up to head
	$(RUN) python -m app.cli migrate

grant-app-role: install ## Give a role exactly the API's privileges, as the owner [ROLE=name]
	$(RUN) python -m app.cli grant-app-role $(if $(ROLE),--role "$(ROLE)")

makemigration: install ## Autogenerate a migration: make makemigration m="add rooms"
	$(RUN) python -m app.cli makemigration -m "$(m)"

downgrade: install ## Revert one migration (or to rev=<revision>)
	$(RUN) python -m app.cli downgrade $(or $(rev),-1)

db-start: install ## Start the embedded PostgreSQL and leave it running
	$(RUN) python -m app.cli db-start

db-stop: install ## Stop the embedded PostgreSQL
	$(RUN) python -m app.cli db-stop

openapi: install ## Write openapi.json
	$(RUN) python -m app.cli openapi -o openapi.json

audit-verify: install ## Walk the audit hash chain; print ok or the first broken entry [ANCHOR=SEQ:HASH]
	$(RUN) python -m app.cli audit-verify $(foreach a,$(ANCHOR),--anchor $(a))

audit-anchor: install ## Verify the audit chain and print its head as SEQ:HASH to publish elsewhere
	$(RUN) python -m app.cli audit-anchor

bench: bench-audit bench-export bench-http ## All benchmarks: audit writes, export memory, HTTP against the ceiling

bench-audit: install ## Audit write cost: 4 writers x 250 commits with and without audit (changes/s)
	$(RUN) python -m benchmarks.audit_writers $(AUDIT_BENCH_ARGS)

bench-export: install ## Export memory at full scale: tracemalloc peak at 10k and 100k rows
	$(TEST_ENV) $(RUN) pytest -m bench -p no:cacheprovider tests/audit/test_export.py $(PYTEST_ARGS)

bench-explain: install ## EXPLAIN (ANALYZE, BUFFERS) of the booking list and availability queries on the bench data set
	$(RUN) python -m benchmarks.explain $(BENCH_ARGS)

bench-http: install ## HTTP: seed roombook_bench, drive the API and the ceiling app with wrk
	$(RUN) python -m benchmarks.http_bench $(if $(BENCH_DURATION),--duration $(BENCH_DURATION)) $(BENCH_ARGS)

prune: install ## Delete expired sessions, tokens, throttle rows and idempotency keys; print counts
	$(RUN) python -m app.cli prune $(if $(BATCH),--batch-size $(BATCH))

create-admin: install ## Create an admin: make create-admin EMAIL=you@example.com [NAME="Your Name"]
	@test -n "$(EMAIL)" || { echo 'usage: make create-admin EMAIL=you@example.com [NAME="Your Name"]' >&2; exit 2; }
	$(RUN) python -m app.cli migrate
	$(RUN) python -m app.cli create-admin "$(EMAIL)" $(if $(NAME),--name "$(NAME)")

seed: install ## Load the demo data set (rooms, users of each role, bookings) once; not in production
	$(RUN) python -m app.cli migrate
	$(RUN) python -m app.cli seed

client: install ## Regenerate the TypeScript client: openapi.json and its types (npx openapi-typescript)
	$(RUN) python -m app.cli openapi --defaults -o $(CLIENT_DIR)/openapi.json
	cd $(CLIENT_DIR) && npm ci && npx openapi-typescript openapi.json --output src/schema.d.ts

client-check: install ## Fail if the committed TypeScript client is stale; tsc --strict and its tests
	@set -e; fresh=$$(mktemp -d); trap 'rm -rf "$$fresh"' EXIT; \
	$(RUN) python -m app.cli openapi --defaults -o "$$fresh/openapi.json"; \
	cd $(CLIENT_DIR); npm ci; \
	npx openapi-typescript "$$fresh/openapi.json" --output "$$fresh/schema.d.ts"; \
	if ! diff -u openapi.json "$$fresh/openapi.json" || ! diff -u src/schema.d.ts "$$fresh/schema.d.ts"; then \
		echo "$(CLIENT_DIR) is stale: run make client and commit the result" >&2; exit 1; fi; \
	npx tsc --noEmit --strict -p tsconfig.json; \
	rm -rf .build; npx tsc -p tsconfig.test.json; node --test .build/test/

docker-build: ## Build the container image
	docker build -t roombook:latest .

up: ## Start PostgreSQL, migrations and the API with compose
	docker compose up -d --build

down: ## Stop the compose stack
	docker compose down

clean: ## Remove the virtualenv, caches and embedded database data
	-$(UV) run --locked python -m app.cli db-stop 2>/dev/null
	rm -rf .venv .tools .data .pytest_cache .mypy_cache .ruff_cache .grimp_cache .import_linter_cache \
		.coverage htmlcov openapi.json $(CLIENT_DIR)/node_modules $(CLIENT_DIR)/.build
