# vector-search: Ansible deployment of a hybrid search service.
#   make lab     bring the whole stack up in local systemd containers
#   make test    lint + pytest + every Molecule scenario (the CI command)
# Both install what they need on a fresh Debian 12+/Ubuntu 24.04 machine (as root).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NO_COLOR := 1
SCENARIO ?= common
REQS := requirements.txt $(wildcard requirements-dev.txt) $(wildcard app/pyproject.toml app/requirements.lock files/ollama-standin/pyproject.toml files/ollama-standin/requirements.txt)

.PHONY: help deps venv engine image lint syntax molecule pytest test lab clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

deps: ## Install host packages (python3-venv, docker.io, debootstrap, redis-server, the bench's documentation packages)
	@scripts/host-deps.sh

# The app's runtime dependencies go in first, exactly as the role deploys them
# (app/requirements.lock, hash-checked); the toolchain and the editable app then
# find them installed (tests/repo/test_app_lock.py checks the venv matches).
$(STAMP): $(REQS) | deps
	@test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q --require-hashes -r app/requirements.lock
	$(VENV)/bin/pip install -q -r requirements.txt $(if $(wildcard requirements-dev.txt),-r requirements-dev.txt)
	@touch $@

venv: $(STAMP) ## Create .venv with the pinned toolchain

engine: deps ## Ensure a running Docker engine
	@scripts/ensure-docker.sh

image: engine ## Build the Debian 13 systemd base image (only when its recipe changed)
	@scripts/build-base-image.sh

syntax: venv ## ansible-playbook --syntax-check of site.yml and every playbook
	@for p in site.yml playbooks/*.yml playbooks/lab/*.yml; do \
	  ansible-playbook -i inventories/lab "$$p" --syntax-check >/dev/null || { echo "syntax error in $$p"; exit 1; }; \
	done; echo "syntax-check: ok"

lint: venv syntax ## yamllint, ansible-lint (production profile), ruff
	yamllint --strict .
	ansible-lint --profile production
	ruff check .
	ruff format --check .

pytest: venv ## Python tests (app, stand-in, templates)
	pytest -q tests

molecule: venv image ## One Molecule scenario: make molecule SCENARIO=common
	molecule test -s $(SCENARIO)

test: venv image ## The whole test suite with a timing summary
	@scripts/test.sh

bench: venv ## Benchmarks into BENCHMARKS.md (<= 15 min on 2 cores; row (c) when `make lab` is up); bench-quick: ~2 min, never the lab
	python -m bench $(BENCH_ARGS)
bench-quick: venv ; python -m bench --quick $(BENCH_ARGS)
.PHONY: bench bench-quick

lab: venv image ## Bring the whole stack up in local containers and print how to reach it
	@scripts/lab.sh

clean: ## Remove the lab's containers and networks (found by label)
	@if [ -x $(VENV)/bin/ansible-playbook ]; then \
	  $(VENV)/bin/ansible-playbook -i inventories/lab playbooks/lab/destroy.yml; \
	else \
	  ids=$$(docker ps -aq --filter label=org.vector-search.lab-env=lab); [ -z "$$ids" ] || docker rm -f $$ids; \
	  nets=$$(docker network ls -q --filter label=org.vector-search.lab-env=lab); [ -z "$$nets" ] || docker network rm $$nets; \
	fi
