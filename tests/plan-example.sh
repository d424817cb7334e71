#!/usr/bin/env bash
# The offline planner on the shipped legacy-firewall example: it must print a row for every pod,
# give the pinned pods addresses from their pools, explain the intended failures, and exit
# non-zero because of them (so admins can gate changes in CI).
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked -p kubectl-ipam || exit 1
out=$("${CARGO_TARGET_DIR:-target}/debug/kubectl-ipam" plan -f config/examples/legacy-firewall 2>&1)
status=$?
echo "$out"
fail() { echo "plan-example: FAILED: $*" >&2; exit 1; }
[ "$status" -ne 0 ] || fail "expected a non-zero exit status because of the pods that get no address"
[ "$status" -ne 2 ] || fail "exit status 2 means the planner could not read the example"
[ "$status" -eq 1 ] || fail "expected exit status 1, got $status"
# Rows: POD NAMESPACE NODE POOL ADDRESS, or POD NAMESPACE NODE "no address: REASON" and the
# message on the indented lines below.
grep -Eq '^batch-1 +payments +node-1 +payments +10\.244\.8\.[0-9]+$' <<<"$out" || fail "payments pod not from the payments range"
grep -Eq '^reconciler +payments +node-2 +partners +10\.244\.9\.[0-9]+$' <<<"$out" || fail "the pod's own annotation did not win over its namespace's"
grep -Eq '^frontend-1 +web +node-1 +general +10\.244\.(1(2[89]|[3-9][0-9])|2[0-9][0-9])\.[0-9]+$' <<<"$out" || fail "the unpinned pod is not from the general range"
grep -Eq '^unknown-pool +web +node-2 +no address: UnknownPool$' <<<"$out" || fail "no row explains the pod naming an unknown pool"
grep -Eq 'names pool "payment", which' <<<"$out" || fail "the unknown-pool message does not name the pool"
grep -Eq '^sneaky +web +node-2 +no address: NamespaceSelectorMismatch$' <<<"$out" || fail "the pod naming a pool its namespace may not use was not refused"
grep -Eq '^dmz-probe +web +node-1 +no address: PoolNotAllocatable$' <<<"$out" || fail "the pod naming the pool outside the pod CIDR was not refused"
grep -Eq '^legacy-dmz +192\.168\.50\.0/24 .*no \(OutsidePodCIDR\)' <<<"$out" || fail "the pool outside the pod CIDR is not reported"
echo "plan-example: ok"
