# parcours — `make demo` and `make test` set everything up on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV := .venv
PY := $(VENV)/bin/python
PARCOURS := $(abspath $(VENV))/bin/parcours
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
UV_VERSION := 0.13.8
DEMO_DEBTORS ?= 10000
# The demo's agent for the inbox (a throw-away local database; never a real password).
DEMO_AGENT := agent@demo.parcours.example
DEMO_AGENT_PASSWORD := demo-agent-password

# Byte-code caching makes every CLI start about a second faster.
unexport PYTHONDONTWRITEBYTECODE

# Debian packages the project needs: zbar decodes the EPC QR codes in the letter tests,
# poppler's pdftoppm rasterises letters for it, DejaVu is the letters' font, Chromium runs
# the browser tests (Playwright drives /usr/bin/chromium; its own download is not used).
SYSTEM_PACKAGES := libzbar0 poppler-utils fonts-dejavu-core chromium
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
	cd demo && $(PARCOURS) generate --debtors $(DEMO_DEBTORS) --seed 7 --out portfolio
	cd demo && $(PARCOURS) import debtors portfolio/debtors.csv --creditor "Demo Energy"
	cd demo && $(PARCOURS) import invoices portfolio/invoices.csv --creditor "Demo Energy"
	cd demo && $(PARCOURS) import payments portfolio/payments.csv --creditor "Demo Energy"
	cd demo && $(PARCOURS) survey import portfolio/survey_answers.csv --creditor "Demo Energy"
	cd demo && $(PARCOURS) personas classify
	cd demo && $(PARCOURS) personas explain D0000001
	cd demo && $(PARCOURS) journeys list
	cd demo && $(PARCOURS) run --at "$$(date -d 'today 10:00' +%FT%T)"
	cd demo && $(PARCOURS) run --at "$$(date -d '+3 days 10:00' +%FT%T)"
	cd demo && $(PARCOURS) run --at "$$(date -d '+10 days 10:00' +%FT%T)"
	cd demo && $(PARCOURS) payments sample-statement --lines 2000 --out statement.xml --at "$$(date -d '+11 days 08:00' +%FT%T)"
	cd demo && $(PARCOURS) payments import statement.xml --at "$$(date -d '+11 days 08:00' +%FT%T)"
	cd demo && $(PARCOURS) payments unmatched --limit 5
	cd demo && $(PARCOURS) run --at "$$(date -d '+11 days 10:00' +%FT%T)"
	cd demo && $(PARCOURS) policy explain C-D0000001 --at "$$(date -d '+10 days 10:00' +%FT%T)"
	cd demo && $(PARCOURS) messages preview --journey occasional --step send_r1 --lang nl --channel sms --case C-D0000001
	@echo "written to demo/outbox/ (e-mails, SMS, letters): $$(ls demo/outbox | sed -E 's/^[^.]+\.//' | sort | uniq -c | tr -s ' ' | paste -sd,)"
	cd demo && $(PARCOURS) status
	cd demo && $(PARCOURS) cases list --limit 5
	cd demo && echo "$(DEMO_AGENT_PASSWORD)" | $(PARCOURS) users add $(DEMO_AGENT) --name "Demo Agent" --role agent --password-stdin
	@echo
	@echo "Open the debtor's page and the agents' inbox: start the web app with"
	@echo "    cd demo && $(PARCOURS) serve"
	@echo "then open this debtor's personal link (it asks the postcode printed below it):"
	@cd demo && $(PARCOURS) cases link C-D0000001
	@echo "and the inbox at http://localhost:8000/backoffice/ — sign in as $(DEMO_AGENT) / $(DEMO_AGENT_PASSWORD)"

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
