#!/bin/sh
# The micro-benchmarks (yield, spawn, pingpong, queue) on both I/O backends
# in one run: is the scheduler's cost the same whichever backend the loops
# sleep and wake in?  Each benchmark runs on io_uring and on epoll
# (WEFT_BACKEND), alternating which goes first, REPEATS times; each BENCH
# metric is reported as the median with its range per backend and the ratio
# epoll / io_uring, which must lie within the machine's noise (0.7-1.3x).
#
#   sh bench/backends.sh [BUILD_DIR]        (`make bench-backends`)
#
# Environment: REPEATS=3, BENCHES="yield spawn pingpong queue".

B=${1:-build}
REPEATS=${REPEATS:-3}
BENCHES=${BENCHES:-"yield spawn pingpong queue"}
LO=0.7
HI=1.3

tmp=$(mktemp) || exit 2
trap 'rm -f "$tmp"' EXIT

for b in $BENCHES; do
	[ -x "$B/bench/$b" ] || { echo "backends.sh: $B/bench/$b not built (run make)" >&2; exit 2; }
done

rep=1
while [ "$rep" -le "$REPEATS" ]; do
	order="io_uring epoll"
	[ $((rep % 2)) -eq 0 ] && order="epoll io_uring"
	for b in $BENCHES; do
		for be in $order; do
			echo "backends.sh: repeat $rep/$REPEATS $b on $be" >&2
			WEFT_BACKEND=$be timeout 300 "$B/bench/$b" 2>/dev/null |
				awk -v be="$be" '$1 == "BENCH" && $3 ~ /^[0-9.]+$/ { print be, $2, $3, $4 }' >>"$tmp"
		done
	done
	rep=$((rep + 1))
done

awk -v lo="$LO" -v hi="$HI" '
function median(s,    n, a, i, j, t) {
	n = split(s, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function range(s,    n, a, i, mn, mx) {
	n = split(s, a, " "); mn = mx = a[1]
	for (i = 2; i <= n; i++) { if (a[i] + 0 < mn + 0) mn = a[i]; if (a[i] + 0 > mx + 0) mx = a[i] }
	return mn "-" mx
}
{
	if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 }
	v[$1, $2] = v[$1, $2] " " $3
	unit[$2] = $4
}
END {
	ok = miss = 0
	for (i = 1; i <= n; i++) {
		m = order[i]
		if (v["io_uring", m] == "" || v["epoll", m] == "") continue
		u = median(v["io_uring", m]); e = median(v["epoll", m])
		r = u > 0 ? e / u : 0
		pass = r >= lo && r <= hi
		printf "BENCH %s_epoll_vs_io_uring %.4g %s vs=%.4g ratio=%.2f target=%s-%sx %s epoll_range=%s io_uring_range=%s\n",
			m, e, unit[m], u, r, lo, hi, pass ? "ok" : "MISS", range(v["epoll", m]), range(v["io_uring", m])
		if (pass) ok++; else miss++
	}
	printf "bench backends summary: %d ok, %d MISS\n", ok, miss
}' "$tmp"
