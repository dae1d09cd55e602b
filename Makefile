# parcours — `make demo` and `make test` set everything up on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
PARCOURS := $(abspath $(VENV))/bin/parcours
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
UV_VERSION := 0.13.8
DEMO_DEBTORS ?= 10000
DEMO_DAYS ?= 120
DEMO_SEEDS ?= 3
# The demo's users (a throw-away local database; never real passwords).
DEMO_AGENT := agent@demo.parcours.example
DEMO_AGENT_PASSWORD := demo-agent-password
DEMO_STRATEGIST := strategist@demo.parcours.example
DEMO_STRATEGIST_PASSWORD := demo-strategist-password

# Byte-code caching makes every CLI start about a second faster.
unexport PYTHONDONTWRITEBYTECODE

# Debian packages the project needs: zbar decodes the EPC QR codes in the letter tests,
# poppler's pdftoppm rasterises letters for it, DejaVu is the letters' font, Chromium runs
# the browser tests (Playwright drives /usr/bin/chromium; its own download is not used),
# Graphviz's `dot` lays out the dashboard's journey maps.
SYSTEM_PACKAGES := libzbar0 poppler-utils fonts-dejavu-core chromium graphviz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help install system demo test lint format bench clean lock

help:
	@echo "make demo   - install into .venv, generate a 10,000-debtor portfolio, import it,"
	@echo "              classify every debtor into a persona, run ten days of journeys (SQLite)"
	@echo "              leaving the e-mails, SMS and PDF letters in demo/outbox/, then book a"
	@echo "              camt.053 bank statement (reconciled) and run the next tick"
	@echo "make test   - install, then run the test suite (SQLite and PostgreSQL)"
	@echo "make lint   - ruff and mypy --strict"
	@echo "make bench  - benchmarks under bench/ (each prints one JSON line)"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

system:
	@missing=""; for package in $(SYSTEM_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: $(STAMP) system
	@rm -rf demo && mkdir -p demo
	cd demo && $(PARCOURS) init
	@echo "== A portfolio of $(DEMO_DEBTORS) debtors placed $(DEMO_DAYS) days ago (survey answers from a sample)"
	cd demo && $(PARCOURS) generate --debtors $(DEMO_DEBTORS) --seed 7 --as-of "$$(date -d '-$(DEMO_DAYS) days' +%F)" --out portfolio
	@echo "== Import, classify, then $(DEMO_DAYS) days through the real engine: persona journeys vs the universal ladder"
	cd demo && $(PARCOURS) simulate --portfolio portfolio --creditor "Demo Energy" --days $(DEMO_DAYS) --seeds $(DEMO_SEEDS) \
		--strategy persona-vs-universal --strategy persona --strategy universal --adopt --report report.html
	@echo "== The experiment's database is now demo/parcours.db: what the engine stored"
	cd demo && $(PARCOURS) status
	cd demo && $(PARCOURS) personas explain D0000001
	cd demo && $(PARCOURS) cases list --limit 5
	@# The case with the oldest unpaid invoice: still open after the replay.
	cd demo && $(PARCOURS) cases list --limit 1 --json | $(abspath $(PY)) -c 'import json, sys; print(json.load(sys.stdin)[0]["ref"])' > open-case
	cd demo && $(PARCOURS) policy explain "$$(cat open-case)"
	cd demo && $(PARCOURS) messages preview --journey occasional --step send_r1 --lang nl --channel sms --case "$$(cat open-case)"
	cd demo && echo "$(DEMO_STRATEGIST_PASSWORD)" | $(PARCOURS) users add $(DEMO_STRATEGIST) --name "Demo Strategist" --role strategist --password-stdin
	cd demo && echo "$(DEMO_AGENT_PASSWORD)" | $(PARCOURS) users add $(DEMO_AGENT) --name "Demo Agent" --role agent --password-stdin
	@echo
	@echo "The comparison with its charts: demo/report.html"
	@echo "Start the web app with"
	@echo "    cd demo && $(PARCOURS) serve"
	@echo "the dashboard: http://localhost:8000/backoffice/dashboard — sign in as $(DEMO_STRATEGIST) / $(DEMO_STRATEGIST_PASSWORD)"
	@echo "the inbox:     http://localhost:8000/backoffice/inbox — sign in as $(DEMO_AGENT) / $(DEMO_AGENT_PASSWORD)"
	@echo "one debtor's page (it asks the postcode printed below it):"
	@cd demo && $(PARCOURS) cases link "$$(cat open-case)"

test: $(STAMP) system
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

bench: $(STAMP)
	$(PY) bench/import.py
	$(PY) bench/personas.py
	$(PY) bench/planner.py
	$(PY) bench/dispatch.py
	$(PY) bench/reconcile.py
	$(PY) bench/portal.py
	$(PY) bench/simulate.py

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache

lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --quiet --no-header -o requirements.lock
	@sed -i '1i # Pinned versions of every package (direct and transitive) for reproducible installs.\n# Regenerate after changing pyproject.toml: make lock' requirements.lock
