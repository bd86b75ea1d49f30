#!/bin/sh
# The soak (issue 10): weft's HTTP and echo servers under a steady load and
# every kind of misbehaving client at once, sampled every second, so that
# a leak of memory, fds or tasks, or an error nobody injected, shows.
# `make soak` builds and runs it; it is not part of `make test`.
#
#   sh bench/soak.sh [BUILD_DIR]          (default: build)
#   sh bench/soak.sh --plot TSV [PNG]     re-plot a finished run
#
# Both servers run at once on loopback, on every CPU (SOAK_LOOPS loops
# each), started with --stats-ms 1000 (a stats line on stderr every second:
# live tasks, open connections; examples/serve_main.h), a short slowloris
# timeout (--head-timeout-ms / --idle-timeout-ms SOAK_SERVER_TIMEOUT_MS)
# and MALLOC_CONF=SOAK_MALLOC_CONF: no thread caches and freed pages given
# back at once, so RSS is the memory the server holds, not what jemalloc
# keeps for speed (its thread caches hold up to hundreds of KiB of freed
# 16-32 KiB buffers and fill in steps; its 10 s decay keeps freed pages:
# together ~10% of RSS, in saw-teeth and steps).  Each gets:
#   - a steady load: build/bench/weft-load, SOAK_CONNS connections paced to
#     SOAK_RATE requests/s in all (one request in flight per connection;
#     HTTP GET /, or 64 B echoes), a 10 s timeout: moderate, so the 2 cores
#     are not saturated and every request must succeed;
#   - the disruptors: build/bench/soak_client (bench/soak_client.c, on
#     weft), SOAK_DISRUPT workers of each kind: connection churn, resets
#     (SO_LINGER 0), slow readers (the server's writes back up), slow
#     writers (a byte at a time; one of them a slowloris the server must
#     cut) and malformed requests (garbage, a 9 KiB header, bad chunked
#     framing, ...; echo: half messages).  Every round has an expected
#     outcome; anything else is "unexpected".
# Every second the sampler appends a row to SOAK_OUT (TSV): per server its
# RSS (VmRSS), open fds (/proc/PID/fd), live tasks, open connections and
# task stacks (its stats line), the steady load's requests and errors (weft-load
# --progress) and the disruptors' connections and unexpected outcomes.
# The load runs 5 s longer than the sampling, so no sample sees it stop.
# At the end the servers get SIGTERM and must shut down gracefully.
#
# Verdict, after the warm-up (the first SOAK_WARMUP_PCT % of the samples):
#   BENCH soak_<server>_<rss|fds|tasks> spread=<(max-min)/min> min=.. max=..
#         first=.. last=.. raw_spread=.. raw_min=.. raw_max=.. samples=N
#         target=<=5% ok|MISS
# spread, min, max, first and last are over the medians of consecutive
# windows of SOAK_WINDOW samples (first and last: the drift); raw_* over
# the single samples.  A sample counts what is in flight at that instant:
# a stall of the shared machine piles the resets' connections up in the
# accept queue for a second; a leak shows in every window.  Per server
#   BENCH soak_<server>_errors <n> errors steady_requests=.. steady_errors=..
#         rounds=.. injected=.. unexpected=.. server_errors=.. shutdown=ok
#         target=0 ok|MISS
# where errors counts everything nobody injected: steady-load errors and
# timeouts, the disruptors' unexpected outcomes, lines on the server's
# stderr other than its stats, accept errors or rejections, a server that
# died or did not shut down cleanly.  The disruptors' injected faults
# (resets, malformed requests answered 400 and closed, ...) are expected.
# Exit status 0 when every target is met, 1 otherwise, 2 when it cannot run.
# The plot (RSS, fds, live tasks against time, both servers) goes to
# SOAK_PLOT (docs/img/soak.png) when gnuplot is there
# (`sh tools/deps.sh bench-io`).
#
# Environment:
#   SOAK_SECONDS=600        sampled run time (whole seconds)
#   SOAK_WARMUP_PCT=20      samples left out of the verdict, from the start
#   SOAK_LIMIT_PCT=5        the target spread
#   SOAK_WINDOW=10          samples per window
#   SOAK_CONNS=256  SOAK_RATE=2000  steady load per server
#   SOAK_LOOPS=2            server loops (0: one per CPU)
#   SOAK_SERVER_TIMEOUT_MS=2000
#   SOAK_DISRUPT="--churn 4 --resets 2 --slow-readers 2 --slow-writers 2 --malformed 2"
#   SOAK_BACKEND            WEFT_BACKEND for the servers (default: theirs)
#   SOAK_MALLOC_CONF=tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0
#                           (empty: jemalloc's defaults; not used, and said
#                           so, for a tree built without jemalloc, such as
#                           build/sysalloc: glibc's malloc ignores it)
#   SOAK_OUT=BUILD_DIR/bench-results/soak.tsv   SOAK_PLOT=docs/img/soak.png
#     (empty: no plot)   SOAK_NOTE="..."  a line for the plot's title
#   SOAK_PORT=24100         first port tried

