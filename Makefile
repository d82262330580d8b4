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

.PHONY: help setup test lint sanity units bench build package demo collection clean

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

test: setup  ## Run every test: lint, ansible-test sanity, unit tests, package check
	$(MAKE) --no-print-directory lint sanity units package

lint: setup  ## yamllint, ruff (check and format), ansible-lint
	yamllint --strict .
	ruff check .
	ruff format --check .
	ansible-lint
	antsibull-changelog lint

# ansible-test needs the collection at .../ansible_collections/rkeops/ipvs and outside any other git tree.
SANITY := $(CACHE)/sanity/ansible_collections/rkeops/ipvs
# ansible-test (2.19) bootstraps pip in its virtual environments with a downloaded get-pip.py that the lab
# cannot reach; tests/sanity/get_pip_stand_in.py takes its place in ansible-test's cache.
GET_PIP := $(HOME)/.ansible/test/cache/get_pip_24_2.py
sanity: setup  ## ansible-test sanity on a copy of the collection, in local virtual environments (no Docker)
	mkdir -p $(dir $(GET_PIP)) && cp tests/sanity/get_pip_stand_in.py $(GET_PIP)
	rm -rf $(SANITY) && mkdir -p $(SANITY)
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} $(SANITY)/
	cd $(SANITY) && ansible-test sanity --venv --python 3.11 --color no

units: setup  ## Unit and property tests (pytest)
	pytest tests/unit

bench: setup  ## Benchmarks: patch time against a ruamel.yaml round trip
	python bench/bench_cluster_kubeproxy.py

build: setup  ## Build the collection tarball into build/
	ansible-galaxy collection build --force --output-path $(BUILD) .

package: build  ## Install the built tarball (no Galaxy: --no-deps) and render the module's documentation from it
	rm -rf $(BUILD)/installed
	ansible-galaxy collection install --no-deps --force -p $(BUILD)/installed $(BUILD)/rkeops-ipvs-$$(sed -n 's/^version: //p' galaxy.yml).tar.gz
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc -t module rkeops.ipvs.cluster_kubeproxy | grep -q 'services.kubeproxy'
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc --list rkeops.ipvs | grep '^rkeops.ipvs.cluster_kubeproxy'

demo: setup  ## The main job on a local lab (see README)
	ansible-playbook -i localhost, tests/demo/patch_cluster_yml.yml

clean:  ## Remove build output (the cache in ~/.cache/rkeops-ipvs stays)
	rm -rf $(BUILD) tests/output
