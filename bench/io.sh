#!/bin/sh
# I/O benchmarks (issue 4): weft's example servers against in-tree
# baselines, the way docs/benchmarks.md ("I/O benchmarks: how they are run")
# describes.  `make bench-io` builds everything and runs this.
#
#   sh bench/io.sh [BUILD_DIR]          (default: build)
#
# Echo: 64 B messages, 64, 512 and 2048 connections,
# bench/baseline/echo_client; servers weft's echo_server (one loop) on
# io_uring (weft) and on epoll (weft_epoll, WEFT_BACKEND=epoll), epoll_echo,
# uv_echo, uring_echo.  HTTP: wrk -t1 --latency, 64 and 256 connections;
# weft's http_server (one loop) on both backends against nginx with one
# worker.  Each server is started afresh per
# run, pinned to CPU 0, the client to CPU 1.  Per run: a warm-up, a measured
# window (throughput and latency from the client; server CPU time per
# request from /proc/PID/stat), then a separate window under
# `perf stat -e raw_syscalls:sys_enter -p PID` for syscalls per request (perf
# slows every syscall a little, so CPU time is never taken under it).
# Each configuration is repeated, servers interleaved within every repeat
# (and their order rotated), and reported as medians with min-max.
#
# Output, on stdout: one line per server and configuration
#   BENCH echo64_c64_weft cpu_us=3.92 rps=201234 p50_us=... p99_us=... sys_per_req=... errors=0 runs=3 cpu_us_range=... rps_range=... p99_us_range=...
# then the targets, in bench/bench.h's format (ratio = weft / baseline)
#   BENCH echo64_c64_cpu_vs_epoll 3.92 us vs=4.90 ratio=0.80 target=<=0.8x ok
# and a summary line.  Every run's numbers go to stderr.  A missing weft
# server is reported and skipped, with its targets.
#
# Environment (defaults finish in about 5 minutes on 2 cores):
#   IO_SECONDS=5          measured window per run (whole seconds)
#   IO_WARMUP=1           warm-up per run (whole seconds)
#   IO_SYSCALL_SECONDS=2  the perf window per run (whole seconds; 0: skip)
#   IO_REPEATS=3          repeats of every configuration
#   IO_ECHO_CONNS="64 512 2048"  IO_HTTP_CONNS="64 256" (empty: skip)  IO_MSG=64
#   IO_SERVER_CPU=0 IO_CLIENT_CPU=1  IO_PORT=23100 (first port tried)
#   IO_ECHO_SERVERS, IO_HTTP_SERVERS: the servers, one "NAME COMMAND..." a
#     line; @PORT@ is the port, @DIR@ a fresh scratch directory (a command
#     mentioning @DIR@/nginx.conf gets bench/baseline/nginx.conf.in there).
#     The targets name their contender (weft, weft_epoll) and baseline.

B=${1:-build}
BL=$B/bench/baseline
here=$(cd "$(dirname "$0")" && pwd)

SECS=${IO_SECONDS:-5}
WARM=${IO_WARMUP:-1}
SYSSECS=${IO_SYSCALL_SECONDS:-2}
REPS=${IO_REPEATS:-3}
ECHO_CONNS=${IO_ECHO_CONNS-64 512 2048}
HTTP_CONNS=${IO_HTTP_CONNS-64 256}
MSG=${IO_MSG:-64}
SCPU=${IO_SERVER_CPU:-0}
CCPU=${IO_CLIENT_CPU:-1}
port=${IO_PORT:-23100}
NGINX=${IO_NGINX:-/usr/sbin/nginx}

