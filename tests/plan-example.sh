#!/usr/bin/env bash
# The offline planner on the shipped legacy-firewall example: it must print a row for every pod,
# give the pinned pods addresses from their pools, explain the intended failures, and exit
# non-zero because of them (so admins can gate changes in CI).
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --locked -p kubectl-ipam || exit 1
out=$(./target/debug/kubectl-ipam plan -f config/examples/legacy-firewall 2>&1)
status=$?
echo "$out"
fail() { echo "plan-example: FAILED: $*" >&2; exit 1; }
[ "$status" -ne 0 ] || fail "expected a non-zero exit status because of the pod naming an unknown pool"
[ "$status" -ne 2 ] || fail "exit status 2 means the planner could not read the example"
grep -Eq 'batch-1 +payments +.* 10\.244\.8\.' <<<"$out" || fail "payments pod not from the payments range"
grep -Eq 'unknown-pool' <<<"$out" || fail "no row explains the pod naming an unknown pool"
grep -Eq 'OutsidePodCIDR' <<<"$out" || fail "the pool outside the pod CIDR is not reported"
echo "plan-example: ok"