ME=soak.sh
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

TERM_='set terminal pngcairo size 1000,900 font "sans,10" noenhanced'

# plot TSV PNG: RSS, fds and live tasks of both servers against time, the
# end of the warm-up marked.
plot() {
	command -v gnuplot >/dev/null 2>&1 || {
		say "no gnuplot (sh tools/deps.sh bench-io): no plot"
		return 1
	}
	# columns by name from the header row
	hdr=$(grep -v '^#' "$1" | head -n 1)
	col() { echo "$hdr" | tr '\t' '\n' | awk -v n="$1" '$0 == n { print NR; exit }'; }
	warm=$(sed -n 's/^# .*warmup_s=\([0-9]*\).*/\1/p' "$1")
	origin=$(sed -n '1s/^# //p' "$1" | tr -d '"' | cut -c1-150)
	note=
	[ -n "${SOAK_NOTE:-}" ] && note="\\n$SOAK_NOTE"
	panel() { # ylabel, column suffix, scale
		echo "set ylabel \"$1\""
		echo "plot \"$tsv\" using 1:(\$$(col "http_$2") / $3) with lines lw 2 title \"http_server\", \\"
		echo "     \"$tsv\" using 1:(\$$(col "echo_$2") / $3) with lines lw 2 title \"echo_server\""
	}
	tsv=$1
	gnuplot <<EOF
$TERM_
set output "$2"
set multiplot layout 3,1 title "Soak: weft's servers under steady load, churn, resets, slow readers and writers, malformed requests$note\n$origin"
set grid
set key top left
set datafile separator "\t"
set xlabel "seconds"
set yrange [0:*]
set arrow 1 from $warm, graph 0 to $warm, graph 1 nohead dt 2 lc rgb "gray40"
set label 1 "end of warm-up" at $warm, graph 0.92 offset 1,0 tc rgb "gray40"
$(panel "RSS, MiB" rss_kb 1024.0)
$(panel "open fds" fds 1)
$(panel "live tasks" tasks 1)
unset multiplot
EOF
}

if [ "${1:-}" = --plot ]; then
	[ -s "${2:-}" ] || { say "usage: soak.sh --plot TSV [PNG]"; exit 2; }
	plot "$2" "${3:-docs/img/soak.png}" && say "wrote ${3:-docs/img/soak.png}"
	exit $?
fi

B=${1:-build}
SECS=${SOAK_SECONDS:-600}
WPCT=${SOAK_WARMUP_PCT:-20}
LIMIT=${SOAK_LIMIT_PCT:-5}
CONNS=${SOAK_CONNS:-256}
RATE=${SOAK_RATE:-2000}
LOOPS=${SOAK_LOOPS:-2}
STMO=${SOAK_SERVER_TIMEOUT_MS:-2000}
DISRUPT=${SOAK_DISRUPT:-"--churn 4 --resets 2 --slow-readers 2 --slow-writers 2 --malformed 2"}
WIN=${SOAK_WINDOW:-10}
MCONF=${SOAK_MALLOC_CONF-tcache:false,dirty_decay_ms:0,muzzy_decay_ms:0}
OUT=${SOAK_OUT:-$B/bench-results/soak.tsv}
PNG=${SOAK_PLOT-docs/img/soak.png}
port=$((${SOAK_PORT:-24100} - 1))
SCPU=0-$(($(getconf _NPROCESSORS_ONLN) - 1))
LOAD=$B/bench/weft-load
DIS=$B/bench/soak_client

