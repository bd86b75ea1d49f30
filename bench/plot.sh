#!/bin/sh
# Plots of the comparison, scaling and memory runs (issue 5), regenerated
# from their data files with gnuplot (Debian gnuplot-nox; `sh tools/deps.sh
# bench-io` installs it).
#
#   sh bench/plot.sh [BUILD_DIR]             (default: build)
#
# Reads BUILD_DIR/bench-results/compare.tsv (bench/compare.sh) and
# scaling.tsv (bench/scaling.sh), or PLOT_COMPARE / PLOT_SCALING, and
# writes PNGs into PLOT_DIR (default docs/img):
#   throughput_vs_conns.png  HTTP requests/s against connections, weft's
#                            http_server and nginx, pinned (the sweep and
#                            the pinned runs, one client: weft-load, else wrk)
#   latency_percentiles.png  p50/p90/p99/p99.9 per server, pinned, at
#                            PLOT_LAT_CONNS (64) connections, HTTP and echo
#   scaling_loops.png        the micro-benchmarks, ns per operation against
#                            the number of loops
#   memory.png               server RSS per idle connection (accepted; after
#                            one echo) and per sleeping task
# Medians over the repeats.  A plot whose data is missing is skipped, and
# said so.  PLOT_NOTE (e.g. "trial: 1 s windows, 1 repeat") goes into every
# title: numbers from short runs must say so.

B=${1:-build}
CMP=${PLOT_COMPARE:-$B/bench-results/compare.tsv}
SCL=${PLOT_SCALING:-$B/bench-results/scaling.tsv}
DIR=${PLOT_DIR:-docs/img}
LATC=${PLOT_LAT_CONNS:-64}
NOTE=${PLOT_NOTE:-}
note=
[ -n "$NOTE" ] && note="\\n$NOTE"

say() { echo "plot.sh: $*" >&2; }
command -v gnuplot >/dev/null 2>&1 || { say "needs gnuplot (sh tools/deps.sh bench-io)"; exit 2; }
mkdir -p "$DIR" || exit 2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-plot.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT

