#!/bin/sh
# Scaling and memory runs (issue 5): the foundation and coordination
# micro-benchmarks across 1..N loops, memory per task (build/bench/sleepers)
# and per idle connection (build/bench/idle_conns against weft's
# echo_server and the epoll and libuv echo baselines).  docs/benchmarks.md
# ("Comparison runs, scaling and memory") says what each measures.
#
#   sh bench/scaling.sh [BUILD_DIR]          (default: build)
#
# 1. Micro-benchmarks.  Those that take their loop count from BENCH_LOOPS
#    (SCALE_PER_LOOPS: spawn's spawn_<n>loops, sync) run once per loop
#    count in SCALE_LOOPS (default 1..the number of CPUs), their BENCH
#    lines prefixed loops<L>_; those with the loop counts built in
#    (SCALE_FIXED: yield 1, pingpong 1 and 2, skew 1 and 2, queue same
#    loop and two loops) run once, as they are.  BENCH_REPS and
#    BENCH_SCALE pass through (see bench/bench.h).
# 2. Memory per task: sleepers with SCALE_SLEEPERS tasks (default 1000000)
#    at every loop count: RSS per sleeping task.
# 3. Memory per idle connection: for each count in SCALE_IDLE_CONNS
#    ("10000 100000") and server in SCALE_IDLE_SERVERS (weft epoll uv), a
#    fresh server (one loop, on CPU 0), idle_conns opens that many
#    connections and reports the server's RSS growth per connection, once
#    all are accepted and again after one echo on each.  Counts this
#    machine cannot hold (open-file limits, fs.nr_open, source ports) are
#    skipped and said so.
# Output: BENCH lines on stdout, diagnostics on stderr, and every number as
# a row of the data file SCALE_OUT (default
# BUILD_DIR/bench-results/scaling.tsv; bench/plot.sh reads it):
#   kind(micro|sleepers|idle) loops conns series name value unit
# Environment: SCALE_LOOPS="1 2" SCALE_PER_LOOPS="spawn sync"
#   SCALE_FIXED="yield pingpong skew queue" SCALE_SLEEPERS=1000000 (0: skip)
#   SCALE_IDLE_CONNS="10000 100000" (empty: skip) SCALE_IDLE_SERVERS="weft epoll uv"
#   SCALE_PORT=23700  BENCH_TIMEOUT=300 (seconds per benchmark program)

B=${1:-build}
BL=$B/bench/baseline
here=$(cd "$(dirname "$0")" && pwd)
ME=scaling.sh

NCPU=$(nproc 2>/dev/null || echo 1)
LOOPS=${SCALE_LOOPS:-$(seq 1 "$NCPU" | tr '\n' ' ')}
PER_LOOPS=${SCALE_PER_LOOPS-spawn sync}
FIXED=${SCALE_FIXED-yield pingpong skew queue}
SLEEPERS=${SCALE_SLEEPERS:-1000000}
IDLE_CONNS=${SCALE_IDLE_CONNS-10000 100000}
IDLE_SERVERS=${SCALE_IDLE_SERVERS-weft epoll uv}
OUT=${SCALE_OUT:-$B/bench-results/scaling.tsv}
TMO=${BENCH_TIMEOUT:-300}
port=${SCALE_PORT:-23700}
SCPU=0

