#!/bin/sh
# Run every cmocka suite of each build tree given (e.g. build build/asan
# build/tsan), each test in its own process with a timeout.  A tree written
# TREE@BACKEND (build@epoll) runs with WEFT_BACKEND=BACKEND, so the same
# suites run on both I/O backends; the word `aarch64` runs tests/aarch64.sh
# (the core suites under qemu-user) and `fault` runs tests/fault.sh (the
# fault-injection tree, build/fault), and their results are counted.
# A spec may end in :SUITE,SUITE... (build/sysalloc:test_task,test_sync):
# only those suites of that tree run (still filtered by WEFT_TESTS); or in
# :-SUITE,SUITE... (build/tsan:-test_locust): every suite but those.
# Prints a line per test, then
# "N passed, N failed" (and skipped) for all trees together.
# Exit status: 0 only if nothing failed.
#
# Environment: WEFT_TEST_TIMEOUT (seconds per test, 120), WEFT_TESTS (the
# suites to run: names or patterns, test_*), WEFT_TEST_JOBS (trees run side
# by side, 1; below); WEFT_FAULT_SEED and WEFT_FAULT_RATE,
# passed on to the tests, are shown in the label (build/fault/seed=N).
set -u
# TSan sleeps a second at exit while another thread lives (a loop being
# joined, ZeroMQ's): a second per test process for nothing
case ${TSAN_OPTIONS:-} in *atexit_sleep_ms*) ;; *) export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS }atexit_sleep_ms=0" ;; esac
TIMEOUT=${WEFT_TEST_TIMEOUT:-120} # the slowest test takes ~10 s; a hang costs 2 min, not 5
JOBS=${WEFT_TEST_JOBS:-1}
pass=0; fail=0; skip=0; failed_list=""