ECHO_SERVERS=${IO_ECHO_SERVERS:-"weft env WEFT_BACKEND=io_uring $B/examples/echo_server --port @PORT@ --loops 1
weft_epoll env WEFT_BACKEND=epoll $B/examples/echo_server --port @PORT@ --loops 1
epoll $BL/epoll_echo --port @PORT@
uv $BL/uv_echo --port @PORT@
uring $BL/uring_echo --port @PORT@"}
HTTP_SERVERS=${IO_HTTP_SERVERS:-"weft env WEFT_BACKEND=io_uring $B/examples/http_server --port @PORT@ --loops 1
weft_epoll env WEFT_BACKEND=epoll $B/examples/http_server --port @PORT@ --loops 1
nginx $NGINX -p @DIR@/ -e @DIR@/error.log -c @DIR@/nginx.conf"}

# kind  contender  baseline  metric  limit  [conns]  (the contender must be
# <= limit x baseline for cost metrics, >= for rps; conns: only at those)
# Issue 4's targets for weft on io_uring, then issue 9's: the epoll backend
# within 5% of raw epoll and at most nginx's CPU per request, and both
# backends at most liburing's CPU per round trip with many connections.
TARGETS="echo weft epoll cpu 0.8
echo weft uv cpu 0.8
echo weft uring cpu 1.1
http weft nginx cpu 0.8
http weft nginx rps 1
echo weft_epoll epoll cpu 1.05 64,512
http weft_epoll nginx cpu 1.0
echo weft uring cpu 1.0 512,2048
echo weft_epoll uring cpu 1.0 512,2048"

ME=io.sh
# say, cpu_ticks, start_server, stop_server, wrk_parse, perf_init, ...
. "$here/lib.sh"

for t in taskset awk sed; do
	command -v $t >/dev/null 2>&1 || { say "needs $t"; exit 2; }
done
if [ ! -x "$BL/echo_client" ]; then
	say "$BL/echo_client not built (run make)"
	exit 2
fi
if ! command -v wrk >/dev/null 2>&1; then
	say "wrk not installed: skipping the HTTP benchmarks"
	HTTP_CONNS=
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-io.XXXXXX") || exit 2
spid=
ppid_=
cleanup() {
	[ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null
	[ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

perf_init "$SYSSECS"

# Drive the server for $3 seconds with $2 connections, kind $1; print
#   rps=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=.. errors=.. requests=..
client() {
	if [ "$1" = echo ]; then
		timeout -k 2 $(($3 + 20)) taskset -c "$CCPU" "$BL/echo_client" -p "$port" \
			-c "$2" -s "$MSG" -d "$3" </dev/null 2>"$rundir/client.err"
		return
	fi
	timeout -k 2 $(($3 + 20)) taskset -c "$CCPU" wrk -t1 -c"$2" -d"$3"s --latency \
		"http://127.0.0.1:$port/" </dev/null >"$rundir/wrk.out" 2>&1
	wrk_parse "$rundir/wrk.out"
}

# One run: kind $1, connections $2, server name $3, its command $4, repeat $5.
# Appends "kind conns name rep rps cpu_us sys p50 p90 p99 errors" to results.
run_one() {
	if ! start_server "$4"; then
		echo "$1 $2 $3 $5 - - - - - - 1" >>"$tmp/results"
		return
	fi
	errs=0
	if [ "$1" = http ]; then
		body=$(curl -s -m 2 "http://127.0.0.1:$port/" 2>/dev/null)
		if [ "$body" != "Hello, World!" ]; then
			say "$3: GET / answered '$body', not 'Hello, World!'"
			errs=1
		fi
	fi
	client "$1" "$2" "$WARM" >/dev/null
	t0=$(cpu_ticks "$spid")
	line=$(client "$1" "$2" "$SECS")
	t1=$(cpu_ticks "$spid")
	sys=-
	if [ -n "$PERF" ] && kill -0 "$spid" 2>/dev/null; then
		taskset -c "$CCPU" perf stat -e raw_syscalls:sys_enter -x, \
			-o "$rundir/perf.out" -p "$spid" </dev/null >/dev/null 2>&1 &
		ppid_=$!
		sleep 0.5 # let perf attach; the idle server makes no syscalls meanwhile
		sline=$(client "$1" "$2" "$SYSSECS")
		kill -INT "$ppid_" 2>/dev/null
		wait "$ppid_" 2>/dev/null
		ppid_=
		n=$(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$rundir/perf.out" 2>/dev/null)
		r=$(kv requests "$sline")
		case $n in [0-9]*) [ "${r:-0}" -gt 0 ] && sys=$(awk "BEGIN { print $n / $r }") ;; esac
	fi
	alive=1
	kill -0 "$spid" 2>/dev/null || alive=0
	stop_server
	req=$(kv requests "$line")
	e=$(kv errors "$line")
	errs=$((errs + ${e:-1}))
	if [ "$alive" = 0 ]; then
		say "$3 died during the run"
		sed 's/^/  | /' "$rundir/server.log" >&2
		errs=$((errs + 1))
	fi
	if [ -z "$t0" ] || [ -z "$t1" ] || [ "${req:-0}" -le 0 ] 2>/dev/null || [ -z "$req" ]; then
		say "$3: no usable measurement (${line:-no client output})"
		[ -s "$rundir/client.err" ] && sed 's/^/  | /' "$rundir/client.err" >&2
		echo "$1 $2 $3 $5 - - - - - - $((errs + 1))" >>"$tmp/results"
		return
	fi
	[ -s "$rundir/client.err" ] && sed 's/^/  | /' "$rundir/client.err" >&2
	cpu=$(awk "BEGIN { print ($t1 - $t0) * 1e6 / $TICK / $req }")
	echo "$1 $2 $3 $5 $(kv rps "$line") $cpu $sys $(kv p50_us "$line") \
$(kv p90_us "$line") $(kv p99_us "$line") $errs" >>"$tmp/results"
	printf '%s\n' "$(label "$1" "$2")_$3 rep $5: $line cpu_us=$cpu sys_per_req=$sys" >&2
	rm -rf "$rundir"
}

label() {
	if [ "$1" = echo ]; then echo "echo${MSG}_c$2"; else echo "http_c$2"; fi
}

echo_avail=$(available "$ECHO_SERVERS")
http_avail=
[ -n "$HTTP_CONNS" ] && http_avail=$(available "$HTTP_SERVERS")

nconf=0
for c in $ECHO_CONNS; do for s in $echo_avail; do nconf=$((nconf + 1)); done; done
for c in $HTTP_CONNS; do for s in $http_avail; do nconf=$((nconf + 1)); done; done
est=$((nconf * REPS * (WARM + SECS + SYSSECS + 1)))
say "$nconf configurations x $REPS repeats, about $((est / 60)) min $((est % 60)) s; server on CPU $SCPU, client on CPU $CCPU"
: >"$tmp/results"

rep=1
while [ $rep -le "$REPS" ]; do
	say "repeat $rep/$REPS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	for c in $ECHO_CONNS; do
		for s in $(rotate $((rep - 1)) "$echo_avail"); do
			run_one echo "$c" "$s" "$(server_cmd "$s" "$ECHO_SERVERS")" "$rep"
		done
	done
	for c in $HTTP_CONNS; do
		for s in $(rotate $((rep - 1)) "$http_avail"); do
			run_one http "$c" "$s" "$(server_cmd "$s" "$HTTP_SERVERS")" "$rep"
		done
	done
	rep=$((rep + 1))
done

# Medians (min-max) per kind, conns and server; then the targets.
awk -v msg="$MSG" -v targets="$TARGETS" "$STATS_AWK"'
{
	key = $1 SUBSEP $2 SUBSEP $3
	if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
	runs[key]++
	errs[key] += $11
	if ($5 != "-") {
		vals[key, "rps"] = vals[key, "rps"] " " $5
		vals[key, "cpu"] = vals[key, "cpu"] " " $6
		vals[key, "p50"] = vals[key, "p50"] " " $8
		vals[key, "p99"] = vals[key, "p99"] " " $10
		if ($7 != "-") vals[key, "sys"] = vals[key, "sys"] " " $7
	}
}
END {
	for (i = 1; i <= nk; i++) {
		split(order[i], p, SUBSEP)
		k = order[i]
		mc = median(k SUBSEP "cpu"); mr = median(k SUBSEP "rps")
		printf "BENCH %s_%s cpu_us=%s rps=%s server_cpu_pct=%s p50_us=%s p99_us=%s sys_per_req=%s errors=%d runs=%d cpu_us_range=%s rps_range=%s p99_us_range=%s\n",
			label(p[1], p[2]), p[3], fmt(mc), fmt(mr), mc == "-" ? "-" : sprintf("%.0f", mc * mr / 1e4),
			fmt(median(k SUBSEP "p50")), fmt(median(k SUBSEP "p99")), fmt(median(k SUBSEP "sys")),
			errs[k], runs[k], range(k SUBSEP "cpu"), range(k SUBSEP "rps"), range(k SUBSEP "p99")
		if (!((p[1], p[2]) in hasc)) { hasc[p[1], p[2]] = 1; conns[p[1]] = conns[p[1]] " " p[2] }
	}
	ok = miss = skip = 0
	nt = split(targets, tl, "\n")
	split("echo http", kinds, " ")
	for (ki = 1; ki <= 2; ki++) {
		kind = kinds[ki]
		nc = split(conns[kind], cl, " ")
		for (ci = 1; ci <= nc; ci++) {
			c = cl[ci]
			for (t = 1; t <= nt; t++) {
				split(tl[t], f, " ")
				if (f[1] != kind) continue
				if (f[6] != "" && index("," f[6] ",", "," c ",") == 0) continue
				name = label(kind, c) "_" (f[2] == "weft" ? "" : f[2] "_") f[4] "_vs_" f[3]
				w = kind SUBSEP c SUBSEP f[2]; b = kind SUBSEP c SUBSEP f[3]
				mw = median(w SUBSEP f[4]); mb = median(b SUBSEP f[4])
				if (mw == "-" || mb == "-" || mb == 0) {
					printf "io.sh: %s skipped: no %s numbers\n", name, mw == "-" ? f[2] : f[3] > "/dev/stderr"
					skip++
					continue
				}
				r = mw / mb
				if (f[4] == "rps") { pass = r >= f[5]; tgt = ">=" f[5] "x"; unit = "req/s" }
				else { pass = r <= f[5]; tgt = "<=" f[5] "x"; unit = "us" }
				if (errs[w] > 0) { pass = 0; printf "io.sh: %s: weft had %d errors\n", name, errs[w] > "/dev/stderr" }
				printf "BENCH %s %s %s vs=%s ratio=%.2f target=%s %s\n", name, fmt(mw), unit, fmt(mb), r, tgt, pass ? "ok" : "MISS"
				if (pass) ok++; else miss++
			}
		}
	}
	printf "bench io summary: %d ok, %d MISS, %d skipped\n", ok, miss, skip
}' "$tmp/results"
