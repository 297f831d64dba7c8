# Every target works on a fresh machine with no manual step: what a target
# needs (virtualenv, Kafka jars, PostgreSQL packages, running servers) is
# brought by its prerequisites, idempotently, so repeating a target is cheap.
#
# Local stack (no Docker): Kafka on 127.0.0.1:9092 and PostgreSQL on
# 127.0.0.1:55432, both under .local/ (see deploy/local/*.sh). KAFKA_BROKERS=3
# runs a three-broker Kafka cluster instead (127.0.0.1:19092,29092,39092;
# topics with replication factor 3). Set KAFKA_BOOTSTRAP_SERVERS and/or
# DATABASE_URL to use servers of your own instead: the matching local server
# is then neither installed nor started. KAFKA_SECURED=1 runs a secured Kafka
# instead (SASL/SCRAM-SHA-512 and ACLs, 127.0.0.1:9094, under .local/kafka-secured;
# docs/security.md): provisioning runs as its super user, and each service, the
# audit and the rebuild as their own principal.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory
# Prerequisites run in the order written (test: deps, infra-up, lint, ...),
# even under make -j.
.NOTPARALLEL:

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
# sha256 of the pyproject.toml the virtualenv was installed from.
VENV_STAMP := $(VENV)/.pyproject.sha256
LOCAL := $(ROOT)/deploy/local
# The Python folders that exist (git keeps no empty folder, and ruff fails on
# a missing path).
PY_DIRS = $(notdir $(wildcard $(addprefix $(ROOT)/,shared services tests bench chaos demo deploy)))

# Prefixes for the commands that talk to Kafka or PostgreSQL: unless given,
# the address of the local instance, from the script that runs it, and for
# provisioning the replication factor its number of brokers wants.
LOCAL_KAFKA = $(if $(strip $(KAFKA_BOOTSTRAP_SERVERS)),,KAFKA_BOOTSTRAP_SERVERS="$$("$(LOCAL)/kafka.sh" bootstrap)")
LOCAL_RF = $(if $(strip $(KAFKA_BOOTSTRAP_SERVERS)),,KAFKA_REPLICATION_FACTOR="$${KAFKA_REPLICATION_FACTOR:-$$("$(LOCAL)/kafka.sh" replication-factor)}")
LOCAL_PG = $(if $(strip $(DATABASE_URL)),,DATABASE_URL="$$("$(LOCAL)/postgres.sh" url)")
# `$(KAFKA_AS) NAME &&` before a command: under KAFKA_SECURED=1 it connects to the
# local Kafka as principal NAME (deploy/local/lib.sh); otherwise it does nothing.
KAFKA_AS = source "$(LOCAL)/lib.sh" && use_kafka_principal

.PHONY: help venv deps infra-up up down run lint typecheck test demo bench audit rebuild erase rotate-keys chaos

help:
	@echo "make venv       .venv with the project installed (reinstalls when pyproject.toml changes)"
	@echo "make deps       venv + Kafka jars + PostgreSQL packages"
	@echo "make infra-up   PostgreSQL and Kafka running and ready, migrations applied, topics provisioned"
	@echo "                (KAFKA_BROKERS=3 make up|run|infra-up: a three-broker Kafka cluster)"
	@echo "                (KAFKA_SECURED=1 make up|run|infra-up: Kafka with SASL/SCRAM and ACLs)"
	@echo "make up         infra-up + the three services in the background, ready"
	@echo "make down       stop the services, Kafka and PostgreSQL"
	@echo "make run        infra-up + the three services in the foreground (Ctrl-C stops them)"
	@echo "make lint       ruff check + ruff format --check"
	@echo "make typecheck  mypy --strict"
	@echo "make test       everything needed, then the whole test suite on real Kafka and PostgreSQL"
	@echo "make demo | bench | audit | rebuild"
	@echo "make erase      record an erasure request: SUBJECT=<phone or BSUID> REQUESTED_BY=<who> [REASON=...]"
	@echo "make rotate-keys rewrap the ledgers' data keys under ERASURE_ACTIVE_KEY"
	@echo "make chaos      the fault-injection run on a stack of its own (ARGS=\"--minutes N\")"

# python3.11 by preference (the version CI and the lock of ranges were tried
# with); any python3 within pyproject's requires-python otherwise. A venv whose
# interpreter no longer runs (moved, python removed) is made anew.
venv:
	@if ! "$(PY)" -c 'import sys' >/dev/null 2>&1; then \
		py=$$(command -v python3.11 || command -v python3 || true); \
		[[ -n "$$py" ]] || { echo "make venv: no python3 found" >&2; exit 1; }; \
		"$$py" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))' || \
			{ echo "make venv: $$py is not Python 3.11-3.13" >&2; exit 1; }; \
		echo "[venv] creating $(VENV) with $$py" >&2; \
		rm -rf "$(VENV)"; "$$py" -m venv "$(VENV)"; \
	fi
	@want=$$(sha256sum "$(ROOT)/pyproject.toml" | cut -d' ' -f1); \
	if [[ "$$(cat "$(VENV_STAMP)" 2>/dev/null)" != "$$want" ]]; then \
		echo "[venv] installing the project and its dev dependencies" >&2; \
		"$(PY)" -m pip install -q --disable-pip-version-check -e "$(ROOT)[dev]"; \
		echo "$$want" > "$(VENV_STAMP)"; \
	fi

