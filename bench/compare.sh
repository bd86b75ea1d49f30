#!/bin/sh
# Comparison runs (issue 5): weft's example servers against the baselines
# under the same load, first pinned (server on one core, client on
# another, one loop / one worker), then on all cores; with two load
# clients per protocol, so the client's own cost shows too.  `make
# bench-compare` builds everything and runs this; docs/benchmarks.md
# ("Comparison runs, scaling and memory") says what it measures.
#
#   sh bench/compare.sh [BUILD_DIR] [SECTION...]   (default: build servers kv proxy clients)
#
# Sections: `servers` (everything below but the last three parts), `kv`,
# `proxy` and `clients` (the key-value, proxy and load-client sections at
# the end of this comment); `sh bench/compare.sh build kv` runs one alone
# (about 2 minutes each).
#
# Servers: HTTP (GET / -> "Hello, World!"): weft's http_server and nginx
# (bench/baseline/nginx.conf.in); echo (64 B messages): weft's echo_server,
# epoll_echo, uv_echo, uring_echo.  Clients: HTTP wrk and weft-load
# (http://), echo bench/baseline/echo_client and weft-load (tcp://).
# Modes:
#   pinned  server on CPU CMP_SERVER_CPU (0) with one loop / one nginx
#           worker, client on CPU CMP_CLIENT_CPU (1) with one thread / loop
#   all     server on every CPU with CMP_LOOPS (2) loops / nginx workers
#           (a master and its workers, summed; the baselines are single-
#           threaded and stay so), client on every CPU with CMP_LOOPS
#           threads / loops (echo_client is single-threaded)
#   sweep   pinned, HTTP, weft and nginx only, the connection counts of
#           CMP_SWEEP_CONNS not already run pinned, with one client
#           (weft-load, or wrk without it): throughput against connections
# Each run (as bench/io.sh, whose helpers bench/lib.sh holds): a fresh
# server, a warm-up, the measured window (client's throughput and latency;
# server CPU time per request from /proc/PID/stat; the client's CPU time
# per request from the shell's `times` for the client it reaped), then a
# separate window under `perf stat -e raw_syscalls:sys_enter -p PID...`
# for the server's syscalls per request (none in the sweep).  Every
# configuration CMP_REPEATS times, servers interleaved within a repeat in
# an order rotated each repeat.
#
# Output: every run's numbers to stderr and as one row to the data file
# (CMP_OUT, default BUILD_DIR/bench-results/compare.tsv; bench/plot.sh
# reads it); on stdout one line per configuration, medians with min-max,
#   BENCH pinned_http_c64_nginx_wrk rps=... p50_us=... p90_us=... p99_us=... p999_us=... max_us=... cpu_us=... sys_per_req=... client_cpu_us=... errors=0 runs=3 rps_range=... cpu_us_range=... p99_us_range=... client_cpu_us_range=...
# then issue 5's load-generator targets (pinned, nginx, same connections):
#   BENCH load_vs_wrk_c64 client_cpu_us=... vs=... ratio=... target=<=0.8x ok|MISS
#   BENCH load_vs_wrk_c64_rps rps=... vs=... ratio=... target=>=1x ok|MISS
# and a summary line.  A missing weft-load or weft server is said loudly
# and its runs and targets skipped.
#
# The kv section: examples/kv_server with one loop on io_uring (weft) and
# on epoll (weft_epoll, WEFT_BACKEND=epoll) against Debian's redis-server
# (save "" and appendonly no, from a config file written to the scratch
# directory: a `''` argument does not survive the word splitting of a
# server command), each on its own port, pinned to CMP_SERVER_CPU; the
# load, redis-benchmark -c CMP_KV_CONNS (50) -P CMP_KV_PIPELINE (16) -q
# --csv, pinned to CMP_CLIENT_CPU, one run per test (PING_INLINE,
# PING_MBULK, SET, GET, in that order, so GET finds SET's key) with -n
# sized for about CMP_KV_SECONDS (3) s from a calibration run against
# redis-server, the same -n for every server.  A fresh server per repeat,
# warmed up; the servers interleaved, their order rotated each repeat,
# CMP_KV_REPEATS (CMP_REPEATS) times.  Server CPU per request: utime +
# stime of the server process (/proc/PID/stat) over the test's run,
# divided by its requests.  Output, medians with min-max:
#   BENCH kv_SET_weft rps=... cpu_us=... errors=0 runs=3 rps_range=... cpu_us_range=...
#   BENCH kv_SET_weft_vs_redis rps_ratio=... cpu_us=... vs=... ratio=... target=<=0.8x ok|MISS
#   kv TARGET met: server CPU per request <= 0.8x redis-server's, on both backends
# (or `kv TARGET MISSED: ...` naming the misses).  Data: CMP_KV_OUT
# (BUILD_DIR/bench-results/compare-kv.tsv).  Without redis-server or
# redis-benchmark the section says so loudly and is skipped.
#
# The proxy section: examples/tcp_proxy with one loop on io_uring (weft)
# and on epoll (weft_epoll), both with wake coalescing (--coalesce-us
# CMP_PROXY_COALESCE_US, 50: a sleeping loop waits for 32 completions or
# that long), and on io_uring without it (weft_plain, no target), against
# Debian's haproxy (mode tcp, nbthread
# 1, round robin; its config written to the scratch directory), each in
# front of the same two nginx upstreams (Debian's nginx, one worker each,
# started by the script with its own config, serving a 128 B file `small`
# and a 1 MiB file `1m`).  The proxy on CMP_SERVER_CPU, nginx and the
# clients on CMP_CLIENT_CPU.  A fresh proxy per repeat: both files fetched
# through it with curl (sizes checked), then
#   idle   bench/idle_conns opens CMP_PROXY_IDLE (2000) connections
#          through the proxy (each with its upstream connection) and holds
#          them: the proxy's VmRSS growth per client, once settled;
#   small  wrk -t1 -c CMP_PROXY_SMALL_CONNS (64) keep-alive on /small for
#          CMP_PROXY_SECONDS (CMP_SECONDS): requests/s and proxy CPU us
#          per request (/proc/PID/stat), after a 1 s warm-up;
#   1m     wrk -t1 -c CMP_PROXY_BIG_CONNS (8) on /1m: MiB/s (requests/s,
#          a MiB each) and proxy CPU us per MiB.
# The proxies interleaved, their order rotated each repeat,
# CMP_PROXY_REPEATS (CMP_REPEATS) times.  Output, medians with min-max:
#   BENCH proxy_small_c64_weft rps=... cpu_us=... sys_share=... errors=0 runs=3 rps_range=... cpu_us_range=...
#   (sys_share: the part of the proxy's CPU spent in the kernel)
#   BENCH proxy_1mib_c8_weft mib_s=... cpu_us_per_mib=... errors=0 runs=3 ...
#   BENCH proxy_idle2000_weft rss_per_client_B=... errors=0 runs=3 rss_range=...
#   BENCH proxy_small_weft_vs_haproxy cpu_us=... vs=... ratio=... target=<=0.9x ok|MISS paired=... paired_range=... (as in the clients section)
#   (and proxy_1mib_ mib_s >=1x, proxy_1mib_cpu_ <=0.8x, proxy_idle_ <=1.5x,
#   for weft and weft_epoll)
#   BENCH proxy_small_weft_plain_vs_haproxy ... (no target: no wake coalescing)
#   BENCH proxy_small_floor_vs_haproxy ... (no target: the least a proxy pays)
#   BENCH proxy_small_weft_plain_vs_floor ... (no target)
#   (the floor, build/bench/baseline/proxy_floor: the same proxying with
#   no user code, small and 1m only, when built; with
#   CMP_PROXY_FLOOR_COALESCE=1 also floor_coalesce, proxy_floor --coalesce,
#   against which weft and weft_epoll are set: proxy_small_weft_vs_floor_coalesce)
#   proxy TARGET met: ... (or proxy TARGET MISSED: ...; missed: ...)
# for issue 14's targets.  Data: CMP_PROXY_OUT
# (BUILD_DIR/bench-results/compare-proxy.tsv).  Without haproxy, nginx,
# wrk, curl or build/bench/idle_conns the section says so loudly and is
# skipped.
#
# The clients section (issue 13): weft-load against the reference client
# of each protocol, the same server, connections, pipeline depth and test,
# in the same run.  Servers on CMP_SERVER_CPU: Debian's redis-server
# (config as in the kv section) and nginx (one worker, as `servers`);
# clients on CMP_CLIENT_CPU with one thread / loop:
#   redis  redis-benchmark -c CMP_CLIENTS_CONNS (50) -P CMP_CLIENTS_PIPELINE
#          (16) -t T -n N against weft-load -c 50 --pipeline 16 --command T
#          -n N redis://, for T in CMP_CLIENTS_TESTS (get set ping; ping is
#          redis-benchmark's PING_MBULK), N sized for about
#          CMP_CLIENTS_SECONDS (3) s from a calibration run;
#   http   wrk -t1 -c CMP_CLIENTS_HTTP_CONNS (64) -d 3s against weft-load
#          --loops 1 -c 64 -d 3s ("load") on nginx's GET /, and weft-load
#          with --coalesce CMP_CLIENTS_COALESCE_US (50) us ("load_coalesce",
#          no target); beside them the floors,
#          build/bench/baseline/http_floor on io_uring (a receive per
#          request, or --multishot), --epoll, and --coalesce as weft-load
#          (floor_coalesce): the least a client can do per request (no
#          runtime, no latency recorded), which shows what the kernel's
#          part bounds.
# Client CPU per request: the client's user + system time (`times` of the
# subshell that ran it) over its requests; sys_share, the kernel's part of
# it.  The clients interleaved, their
# order rotated each repeat, CMP_CLIENTS_REPEATS (CMP_REPEATS) times, a
# fresh server per repeat.  Output, medians with min-max:
#   BENCH clients_redis_get_load rps=... client_cpu_us=... sys_share=... errors=0 runs=3 rps_range=... client_cpu_us_range=...
#   BENCH clients_redis_get_load_vs_redis_benchmark rps=... vs=... ratio=... target=>=1x ok|MISS
#   BENCH clients_redis_get_load_vs_redis_benchmark_cpu client_cpu_us=... vs=... ratio=... target=<=0.6x ok|MISS paired=... paired_range=...
#   (ratio: of the medians, what the target is judged on; paired: the
#   ratio repeat by repeat, median and min-max, which shows how far the
#   host's state moved it)
#   BENCH clients_http_c64_load_vs_wrk ... target=>=1x, ..._cpu ... target=<=0.8x
#   BENCH clients_http_c64_load_coalesce_vs_wrk_cpu ... (no target: wake coalescing)
#   BENCH clients_http_c64_floor_vs_wrk_cpu ... ratio=... (no target: the least a client pays)
#   BENCH clients_http_c64_load_vs_floor_cpu ... ratio=... (no target)
#   (and the same for floor_multishot, floor_epoll, and floor_coalesce
#   against load_coalesce)
# Data: CMP_CLIENTS_OUT (BUILD_DIR/bench-results/compare-clients.tsv).
# Without weft-load, redis-benchmark/redis-server or wrk/nginx the part
# says so loudly and is skipped.
#
# Environment (the defaults take about 25 minutes on 2 cores):
#   CMP_SECONDS=5 CMP_WARMUP=1 CMP_SYSCALL_SECONDS=2 (0: no perf) CMP_REPEATS=3
#   CMP_MODES="pinned all sweep"
#   CMP_HTTP_CONNS="64 256" CMP_ECHO_CONNS="64 512" CMP_SWEEP_CONNS="16 64 256 1024"
#   CMP_MSG=64  CMP_LOOPS=2  CMP_SERVER_CPU=0 CMP_CLIENT_CPU=1  CMP_PORT=23400
#   CMP_HTTP_CLIENTS="wrk load" CMP_ECHO_CLIENTS="echo_client load"
#   CMP_LOAD=BUILD_DIR/bench/weft-load  CMP_NGINX=/usr/sbin/nginx
#   CMP_CLIENTS_LOAD_ARGS, CMP_PROXY_WEFT_ARGS: more options for weft-load
#   in the clients section and tcp_proxy in the proxy section (e.g.
#   "--multishot"); the data files say which
#   CMP_OUT=BUILD_DIR/bench-results/compare.tsv