# say, start_server, stop_server, server_cmd, ...
. "$here/lib.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-scale.XXXXXX") || exit 2
spid=
cleanup() {
	[ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$(dirname "$OUT")" || exit 2
{
	echo "# weft bench/scaling.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) cpus=$NCPU loops=$(echo $LOOPS | tr ' ' ,) reps=${BENCH_REPS:-5} scale=${BENCH_SCALE:-1}"
	echo "# kind	loops	conns	series	name	value	unit"
} >"$OUT"

# Run benchmark $1 with BENCH_LOOPS=$2 (empty: unset) and arguments $3...;
# BENCH lines to $tmp/out, diagnostics to stderr.
run_bench() {
	if [ ! -x "$B/bench/$1" ]; then
		say "$B/bench/$1 not built (run make): skipped"
		: >"$tmp/out"
		return 1
	fi
	say "== $1${2:+ (BENCH_LOOPS=$2)} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	n=$1 l=$2
	shift 2
	if [ -n "$l" ]; then
		BENCH_LOOPS=$l timeout -k 5 "$TMO" "$B/bench/$n" "$@" >"$tmp/out"
	else
		timeout -k 5 "$TMO" "$B/bench/$n" "$@" >"$tmp/out"
	fi
	rc=$?
	[ $rc -eq 0 ] || say "$n FAILED (exit status $rc)"
	grep '^BENCH ' "$tmp/out" >"$tmp/out.b"
	mv "$tmp/out.b" "$tmp/out"
}

# The BENCH lines in $tmp/out as data rows, loop count $1 where the name
# does not say it: series = name without its loop part, value in ns.
micro_rows() {
	awk -v L="$1" '
	function ns(v, u) {
		if (u == "ns") return v
		if (u == "us") return v * 1e3
		if (u == "ms") return v * 1e6
		if (u == "s") return v * 1e9
		return ""
	}
	$1 == "BENCH" {
		name = $2; v = $3; u = $4; s = name; l = ""
		if (name == "skew") {
			# 2000 CPU-bound tasks: value = 2 loops, vs= 1 loop (ms);
			# as ns per task
			b = $5; sub(/^vs=/, "", b)
			printf "micro\t1\t-\tskew_per_task\t%s\t%s\tns\n", name, ns(b, u) / 2000
			printf "micro\t2\t-\tskew_per_task\t%s\t%s\tns\n", name, ns(v, u) / 2000
			next
		}
		if (match(s, /_[0-9]+loops/)) {
			l = substr(s, RSTART + 1, RLENGTH - 6) + 0
			s = substr(s, 1, RSTART - 1) substr(s, RSTART + RLENGTH)
		} else if (sub(/_two_loops/, "", s)) l = 2
		else if (sub(/_same_loop/, "", s)) l = 1
		else if (s == "yield" || s == "pingpong" || s == "spawn") l = 1
		else l = L
		if (ns(v, u) == "") next
		printf "micro\t%s\t-\t%s\t%s\t%s\tns\n", l, s, name, ns(v, u)
	}' "$tmp/out"
}

# 1. micro-benchmarks
for b in $FIXED; do
	run_bench "$b" "" || continue
	cat "$tmp/out"
	micro_rows 1 >>"$OUT"
done
for L in $LOOPS; do
	for b in $PER_LOOPS; do
		run_bench "$b" "$L" || continue
		sed "s/^BENCH /BENCH loops${L}_/" "$tmp/out"
		micro_rows "$L" >>"$OUT"
	done
done
# one line per series: its value at every loop count (medians of what ran)
awk -F'\t' '$1 == "micro" {
	k = $4 SUBSEP $2
	if (!($4 in seen)) { seen[$4] = 1; order[++n] = $4 }
	sum[k] += $6; cnt[k]++
	if ($2 > maxl) maxl = $2
}
END {
	for (i = 1; i <= n; i++) {
		line = "BENCH scaling_" order[i]
		for (l = 1; l <= maxl; l++) {
			k = order[i] SUBSEP l
			line = line sprintf(" loops%d_ns=%s", l, (k in cnt) ? sprintf("%.1f", sum[k] / cnt[k]) : "-")
		}
		print line
	}
}' "$OUT"

# 2. memory per task
if [ "$SLEEPERS" -gt 0 ] 2>/dev/null; then
	for L in $LOOPS; do
		run_bench sleepers "$L" "$SLEEPERS" || continue
		sed "s/^BENCH /BENCH loops${L}_/" "$tmp/out"
		awk -v L="$L" -v n="$SLEEPERS" '$1 == "BENCH" {
			printf "sleepers\t%s\t%s\t%s\t%s\t%s\t%s\n", L, n, $2, $2, $3, $4 }' "$tmp/out" >>"$OUT"
	done
