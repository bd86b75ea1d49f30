#!/bin/sh
# The fault-injection runs of `make test` (docs/testing.md): the suites of
# build/fault (`make VARIANT=fault fault-tests`) with the runtime's own
# system calls and allocations failing at random, on io_uring and on epoll.
#
#   sh tests/fault.sh [TREE]       (TREE: build/fault)
#
# For each full seed, the suites of the tree: those written for the normal
# build (queue, stress, net, server, stream) under the transparent sites
# (WEFT_FAULT=transparent: interrupted and busy io_uring_enter and
# epoll_wait, a full SQ, eventfd and futex EINTR), which they must not
# notice; test_fault under its own sites, with its conservation checks.
# Then test_fault alone with more seeds at a higher rate.  Each run's label
# carries its seed and rate, and the first fault drawn prints the seed:
# replay with WEFT_FAULT_SEED=N [WEFT_FAULT_RATE=R] [WEFT_BACKEND=epoll]
# [WEFT_FAULT=transparent] TREE/tests/test_X NAME.  Ends with
# "N passed, N failed, N skipped"; exit status 0 only if nothing failed.
#
# About 45 s on two cores, a third of it test_stress.
#
# Environment:
#   WEFT_FAULT_SEEDS        full runs' seeds ("1")
#   WEFT_FAULT_RATE         their rate per call (0.05)
#   WEFT_FAULT_QUICK_SEEDS  test_fault-only seeds ("2 3 4 5 6")
#   WEFT_FAULT_QUICK_RATE   their rate per call (0.1)
set -u
cd "$(dirname "$0")/.." || exit 1
TREE=${1:-build/fault}
FULL=${WEFT_FAULT_SEEDS:-"1"}
FULL_RATE=${WEFT_FAULT_RATE:-0.05}
QUICK=${WEFT_FAULT_QUICK_SEEDS:-"2 3 4 5 6"}
QUICK_RATE=${WEFT_FAULT_QUICK_RATE:-0.1}

if [ ! -x "$TREE/tests/test_fault" ]; then
	echo "FAIL fault: no $TREE/tests/test_fault (make VARIANT=fault fault-tests)"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
pass=0; fail=0; skip=0; failed_list=""
run() { # env assignments for tests/run.sh, then its trees
	log=$(mktemp)
	env "$@" sh tests/run.sh "$TREE" "$TREE@epoll" 2>&1 | tee "$log"
	set -- $(tail -n 1 "$log" | awk '/passed, .* failed/ { print $1, $3, $5 }')
	if [ $# -eq 3 ]; then
		pass=$((pass + $1)); fail=$((fail + $2)); skip=$((skip + $3))
	else
		fail=$((fail + 1)); failed_list="$failed_list no-summary"
	fi
	failed_list="$failed_list$(sed -n 's/^failed://p' "$log")"
	rm -f "$log"
}
# The suites `make VARIANT=fault fault-tests` builds (the Makefile's
# FAULT_TESTS), whatever else was built into the tree by hand.
SUITES="test_queue test_stress test_net test_server test_stream test_fault"
for seed in $FULL; do
	run WEFT_TESTS="$SUITES" WEFT_FAULT=transparent WEFT_FAULT_SEED="$seed" \
		WEFT_FAULT_RATE="$FULL_RATE"
done
for seed in $QUICK; do
	run WEFT_TESTS=test_fault WEFT_FAULT_SEED="$seed" WEFT_FAULT_RATE="$QUICK_RATE"
done
[ -n "$failed_list" ] && echo "failed:$failed_list"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