B=${1:-build}
[ $# -gt 0 ] && shift
SECTIONS=${*:-servers kv proxy clients}
for sec in $SECTIONS; do
	case $sec in servers | kv | proxy | clients) ;; *) echo "compare.sh: unknown section $sec (servers, kv, proxy, clients)" >&2; exit 2 ;; esac
done
BL=$B/bench/baseline
here=$(cd "$(dirname "$0")" && pwd)
ME=compare.sh

SECS=${CMP_SECONDS:-5}
WARM=${CMP_WARMUP:-1}
SYSSECS=${CMP_SYSCALL_SECONDS:-2}
REPS=${CMP_REPEATS:-3}
MODES=${CMP_MODES-pinned all sweep}
HTTP_CONNS=${CMP_HTTP_CONNS-64 256}
ECHO_CONNS=${CMP_ECHO_CONNS-64 512}
SWEEP_CONNS=${CMP_SWEEP_CONNS-16 64 256 1024}
HTTP_CLIENTS=${CMP_HTTP_CLIENTS-wrk load}
ECHO_CLIENTS=${CMP_ECHO_CLIENTS-echo_client load}
MSG=${CMP_MSG:-64}
LOOPS_ALL=${CMP_LOOPS:-2}
SCPU_PIN=${CMP_SERVER_CPU:-0}
CCPU_PIN=${CMP_CLIENT_CPU:-1}
port=${CMP_PORT:-23400}
LOAD=${CMP_LOAD:-$B/bench/weft-load}
FLOOR=${CMP_FLOOR:-$B/bench/baseline/http_floor}
NGINX=${CMP_NGINX:-/usr/sbin/nginx}
OUT=${CMP_OUT:-$B/bench-results/compare.tsv}
NCPU=$(nproc 2>/dev/null || echo 1)
ALLCPUS=0-$((NCPU - 1))

# @LOOPS@ is the server's loop count (1 pinned, CMP_LOOPS on all cores)
ECHO_SERVERS="weft $B/examples/echo_server --port @PORT@ --loops @LOOPS@
epoll $BL/epoll_echo --port @PORT@
uv $BL/uv_echo --port @PORT@
uring $BL/uring_echo --port @PORT@"
HTTP_SERVERS="weft $B/examples/http_server --port @PORT@ --loops @LOOPS@
nginx $NGINX -p @DIR@/ -e @DIR@/error.log -c @DIR@/nginx.conf"

# say, cpu_ticks_tree, proc_tree, start_server, stop_server, wrk_parse,
# load_parse, times_cpu_s, perf_init, available, rotate, kv
. "$here/lib.sh"

for t in taskset awk sed timeout; do
	command -v $t >/dev/null 2>&1 || { say "needs $t"; exit 2; }
done

# The clients there are: wrk, echo_client, weft-load ("load").
have_client() {
	case $1 in
	wrk) command -v wrk >/dev/null 2>&1 ;;
	echo_client) [ -x "$BL/echo_client" ] ;;
	load) [ -x "$LOAD" ] ;;
	*) false ;;
	esac
}
if [ ! -x "$LOAD" ]; then
	say "*** $LOAD is not built: SKIPPING every weft-load run and the load_vs_wrk targets ***"
