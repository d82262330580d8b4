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
# Plain logs: no terminal colour codes from Ansible, Molecule, ansible-lint (NO_COLOR) or pytest (PY_COLORS).
export ANSIBLE_NOCOLOR := 1
export NO_COLOR := 1
export PY_COLORS := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: bench-playbooks demo-patch help setup venv lab-deps docker-up lab-images test lint sanity units setup-test molecule e2e bench bench-prereqs bench-prereqs-trees build package demo collection clean
LAB := $(PYTHON) tests/lab/lab.py
# The Molecule scenarios `make test` runs (molecule/<name>), in this order.
SCENARIOS ?= default missing-ipvs docker

help:  ## List the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# Two kinds of target: an operator's (build, package, demo, demo-patch) installs only what it uses; a developer's
# installs what it runs: lint the pinned Python tools, the unit tests those and qemu-img (lab-deps-vm), the other
# tests and the benchmarks `make setup`, everything the lab and the tests call.

# pip -qq: errors only (a machine's pip configuration may name local indexes that do not exist, and pip warns for each).
# The venv's directory name holds the hash of its recipe, so the recipe files are not prerequisites: their mtime is
# that of the checkout, and a newer clone would otherwise rebuild (--clear) a venv another job is using.
# Python's venv module is the one host package it needs (Debian's python3-venv), checked only when the venv is built.
$(VENV)/.installed:
	@PYTHON=$(PYTHON) bash tests/lab/host-deps.sh python
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --quiet -r requirements/test.txt -c requirements/constraints.txt
	touch $@

venv: $(VENV)/.installed  ## The pinned Python tools in a virtual environment, and nothing else (no lab tools)

setup: lab-deps venv collection  ## Install everything a developer needs: the host tools of the lab and tests (apt), the pinned Python tools

# The host's tools, checked one by one (tests/lab/host-deps.sh lists them by group, with their Debian packages);
# apt-get installs only the missing ones (root or sudo). lab-deps takes every group, lab-deps-<group> one.
LAB_DEPS_GROUPS := vm docker vagrant
.PHONY: $(addprefix lab-deps-,$(LAB_DEPS_GROUPS))
lab-deps:  ## Install the host tools the lab and the tests need and are missing (QEMU, mmdebstrap, docker.io, libvirt, Vagrant...)
	@PYTHON=$(PYTHON) bash tests/lab/host-deps.sh

$(addprefix lab-deps-,$(LAB_DEPS_GROUPS)):
	@bash tests/lab/host-deps.sh $(@:lab-deps-%=%)

docker-up: lab-deps-docker  ## Start the Docker engine if it is not running (the Docker scenario needs it)
	@bash tests/lab/docker-up.sh $(CACHE)/dockerd.log

# One target per image, so that a target builds only the images it boots (make demo: bookworm's VM image).
LAB_SUITES := bullseye bookworm trixie
.PHONY: $(addprefix lab-image-,$(LAB_SUITES)) lab-docker-image
$(addprefix lab-image-,$(LAB_SUITES)): lab-deps-vm
	$(LAB) image $(@:lab-image-%=%)

lab-docker-image: lab-deps-vm docker-up  ## Build (or reuse) the Docker scenario's bookworm image
	$(LAB) docker-image bookworm

lab-images: $(addprefix lab-image-,$(LAB_SUITES)) lab-docker-image  ## Build (or reuse from the cache) every lab VM image (lab-image-<suite>: one) and the Docker image

# Left alone when it is right already: make test's lanes each make it at once.
collection:
	mkdir -p $(BUILD)/collections/ansible_collections/rkeops
	test "$$(readlink $(BUILD)/collections/ansible_collections/rkeops/ipvs)" = "$(CURDIR)" || ln -sfn $(CURDIR) $(BUILD)/collections/ansible_collections/rkeops/ipvs

lint: venv collection  ## yamllint, ruff (check and format), ansible-lint (the pinned Python tools only)
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
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test ! -e "$$1" || cp --parents "$$1" $(SANITY)/' _ {}
	cd $(SANITY) && ansible-test sanity --venv --python 3.11 --color no

# qemu-img (the vm group of lab-deps) is the one host tool a unit test runs: tests/unit/lab/test_vagrant_box.py.
units: venv collection lab-deps-vm  ## Unit and property tests (pytest)
	pytest tests/unit

