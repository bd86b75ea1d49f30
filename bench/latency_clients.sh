#!/bin/sh
# The latency percentiles weft-load and redis-benchmark report for the same
# load (issue 13): Debian's redis-server on CMP_SERVER_CPU (0), each client
# on CMP_CLIENT_CPU (1), -c LAT_CONNS (50) -P LAT_PIPELINE (16) GET,
# LAT_REQUESTS (1M) requests each, one after the other; their percentile
# tables (redis-benchmark's "Latency by percentile distribution", weft-load's
# --latency) into BUILD_DIR/bench-results/clients-latency.tsv and a plot,
# latency against percentile on HdrHistogram's log scale, into
# PLOT_DIR/clients_latency.png.  Run it under flock /tmp/weft-bench.lock.
#
#   sh bench/latency_clients.sh [BUILD_DIR]
B=${1:-build}
LOAD=$B/bench/weft-load
CONNS=${LAT_CONNS:-50}
PIPE=${LAT_PIPELINE:-16}
N=${LAT_REQUESTS:-1000000}
SCPU=${CMP_SERVER_CPU:-0}
CCPU=${CMP_CLIENT_CPU:-1}
OUT=${LAT_OUT:-$B/bench-results/clients-latency.tsv}
DIR=${PLOT_DIR:-docs/img}
NOTE=${PLOT_NOTE:-}
say() { echo "latency_clients.sh: $*" >&2; }
for t in redis-server redis-benchmark gnuplot taskset; do
	command -v $t >/dev/null 2>&1 || { say "needs $t (sh tools/deps.sh bench-io)"; exit 2; }
done
[ -x "$LOAD" ] || { say "$LOAD is not built"; exit 2; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-lat.XXXXXX") || exit 2
port=$((23800 + $$ % 100))
printf 'save ""\nappendonly no\nbind 127.0.0.1\ndir %s\nport %s\n' "$tmp" "$port" >"$tmp/redis.conf"
taskset -c "$SCPU" redis-server "$tmp/redis.conf" >"$tmp/server.log" 2>&1 &
spid=$!
trap 'kill $spid 2>/dev/null; rm -rf "$tmp"' EXIT
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 100 ] && { say "redis-server did not start"; exit 1; }
	sleep 0.05
done
redis-cli -p "$port" set key:000000000001 xxx >/dev/null
mkdir -p "$(dirname "$OUT")" "$DIR" || exit 2
echo "# client	percentile	latency_us  (redis-server, -c $CONNS -P $PIPE GET, $N requests, $(date -u +%Y-%m-%dT%H:%M:%SZ))" >"$OUT"
taskset -c "$CCPU" redis-benchmark -p "$port" -c "$CONNS" -P "$PIPE" -t get -n "$N" 2>/dev/null |
	tr '\r' '\n' | awk '/Latency by percentile/ { on = 1; next } on && /% <=/ {
		p = $1; sub(/%/, "", p); printf "redis-benchmark\t%s\t%.1f\n", p, $3 * 1000 } on && !/%/ { on = 0 }' >>"$OUT"
taskset -c "$CCPU" "$LOAD" -c "$CONNS" --pipeline "$PIPE" --loops 1 --command get -n "$N" \
	--latency --no-progress "redis://127.0.0.1:$port" | awk '/Latency distribution/ { on = 1; next }
	on && /%/ { p = $1; sub(/%/, "", p); v = $2; sub(/us/, "", v); printf "weft-load\t%s\t%s\n", p, v }
	on && !/%/ { on = 0 }' >>"$OUT"
# x: 1 / (1 - p), HdrHistogram's percentile axis; 100% drawn at 99.9999%
awk -F'\t' '!/^#/ { p = $2 >= 100 ? 99.9999 : $2; print > (tmp "/" $1 ".dat"); printf "%s %s\n", 100 / (100 - p), $3 > (tmp "/" $1 ".xy") }' tmp="$tmp" "$OUT"
[ -s "$tmp/weft-load.xy" ] && [ -s "$tmp/redis-benchmark.xy" ] || { say "no percentiles from a client"; exit 1; }
title="GET against redis-server, -c $CONNS -P $PIPE, client and server pinned to one CPU each"
[ -n "$NOTE" ] && title="$title\\n$NOTE"
gnuplot <<EOF
set terminal pngcairo size 960,600 font "sans,10" noenhanced
set output "$DIR/clients_latency.png"
set title "$title"
set logscale x
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000, "99.999%%" 100000)
set xlabel "percentile"
set ylabel "latency (us)"
set grid
set key top left
plot "$tmp/redis-benchmark.xy" using 1:2 with linespoints title "redis-benchmark", \
     "$tmp/weft-load.xy" using 1:2 with linespoints title "weft-load"
EOF
say "data: $OUT, plot: $DIR/clients_latency.png"