fi
pick_clients() {
	for c in $1; do
		if have_client "$c"; then printf '%s ' "$c"; else say "client $c missing: skipping its runs"; fi
	done
}
http_clients=$(pick_clients "$HTTP_CLIENTS")
echo_clients=$(pick_clients "$ECHO_CLIENTS")
SWEEP_CLIENT=load
have_client load || SWEEP_CLIENT=wrk
have_client "$SWEEP_CLIENT" || SWEEP_CONNS=

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-cmp.XXXXXX") || exit 2
spid=
ppid_=
px_upids=
cleanup() {
	[ -n "$ppid_" ] && kill "$ppid_" 2>/dev/null
	for p in $px_upids; do kill "$p" 2>/dev/null; done
	[ -n "$spid" ] && { kill "$spid" 2>/dev/null; sleep 0.2; kill -KILL "$spid" 2>/dev/null; }
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The rows of the kv and clients sections' data ("rep who test requests rps
# cpu_us errors"): per (test, who) the runs, errors and samples, in order of
# appearance (order[], tests[]).
RUN_ROWS_AWK='
/^#/ { next }
{
	key = $3 SUBSEP $2
	if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
	if (!($3 in tseen)) { tseen[$3] = 1; tests[++nt] = $3 }
	runs[key]++
	errs[key] += $7
	if ($5 != "-") {
		vals[key, "rps"] = vals[key, "rps"] " " $5
		vals[key, "cpu"] = vals[key, "cpu"] " " $6
		by_rep(key, "rps", $5)
		by_rep(key, "cpu", $6)
	}
	if (NF >= 8 && $8 != "-")
		vals[key, "sys"] = vals[key, "sys"] " " $8
}
'

# target(name, what, unit, w, b, lim, higher): one "BENCH name unit=w vs=b
# ratio=w/b target=<=lim|>=lim ok|MISS" line (>= with higher, else <=), or
# "BENCH name skipped" when w or b is "-" (no numbers, or errors) or b is 0.
# Counts ok, miss and skip, and lists in `missed` what (name if "") missed.
# Prepended to each section's summary program, after STATS_AWK.
TARGET_AWK='
function target(name, what, unit, w, b, lim, higher,  r, pass) {
	if (what == "") what = name
	if (w == "-" || b == "-" || b == 0) {
		printf "BENCH %s skipped: no numbers or errors\n", name
		missed = missed " " what "(no numbers)"
		skip++
		return
	}
	r = w / b
	pass = higher ? r >= lim : r <= lim
	printf "BENCH %s %s=%s vs=%s ratio=%.2f target=%s%sx %s%s\n", name, unit, fmt(w), fmt(b), r,
		higher ? ">=" : "<=", lim, pass ? "ok" : "MISS", pairs
	pairs = ""
	if (pass) ok++; else { miss++; missed = missed " " what sprintf("(%.2fx)", r) }
}
# The same ratio repeat by repeat: ka / kb (keys, e.g. test SUBSEP client
# SUBSEP "cpu") over the repeats that have both (rep_[key, rep], which the
# section fills; reps in replist[1..nr]), as " paired=<median>
# paired_range=<min>-<max>" on the next target line.  The ratio of the
# medians is what a target is judged on; the paired ratios show how far the
# host'"'"'s state moved it (a slow spell in some repeats moves both
# contenders of a repeat, not always equally).
function paired(ka, kb,  i, r, n) {
	vals["\001paired"] = ""
	n = 0
	for (i = 1; i <= nr; i++) {
		r = replist[i]
		if (((ka, r) in rep_) && ((kb, r) in rep_) && rep_[kb, r] > 0) {
			vals["\001paired"] = vals["\001paired"] " " rep_[ka, r] / rep_[kb, r]
			n++
		}
	}
	pairs = n < 2 ? "" : sprintf(" paired=%.2f paired_range=%.2f-%.2f", median("\001paired"),
		first_sample("\001paired"), last_sample("\001paired"))
}
function first_sample(k,  s, n) { n = samples(k, s); return s[1] }
function last_sample(k,  s, n) { n = samples(k, s); return s[n] }
'

# ---------------------------------------------------------------------------
# The kv section: kv_server (io_uring, epoll) against redis-server.
# ---------------------------------------------------------------------------
KV_REPS=${CMP_KV_REPEATS:-$REPS}
KV_SECS=${CMP_KV_SECONDS:-3}
KV_CONNS=${CMP_KV_CONNS:-50}
KV_PIPE=${CMP_KV_PIPELINE:-16}
KV_TESTS="ping_inline ping_mbulk set get"
REDIS=${CMP_REDIS:-/usr/bin/redis-server}
KV_OUT=${CMP_KV_OUT:-$B/bench-results/compare-kv.tsv}
KV_SERVERS="weft env WEFT_BACKEND=io_uring $B/examples/kv_server --port @PORT@ --loops 1
weft_epoll env WEFT_BACKEND=epoll $B/examples/kv_server --port @PORT@ --loops 1
redis $REDIS @TMP@/redis.conf --port @PORT@"

# redis-benchmark -t $1 -n $2 against $port on the client CPU: its CSV
# row's rps (empty if it failed).
kv_load() {
	timeout -k 2 $((KV_SECS * 10 + 30)) taskset -c "$CCPU_PIN" redis-benchmark -h 127.0.0.1 \
		-p "$port" -c "$KV_CONNS" -P "$KV_PIPE" -t "$1" -n "$2" -q --csv \
		</dev/null 2>"$rundir/client.err" | tr '\r' '\n' >"$rundir/client.out"
	awk -F'"' -v t="$(echo "$1" | tr a-z A-Z)" '$2 == t { print $4 }' "$rundir/client.out"
}

kv_section() {
	kv_status=0
	if [ ! -x "$REDIS" ] || ! command -v redis-benchmark >/dev/null 2>&1; then
		say "*** kv: redis-server ($REDIS) or redis-benchmark missing (sh tools/deps.sh bench-io): SKIPPING the kv section ***"
		return
	fi
	printf 'save ""\nappendonly no\nbind 127.0.0.1\ndir %s\n' "$tmp" >"$tmp/redis.conf"
	kv_list=$(printf '%s\n' "$KV_SERVERS" | sed "s|@TMP@|$tmp|g")
	kv_avail=$(available "$kv_list")
	SCPU=$SCPU_PIN
	# -n per test: about KV_SECS seconds against redis-server
	start_server "$(server_cmd redis "$kv_list")" || { kv_status=1; return; }
	kv_n=
	for t in $KV_TESTS; do
		r=$(kv_load "$t" 200000)
		n=$(awk -v r="${r:-0}" -v s="$KV_SECS" 'BEGIN { n = int(r * s / 10000) * 10000; print n < 100000 ? 100000 : n }')
		kv_n="$kv_n $t=$n"
	done
	stop_server
	say "kv: -n per test:$kv_n; $(echo $kv_avail | wc -w) servers x $KV_REPS repeats, about $(( $(echo $kv_avail | wc -w) * KV_REPS * (4 * KV_SECS + 3) )) s"
	mkdir -p "$(dirname "$KV_OUT")" || exit 2
	{
		echo "# weft bench/compare.sh kv $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) cpus=$NCPU conns=$KV_CONNS pipeline=$KV_PIPE secs=$KV_SECS reps=$KV_REPS n:$kv_n"
		echo "# rep	server	test	requests	rps	cpu_us	errors"
	} >"$KV_OUT"
	rep=1
	while [ "$rep" -le "$KV_REPS" ]; do
		for s in $(rotate $((rep - 1)) "$kv_avail"); do
			if ! start_server "$(server_cmd "$s" "$kv_list")"; then
				for t in $KV_TESTS; do echo "$rep	$s	$t	-	-	-	1" >>"$KV_OUT"; done
				continue
			fi
			kv_load ping_mbulk 50000 >/dev/null # warm-up
			for t in $KV_TESTS; do
				n=$(kv "$t" "$kv_n")
				t0=$(cpu_ticks "$spid")
				r=$(kv_load "$t" "$n")
				t1=$(cpu_ticks "$spid")
				e=0
				[ -n "$r" ] && [ -n "$t0" ] && [ -n "$t1" ] || e=1
				kill -0 "$spid" 2>/dev/null || { e=1; say "kv: $s died"; sed 's/^/  | /' "$rundir/server.log" >&2; }
				[ -s "$rundir/client.err" ] && sed 's/^/  | /' "$rundir/client.err" >&2
				if [ "$e" = 0 ]; then
					cpu=$(awk "BEGIN { print ($t1 - $t0) * 1e6 / $TICK / $n }")
					echo "$rep	$s	$t	$n	$r	$cpu	0" >>"$KV_OUT"
					say "kv rep $rep $s $t: rps=$r cpu_us=$cpu"
				else
					echo "$rep	$s	$t	$n	-	-	1" >>"$KV_OUT"
					say "kv rep $rep $s $t: no measurement"
				fi
			done
			stop_server
		done
		rep=$((rep + 1))
	done
	awk -F'\t' "$STATS_AWK$RUN_ROWS_AWK"'
	END {
		for (i = 1; i <= nk; i++) {
			split(order[i], p, SUBSEP)
			k = order[i]
			printf "BENCH kv_%s_%s rps=%s cpu_us=%s errors=%d runs=%d rps_range=%s cpu_us_range=%s\n",
				toupper(p[1]), p[2], fmt(median(k SUBSEP "rps")), fmt(median(k SUBSEP "cpu")),
				errs[k], runs[k], range(k SUBSEP "rps"), range(k SUBSEP "cpu")
		}
		ok = 0; missed = ""
		split("weft weft_epoll", ws, " ")
		for (w = 1; w <= 2; w++)
			for (i = 1; i <= nt; i++) {
				t = tests[i]
				a = t SUBSEP ws[w]; b = t SUBSEP "redis"
				mw = median(a SUBSEP "cpu"); mb = median(b SUBSEP "cpu")
				rw = median(a SUBSEP "rps"); rb = median(b SUBSEP "rps")
				name = "kv_" toupper(t) "_" ws[w] "_vs_redis"
				if (mw == "-" || mb == "-" || mb == 0 || errs[a] || errs[b]) {
					printf "BENCH %s skipped: no numbers or errors\n", name
					missed = missed " " toupper(t) "/" ws[w] "(no numbers)"
					continue
				}
				r = mw / mb
				pass = r <= 0.8
				printf "BENCH %s rps_ratio=%.2f cpu_us=%s vs=%s ratio=%.2f target=<=0.8x %s\n",
					name, (rb > 0 ? rw / rb : 0), fmt(mw), fmt(mb), r, pass ? "ok" : "MISS"
				if (pass) ok++; else missed = missed " " toupper(t) "/" ws[w] sprintf("(%.2fx)", r)
			}
		if (missed == "" && ok > 0)
			print "kv TARGET met: server CPU per request <= 0.8x redis-server'"'"'s, on both backends"
		else
			print "kv TARGET MISSED: server CPU per request <= 0.8x redis-server'"'"'s, on both backends; missed:" missed
		printf "kv data: %s\n", out
	}' out="$KV_OUT" "$KV_OUT"
}

# ---------------------------------------------------------------------------
# The proxy section: tcp_proxy (io_uring, epoll) against haproxy, each in
# front of two nginx upstreams; beside them the floor (bench/baseline/
# proxy_floor.c: a proxy with no user code), no target.
# ---------------------------------------------------------------------------
PX_REPS=${CMP_PROXY_REPEATS:-$REPS}
PX_SECS=${CMP_PROXY_SECONDS:-$SECS}
PX_SMALL_CONNS=${CMP_PROXY_SMALL_CONNS:-64}
PX_BIG_CONNS=${CMP_PROXY_BIG_CONNS:-8}
PX_IDLE=${CMP_PROXY_IDLE:-2000}
HAPROXY=${CMP_HAPROXY:-/usr/sbin/haproxy}
PX_OUT=${CMP_PROXY_OUT:-$B/bench-results/compare-proxy.tsv}
PX_WEFT_ARGS=${CMP_PROXY_WEFT_ARGS:-} # more tcp_proxy options
# wake coalescing of weft and weft_epoll (weft_plain: none)
PX_COALESCE=${CMP_PROXY_COALESCE_US:-50}
# @UP1@ and @UP2@ are the nginx upstreams' ports
PX_SERVERS="weft env WEFT_BACKEND=io_uring $B/examples/tcp_proxy --port @PORT@ --loops 1 --upstream 127.0.0.1:@UP1@ --upstream 127.0.0.1:@UP2@ --coalesce-us $PX_COALESCE $PX_WEFT_ARGS
weft_epoll env WEFT_BACKEND=epoll $B/examples/tcp_proxy --port @PORT@ --loops 1 --upstream 127.0.0.1:@UP1@ --upstream 127.0.0.1:@UP2@ --coalesce-us $PX_COALESCE $PX_WEFT_ARGS
weft_plain env WEFT_BACKEND=io_uring $B/examples/tcp_proxy --port @PORT@ --loops 1 --upstream 127.0.0.1:@UP1@ --upstream 127.0.0.1:@UP2@ $PX_WEFT_ARGS
haproxy $HAPROXY -db -f @DIR@/haproxy.cfg
floor $B/bench/baseline/proxy_floor --port @PORT@ --upstream @UP1@ --upstream @UP2@"
# (proxy_floor --coalesce, which waits for a batch on every pass, cost
# more than the floor here, 26.5 against 22.1 us a small request, and
# halved its 1 MiB rate: not a floor; add it with
# CMP_PROXY_FLOOR_COALESCE=1)
[ "${CMP_PROXY_FLOOR_COALESCE:-0}" = 1 ] && PX_SERVERS="$PX_SERVERS
floor_coalesce $B/bench/baseline/proxy_floor --port @PORT@ --upstream @UP1@ --upstream @UP2@ --coalesce $PX_COALESCE"

# An nginx upstream on the next free port, pinned to the client's CPU,
# serving $tmp/www (small: 128 B, 1m: 1 MiB); its PID is added to
# px_upids, its port left in $port.
px_upstream() {
	port=$((port + 1))
	while port_used "$port"; do port=$((port + 1)); done
	d=$tmp/up.$port
	mkdir -p "$d"
	cat >"$d/nginx.conf" <<-CONF
	daemon off;
	master_process off;
	worker_processes 1;
	pid $d/nginx.pid;
	error_log $d/error.log warn;
	events { use epoll; worker_connections 8192; }
	http {
	    access_log off;
	    server_tokens off;
	    default_type application/octet-stream;
	    sendfile on;
	    keepalive_timeout 65;
	    keepalive_requests 100000000;
	    client_body_temp_path $d/body;
	    proxy_temp_path $d/proxy;
	    fastcgi_temp_path $d/fastcgi;
	    uwsgi_temp_path $d/uwsgi;
	    scgi_temp_path $d/scgi;
	    server {
	        listen 127.0.0.1:$port backlog=4096;
	        root $tmp/www;
	    }
	}
	CONF
	taskset -c "$CCPU_PIN" "$NGINX" -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" \
		</dev/null >"$d/log" 2>&1 &
	px_upids="$px_upids $!"
	i=0
	while [ $i -lt 100 ] && ! port_listening "$port"; do sleep 0.05; i=$((i + 1)); done
	port_listening "$port" || { say "proxy: nginx did not come up on $port"; sed 's/^/  | /' "$d/log" "$d/error.log" >&2; return 1; }
}

# wrk through the proxy on $port: $1 connections, $2 seconds, path $3;
# prints wrk_parse's line.
px_wrk() {
	timeout -k 2 $(($2 + 20)) taskset -c "$CCPU_PIN" wrk -t1 -c"$1" -d"$2"s --latency \
		"http://127.0.0.1:$port/$3" </dev/null >"$rundir/client.out" 2>&1
	wrk_parse "$rundir/client.out"
}

proxy_section() {
	px_status=0
	missing=
	[ -x "$HAPROXY" ] || missing="$missing haproxy($HAPROXY)"
	[ -x "$NGINX" ] || missing="$missing nginx($NGINX)"
	command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
	command -v curl >/dev/null 2>&1 || missing="$missing curl"
	[ -x "$B/bench/idle_conns" ] || missing="$missing $B/bench/idle_conns(make)"
	if [ -n "$missing" ]; then
		say "*** proxy: missing$missing (sh tools/deps.sh bench-io): SKIPPING the proxy section ***"
		return
	fi
	mkdir -p "$tmp/www"
	head -c 128 /dev/zero | tr '\0' 's' >"$tmp/www/small"
	head -c 1048576 /dev/zero | tr '\0' 'm' >"$tmp/www/1m"
	px_upids=
	SCPU=$CCPU_PIN
	px_upstream && up1=$port && px_upstream && up2=$port || { px_status=1; return; }
	# start_server copies it to the run's directory with @PORT@ set
	cat >"$tmp/haproxy.cfg.in" <<-CONF
	global
	    nbthread 1
	    maxconn 8000
	defaults
	    mode tcp
	    timeout connect 1s
	    timeout client 60s
	    timeout server 60s
	frontend fe
	    bind 127.0.0.1:@PORT@
	    default_backend be
	backend be
	    balance roundrobin
	    server up1 127.0.0.1:$up1
	    server up2 127.0.0.1:$up2
	CONF
	px_list=$(printf '%s\n' "$PX_SERVERS" | sed -e "s|@UP1@|$up1|g" -e "s|@UP2@|$up2|g")
	px_avail=$(available "$px_list")
	SCPU=$SCPU_PIN
	say "proxy: upstreams nginx on $up1 and $up2 (CPU $CCPU_PIN); $(echo $px_avail | wc -w) proxies x $PX_REPS repeats, about $(( $(echo $px_avail | wc -w) * PX_REPS * (2 * PX_SECS + 10) )) s"
	mkdir -p "$(dirname "$PX_OUT")" || exit 2
	{
		echo "# weft bench/compare.sh proxy $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) cpus=$NCPU small_conns=$PX_SMALL_CONNS big_conns=$PX_BIG_CONNS idle=$PX_IDLE secs=$PX_SECS reps=$PX_REPS coalesce_us=$PX_COALESCE (not weft_plain) tcp_proxy args: ${PX_WEFT_ARGS:-none}"
		echo "# rep	proxy	test	value	cpu_us	errors	sys_share	(small: rps, CPU us per request; 1m: MiB/s, CPU us per MiB; idle: RSS bytes per client; sys_share: the kernel's part of the CPU)"
	} >"$PX_OUT"
	rep=1
	while [ "$rep" -le "$PX_REPS" ]; do
		for s in $(rotate $((rep - 1)) "$px_avail"); do
			if ! start_server "$(server_cmd "$s" "$px_list")"; then
				for t in idle small 1m; do echo "$rep	$s	$t	-	-	1" >>"$PX_OUT"; done
				continue
			fi
			# both files come through whole
			e=0
			for f in small:128 1m:1048576; do
				got=$(curl -s -m 5 -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/${f%:*}" 2>/dev/null)
				[ "$got" = "${f#*:}" ] || { say "proxy: $s: /${f%:*} gave ${got:-nothing}, not ${f#*:} bytes"; e=1; }
			done
			# idle clients first, on the fresh proxy: its RSS growth per
			# client once every connection (and its upstream one) is open
			# (not the floor's: it takes its buffers at connect, plainly)
			case $s in floor*) line= ;; *) false ;; esac ||
			line=$(timeout 60 taskset -c "$CCPU_PIN" "$B/bench/idle_conns" -p "$port" --pid "$spid" \
				-n "$PX_IDLE" --name "$s" --no-echo 2>"$rundir/idle.err")
			rss=$(kv rss_per_conn_B "$line")
			if [ "${s%%_*}" = floor ]; then
				rss=-
			elif [ -n "$rss" ] && [ "$e" = 0 ]; then
				echo "$rep	$s	idle	$rss	-	0" >>"$PX_OUT"
			else
				sed 's/^/  | /' "$rundir/idle.err" >&2
				echo "$rep	$s	idle	-	-	1" >>"$PX_OUT"
			fi
			sleep 0.5 # the idle connections close
			px_wrk "$PX_SMALL_CONNS" 1 small >/dev/null # warm-up
			for t in small 1m; do
				c=$PX_SMALL_CONNS
				[ "$t" = 1m ] && c=$PX_BIG_CONNS
				t0=$(cpu_ticks "$spid") s0=$(sys_ticks "$spid")
				line=$(px_wrk "$c" "$PX_SECS" "$t")
				t1=$(cpu_ticks "$spid") s1=$(sys_ticks "$spid")
				req=$(kv requests "$line")
				err=$(( $(kv errors "$line") + e ))
				kill -0 "$spid" 2>/dev/null || { err=$((err + 1)); say "proxy: $s died"; sed 's/^/  | /' "$rundir/server.log" >&2; }
				if [ "${req:-0}" -gt 0 ] && [ -n "$t0" ] && [ -n "$t1" ] && [ "$err" = 0 ]; then
					# 1m: every request is one MiB, so MiB/s is requests/s
					cpu=$(awk "BEGIN { print ($t1 - $t0) * 1e6 / $TICK / $req }")
					sys=$(awk "BEGIN { d = $t1 - $t0; print (d > 0 ? ($s1 - $s0) / d : 0) }")
					echo "$rep	$s	$t	$(kv rps "$line")	$cpu	0	$sys" >>"$PX_OUT"
					say "proxy rep $rep $s $t: $line cpu_us=$cpu rss_per_idle_B=$rss"
				else
					echo "$rep	$s	$t	-	-	$((err + 1))" >>"$PX_OUT"
					say "proxy rep $rep $s $t: no measurement ($line)"
				fi
			done
			stop_server
		done
		rep=$((rep + 1))
	done
	for p in $px_upids; do kill "$p" 2>/dev/null; done
	px_upids=
	awk -F'\t' -v idle="$PX_IDLE" -v sc="$PX_SMALL_CONNS" -v bc="$PX_BIG_CONNS" "$STATS_AWK$TARGET_AWK"'
	# the median of key k, or "-" after errors
	function m(t, w, f,  k) { k = t SUBSEP w; return errs[k] ? "-" : median(k SUBSEP f) }
	/^#/ { next }
	{
		key = $3 SUBSEP $2
		if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
		runs[key]++
		errs[key] += $6
		if ($4 != "-") vals[key, "v"] = vals[key, "v"] " " $4
		if ($5 != "-") vals[key, "cpu"] = vals[key, "cpu"] " " $5
		by_rep(key, "v", $4)
		by_rep(key, "cpu", $5)
		if ($7 != "") vals[key, "sys"] = vals[key, "sys"] " " $7
	}
	END {
		for (i = 1; i <= nk; i++) {
			split(order[i], p, SUBSEP)
			k = order[i]
			if (p[1] == "idle")
				printf "BENCH proxy_idle%s_%s rss_per_client_B=%s errors=%d runs=%d rss_range=%s\n",
					idle, p[2], fmt(median(k SUBSEP "v")), errs[k], runs[k], range(k SUBSEP "v")
			else if (p[1] == "small")
				printf "BENCH proxy_small_c%s_%s rps=%s cpu_us=%s sys_share=%s errors=%d runs=%d rps_range=%s cpu_us_range=%s\n",
					sc, p[2], fmt(median(k SUBSEP "v")), fmt(median(k SUBSEP "cpu")), fmt(median(k SUBSEP "sys")),
					errs[k], runs[k], range(k SUBSEP "v"), range(k SUBSEP "cpu")
			else
				printf "BENCH proxy_1mib_c%s_%s mib_s=%s cpu_us_per_mib=%s errors=%d runs=%d mib_s_range=%s cpu_us_range=%s\n",
					bc, p[2], fmt(median(k SUBSEP "v")), fmt(median(k SUBSEP "cpu")), errs[k], runs[k],
					range(k SUBSEP "v"), range(k SUBSEP "cpu")
		}
		ok = 0; missed = ""
		split("weft weft_epoll", ws, " ")
		for (w = 1; w <= 2; w++) {
			W = ws[w]
			paired("small" SUBSEP W SUBSEP "cpu", "small" SUBSEP "haproxy" SUBSEP "cpu")
			target("proxy_small_" W "_vs_haproxy", "small/" W, "cpu_us",
				m("small", W, "cpu"), m("small", "haproxy", "cpu"), 0.9, 0)
			target("proxy_1mib_" W "_vs_haproxy", "1MiB-rate/" W, "mib_s",
				m("1m", W, "v"), m("1m", "haproxy", "v"), 1, 1)
			target("proxy_1mib_cpu_" W "_vs_haproxy", "1MiB-cpu/" W, "cpu_us_per_mib",
				m("1m", W, "cpu"), m("1m", "haproxy", "cpu"), 0.8, 0)
			target("proxy_idle_" W "_vs_haproxy", "idle-rss/" W, "rss_per_client_B",
				m("idle", W, "v"), m("idle", "haproxy", "v"), 1.5, 0)
		}
		# without coalescing (no target)
		if ((("small" SUBSEP "weft_plain" SUBSEP "cpu") in vals) && !errs["small" SUBSEP "weft_plain"]) {
			mw = m("small", "weft_plain", "cpu"); hb = m("small", "haproxy", "cpu")
			paired("small" SUBSEP "weft_plain" SUBSEP "cpu", "small" SUBSEP "haproxy" SUBSEP "cpu")
			if (hb != "-" && hb > 0)
				printf "BENCH proxy_small_weft_plain_vs_haproxy cpu_us=%s vs=%s ratio=%.2f (no target: no wake coalescing)%s\n",
					fmt(mw), fmt(hb), mw / hb, pairs
			pairs = ""
		}
		# the floors (no target): what a proxy with no user code costs
		# against haproxy, and weft against the floor that waits as it
		# does (floor_coalesce: weft and weft_epoll; floor: weft_plain)
		split("floor floor_coalesce", fls, " ")
		for (f = 1; f <= 2; f++) {
			F = fls[f]
			if (!(("small" SUBSEP F SUBSEP "cpu") in vals) || errs["small" SUBSEP F])
				continue
			fl = m("small", F, "cpu")
			paired("small" SUBSEP F SUBSEP "cpu", "small" SUBSEP "haproxy" SUBSEP "cpu")
			hb = m("small", "haproxy", "cpu")
			if (hb != "-" && hb > 0)
				printf "BENCH proxy_small_%s_vs_haproxy cpu_us=%s vs=%s ratio=%.2f (no target: the least a proxy pays)%s\n",
					F, fmt(fl), fmt(hb), fl / hb, pairs
			split(F == "floor" ? "weft_plain" : "weft weft_epoll", fw, " ")
			for (w = 1; w in fw; w++) {
				W = fw[w]
				mw = m("small", W, "cpu")
				if (mw == "-" || !(("small" SUBSEP W SUBSEP "cpu") in vals))
					continue
				paired("small" SUBSEP W SUBSEP "cpu", "small" SUBSEP F SUBSEP "cpu")
				printf "BENCH proxy_small_%s_vs_%s cpu_us=%s vs=%s ratio=%.2f (no target)%s\n",
					W, F, fmt(mw), fmt(fl), mw / fl, pairs
			}
			pairs = ""
		}
		t = "small requests CPU per request <= 0.9x haproxy'"'"'s; 1 MiB bodies MiB/s >= haproxy'"'"'s and CPU per MiB <= 0.8x; RSS per idle client <= 1.5x; on both backends"
		if (missed == "" && ok > 0)
			print "proxy TARGET met: " t
		else
			print "proxy TARGET MISSED: " t "; missed:" missed
		printf "proxy data: %s\n", out
	}' out="$PX_OUT" "$PX_OUT"
}


