# rkeops.ipvs: every command a developer or CI needs. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
# Expensive things (virtual environment, VM images) live outside the checkout, keyed by their recipe.
CACHE ?= $(HOME)/.cache/rkeops-ipvs
REQ_HASH := $(shell cat requirements/test.txt requirements/constraints.txt | sha256sum | cut -c1-12)
VENV ?= $(CACHE)/venv-$(REQ_HASH)
BIN := $(VENV)/bin
BUILD := $(CURDIR)/build
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(BUILD)/collections
export ANSIBLE_NOCOLOR := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup test lint sanity units bench build demo collection clean

help:  ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements/test.txt requirements/constraints.txt
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet -r requirements/test.txt -c requirements/constraints.txt
	touch $@

setup: $(VENV)/.installed collection  ## Create the virtual environment with the pinned tools

collection:
	mkdir -p $(BUILD)/collections/ansible_collections/rkeops
	ln -sfn $(CURDIR) $(BUILD)/collections/ansible_collections/rkeops/ipvs

test: setup  ## Run every test: lint, ansible-test sanity, unit tests
	$(MAKE) --no-print-directory lint sanity units

lint: setup  ## yamllint, ruff (check and format), ansible-lint
	yamllint --strict .
	ruff check .
	ruff format --check .
	ansible-lint

sanity: setup  ## ansible-test sanity on a copy of the collection, in local virtual environments
	rm -rf $(BUILD)/sanity && mkdir -p $(BUILD)/sanity/ansible_collections/rkeops/ipvs
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} $(BUILD)/sanity/ansible_collections/rkeops/ipvs/
	cd $(BUILD)/sanity/ansible_collections/rkeops/ipvs && ansible-test sanity --venv --python 3.11 --color no

units: setup  ## Unit and property tests (pytest)
	pytest tests/unit

bench: setup  ## Benchmarks: patch time against a ruamel.yaml round trip
	python bench/bench_cluster_kubeproxy.py

build: setup  ## Build the collection tarball into build/
	ansible-galaxy collection build --force --output-path $(BUILD) .

demo: setup  ## The main job on a local lab (see README)
	python tests/demo_patch.py

clean:  ## Remove build output (the cache in ~/.cache/rkeops-ipvs stays)
	rm -rf $(BUILD) tests/output
