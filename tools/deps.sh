#!/bin/sh
# Install the Debian packages weft needs, or say exactly how to.
# Run by `make demo` and `make test` (curl and wrk: the example servers are
# tested with real clients); `sh tools/deps.sh bench-io` (run by
# `make bench-io`) adds what the I/O benchmarks run: nginx, perf, and
# gnuplot for bench/plot.sh.
PKGS="build-essential clang liburing-dev libjemalloc-dev libcmocka-dev pkg-config binutils valgrind libc6-dev-arm64-cross libuv1-dev curl wrk"
[ "$1" = bench-io ] && PKGS="$PKGS nginx-light linux-perf util-linux gnuplot-nox"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "weft: installing missing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq && apt-get install -y -qq $missing >/dev/null || {
		echo "weft: apt-get failed" >&2; exit 1; }
else
	echo "weft: missing Debian packages. Run:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