# ---------------------------------------------------------------------------
# The clients section: weft-load against redis-benchmark and wrk.
# ---------------------------------------------------------------------------
CL_REPS=${CMP_CLIENTS_REPEATS:-$REPS}
CL_SECS=${CMP_CLIENTS_SECONDS:-3}
CL_CONNS=${CMP_CLIENTS_CONNS:-50}
CL_PIPE=${CMP_CLIENTS_PIPELINE:-16}
CL_TESTS=${CMP_CLIENTS_TESTS:-get set ping}
CL_HTTP_CONNS=${CMP_CLIENTS_HTTP_CONNS:-64}
CL_LOAD_ARGS=${CMP_CLIENTS_LOAD_ARGS:-}
# wake coalescing on HTTP, microseconds, of "load_coalesce" and
# "floor_coalesce" (weft-load "load" and the other floors: none)
CL_COALESCE=${CMP_CLIENTS_COALESCE_US:-50}
CL_OUT=${CMP_CLIENTS_OUT:-$B/bench-results/compare-clients.tsv}

# Run client $1 (redis-benchmark, load) on test $2 with -n $3 against
# redis-server on $port: "rps cpu_s" (rps empty if it failed).
# The same test as redis-benchmark's default: one key, 3-byte values.
cl_redis() {
	lim=$((CL_SECS * 10 + 30))
	if [ "$1" = load ]; then
		(
			timeout -k 2 $lim taskset -c "$CCPU_PIN" "$LOAD" -c "$CL_CONNS" --pipeline "$CL_PIPE" \
				--loops 1 --command "$2" --keyspace 1 --size 3 -n "$3" --json --no-progress \
				$CL_LOAD_ARGS "redis://127.0.0.1:$port" \
				</dev/null >"$rundir/client.out" 2>"$rundir/client.err"
			times >"$rundir/client.times"
		)
		r=$(load_parse "$rundir/client.out")
		[ "$(kv errors "$r")" = 0 ] && [ "$(kv requests "$r")" = "$3" ] && rps=$(kv rps "$r") || rps=
	else
		t=$2
		[ "$t" = ping ] && t=ping_mbulk
		(
			timeout -k 2 $lim taskset -c "$CCPU_PIN" redis-benchmark -h 127.0.0.1 -p "$port" \
				-c "$CL_CONNS" -P "$CL_PIPE" -t "$t" -n "$3" -q --csv \
				</dev/null 2>"$rundir/client.err" | tr '\r' '\n' >"$rundir/client.out"
			times >"$rundir/client.times"
		)
		rps=$(awk -F'"' -v t="$(echo "$t" | tr a-z A-Z)" '$2 == t { print $4 }' "$rundir/client.out")
	fi
	echo "$rps $(times_cpu_s "$rundir/client.times") $(times_sys_share "$rundir/client.times")"
}

