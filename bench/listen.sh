#!/bin/sh
# SO_REUSEPORT per loop against one shared multishot accept (issue 4 asks
# for both measured and the faster made the default).  http_server with
# --loops 2 on all cores, wrk with one thread; the two set-ups alternate
# within each repeat so noise hits both alike.  Prints BENCH lines with
# medians of requests/s and server CPU per request.
#   sh bench/listen.sh [BUILD_TREE]   (LISTEN_REPEATS, LISTEN_SECONDS)
set -eu
B=${1:-build}
REPEATS=${LISTEN_REPEATS:-3}
SECS=${LISTEN_SECONDS:-3}
PORT=${LISTEN_PORT:-9390}
command -v wrk >/dev/null || { echo "listen.sh: wrk missing (sh tools/deps.sh bench-io)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # mode conns -> "rps cpu_us"
	flag=""; [ "$1" = shared ] && flag=--shared-listener
	"$B/examples/http_server" --port "$PORT" --loops 2 $flag >"$tmp/srv" 2>&1 &
	pid=$!
	for _ in 1 2 3 4 5 6 7 8 9 10; do grep -q listening "$tmp/srv" && break; sleep 0.1; done
	hdr=""; [ "$3" = close ] && hdr="Connection: close"
	wrk -t1 -c"$2" -d1s ${hdr:+-H "$hdr"} "http://127.0.0.1:$PORT/" >/dev/null 2>&1 # warm-up
	c0=$(cpu_ticks $pid)
	rps=$(wrk -t1 -c"$2" -d"${SECS}s" ${hdr:+-H "$hdr"} "http://127.0.0.1:$PORT/" |
		awk '/Requests\/sec/ {print $2}')
	c1=$(cpu_ticks $pid)
	kill -TERM $pid; wait $pid || true
	hz=$(getconf CLK_TCK)
	echo "$rps $(echo "$c0 $c1 $hz $rps $SECS" | awk '{printf "%.3f", ($2-$1)/$3*1e6/($4*$5)}')"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# keep-alive at 64 and 256 connections, and a new connection per request
# (Connection: close), where accepting is the work.
for cfg in 64 256 64close; do
	conns=${cfg%close}
	kind=keepalive; [ "$cfg" != "$conns" ] && kind=close
	: >"$tmp/reuseport"; : >"$tmp/shared"
	for r in $(seq "$REPEATS"); do
		for mode in reuseport shared; do run $mode $conns $kind >>"$tmp/$mode"; done
	done
	for mode in reuseport shared; do
		rps=$(cut -d' ' -f1 "$tmp/$mode" | median)
		cpu=$(cut -d' ' -f2 "$tmp/$mode" | median)
		echo "BENCH listen_${mode}_c$cfg rps=$rps cpu_us=$cpu runs=$REPEATS"
		eval "rps_$mode=$rps"
	done
	echo "$rps_reuseport $rps_shared" | awk -v c=$cfg '{printf "BENCH listen_c%s reuseport/shared rps ratio=%.2f faster=%s\n", c, $1/$2, ($1>=$2?"reuseport":"shared")}'
done
