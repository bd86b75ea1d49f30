#!/bin/sh
# Run every benchmark binary in DIR, one after another (never two at once:
# they measure the machine), print their BENCH lines and a summary.
#
#   sh bench/run.sh DIR [NAME...]
#
# A MISS is reported, not a failure: the exit status is 0 unless a benchmark
# crashed, exited nonzero or timed out (BENCH_TIMEOUT seconds, default 120).
# Each benchmark's diagnostics (stderr) go to stderr.

dir=${1:?usage: run.sh DIR [NAME...]}
shift

if [ ! -d "$dir" ]; then
	echo "run.sh: no directory $dir" >&2
	exit 2
fi

# Fixed order first (cheap ones first), then anything new, and sleepers
# truly last: its 4 GiB teardown keeps the host busy reclaiming memory for
# a while, which would skew whatever ran next.
order="switch yield spawn pingpong skew"
last="sleepers"
# Tools, not benchmarks: they need a server and arguments (bench/compare.sh,
# bench/scaling.sh and bench/soak.sh drive them).
tools="weft-load idle_conns soak_client"
if [ $# -gt 0 ]; then
	list="$*"
else
	list=
	for n in $order; do
		[ -x "$dir/$n" ] && list="$list $n"
	done
	for f in "$dir"/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		n=${f##*/}
		case " $order $last $tools " in *" $n "*) continue ;; esac
		list="$list $n"
	done
	[ -x "$dir/$last" ] && list="$list $last"
fi

timeout_s=${BENCH_TIMEOUT:-120}
if command -v timeout >/dev/null 2>&1; then
	tmo="timeout -k 5 $timeout_s"
else
	tmo=
fi

out=$(mktemp "${TMPDIR:-/tmp}/weft-bench.XXXXXX") || exit 2
trap 'rm -f "$out"' EXIT
trap 'rm -f "$out"; exit 130' INT TERM

ok=0
miss=0
failed=0
failed_names=
for n in $list; do
	if [ ! -x "$dir/$n" ]; then
		echo "run.sh: $dir/$n: not found" >&2
		failed=$((failed + 1))
		failed_names="$failed_names $n"
		continue
	fi
	# the load tells whether a number can be trusted (2 cores, shared)
	load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)
	echo "== $n (load average ${load:-?})" >&2
	$tmo "$dir/$n" >"$out"
	rc=$?
	# only BENCH lines reach stdout
	grep '^BENCH ' "$out"
	o=$(grep -c '^BENCH .* ok$' "$out")
	m=$(grep -c '^BENCH .* MISS$' "$out")
	ok=$((ok + o))
	miss=$((miss + m))
	if [ "$rc" -ne 0 ]; then
		case $rc in
		124) why="timed out after ${timeout_s}s" ;;
		13[0-9] | 14[0-9] | 15[0-9]) why="killed by signal $((rc - 128))" ;;
		*) why="exit status $rc" ;;
		esac
		echo "run.sh: $n FAILED ($why)" >&2
		failed=$((failed + 1))
		failed_names="$failed_names $n"
	elif [ $((o + m)) -eq 0 ]; then
		echo "run.sh: $n printed no BENCH line" >&2
		failed=$((failed + 1))
		failed_names="$failed_names $n"
	fi
done

echo "bench summary: $ok ok, $miss MISS, $failed failed${failed_names:+ (}${failed_names# }${failed_names:+)}"
[ "$failed" -eq 0 ]