# Client $1 (wrk, load) on nginx for CL_SECS: "rps requests cpu_s".
cl_http() {
	lim=$((CL_SECS + 20))
	if [ "$1" = load ] || [ "$1" = load_coalesce ]; then
		co=
		[ "$1" = load_coalesce ] && co="--coalesce ${CL_COALESCE}us"
		(
			# shellcheck disable=SC2086
			timeout -k 2 $lim taskset -c "$CCPU_PIN" "$LOAD" -c "$CL_HTTP_CONNS" -d "$CL_SECS"s \
				--loops 1 --json --no-progress $co $CL_LOAD_ARGS "http://127.0.0.1:$port/" \
				</dev/null >"$rundir/client.out" 2>"$rundir/client.err"
			times >"$rundir/client.times"
		)
		r=$(load_parse "$rundir/client.out")
	elif [ "${1%%_*}" = floor ]; then
		(
			# shellcheck disable=SC2046
			timeout -k 2 $lim taskset -c "$CCPU_PIN" "$FLOOR" -p "$port" -c "$CL_HTTP_CONNS" \
				-d "$CL_SECS" $(case $1 in floor_coalesce) echo "--coalesce $CL_COALESCE" ;;
					*_*) echo "--${1#floor_}" ;; esac) \
				</dev/null >"$rundir/client.out" 2>"$rundir/client.err"
			times >"$rundir/client.times"
		)
		r=$(cat "$rundir/client.out")
	else
		(
			timeout -k 2 $lim taskset -c "$CCPU_PIN" wrk -t1 -c"$CL_HTTP_CONNS" -d"$CL_SECS"s \
				--latency "http://127.0.0.1:$port/" </dev/null >"$rundir/client.out" 2>&1
			times >"$rundir/client.times"
		)
		r=$(wrk_parse "$rundir/client.out")
	fi
	if [ "$(kv errors "$r")" = 0 ]; then
		echo "$(kv rps "$r") $(kv requests "$r") $(times_cpu_s "$rundir/client.times") $(times_sys_share "$rundir/client.times")"
	else
		echo "- - - -"
	fi
}