# The oldest and the newest ansible-core the collection supports (meta/runtime.yml), each with the unit tests and
# ansible-test sanity, in its own pinned virtual environment keyed by its recipe like the main one:
# requirements/oldest.txt (ansible-core 2.16 on python3, 3.11 here) and requirements/newest.txt (ansible-core 2.21,
# which needs Python >= 3.12). Not part of `make setup`: the targets below build them when they are missing.
.PHONY: units-oldest units-newest sanity-oldest sanity-newest
PYENV_VERSIONS ?= $(HOME)/.pyenv/versions
PYTHON_OLDEST ?= $(PYTHON)
PYTHON_NEWEST ?= $(lastword $(sort $(wildcard $(PYENV_VERSIONS)/3.13.*/bin/python3.13)))
VENV_OLDEST := $(CACHE)/venv-oldest-$(shell cat requirements/oldest.txt requirements/oldest-constraints.txt | sha256sum | cut -c1-12)
VENV_NEWEST := $(CACHE)/venv-newest-$(shell cat requirements/newest.txt requirements/newest-constraints.txt | sha256sum | cut -c1-12)
# The Pythons each core's ansible-test compile- and import-checks the modules with: every version that core
# supports on managed nodes and that tests/config.yml's python_requires (>=3.6) allows, and that this machine has
# (2.21 also knows 3.14; pyenv here stops at 3.13). ansible-test finds them as python3.X on PATH:
# tests/sanity/link-pythons.sh links the pyenv builds into $(CACHE)/pythons-<name>, which goes first on PATH
# (pyenv's shims would run the global version instead), and fails naming any version missing.
SANITY_OLDEST_PYTHONS := 3.6 3.7 3.8 3.9 3.10 3.11 3.12
SANITY_NEWEST_PYTHONS := 3.9 3.10 3.11 3.12 3.13
# Each core's ansible-test bootstraps pip with a get-pip.py of its own pip version (python_requirements.py,
# get_venv_packages): 2.16 uses pip 23.1.2, and 21.3.1 for Python 3.6; 2.21 uses pip 25.2. The stand-in takes each
# place, as it does for `make sanity` (2.19, $(GET_PIP)).
GET_PIP_OLDEST := $(foreach version,23_1_2 21_3_1,$(dir $(GET_PIP))get_pip_$(version).py)
GET_PIP_NEWEST := $(dir $(GET_PIP))get_pip_25_2.py

$(VENV_OLDEST)/.installed:
	$(PYTHON_OLDEST) -m venv --clear $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/pip install --quiet --quiet -r requirements/oldest.txt -c requirements/oldest-constraints.txt
	touch $@

$(VENV_NEWEST)/.installed:
	@test -x "$(PYTHON_NEWEST)" || { echo "ansible-core 2.21 needs Python >= 3.12: none found under $(PYENV_VERSIONS); set PYTHON_NEWEST" >&2; exit 1; }
	$(PYTHON_NEWEST) -m venv --clear $(VENV_NEWEST)
	$(VENV_NEWEST)/bin/pip install --quiet --quiet -r requirements/newest.txt -c requirements/newest-constraints.txt
	touch $@

units-oldest: $(VENV_OLDEST)/.installed collection  ## Unit and property tests on the oldest ansible-core supported (2.16, Python 3.11)
	PATH=$(VENV_OLDEST)/bin:$$PATH pytest -p no:cacheprovider tests/unit

units-newest: $(VENV_NEWEST)/.installed collection  ## Unit and property tests on the newest ansible-core (2.21, Python 3.13)
	PATH=$(VENV_NEWEST)/bin:$$PATH pytest -p no:cacheprovider tests/unit

# $(1): the name (oldest, newest), $(2): the virtual environment, $(3): the controller's Python, $(4): the target
# Pythons, $(5): the get-pip.py paths. As `make sanity` does, on a copy outside any other git tree.
define sanity_on
	mkdir -p $(dir $(GET_PIP)) && for path in $(5); do cp tests/sanity/get_pip_stand_in.py $$path; done
	bash tests/sanity/link-pythons.sh $(CACHE)/pythons-$(1) $(PYENV_VERSIONS) $(sort $(3) $(4))
	rm -rf $(CACHE)/sanity-$(1) && mkdir -p $(CACHE)/sanity-$(1)/ansible_collections/rkeops/ipvs
	git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test ! -e "$$1" || cp --parents "$$1" $(CACHE)/sanity-$(1)/ansible_collections/rkeops/ipvs/' _ {}
	cd $(CACHE)/sanity-$(1)/ansible_collections/rkeops/ipvs && PATH=$(CACHE)/pythons-$(1):$(2)/bin:$$PATH ansible-test sanity --color no \
	  --controller origin:python=venv/$(3) $(foreach version,$(4),--target-python $(version))
endef

sanity-oldest: $(VENV_OLDEST)/.installed  ## ansible-test sanity of ansible-core 2.16: controller Python 3.11, modules on Python 3.6 to 3.12
	$(call sanity_on,oldest,$(VENV_OLDEST),3.11,$(SANITY_OLDEST_PYTHONS),$(GET_PIP_OLDEST))