# WEFT_TEST_JOBS=N: N lanes, each running whole trees (specs) one at a time,
# taking the next spec in the order given as it finishes one (a claim is a
# mkdir, atomic).  A tree's output is printed whole when it ends; the last
# line sums every lane.  Two tests of one tree never overlap, tests of two
# trees do: see docs/testing.md for what that asks of a test.
if [ "$JOBS" -gt 1 ] && [ $# -gt 1 ]; then
	dir=$(mktemp -d) || exit 1
	i=0
	for spec in "$@"; do i=$((i + 1)); printf '%s\n' "$spec" >"$dir/spec.$i"; done
	n=$i
	lane() {
		k=1
		while [ $k -le $n ]; do
			if mkdir "$dir/claim.$k" 2>/dev/null; then
				WEFT_TEST_JOBS=1 sh "$0" "$(cat "$dir/spec.$k")" >"$dir/out.$k" 2>&1
				# whole, so two trees' lines do not interleave
				until mkdir "$dir/print" 2>/dev/null; do sleep 0.1; done
				cat "$dir/out.$k"
				rmdir "$dir/print"
			fi
			k=$((k + 1))
		done
	}
	j=0
	while [ $j -lt "$JOBS" ]; do lane & j=$((j + 1)); done
	wait
	k=1
	while [ $k -le $n ]; do
		counts=$(tail -n 1 "$dir/out.$k" | awk '/passed, .* failed/ { print $1, $3, $5 }')
		if [ -n "$counts" ]; then
			set -- $counts
			pass=$((pass + $1)); fail=$((fail + $2)); skip=$((skip + $3))
		else
			fail=$((fail + 1)); failed_list="$failed_list $(cat "$dir/spec.$k"):no-summary"
		fi
		failed_list="$failed_list$(sed -n 's/^failed://p' "$dir/out.$k")"
		k=$((k + 1))
	done
	rm -rf "$dir"
	[ -n "$failed_list" ] && echo "failed:$failed_list"
	echo "$pass passed, $fail failed, $skip skipped"
	[ $fail -eq 0 ]
	exit
fi
tlog=$(mktemp) || exit 1 # each test's output, shown when it fails
for spec in "$@"; do
	if [ "$spec" = aarch64 ] || [ "$spec" = fault ]; then
		log=$(mktemp)
		sh "$(dirname "$0")/$spec.sh" 2>&1 | tee "$log"
		counts=$(tail -n 1 "$log" | awk '/passed, .* failed/ { print $1, $3, ($5 == "" ? 0 : $5) }')
		if [ -n "$counts" ]; then
			read -r ap af as <<-EOF
			$counts
			EOF
			pass=$((pass + ap)); fail=$((fail + af)); skip=$((skip + as))
			[ "$af" -gt 0 ] && failed_list="$failed_list $(grep '^FAIL' "$log" | awk '{ print $2 ":" $3 ":" $4 }' | tr '\n' ' ')"
		else
			fail=$((fail + 1)); failed_list="$failed_list $spec:no-summary"
		fi
		rm -f "$log"
		continue
	fi
	suites=; except=
	case $spec in
	*:-*) except=$(echo "${spec#*:-}" | tr , ' '); spec=${spec%%:*} ;;
	*:*) suites=$(echo "${spec#*:}" | tr , ' '); spec=${spec%%:*} ;;
	esac
	tree=${spec%@*}
	backend=
	[ "$tree" != "$spec" ] && backend=${spec##*@}
	label=$tree${backend:+[$backend]}${WEFT_FAULT_SEED:+/seed=$WEFT_FAULT_SEED}
	label=$label${WEFT_FAULT_SEED:+${WEFT_FAULT_RATE:+/rate=$WEFT_FAULT_RATE}}
	[ -d "$tree/tests" ] || { echo "run.sh: no $tree/tests" >&2; fail=$((fail + 1)); continue; }
	echo "=== $label"
	t0=$(date +%s%N); n0=$((pass + fail + skip))
	for bin in $(for p in ${WEFT_TESTS:-test_*}; do echo "$tree"/tests/$p; done); do
		[ -x "$bin" ] || continue
		suite=${bin##*/}
		if [ -n "$suites" ]; then
			case " $suites " in *" $suite "*) ;; *) continue ;; esac
		fi
		case " $except " in *" $suite "*) continue ;; esac
		names=$("$bin" --list) || { echo "FAIL $bin --list"; fail=$((fail + 1)); continue; }
		# Few processes per test beyond the test's own: this loop runs
		# some 2800 times in make test, and each fork and exec is felt.
		for name in $names; do
			start=$(date +%s%N)
			WEFT_TREE="$tree" WEFT_BACKEND="$backend" timeout -k 5 "$TIMEOUT" "$bin" "$name" >"$tlog" 2>&1 &
			tpid=$!
			wait "$tpid"
			rc=$?
			# timeout leads a process group of its own, which holds the
			# servers the test started: a test that crashed or was
			# killed leaves none of them behind to hold a port.
			kill -KILL -- "-$tpid" 2>/dev/null
			ms=$(( ($(date +%s%N) - start) / 1000000 ))
			case $(grep -m1 -o -e '^\[  SKIPPED \]' -e '^\[  PASSED  \] 1 test' "$tlog") in
			*SKIPPED*) result=skip ;;
			*PASSED*) result=pass ;;
			*) result=fail ;;
			esac
			if [ $result = skip ]; then
				skip=$((skip + 1))
				echo "SKIP $label $suite $name (${ms} ms): $(grep -m1 -i 'skip' "$tlog")"
			elif [ $rc -eq 0 ] && [ $result = pass ]; then
				pass=$((pass + 1))
				echo "ok   $label $suite $name (${ms} ms)"
			else
				fail=$((fail + 1))
				[ $rc -eq 124 ] && echo "TIMEOUT after ${TIMEOUT}s" >>"$tlog"
				echo "FAIL $label $suite $name (rc=$rc, ${ms} ms)"
				sed 's/^/    /' "$tlog" | tail -40
				failed_list="$failed_list $label:$suite:$name"
			fi
		done
	done
	echo "=== $label: $((pass + fail + skip - n0)) tests in $(( ($(date +%s%N) - t0) / 1000000000 )) s"
done
rm -f "$tlog"
[ -n "$failed_list" ] && echo "failed:$failed_list"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