clients_section() {
	cl_status=0
	if [ ! -x "$LOAD" ]; then
		say "*** clients: $LOAD is not built: SKIPPING the clients section ***"
		return
	fi
	SCPU=$SCPU_PIN
	mkdir -p "$(dirname "$CL_OUT")" || exit 2
	{
		echo "# weft bench/compare.sh clients $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) cpus=$NCPU redis: conns=$CL_CONNS pipeline=$CL_PIPE http: conns=$CL_HTTP_CONNS secs=$CL_SECS reps=$CL_REPS weft-load args: ${CL_LOAD_ARGS:-none}, load_coalesce: --coalesce ${CL_COALESCE}us"
		echo "# rep	client	test	requests	rps	client_cpu_us	errors	sys_share	(sys_share: the kernel's part of the client's CPU)"
	} >"$CL_OUT"
	do_redis=1 do_http=1
	if [ ! -x "$REDIS" ] || ! command -v redis-benchmark >/dev/null 2>&1; then
		say "*** clients: redis-server ($REDIS) or redis-benchmark missing: SKIPPING the redis part ***"
		do_redis=0
	fi
	if [ ! -x "$NGINX" ] || ! command -v wrk >/dev/null 2>&1; then
		say "*** clients: nginx ($NGINX) or wrk missing: SKIPPING the http part ***"
		do_http=0
	fi
	# The floors (bench/baseline/http_floor.c): the least a client can do
	# per request, on io_uring and on epoll; what they cost is what no
	# client beats on this host.
	cl_floor="floor floor_multishot floor_epoll floor_coalesce"
	if [ ! -x "$FLOOR" ]; then
		say "*** clients: $FLOOR is not built: SKIPPING the HTTP floors ***"
		cl_floor=
	fi
	printf 'save ""\nappendonly no\nbind 127.0.0.1\ndir %s\n' "$tmp" >"$tmp/redis.conf"
	redis_cmd="$REDIS $tmp/redis.conf --port @PORT@"
	nginx_cmd="$NGINX -p @DIR@/ -e @DIR@/error.log -c @DIR@/nginx.conf"
	cl_n=
	if [ "$do_redis" = 1 ] && start_server "$redis_cmd"; then
		for t in $CL_TESTS; do
			set -- $(cl_redis redis-benchmark "$t" 200000)
			n=$(awk -v r="${1:-0}" -v s="$CL_SECS" 'BEGIN { n = int(r * s / 10000) * 10000; print n < 100000 ? 100000 : n }')
			cl_n="$cl_n $t=$n"
		done
		stop_server
		say "clients: redis -n per test:$cl_n"
	else
		do_redis=0
	fi
	rep=1
	while [ "$rep" -le "$CL_REPS" ]; do
		if [ "$do_redis" = 1 ] && start_server "$redis_cmd"; then
			for t in $CL_TESTS; do
				n=$(kv "$t" "$cl_n")
				for c in $(rotate $((rep - 1)) "load redis-benchmark"); do
					set -- $(cl_redis "$c" "$t" "$n")
					[ -s "$rundir/client.err" ] && sed 's/^/  | /' "$rundir/client.err" >&2
					if [ -n "$1" ] && [ $# -eq 3 ]; then
						cpu=$(awk "BEGIN { print $2 * 1e6 / $n }")
						echo "$rep	$c	redis_$t	$n	$1	$cpu	0	$3" >>"$CL_OUT"
						say "clients rep $rep redis $t $c: rps=$1 client_cpu_us=$cpu sys_share=$3"
					else
						echo "$rep	$c	redis_$t	$n	-	-	1	-" >>"$CL_OUT"
						say "clients rep $rep redis $t $c: no measurement"
					fi
				done
			done
			stop_server
		fi
		if [ "$do_http" = 1 ] && start_server "$nginx_cmd"; then
			for c in $(rotate $((rep - 1)) "load wrk load_coalesce $cl_floor"); do
				cl_http "$c" >/dev/null # warm-up, 1 s would do; same length keeps it simple
				set -- $(cl_http "$c")
				if [ "$1" != - ] && [ "$2" -gt 0 ] 2>/dev/null; then
					cpu=$(awk "BEGIN { print $3 * 1e6 / $2 }")
					echo "$rep	$c	http_c$CL_HTTP_CONNS	$2	$1	$cpu	0	$4" >>"$CL_OUT"
					say "clients rep $rep http $c: rps=$1 client_cpu_us=$cpu sys_share=$4"
				else
					echo "$rep	$c	http_c$CL_HTTP_CONNS	-	-	-	1	-" >>"$CL_OUT"
					say "clients rep $rep http $c: no measurement"
				fi
			done
			stop_server
		fi
		rep=$((rep + 1))
	done
	awk -F'\t' "$STATS_AWK$RUN_ROWS_AWK$TARGET_AWK"'
	END {
		for (i = 1; i <= nk; i++) {
			split(order[i], p, SUBSEP)
			k = order[i]
			printf "BENCH clients_%s_%s rps=%s client_cpu_us=%s sys_share=%s errors=%d runs=%d rps_range=%s client_cpu_us_range=%s\n",
				p[1], p[2], fmt(median(k SUBSEP "rps")), fmt(median(k SUBSEP "cpu")),
				(k SUBSEP "sys") in vals ? median(k SUBSEP "sys") : "-",
				errs[k], runs[k], range(k SUBSEP "rps"), range(k SUBSEP "cpu")
		}
		ok = 0; missed = ""
		for (i = 1; i <= nt; i++) {
			t = tests[i]
			base = t ~ /^redis_/ ? "redis-benchmark" : "wrk"
			lim = t ~ /^redis_/ ? 0.6 : 0.8
			a = t SUBSEP "load"; b = t SUBSEP base
			bad = errs[a] || errs[b]
			name = "clients_" t "_load_vs_" (base == "wrk" ? "wrk" : "redis_benchmark")
			target(name, "", "rps", bad ? "-" : median(a SUBSEP "rps"), median(b SUBSEP "rps"), 1, 1)
			paired(a SUBSEP "cpu", b SUBSEP "cpu")
			target(name "_cpu", "", "client_cpu_us", bad ? "-" : median(a SUBSEP "cpu"), median(b SUBSEP "cpu"), lim, 0)
		}
		# weft-load with wake coalescing against wrk (no target)
		for (i = 1; i <= nt; i++) {
			t = tests[i]
			a = t SUBSEP "load_coalesce"; b = t SUBSEP "wrk"
			if (!((a SUBSEP "cpu") in vals) || !((b SUBSEP "cpu") in vals) || errs[a] || errs[b])
				continue
			paired(a SUBSEP "cpu", b SUBSEP "cpu")
			printf "BENCH clients_%s_load_coalesce_vs_wrk_cpu client_cpu_us=%s vs=%s ratio=%.2f (no target: wake coalescing)%s\n",
				t, fmt(median(a SUBSEP "cpu")), fmt(median(b SUBSEP "cpu")),
				median(a SUBSEP "cpu") / median(b SUBSEP "cpu"), pairs
			pairs = ""
		}
		# Where the floors ran: what they cost against wrk (no target:
		# the least any client pays here), and weft-load against them.
		for (i = 1; i <= nt; i++) {
			t = tests[i]
			split("floor floor_multishot floor_epoll floor_coalesce", fls, " ")
			for (f = 1; f <= 4; f++) {
				fl = fls[f]
				# each weft-load against the floor that waits as it does
				ld = fl == "floor_coalesce" ? "load_coalesce" : "load"
				a = t SUBSEP fl; b = t SUBSEP "wrk"; c = t SUBSEP ld
				if (!((a SUBSEP "cpu") in vals) || !((b SUBSEP "cpu") in vals) || errs[a] || errs[b])
					continue
				paired(a SUBSEP "cpu", b SUBSEP "cpu")
				printf "BENCH clients_%s_%s_vs_wrk_cpu client_cpu_us=%s vs=%s ratio=%.2f (no target: the least a client pays)%s\n",
					t, fl, fmt(median(a SUBSEP "cpu")), fmt(median(b SUBSEP "cpu")),
					median(a SUBSEP "cpu") / median(b SUBSEP "cpu"), pairs
				if (!((c SUBSEP "cpu") in vals) || errs[c])
					continue
				paired(c SUBSEP "cpu", a SUBSEP "cpu")
				printf "BENCH clients_%s_%s_vs_%s_cpu client_cpu_us=%s vs=%s ratio=%.2f (no target)%s\n",
					t, ld, fl, fmt(median(c SUBSEP "cpu")), fmt(median(a SUBSEP "cpu")),
					median(c SUBSEP "cpu") / median(a SUBSEP "cpu"), pairs
				pairs = ""
			}
		}
		if (missed == "" && ok > 0)
			print "clients TARGET met: weft-load >= the reference client'"'"'s requests/s at <= 0.6x (redis-benchmark) / 0.8x (wrk) its CPU per request"
		else
			print "clients TARGET MISSED: weft-load >= the reference client'"'"'s requests/s at <= 0.6x (redis-benchmark) / 0.8x (wrk) its CPU per request; missed:" missed
		printf "clients data: %s\n", out
	}' out="$CL_OUT" "$CL_OUT"
}

case " $SECTIONS " in *" kv "*) kv_section ;; esac
case " $SECTIONS " in *" proxy "*) proxy_section ;; esac
case " $SECTIONS " in *" clients "*) clients_section ;; esac
case " $SECTIONS " in
*" servers "*) ;;
*) [ "${kv_status:-0}" = 0 ] && [ "${px_status:-0}" = 0 ] && [ "${cl_status:-0}" = 0 ]; exit $? ;;
esac

