# One entry point for set-up, the local cluster, lint and tests. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
# ansible-core 2.20+ needs Python 3.12 or newer.
PYTHON ?= $(shell bash hack/find-python.sh)
PYTEST_ARGS ?=
CLUSTER_STATE ?= $(CURDIR)/.cluster
export PATH := $(BIN):$(PATH)
export PYTHONPATH := $(CURDIR)/tests

.PHONY: help venv binaries bench-binaries lint sanity unit integration floor conformance molecule realpods cluster-tiers bench test cluster-up cluster-down demo build ee-context clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

venv: $(VENV)/.installed ## Python 3.12 venv with the pinned dev requirements, and the collection on the collections path

$(VENV)/.installed: requirements-dev.txt
	@test -n "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	mkdir -p .collections/ansible_collections/meshops
	ln -sfn ../../.. .collections/ansible_collections/meshops/istio
	touch $@

binaries: ## build the local cluster's Go binaries into the versioned cache (only when missing)
	bash hack/build-binaries.sh

bench-binaries: ## the benchmark's kubectl and helm, and Istio's charts (only when missing; never part of make test)
	bash hack/build-bench-binaries.sh

lint: venv ## ruff, yamllint, ansible-lint (production profile)
	ruff check .
	ruff format --check .
	yamllint --strict .
	ansible-lint --profile production --offline

sanity: venv ## ansible-test sanity in a temporary ansible_collections/meshops/istio tree
	bash hack/sanity.sh

unit: venv ## pure-logic tests, no cluster
	pytest tests/unit $(PYTEST_ARGS)

# Each test file starts its own local clusters, so files run in parallel (INTEGRATION_WORKERS=0: one at a time).
INTEGRATION_WORKERS ?= 2

integration: venv binaries ## modules and playbooks against local clusters (or MESHOPS_TEST_KUBECONFIG)
	pytest tests/integration -n $(INTEGRATION_WORKERS) --dist loadfile --durations=15 $(PYTEST_ARGS)

floor: venv binaries ## the oldest supported pair (ansible-core 2.17, Python 3.10): unit tests and the AWX-credential playbooks
	bash hack/floor.sh $(PYTEST_ARGS)

conformance: venv binaries ## real istiods (pilot-discovery) against what the collection installs; Go builds hack/xdsclient once
	pytest tests/conformance $(PYTEST_ARGS)

# Inside the pod network (hack/pod-network.sh: a user + network namespace owning the pod and service CIDRs) the API
# server calls the real istiods at their pods' IPs, and echo pods run pilot-agent and Istio's echo server: real
# injection and validation, real workload certificates and mTLS, and molecule's shared scenario with its gateways.
realpods: venv binaries ## real pods: webhooks called by the API server, tenants' workloads over mTLS, molecule shared
	bash hack/build-xdsclient.sh >/dev/null  # nothing inside the pod network can download Go modules
	hack/pod-network.sh pytest tests/realpods $(PYTEST_ARGS)
	hack/pod-network.sh bash hack/molecule.sh shared

MOLECULE_SCENARIOS ?= $(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

molecule: venv binaries ## molecule scenarios (converge, idempotence, verify), each on its own local cluster
	bash hack/molecule.sh $(MOLECULE_SCENARIOS)

bench: venv binaries bench-binaries ## benchmarks vs kubernetes.core.k8s, kubectl, Helm and istioctl (BENCH_ARGS=--quick)
	python -m bench $(BENCH_ARGS)

# The shared scenario's gateways need an istiod to answer the sidecar injector: it runs in the realpods tier.
# The cluster tiers are mostly CPU on the local clusters, with waits in between: integration (two workers) runs
# beside the other cluster tiers, which run one after another; each tier's output is printed when it ends.
test: lint sanity unit ## everything CI runs
	$(MAKE) --no-print-directory -j2 --output-sync=target integration cluster-tiers

cluster-tiers: MOLECULE_SCENARIOS = dedicated upgrade multicluster
cluster-tiers: venv binaries ## floor, conformance, molecule and real pods, one after another
	$(MAKE) --no-print-directory floor conformance molecule realpods MOLECULE_SCENARIOS="$(MOLECULE_SCENARIOS)"

cluster-up: venv binaries ## start a local cluster that keeps running; prints its kubeconfig
	python -m localcluster up --state-dir $(CLUSTER_STATE) --clusters $${CLUSTERS:-1}

cluster-down: venv ## stop the local clusters started by cluster-up
	python -m localcluster down --state-dir $(CLUSTER_STATE)

demo: venv binaries ## start a local cluster and run playbooks/multitenant.yml on it with the example inventory examples/seed-002
	@echo "demo: [1/2] a local cluster (etcd, kube-apiserver, controllers, kwok nodes) in $(CLUSTER_STATE)"
	python -m localcluster status --state-dir $(CLUSTER_STATE) >/dev/null 2>&1 || $(MAKE) cluster-up
	@echo "demo: [2/2] playbooks/multitenant.yml with examples/seed-002: seed 002's tenants, a control plane each"
	K8S_AUTH_KUBECONFIG=$(CLUSTER_STATE)/c1/kubeconfig ansible-playbook -i examples/seed-002 playbooks/multitenant.yml \
		-e istioctl_path=$$(bash hack/build-binaries.sh)/istioctl
	@echo "The cluster keeps running: KUBECONFIG=$(CLUSTER_STATE)/c1/kubeconfig; stop it with make cluster-down"

build: venv ## build the collection tarball (and the galaxy requirements the execution environment installs it with)
	bash hack/build.sh

ee-context: build ## the execution environment's build context in context/ (ansible-builder create)
	ansible-builder create --file execution-environment.yml --context context --output-filename Containerfile

clean: cluster-down ## stop clusters, remove the venv and build outputs (the Go binary cache stays)
	rm -rf $(VENV) .venv-floor .collections .pytest_cache .ruff_cache meshops-istio-*.tar.gz meshops-istio-*.requirements.yml context