for x in "$B/examples/http_server" "$B/examples/echo_server" "$LOAD" "$DIS"; do
	[ -x "$x" ] || { say "$x not found (make first)"; exit 2; }
done
case $SECS in '' | *[!0-9]*) say "SOAK_SECONDS must be whole seconds"; exit 2 ;; esac
[ "$SECS" -ge 10 ] || { say "SOAK_SECONDS must be at least 10"; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-soak.XXXXXX") || exit 2
mkdir -p "$(dirname "$OUT")" || exit 2

pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# MALLOC_CONF is jemalloc's: a tree without it (make ALLOC=system) runs the
# servers on glibc's malloc with its defaults.
ALLOC=jemalloc
if ! ldd "$B/examples/http_server" 2>/dev/null | grep -q jemalloc; then
	ALLOC=system
	[ -n "$MCONF" ] && say "$B links no jemalloc: SOAK_MALLOC_CONF not used (glibc's malloc, its defaults)"
	MCONF=
fi
senv=
[ -n "$MCONF" ] && senv="MALLOC_CONF=$MCONF"
[ -n "${SOAK_BACKEND:-}" ] && senv="$senv WEFT_BACKEND=$SOAK_BACKEND"
[ -n "$senv" ] && senv="env $senv"

# --- servers, loads, disruptors ------------------------------------------------
SERVERS="http echo"
for s in $SERVERS; do
	if [ "$s" = http ]; then
		cmd="$senv $B/examples/http_server --head-timeout-ms $STMO"
	else
		cmd="$senv $B/examples/echo_server --idle-timeout-ms $STMO"
	fi
	start_server "$cmd --host 127.0.0.1 --port @PORT@ --loops $LOOPS --stats-ms 1000" || exit 2
	eval "pid_$s=$spid port_$s=$port log_$s=$rundir/server.log"
	pids="$pids $spid"
done

# the clients run 5 s past the sampling: no sample sees them stop
for s in $SERVERS; do
	eval "p=\$port_$s"
	if [ "$s" = http ]; then url=http://127.0.0.1:$p/; else url="tcp://127.0.0.1:$p --size 64"; fi
	# shellcheck disable=SC2086
	"$LOAD" -c "$CONNS" --loops 1 --rate "$RATE" --timeout 10s -d "$((SECS + 5))s" --json \
		--progress $url >"$tmp/load_$s.json" 2>"$tmp/load_$s.err" &
	eval "lpid_$s=$!"
	pids="$pids $!"
	# shellcheck disable=SC2086
	"$DIS" "$s" "$p" -d "$((SECS + 5))" --server-timeout-ms "$STMO" $DISRUPT \
		>"$tmp/dis_$s.out" 2>"$tmp/dis_$s.err" &
	eval "dpid_$s=$!"
	pids="$pids $!"
done

# --- sampling --------------------------------------------------------------------
# uptime in centiseconds into NOW, without a fork
now_cs() {
	read -r up _ </proc/uptime
	NOW=$((${up%.*} * 100 + 1${up#*.} - 100))
}
# VmRSS (kB) of $1 into RSS, its open fds into FDS; 0 and 0 if it is gone
proc_sample() {
	RSS=0
	while read -r k v _; do
		[ "$k" = VmRSS: ] && RSS=$v
	done 2>/dev/null <"/proc/$1/status"
	set -- /proc/"$1"/fd/*
	FDS=$#
	[ -e "$1" ] || FDS=0
}
# From a server's log ($1), its load's --progress output ($2) and its
# disruptors' stderr ($3), the latest of each: live tasks, open
# connections, task stacks (pooled ones included), load requests and
# errors, disruptor connections and unexpected outcomes, tab-separated ("-" where there is none yet).
client_sample() {
	awk '
	function kv(line, k,  m) {
		if (match(line, "(^| )" k "=[^ ]*")) {
			m = substr(line, RSTART, RLENGTH); sub(/^ /, "", m); return substr(m, length(k) + 2)
		}
		return "-"
	}
	FILENAME == ARGV[1] && /^stats / { st = $0 }
	FILENAME == ARGV[2] { n = split($0, a, "\r"); for (i = 1; i <= n; i++) if (a[i] ~ /req\/s/) ld = a[i] }
	FILENAME == ARGV[3] && /^soak / { ds = $0 }
	END {
		split(ld, f, " ")
		printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", kv(st, "tasks_live"), kv(st, "conns"), kv(st, "stacks"),
			ld == "" ? "-" : f[2], ld == "" ? "-" : f[7], kv(ds, "conns"), kv(ds, "unexpected")
	}' "$1" "$2" "$3"
}

warm=$((SECS * WPCT / 100))
{
	echo "# weft bench/soak.sh $(date -u +%Y-%m-%dT%H:%MZ) seconds=$SECS warmup_s=$warm window=$WIN conns=$CONNS rate=$RATE loops=$LOOPS server_timeout_ms=$STMO disrupt=\"$DISRUPT\" alloc=$ALLOC malloc_conf=${MCONF:-default} backend=${SOAK_BACKEND:-default} cpus=$(getconf _NPROCESSORS_ONLN)"
	printf 't_s'
	for s in $SERVERS; do
		printf '\t%s_%s' "$s" rss_kb "$s" fds "$s" tasks "$s" conns "$s" stacks "$s" load_requests \
			"$s" load_errors "$s" dis_conns "$s" dis_unexpected
	done
	echo
} >"$OUT"

say "servers: http_server on port $port_http (PID $pid_http), echo_server on port $port_echo (PID $pid_echo); $SECS s, warm-up $warm s, $CONNS connections at $RATE req/s each, disruptors: $DISRUPT"
died=
now_cs
t0=$NOW
i=1
while [ $i -le "$SECS" ]; do
	# sleep to t0 + i seconds
	now_cs
	d=$((t0 + i * 100 - NOW))
	[ $d -gt 0 ] && sleep "$((d / 100)).$(printf %02d $((d % 100)))"
	now_cs
	row=$(((NOW - t0) / 100)).$(printf %02d $(((NOW - t0) % 100)))
	for s in $SERVERS; do
		eval "p=\$pid_$s log=\$log_$s"
		if ! kill -0 "$p" 2>/dev/null; then
			case " $died " in *" $s "*) ;; *) died="$died $s"; say "$s server died at ${row}s" ;; esac
		fi
		proc_sample "$p"
		row="$row	$RSS	$FDS	$(client_sample "$log" "$tmp/load_$s.err" "$tmp/dis_$s.err")"
	done
	echo "$row" >>"$OUT"
	[ $((i % 60)) -eq 0 ] && say "$i s: $(tail -n 1 "$OUT" | cut -f2-5 | tr '\t' ' ') (http rss fds tasks conns)"
	i=$((i + 1))
done

# --- the clients finish, the servers shut down ---------------------------------
for s in $SERVERS; do
	eval "lp=\$lpid_$s dp=\$dpid_$s"
	wait "$lp"
	eval "lrc_$s=$?"
	wait "$dp"
	eval "drc_$s=$?"
done
for s in $SERVERS; do
	eval "p=\$pid_$s"
	kill -TERM "$p" 2>/dev/null
done
for s in $SERVERS; do
	eval "p=\$pid_$s"
	# the grace is 5 s; give it 15 before calling it a hang
	k=0
	while kill -0 "$p" 2>/dev/null && [ $k -lt 150 ]; do
		sleep 0.1
		k=$((k + 1))
	done
	if kill -0 "$p" 2>/dev/null; then
		eval "shut_$s=hung"
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	else
		wait "$p"
		rc=$?
		if [ $rc -eq 0 ]; then eval "shut_$s=ok"; else eval "shut_$s=exit$rc"; fi
	fi
done
pids=

# --- verdict ---------------------------------------------------------------------
miss=0
for s in $SERVERS; do
	for series in rss_kb fds tasks; do
		name=${series%_kb}
		line=$(awk -F'\t' -v c="${s}_$series" -v warm="$warm" -v lim="$LIMIT" -v win="$WIN" '
			/^#/ { next }
			!hdr { for (i = 1; i <= NF; i++) if ($i == c) k = i; hdr = 1; next }
			$1 + 0 > warm && $k != "-" { v[++n] = $k + 0 }
			function med(a, b,  t, m, i, j, x) {
				m = 0
				for (i = a; i <= b; i++) t[++m] = v[i]
				for (i = 2; i <= m; i++)
					for (j = i; j > 1 && t[j - 1] > t[j]; j--) { x = t[j]; t[j] = t[j - 1]; t[j - 1] = x }
				return m % 2 ? t[(m + 1) / 2] : (t[m / 2] + t[m / 2 + 1]) / 2
			}
			function spread(lo, hi) { return lo > 0 ? (hi - lo) / lo * 100 : (hi > 0 ? 1e9 : 0) }
			END {
				if (!k || n < 2 * win) { print "spread=- target=<=" lim "% MISS (too few samples)"; exit }
				lo = hi = v[1]
				for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
				# the medians of whole windows of win samples
				for (w = 0; (w + 1) * win <= n; w++) {
					m = med(w * win + 1, (w + 1) * win)
					if (!w || m < wlo) wlo = m
					if (!w || m > whi) whi = m
					if (!w) first = m
					last = m
				}
				sp = spread(wlo, whi)
				printf "spread=%.1f%% min=%s max=%s first=%s last=%s raw_spread=%.1f%% raw_min=%s raw_max=%s samples=%d target=<=%s%% %s\n",
					sp, wlo, whi, first, last, spread(lo, hi), lo, hi, n, lim, sp <= lim ? "ok" : "MISS"
			}' "$OUT")
		echo "BENCH soak_${s}_$name $line"
		case $line in *MISS*) miss=1 ;; esac
	done

	eval "log=\$log_$s lrc=\$lrc_$s drc=\$drc_$s shut=\$shut_$s"
	lp=$(load_parse "$tmp/load_$s.json")
	sreq=$(kv requests "$lp")
	serr=$(kv errors "$lp")
	[ "$lrc" -eq 0 ] || serr=$((serr + 1))
	tot=$(grep '^soak_client total ' "$tmp/dis_$s.out")
	rounds=$(kv rounds "$tot")
	injected=$(kv injected "$tot")
	unexp=$(kv unexpected "$tot")
	[ -n "$unexp" ] || unexp=1 # no summary: it did not finish
	[ "$drc" -eq 0 ] || [ "$unexp" -gt 0 ] || unexp=1
	last=$(grep '^stats ' "$log" | tail -n 1)
	srverr=$(grep -v -e '^stats ' -e '^listening on ' -e '^shut down after ' "$log" | wc -l)
	srverr=$((srverr + $(kv accept_errors "$last") + $(kv rejected "$last")))
	case " $died " in *" $s "*) srverr=$((srverr + 1)) ;; esac
	[ "$shut" = ok ] || srverr=$((srverr + 1))
	errs=$((serr + unexp + srverr))
	verdict=ok
	[ "$errs" -eq 0 ] && [ "${sreq:-0}" -gt 0 ] || { verdict=MISS; miss=1; }
	echo "BENCH soak_${s}_errors $errs errors steady_requests=$sreq steady_errors=$serr rounds=$rounds injected=$injected unexpected=$unexp server_errors=$srverr shutdown=$shut backend=$(kv backend "$last") target=0 $verdict"
	# what went wrong, for the log
	if [ "$errs" -ne 0 ]; then
		grep -v -e '^stats ' -e '^listening on ' -e '^shut down after ' "$log" | head -n 20 | sed "s/^/  $s server | /" >&2
		grep 'UNEXPECTED' "$tmp/dis_$s.err" | head -n 20 | sed "s/^/  $s | /" >&2
		tr '\r' '\n' <"$tmp/load_$s.err" | grep -v 'req/s' | grep . | head -n 10 | sed "s/^/  $s load | /" >&2
		say "$s: load $lp"
	fi
done
say "samples in $OUT"
if [ -n "$PNG" ]; then
	mkdir -p "$(dirname "$PNG")"
	plot "$OUT" "$PNG" && say "wrote $PNG"
fi
exit $miss