perf_init "$SYSSECS"

echo_avail=$(available "$ECHO_SERVERS")
http_avail=$(available "$HTTP_SERVERS")
sweep_avail=
for s in $http_avail; do
	case $s in weft | nginx) sweep_avail="$sweep_avail $s" ;; esac
done

# Set the CPUs, loops and client threads of mode $1.
set_mode() {
	case $1 in
	all) SCPU=$ALLCPUS CCPU=$ALLCPUS SLOOPS=$LOOPS_ALL CTHREADS=$LOOPS_ALL ;;
	*) SCPU=$SCPU_PIN CCPU=$CCPU_PIN SLOOPS=1 CTHREADS=1 ;;
	esac
	NGINX_WORKERS=$SLOOPS
}

# Drive the server: kind $1, client $2, $3 connections, $4 seconds.
# Prints the client's line (rps=.. p50_us=.. ... errors=.. requests=..) and
# leaves its CPU seconds in $rundir/client.cpu.
client() {
	lim=$(($4 + 20))
	case $2 in
	wrk)
		(
			timeout -k 2 $lim taskset -c "$CCPU" wrk -t"$CTHREADS" -c"$3" -d"$4"s --latency \
				"http://127.0.0.1:$port/" </dev/null >"$rundir/client.out" 2>&1
			times >"$rundir/client.times"
		)
		wrk_parse "$rundir/client.out" ;;
	load)
		url=http://127.0.0.1:$port/
		sz=
		[ "$1" = echo ] && url=tcp://127.0.0.1:$port sz="--size $MSG"
		(
			# shellcheck disable=SC2086
			timeout -k 2 $lim taskset -c "$CCPU" "$LOAD" -c "$3" -d "$4"s --loops "$CTHREADS" \
				$sz --json --no-progress "$url" </dev/null >"$rundir/client.out" 2>"$rundir/client.err"
			times >"$rundir/client.times"
		)
		load_parse "$rundir/client.out" ;;
	echo_client)
		(
			timeout -k 2 $lim taskset -c "$CCPU" "$BL/echo_client" -p "$port" \
				-c "$3" -s "$MSG" -d "$4" </dev/null >"$rundir/client.out" 2>"$rundir/client.err"
			times >"$rundir/client.times"
		)
		cat "$rundir/client.out" ;;
	esac
	times_cpu_s "$rundir/client.times" >"$rundir/client.cpu"
}

label() {
	if [ "$1" = echo ]; then echo "echo${MSG}_c$2"; else echo "http_c$2"; fi
}