fi

# 3. memory per idle connection
sysctl_v() { tr '\t' ' ' <"/proc/sys/$(echo "$1" | tr . /)" 2>/dev/null; }
nr_open=$(sysctl_v fs.nr_open)
somax=$(sysctl_v net.core.somaxconn)
prange=$(sysctl_v net.ipv4.ip_local_port_range)
soft=$(ulimit -n)
hard=$(ulimit -Hn)
# the most open files a process started from here can have
maxfd=$hard
[ "$hard" = unlimited ] && maxfd=$nr_open
if sh -c "ulimit -n ${nr_open:-0}" 2>/dev/null; then
	maxfd=$nr_open # raising the hard limit is allowed (CAP_SYS_RESOURCE)
fi
ports=$(echo "$prange" | awk '{ print int(($2 - $1 + 1) * 9 / 10) }')
maxconn=$((maxfd - 64))
say "kernel limits: fs.nr_open=$nr_open net.core.somaxconn=$somax ip_local_port_range=$prange" \
	"ulimit -n soft=$soft hard=$hard: up to $maxconn connections per process" \
	"($ports per loopback source address; idle_conns uses several)"
echo "# limits nr_open=$nr_open somaxconn=$somax port_range=$(echo $prange | tr ' ' -) nofile_soft=$soft nofile_hard=$hard max_conns=$maxconn" >>"$OUT"

IDLE_LIST="weft $B/examples/echo_server --port @PORT@ --loops 1
epoll $BL/epoll_echo --port @PORT@
uv $BL/uv_echo --port @PORT@
uring $BL/uring_echo --port @PORT@"
for K in $IDLE_CONNS; do
	if [ "$K" -gt "$maxconn" ]; then
		say "*** SKIPPING $K idle connections: a process may open $maxfd files here" \
			"(ulimit -Hn $hard, fs.nr_open $nr_open; raising them needs root with CAP_SYS_RESOURCE) ***"
		echo "BENCH idle_c${K} skipped=open_file_limit max_conns=$maxconn"
		continue
	fi
	if [ ! -x "$B/bench/idle_conns" ]; then
		say "$B/bench/idle_conns not built (run make): skipped"
		break
	fi
	for s in $IDLE_SERVERS; do
		cmd=$(server_cmd "$s" "$IDLE_LIST")
		exe=$(echo "$cmd" | awk '{ print $1 }')
		if [ -z "$cmd" ] || [ ! -x "$exe" ]; then
			say "idle server $s: ${exe:-unknown} not built: skipped"
			continue
		fi
		SERVER_NOFILE=$((K + 256))
		[ "$SERVER_NOFILE" -le "$soft" ] && SERVER_NOFILE=
		start_server "$cmd" || continue
		(
			[ "$K" -gt $((soft - 64)) ] && ulimit -n $((K + 64))
			timeout -k 5 "$TMO" "$B/bench/idle_conns" -p "$port" --pid "$spid" -n "$K" --name "$s"
		) >"$tmp/out"
		rc=$?
		stop_server
		if [ $rc -ne 0 ]; then
			say "idle_conns $K against $s: exit status $rc (3: the machine cannot)"
			sed 's/^/  | /' "$rundir/server.log" >&2
			continue
		fi
		cat "$tmp/out"
		awk -v K="$K" -v s="$s" '$1 == "BENCH" {
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] ~ /_per_conn_B$/ && kv[2] != "-")
					printf "idle\t1\t%s\t%s\t%s\t%s\tB\n", K, s, kv[1], kv[2]
			}
		}' "$tmp/out" >>"$OUT"
	done
done
say "data: $OUT"