# median of the numbers on stdin ("-" lines ignored); "NaN" if none
median() {
	grep -v '^-$' | sort -g | awk '{ a[++n] = $1 } END {
		if (!n) { print "NaN"; exit }
		print (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'
}

# the header line of data file $1 (what made it), for the plot's subtitle
origin() { sed -n '1s/^# weft bench\///p' "$1" | cut -c1-130; }

TERM_='set terminal pngcairo size 960,600 font "sans,10" noenhanced'
# The clustered-bar style both bar charts share.
BARS='set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics rotate by -20
set datafile missing "NaN"'
made=

# --- throughput against connections ---------------------------------------
if [ -s "$CMP" ]; then
	# the sweep's client: weft-load where it ran, else wrk
	cl=$(awk -F'\t' '!/^#/ && $2 == "http" && $5 == "load" && $7 != "-" { f = 1 } END { print f ? "load" : "wrk" }' "$CMP")
	for s in weft nginx; do
		for c in $(awk -F'\t' -v s="$s" -v cl="$cl" '!/^#/ && ($1 == "pinned" || $1 == "sweep") && $2 == "http" && $4 == s && $5 == cl { print $3 }' "$CMP" | sort -n | uniq); do
			m=$(awk -F'\t' -v s="$s" -v cl="$cl" -v c="$c" '!/^#/ && ($1 == "pinned" || $1 == "sweep") && $2 == "http" && $4 == s && $5 == cl && $3 == c { print $7 }' "$CMP" | median)
			echo "$c $m"
		done >"$tmp/tput.$s"
	done
	if [ -s "$tmp/tput.weft" ] || [ -s "$tmp/tput.nginx" ]; then
		client=wrk
		[ "$cl" = load ] && client=weft-load
		gnuplot <<EOF
$TERM_
set output "$DIR/throughput_vs_conns.png"
set title "HTTP hello world: requests/s against connections, server pinned to 1 core, client ($client) on another$note\n$(origin "$CMP")"
set xlabel "connections"
set ylabel "requests/s (median)"
set logscale x 2
set yrange [0:*]
set grid
set key bottom right
set datafile missing "NaN"
plot "$tmp/tput.weft" using 1:2 with linespoints lw 2 pt 7 title "weft http_server (1 loop)", \
     "$tmp/tput.nginx" using 1:2 with linespoints lw 2 pt 5 title "nginx (1 worker)"
EOF
		made="$made throughput_vs_conns.png"
	else
		say "no pinned HTTP runs in $CMP: no throughput_vs_conns.png"
	fi

	# --- latency percentiles at one load ------------------------------------
	: >"$tmp/lat"
	for k in http echo; do
		# the client with p99.9 where there is one: weft-load, else echo_client / wrk
		for s in $(awk -F'\t' -v k="$k" -v c="$LATC" '!/^#/ && $1 == "pinned" && $2 == k && $3 == c { print $4 }' "$CMP" | awk '!seen[$0]++'); do
			cl=$(awk -F'\t' -v k="$k" -v c="$LATC" -v s="$s" '!/^#/ && $1 == "pinned" && $2 == k && $3 == c && $4 == s && $7 != "-" { h[$5] = 1 }
				END { if ("load" in h) print "load"; else if ("echo_client" in h) print "echo_client"; else if ("wrk" in h) print "wrk" }' "$CMP")
			[ -n "$cl" ] || continue
			row="$k:$s($cl)"
			for col in 8 9 10 11; do
				v=$(awk -F'\t' -v k="$k" -v c="$LATC" -v s="$s" -v cl="$cl" -v col=$col '!/^#/ && $1 == "pinned" && $2 == k && $3 == c && $4 == s && $5 == cl { print $col }' "$CMP" | median)
				row="$row $v"
			done
			echo "$row" >>"$tmp/lat"
		done
	done
	if [ -s "$tmp/lat" ]; then
		gnuplot <<EOF
$TERM_
set output "$DIR/latency_percentiles.png"
set title "Latency percentiles at $LATC connections, server pinned to 1 core, client on another$note\n$(origin "$CMP")"
set ylabel "latency, microseconds (median of repeats; log scale)"
set logscale y
$BARS
plot "$tmp/lat" using 2:xtic(1) title "p50", '' using 3 title "p90", '' using 4 title "p99", '' using 5 title "p99.9 (not from wrk)"
EOF
		made="$made latency_percentiles.png"
	else
		say "no pinned runs at $LATC connections in $CMP: no latency_percentiles.png"
	fi
else
	say "no $CMP (run bench/compare.sh): no throughput or latency plots"
fi

# --- scaling against loops -----------------------------------------------------
if [ -s "$SCL" ] && grep -q '^micro' "$SCL"; then
	awk -F'\t' '$1 == "micro" { print $4 }' "$SCL" | awk '!seen[$0]++' >"$tmp/series"
	plot=
	i=0
	while read -r s; do
		i=$((i + 1))
		for l in $(awk -F'\t' -v s="$s" '$1 == "micro" && $4 == s { print $2 }' "$SCL" | sort -n | uniq); do
			echo "$l $(awk -F'\t' -v s="$s" -v l="$l" '$1 == "micro" && $4 == s && $2 == l { print $6 }' "$SCL" | median)"
		done >"$tmp/scl.$i"
		plot="$plot${plot:+, }\"$tmp/scl.$i\" using 1:2 with linespoints lw 2 pt $((i % 12 + 1)) ps 1.5 title \"$s\""
	done <"$tmp/series"
	maxl=$(awk -F'\t' '$1 == "micro" && $2 > m { m = $2 } END { print m + 0 }' "$SCL")
	gnuplot <<EOF
$TERM_
set output "$DIR/scaling_loops.png"
set title "Micro-benchmarks against the number of loops: ns per operation$note\n$(origin "$SCL")"
set xlabel "loops"
set ylabel "ns per operation (log scale; lower is better)"
set logscale y
set xrange [0.7:$maxl + 0.3]
set xtics 1
set grid
set key outside right
set datafile missing "NaN"
plot $plot
EOF
	made="$made scaling_loops.png"
else
	say "no micro-benchmark rows in $SCL (run bench/scaling.sh): no scaling_loops.png"
fi

# --- memory ---------------------------------------------------------------------
if [ -s "$SCL" ] && grep -q '^idle' "$SCL"; then
	: >"$tmp/mem"
	for k in $(awk -F'\t' '$1 == "idle" { print $3 }' "$SCL" | sort -n | uniq); do
		for s in $(awk -F'\t' -v k="$k" '$1 == "idle" && $3 == k { print $4 }' "$SCL" | awk '!seen[$0]++'); do
			a=$(awk -F'\t' -v k="$k" -v s="$s" '$1 == "idle" && $3 == k && $4 == s && $5 == "rss_per_conn_B" { print $6 }' "$SCL" | median)
			u=$(awk -F'\t' -v k="$k" -v s="$s" '$1 == "idle" && $3 == k && $4 == s && $5 == "rss_used_per_conn_B" { print $6 }' "$SCL" | median)
			echo "$s,${k}_conns $a $u" >>"$tmp/mem"
		done
	done
	t=$(awk -F'\t' '$1 == "sleepers" && $4 == "sleepers_rss" { print $6 }' "$SCL" | median)
	n=$(awk -F'\t' '$1 == "sleepers" && $4 == "sleepers_rss" { print $3; exit }' "$SCL")
	[ "$t" != NaN ] && echo "weft_task,sleeping(${n}) $t NaN" >>"$tmp/mem"
	gnuplot <<EOF
$TERM_
set output "$DIR/memory.png"
set title "Server memory (RSS) per idle connection, and per sleeping weft task$note\n$(origin "$SCL")"
set ylabel "bytes of RSS each"
set yrange [0:*]
$BARS
plot "$tmp/mem" using 2:xtic(1) title "accepted, never used", '' using 3 title "after one echo, idle"
EOF
	made="$made memory.png"
else
	say "no idle-connection rows in $SCL: no memory.png"
fi

[ -n "$made" ] && say "wrote into $DIR:$made"