# One run: mode $1, kind $2, connections $3, server $4 (command $5),
# client $6, repeat $7.  Appends one row to $OUT.
run_one() {
	cmd=$(echo "$5" | sed "s|@LOOPS@|$SLOOPS|g")
	row0="$1	$2	$3	$4	$6	$7"
	if ! start_server "$cmd"; then
		echo "$row0	-	-	-	-	-	-	-	-	-	-	1" >>"$OUT"
		return
	fi
	errs=0
	if [ "$2" = http ]; then
		body=$(curl -s -m 2 "http://127.0.0.1:$port/" 2>/dev/null)
		if [ "$body" != "Hello, World!" ]; then
			say "$4: GET / answered '$body', not 'Hello, World!'"
			errs=1
		fi
	fi
	client "$2" "$6" "$3" "$WARM" >/dev/null
	t0=$(cpu_ticks_tree "$spid")
	line=$(client "$2" "$6" "$3" "$SECS")
	t1=$(cpu_ticks_tree "$spid")
	ccpu=$(cat "$rundir/client.cpu" 2>/dev/null)
	[ -s "$rundir/client.err" ] && sed 's/^/  | /' "$rundir/client.err" >&2
	sys=-
	if [ -n "$PERF" ] && [ "$1" != sweep ] && kill -0 "$spid" 2>/dev/null; then
		pids=$(proc_tree "$spid" | paste -sd, -)
		taskset -c "$CCPU" perf stat -e raw_syscalls:sys_enter -x, \
			-o "$rundir/perf.out" -p "$pids" </dev/null >/dev/null 2>&1 &
		ppid_=$!
		sleep 0.5 # let perf attach; the idle server makes no syscalls meanwhile
		sline=$(client "$2" "$6" "$3" "$SYSSECS")
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
		say "$4 died during the run"
		sed 's/^/  | /' "$rundir/server.log" >&2
		errs=$((errs + 1))
	fi
	if [ -z "$t0" ] || [ -z "$t1" ] || [ -z "$req" ] || [ "${req:-0}" -le 0 ] 2>/dev/null; then
		say "$1 $4 $6: no usable measurement (${line:-no client output})"
		echo "$row0	-	-	-	-	-	-	-	-	-	-	$((errs + 1))" >>"$OUT"
		return
	fi
	cpu=$(awk "BEGIN { print ($t1 - $t0) * 1e6 / $TICK / $req }")
	cc=-
	[ -n "$ccpu" ] && cc=$(awk "BEGIN { print $ccpu * 1e6 / $req }")
	echo "$row0	$(kv rps "$line")	$(kv p50_us "$line")	$(kv p90_us "$line")	$(kv p99_us "$line")	\
$(kv p999_us "$line")	$(kv max_us "$line")	$cpu	$sys	$cc	$errs" >>"$OUT"
	say "$1_$(label "$2" "$3")_$4_$6 rep $7: $line cpu_us=$cpu sys_per_req=$sys client_cpu_us=$cc"
	rm -rf "$rundir"
}

# The configurations, one "mode kind conns" a line.
configs() {
	for m in $MODES; do
		case $m in
		pinned | all)
			for c in $HTTP_CONNS; do echo "$m http $c"; done
			for c in $ECHO_CONNS; do echo "$m echo $c"; done ;;
		sweep)
			for c in $SWEEP_CONNS; do
				case " $MODES " in
				*" pinned "*) case " $HTTP_CONNS " in *" $c "*) continue ;; esac ;;
				esac
				echo "sweep http $c"
			done ;;
		*) say "unknown mode $m (pinned, all, sweep)"; exit 2 ;;
		esac
	done
}
CONFIGS=$(configs)

nrun=0
for cfg in $(echo "$CONFIGS" | awk '{ print $1 "," $2 }'); do
	case $cfg in
	sweep,*) nrun=$((nrun + $(echo $sweep_avail | wc -w))) ;;
	*,http) nrun=$((nrun + $(echo $http_avail | wc -w) * $(echo $http_clients | wc -w))) ;;
	*,echo) nrun=$((nrun + $(echo $echo_avail | wc -w) * $(echo $echo_clients | wc -w))) ;;
	esac
done
est=$((nrun * REPS * (WARM + SECS + SYSSECS + 2)))
say "$nrun runs x $REPS repeats, about $((est / 60)) min $((est % 60)) s ($NCPU CPUs; pinned: server CPU $SCPU_PIN, client CPU $CCPU_PIN)"

mkdir -p "$(dirname "$OUT")" || exit 2
{
	echo "# weft bench/compare.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -r) cpus=$NCPU secs=$SECS reps=$REPS msg=$MSG loops_all=$LOOPS_ALL sweep_client=$SWEEP_CLIENT"
	echo "# mode	kind	conns	server	client	rep	rps	p50_us	p90_us	p99_us	p999_us	max_us	cpu_us	sys_per_req	client_cpu_us	errors"
} >"$OUT"

rep=1
while [ "$rep" -le "$REPS" ]; do
	say "repeat $rep/$REPS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "$CONFIGS" | while read -r m k c; do
		[ -n "$m" ] || continue
		set_mode "$m"
		case $m,$k in
		sweep,*) servers=$sweep_avail clients=$SWEEP_CLIENT list=$HTTP_SERVERS ;;
		*,http) servers=$http_avail clients=$http_clients list=$HTTP_SERVERS ;;
		*) servers=$echo_avail clients=$echo_clients list=$ECHO_SERVERS ;;
		esac
		for s in $(rotate $((rep - 1)) "$servers"); do
			for cl in $clients; do
				run_one "$m" "$k" "$c" "$s" "$(server_cmd "$s" "$list")" "$cl" "$rep" </dev/null
			done
		done
	done
	rep=$((rep + 1))
done

# Medians (min-max) per configuration; then the load generator's targets.
awk -F'\t' -v msg="$MSG" -v load_ok="$([ -x "$LOAD" ] && echo 1 || echo 0)" "$STATS_AWK$TARGET_AWK"'
/^#/ { next }
{
	key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5
	if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
	runs[key]++
	errs[key] += $16
	if ($7 != "-") {
		vals[key, "rps"] = vals[key, "rps"] " " $7
		vals[key, "p50"] = vals[key, "p50"] " " $8
		vals[key, "p90"] = vals[key, "p90"] " " $9
		vals[key, "p99"] = vals[key, "p99"] " " $10
		if ($11 != "-") vals[key, "p999"] = vals[key, "p999"] " " $11
		vals[key, "max"] = vals[key, "max"] " " $12
		vals[key, "cpu"] = vals[key, "cpu"] " " $13
		if ($14 != "-") vals[key, "sys"] = vals[key, "sys"] " " $14
		if ($15 != "-") vals[key, "ccpu"] = vals[key, "ccpu"] " " $15
	}
}
END {
	for (i = 1; i <= nk; i++) {
		split(order[i], p, SUBSEP)
		k = order[i]
		printf "BENCH %s_%s_%s_%s rps=%s p50_us=%s p90_us=%s p99_us=%s p999_us=%s max_us=%s cpu_us=%s sys_per_req=%s client_cpu_us=%s errors=%d runs=%d rps_range=%s cpu_us_range=%s p99_us_range=%s client_cpu_us_range=%s\n",
			p[1], label(p[2], p[3]), p[4], p[5],
			fmt(median(k SUBSEP "rps")), fmt(median(k SUBSEP "p50")), fmt(median(k SUBSEP "p90")),
			fmt(median(k SUBSEP "p99")), fmt(median(k SUBSEP "p999")), fmt(median(k SUBSEP "max")),
			fmt(median(k SUBSEP "cpu")), fmt(median(k SUBSEP "sys")), fmt(median(k SUBSEP "ccpu")),
			errs[k], runs[k], range(k SUBSEP "rps"), range(k SUBSEP "cpu"), range(k SUBSEP "p99"),
			range(k SUBSEP "ccpu")
		if (p[1] == "pinned" && p[2] == "http" && p[4] == "nginx" && !(p[3] in hc)) { hc[p[3]] = 1; conns[++nc] = p[3] }
	}
	ok = miss = skip = 0
	for (i = 1; i <= nc; i++) {
		c = conns[i]
		w = "pinned" SUBSEP "http" SUBSEP c SUBSEP "nginx" SUBSEP "load"
		b = "pinned" SUBSEP "http" SUBSEP c SUBSEP "nginx" SUBSEP "wrk"
		if (!load_ok) {
			printf "compare.sh: load_vs_wrk_c%s SKIPPED: weft-load is not built\n", c > "/dev/stderr"
			skip += 2
			continue
		}
		if (errs[w] > 0) printf "compare.sh: load_vs_wrk_c%s: weft-load had %d errors\n", c, errs[w] > "/dev/stderr"
		target("load_vs_wrk_c" c, "", "client_cpu_us", errs[w] > 0 ? "-" : median(w SUBSEP "ccpu"), median(b SUBSEP "ccpu"), 0.8, 0)
		target("load_vs_wrk_c" c "_rps", "", "rps", errs[w] > 0 ? "-" : median(w SUBSEP "rps"), median(b SUBSEP "rps"), 1, 1)
	}
	printf "bench compare summary: %d ok, %d MISS, %d skipped (data: %s)\n", ok, miss, skip, out
}' out="$OUT" "$OUT"