# What is given from outside (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL) is not
# installed locally: such a machine may have no JDK or PostgreSQL at all.
deps: venv
	@if [[ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then "$(LOCAL)/kafka.sh" fetch; fi
	@"$(LOCAL)/postgres.sh" install

infra-up: deps
	@"$(LOCAL)/postgres.sh" start
	@if [[ -z "$${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then \
		"$(LOCAL)/kafka.sh" start; \
	else \
		"$(PY)" "$(LOCAL)/wait_kafka.py" --timeout 60; \
	fi
	@cd "$(ROOT)" && $(LOCAL_PG) "$(PY)" -m shared.db.migrate
	@cd "$(ROOT)" && $(KAFKA_AS) admin && $(LOCAL_KAFKA) $(LOCAL_RF) "$(PY)" -m shared.kafka.provision
	@if [[ "$${KAFKA_SECURED:-0}" == 1 ]]; then \
		cd "$(ROOT)" && $(KAFKA_AS) admin && $(LOCAL_KAFKA) "$(PY)" -m shared.kafka.acls; \
	fi

up: infra-up
	@"$(LOCAL)/services.sh" start

# Stops our own processes whatever the environment says, so nothing is left:
# every broker of the Kafka instance, one or three.
down:
	@"$(LOCAL)/services.sh" stop
	@"$(LOCAL)/kafka.sh" stop
	@"$(LOCAL)/postgres.sh" stop

run: venv
	@"$(LOCAL)/run.sh"

lint: venv
	@cd "$(ROOT)" && "$(VENV)/bin/ruff" check $(PY_DIRS)
	@cd "$(ROOT)" && "$(VENV)/bin/ruff" format --check $(PY_DIRS)

typecheck: venv
	@cd "$(ROOT)" && "$(VENV)/bin/mypy"

# The servers that test started stay up afterwards (the next run is faster);
# `make down` stops them. The end-to-end tests run the services themselves on
# their contract ports, so services left by `make up` are stopped first.
test: deps infra-up lint typecheck
	@"$(LOCAL)/services.sh" stop
	@cd "$(ROOT)" && "$(PY)" -m pytest -q

# The scripted story on the running system (make up first if it is not running).
demo: up
	@cd "$(ROOT)" && source "$(LOCAL)/lib.sh" && load_local_secrets && use_kafka_principal admin && \
		$(LOCAL_KAFKA) $(LOCAL_PG) "$(PY)" -m demo

# Replays the log, verifying events from WhatsApp with EVENT_VERIFY_KEYS (the local
# stack's from .local/secrets.env unless set); ARGS="--since 2026-11-27T00:00:00Z --subject +79161234567 --out DIR".
audit: infra-up
	@cd "$(ROOT)" && source "$(LOCAL)/lib.sh" && load_local_secrets && use_kafka_principal audit && \
		$(LOCAL_KAFKA) $(LOCAL_PG) "$(PY)" -m services.audit $(ARGS)

# Every benchmark, sides alternated in one run; ARGS=--quick for a smoke run.
bench: infra-up
	@"$(LOCAL)/services.sh" stop
	@cd "$(ROOT)" && $(KAFKA_AS) admin && $(LOCAL_KAFKA) $(LOCAL_PG) "$(PY)" -m bench $(ARGS)

# ARGS=--verify compares the rebuilt state with the live one instead of writing.
rebuild: infra-up
	@cd "$(ROOT)" && source "$(LOCAL)/lib.sh" && load_local_secrets && use_kafka_principal consent && \
		$(LOCAL_KAFKA) $(LOCAL_PG) "$(PY)" -m services.consent.rebuild $(ARGS)

# Records a person's erasure request (docs/erasure.md): nothing is sent to them after.
erase: infra-up
	@if [[ -z "$(SUBJECT)" || -z "$(REQUESTED_BY)" ]]; then \
		echo "usage: make erase SUBJECT=<phone or BSUID> REQUESTED_BY=<who asks> [REASON=<why>]" >&2; \
		exit 2; \
	fi
	@cd "$(ROOT)" && $(KAFKA_AS) consent && $(LOCAL_KAFKA) "$(PY)" -m services.consent.erasure_request \
		"$(SUBJECT)" --requested-by "$(REQUESTED_BY)" $(if $(REASON),--reason "$(REASON)")

# Rewraps every data key under ERASURE_ACTIVE_KEY, after adding a new master key to
# ERASURE_MASTER_KEYS (docs/erasure.md, section 4); then the old key can go.
rotate-keys: infra-up
	@cd "$(ROOT)" && source "$(LOCAL)/lib.sh" && load_local_secrets && \
		$(LOCAL_PG) "$(PY)" -m shared.erasure.rotate $(ARGS)

# Fault injection on a stack of its own (3 Kafka brokers on 19192/29192/31192,
# PostgreSQL on 55433, the services on 18081-18083, all under .local/chaos/), so it
# never touches the one above: ARGS="--minutes N [--seed S]" (10 minutes by default).
# Exit 1 when an invariant failed; see docs/reliability.md.
chaos: deps
	@cd "$(ROOT)" && "$(PY)" -m chaos $(ARGS)