sanity-newest: $(VENV_NEWEST)/.installed  ## ansible-test sanity of ansible-core 2.21: controller Python 3.13, modules on Python 3.9 to 3.13
	$(call sanity_on,newest,$(VENV_NEWEST),3.13,$(SANITY_NEWEST_PYTHONS),$(GET_PIP_NEWEST))

# `make test` runs three lanes side by side (tests/lanes.py says why): the targets without VMs, the end-to-end tests
# on their 2-VM cluster, and the other VM targets one after the other. Most of the run waits on software-emulated VMs
# and on kube-proxy, which leave part of the machine idle; one after the other, the targets overrun the budget.
# What the lanes share is prepared first. More lanes would be slower: every emulated VM costs CPU even while it
# waits. The end-to-end lane is the longest path, so it runs at niceness 0 and the others niced (host 10, vms 5).
TEST_HOST := lint sanity sanity-oldest sanity-newest units units-oldest units-newest package setup-test
TEST_E2E := e2e
TEST_VMS := vm-leftovers oldest-stack molecule molecule-vagrant
.PHONY: test-serial
test: setup lab-images libvirt-up $(VENV_OLDEST)/.installed $(VENV_NEWEST)/.installed  ## Run every test: lint, ansible-test sanity, unit tests, package check, Molecule scenarios, end to end
	$(PYTHON) tests/lanes.py "host:10=$(TEST_HOST)" "e2e=$(TEST_E2E)" "vms:5=$(TEST_VMS)"

test-serial: setup  ## The same targets as `make test`, one after the other (easier to read; about 78 minutes)
	$(MAKE) --no-print-directory $(TEST_HOST) $(TEST_E2E) $(TEST_VMS)

# The oldest stack really run: ansible-core 2.16 (the oldest toolset's virtual environment) runs the
# prereqs role and kube_proxy_info against a bookworm lab VM whose Ansible interpreter is this machine's pyenv build
# of Python 3.6 (copied in), with the kube-proxy stand-in deployed by the rke stand-in. One VM.
.PHONY: oldest-stack
oldest-stack: $(VENV_OLDEST)/.installed collection lab-images  ## ansible-core 2.16 runs the prereqs role and kube_proxy_info on a lab VM with Python 3.6
	PATH=$(VENV_OLDEST)/bin:$$PATH pytest -p no:cacheprovider -v -s tests/vm/test_oldest_stack.py

setup-test: setup docker-up  ## The set-up from nothing, in a pristine Debian 12 container: make build installs no lab tool, make setup every one
	pytest -p no:cacheprovider -v tests/setup

# Molecule 26 writes its "Executed: Failed" line in red whatever NO_COLOR says (molecule/logger.py, the failure
# path): the sed keeps CI logs plain (pipefail keeps molecule's exit status).
molecule: setup lab-images  ## The Molecule scenarios on the VM lab and Docker (SCENARIOS=... to pick)
	for scenario in $(SCENARIOS); do molecule test --scenario-name $$scenario 2>&1 | sed 's/\x1b\[[0-9;]*m//g' || exit 1; done

# The Vagrant scenario (molecule/vagrant): Vagrant with vagrant-libvirt, on a box built from the lab's
# bookworm image (tests/lab/vagrant_box.py: Vagrant's box catalogue is out of reach), under software emulation,
# with QEMU's user network as the VM's only network. A contributor's own box and provider: README "Testing with Vagrant".
.PHONY: libvirt-up vagrant-box molecule-vagrant bench-vagrant
libvirt-up: lab-deps-vagrant  ## Start libvirtd and virtlogd if they are not running (the Vagrant scenario needs them)
	@bash tests/lab/libvirt-up.sh $(CACHE)/libvirt

vagrant-box: setup libvirt-up  ## Build (or reuse) the lab's Vagrant box and add it to Vagrant
	$(PYTHON) tests/lab/vagrant_box.py add bookworm

molecule-vagrant: setup libvirt-up  ## The Vagrant scenario: vagrant-libvirt, the lab's box, QEMU's user network only
	box=$$($(PYTHON) tests/lab/vagrant_box.py add bookworm); \
	  RKEOPS_VAGRANT_BOX=$$box RKEOPS_VAGRANT_PROVIDER=libvirt RKEOPS_VAGRANT_NETWORK=usernet RKEOPS_VAGRANT_LIBVIRT_DRIVER=qemu \
	  molecule test --scenario-name vagrant 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'

bench-vagrant: setup libvirt-up  ## Benchmark: a Vagrant scenario VM against a lab VM booted at the same time (ratio)
	python bench/bench_vagrant_boot.py

e2e: setup lab-images  ## End to end: enable, verify, disable on a 2-VM lab cluster (rke and kube-proxy stand-ins)
	pytest -p no:cacheprovider -v -s --durations=10 tests/e2e

