# rangepool — the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it needs, idempotently, so they work on a fresh machine.

CARGO ?= cargo
SHELL := /bin/bash
# Where cargo puts binaries (honours CARGO_TARGET_DIR like cargo does).
BIN_DIR := $(or $(CARGO_TARGET_DIR),target)/debug

# The Kubernetes the tests, the demo and the benchmarks run on: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler built from the Go modules in tests/k8s/ into a cache
# outside the repo (tests/k8s/build.sh; minutes the first time, then reused).
K8S_VERSION ?= $(shell cat tests/k8s/DEFAULT)
# The oldest Kubernetes we support: make test runs every integration test on it too, so that the
# CRDs' CEL rules and our API calls keep working there.
K8S_OLDEST := 1.34.0
# Exports the binaries' folder for one version to the command that follows.
with_k8s = RANGEPOOL_K8S_VERSION=$(1) RANGEPOOL_K8S_BIN="$$(bash tests/k8s/build.sh $(1))"

.PHONY: all demo test setup control-plane fmt-check clippy unit unit-oldest doc-test plan-example fuzz bench bench-cni bench-controller crds fmt image

all: test

## Shows which pod of the legacy-firewall example gets which address.
demo:
	@echo "== make demo: building the controller, the CNI plugin and the demo (minutes the first time)"
	$(CARGO) build --quiet --locked -p rangepool-controller -p rangepool-cni -p rangepool-demo
	@echo "== make demo: the Kubernetes $(K8S_VERSION) control plane (built from Go modules the first time, minutes; then reused)"
	$(call with_k8s,$(K8S_VERSION)) $(BIN_DIR)/rangepool-demo --example config/examples/legacy-firewall --bin-dir $(BIN_DIR)

## Everything CI runs.
test: setup fmt-check clippy unit unit-oldest doc-test plan-example demo chart

## The chart's two images as OCI image archives in target/images/ (controller.oci.tar,
## cni-installer.oci.tar), built without a container engine or a base image (docs/install.md).
image:
	@bash tests/tools/install-node-packages.sh busybox-static
	bash images/build.sh

## Builds (or reuses) the control planes the tests run on.
control-plane:
	bash tests/k8s/build.sh $(K8S_VERSION) >/dev/null
	bash tests/k8s/build.sh $(K8S_OLDEST) >/dev/null

## Installs the tools the tests drive and builds the control planes (idempotent).
setup:
	@bash tests/tools/setup.sh
	@$(MAKE) --no-print-directory control-plane

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Unit, property and integration tests; the integration tests on a real control plane.
unit:
	$(call with_k8s,$(K8S_VERSION)) $(CARGO) nextest run --workspace --locked --no-fail-fast

## The integration tests again, on the oldest Kubernetes we support.
unit-oldest:
	$(call with_k8s,$(K8S_OLDEST)) $(CARGO) nextest run --workspace --locked --no-fail-fast -E 'kind(test)'

doc-test:
	$(CARGO) test --workspace --locked --doc

## The planner on the shipped example must flag the intended bad pods and exit non-zero.
plan-example:
	bash tests/plan-example.sh

## The fuzz tests of what an attacker or a careless admin controls (the CNI plugin's environment,
## stdin and kubeconfig; the planner's manifests), with FUZZ_CASES cases each instead of the few
## hundred `make unit` runs. Not part of `make test`.
FUZZ_CASES ?= 5000
fuzz:
	@echo "== make fuzz: $(FUZZ_CASES) cases each (the CNI plugin's binary runs for an eighth of them)"
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --locked -p rangepool-cni --test fuzz
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --locked -p kubectl-ipam --test fuzz

## Allocation throughput of the pure core.
bench:
	$(CARGO) bench -p ipam --bench alloc

## ADD latency of the CNI plugin next to Debian's host-local plugin, on the real API server.
bench-cni: setup
	$(call with_k8s,$(K8S_VERSION)) $(CARGO) bench -p rangepool-cni --bench add_latency

## Controller burst throughput next to a plain client creating and patching as many pods, and
## its memory on 150,000 pods, on the real API server.
bench-controller:
	$(call with_k8s,$(K8S_VERSION)) $(CARGO) bench -p rangepool-controller --bench controller

## The Helm chart: lint, render, validate, refuse bad values, installer script, and install /
## upgrade / uninstall on the real API server (both versions).
chart:
	$(call with_k8s,$(K8S_VERSION)) bash tests/chart/check.sh
	$(call with_k8s,$(K8S_OLDEST)) CHART_INSTALL_ONLY=1 bash tests/chart/check.sh

## Regenerates crds/ from the Rust types, and the chart's copy of them.
crds:
	$(CARGO) run --quiet -p api --bin crdgen
	cp crds/*.yaml charts/rangepool/crds/

fmt:
	$(CARGO) fmt --all
