# swgw — the two commands: `make demo` and `make test`. Both work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SWGW := $(VENV)/bin/swgw
PYTEST_ARGS ?=

.PHONY: venv demo test bench system-deps services clean-demo lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# System packages the tests use (OpenSSH server, pcscd + vsmartcard-vpcd, OpenSSL); idempotent.
system-deps:
	bash scripts/install-test-deps.sh

# PostgreSQL and RabbitMQ are machine services: start them if they are down.
services:
	bash scripts/services.sh

demo: venv
	@bash scripts/demo.sh

test: venv system-deps services
	$(PY) -m pytest -q -rs $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

clean-demo:
	rm -rf var outbox/*/ inbox/*/.archive inbox/*/.error inbox/*/.work
