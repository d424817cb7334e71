# rangepool — the two commands a newcomer needs are `make demo` and `make test`.
# Every target installs what it needs, idempotently, so they work on a fresh machine.

CARGO ?= cargo
SHELL := /bin/bash
# Where cargo puts binaries (honours CARGO_TARGET_DIR like cargo does).
BIN_DIR := $(or $(CARGO_TARGET_DIR),target)/debug

.PHONY: all demo test setup fmt-check clippy unit doc-test plan-example bench bench-cni bench-controller crds fmt

all: test

## Shows which pod of the legacy-firewall example gets which address.
demo:
	$(CARGO) build --quiet --locked -p rangepool-controller -p rangepool-cni -p rangepool-demo
	$(BIN_DIR)/rangepool-demo --example config/examples/legacy-firewall --bin-dir $(BIN_DIR)

## Everything CI runs.
test: setup fmt-check clippy unit doc-test plan-example demo chart

## Installs the tools the tests drive (idempotent).
setup:
	@bash tests/tools/setup.sh

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) nextest run --workspace --locked --no-fail-fast

doc-test:
	$(CARGO) test --workspace --locked --doc

## The planner on the shipped example must flag the intended bad pods and exit non-zero.
plan-example:
	bash tests/plan-example.sh

## Allocation throughput of the pure core.
bench:
	$(CARGO) bench -p ipam --bench alloc

## ADD latency of the CNI plugin next to Debian's host-local plugin.
bench-cni: setup
	$(CARGO) bench -p rangepool-cni --bench add_latency

## Controller burst throughput next to the API write ceiling, and its memory on 150,000 pods.
bench-controller:
	$(CARGO) bench -p rangepool-controller --bench controller

## The Helm chart: lint, render, validate, refuse bad values, installer script, test-server install.
chart:
	bash tests/chart/check.sh

## Regenerates crds/ from the Rust types.
crds:
	$(CARGO) run --quiet -p api --bin crdgen

fmt:
	$(CARGO) fmt --all