# kube_proxy_leftovers on real kernels: public dumps of kube-proxy nodes restored in one bookworm VM,
# in iptables-legacy and iptables-nft, and kube-proxy's IPVS state beside a keepalived-like virtual server.
.PHONY: vm-leftovers bench-leftovers
vm-leftovers: setup lab-images  ## kube_proxy_leftovers on public iptables dumps restored in a lab VM (both backends)
	pytest -p no:cacheprovider -v tests/vm/test_leftovers.py

bench-leftovers: setup lab-images  ## Benchmark: kube_proxy_leftovers against an iptables-save | iptables-restore round trip (1 VM)
	python bench/bench_leftovers.py

bench: setup  ## Benchmarks: patch time against a ruamel.yaml round trip
	python bench/bench_cluster_kubeproxy.py

bench-playbooks: setup lab-images  ## Benchmark: enable and verify wall time and SSH round trips on the 2-VM lab
	python bench/bench_playbooks.py

bench-prereqs: setup lab-images  ## Benchmark: the prereqs role against the manual procedure on 1 and 3 lab VMs
	python bench/bench_prereqs.py

# A=<git rev> (required), B=<git rev> (HEAD by default): the committed trees, alternated on one VM.
bench-prereqs-trees: setup lab-images  ## Benchmark: the prereqs role's converge from two git revisions (A=, B=) in one run
	@test -n "$(A)" || { echo "usage: make bench-prereqs-trees A=<git rev> [B=<git rev>]" >&2; exit 2; }
	python bench/bench_prereqs_trees.py $(A) $(or $(B),HEAD)

# ansible-galaxy alone: the pinned Python tools, no lab tool and no collection link.
build: venv  ## Build the collection tarball into build/ (installs nothing but the pinned Python tools)
	ansible-galaxy collection build --force --output-path $(BUILD) .

# The ipvs role's entry points (roles/ipvs/meta/argument_specs.yml), in the order they run.
IPVS_ENTRY_POINTS := preflight prepare switch repair leftovers verify cleanup
package: build  ## Install the built tarball (no Galaxy: --no-deps) and render the modules' and the role's documentation from it; install from the git checkout too
	rm -rf $(BUILD)/installed
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-galaxy collection install --no-deps --force -p $(BUILD)/installed $(BUILD)/rkeops-ipvs-$$(sed -n 's/^version: //p' galaxy.yml).tar.gz
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc -t module rkeops.ipvs.cluster_kubeproxy | grep -q 'services.kubeproxy'
	for module in cluster_kubeproxy kernel_modules ipvs_node_info kube_proxy_info kube_proxy_leftovers rke_cluster_info; do \
	  ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc --list rkeops.ipvs | grep "^rkeops.ipvs.$$module " || exit 1; done
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc -t role rkeops.ipvs.prereqs | grep -q 'prereqs_ipvs_scheduler'
	entries=$$(ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc -t role rkeops.ipvs.ipvs | sed -n 's/^ENTRY POINT: \*\([a-z_]*\)\*.*/\1/p' | xargs); \
	  test "$$entries" = "$(IPVS_ENTRY_POINTS)" || { echo "ipvs role entry points: '$$entries', expected '$(IPVS_ENTRY_POINTS)' in this order" >&2; exit 1; }
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc -t inventory rkeops.ipvs.rke_cluster | grep -q 'cluster_yml'
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed ansible-doc -t filter rkeops.ipvs.rke_log_summary | grep -q 'fatal'
	for playbook in enable verify disable; do \
	  test -f $(BUILD)/installed/ansible_collections/rkeops/ipvs/playbooks/$$playbook.yml || exit 1; done
	rm -rf $(BUILD)/installed-git
	ansible-galaxy collection install --no-deps -p $(BUILD)/installed-git git+file://$(CURDIR)/.git
	ANSIBLE_COLLECTIONS_PATH=$(BUILD)/installed-git ansible-doc -t module rkeops.ipvs.cluster_kubeproxy | grep -q 'services.kubeproxy'

# The demo boots bookworm VMs only (tests/lab/labcluster.py): it needs that image, the tools that build and boot
# it, and the Python tools; the nodes' Docker runs inside the VMs, so no Docker engine here.
demo: venv collection lab-image-bookworm  ## The main job on a local lab: rkeops.ipvs.enable end to end on 2 VMs (rke and kube-proxy stand-ins)
	python tests/lab/demo_enable.py

DEMO_PATCH_PLAYBOOK := tests/demo/patch_cluster_yml.yml
demo-patch: venv collection  ## A smaller demo: cluster_kubeproxy on a real third-party cluster.yml (diff, idempotence, undo)
	ansible-playbook -i localhost, $(DEMO_PATCH_PLAYBOOK)

clean:  ## Remove build output (the cache in ~/.cache/rkeops-ipvs stays)
	rm -rf $(BUILD) tests/output
