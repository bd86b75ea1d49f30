#!/bin/sh
# Install the Debian packages weft needs, or say exactly how to.
# Run by `make demo` and `make test` (curl, wrk and redis-tools'
# redis-cli and redis-benchmark: the example servers are tested with real
# clients; `make test` passes `test`, see below);
# `sh tools/deps.sh bench-io` (run by `make bench-io` and `make
# bench-compare`) adds what the I/O benchmarks run: nginx, redis-server
# (kv_server's baseline), haproxy (tcp_proxy's), perf, and gnuplot for
# bench/plot.sh.  libunwind-dev: task dumps unwind parked tasks' stacks;
# libzmq3-dev and libmsgpack-dev: weft-load's Locust worker protocol.
# zlib1g-dev: weft/load.h writes and reads HdrHistogram's compressed histograms.
# The :amd64/:arm64 pairs: the native libraries, and the arm64 ones that
# tests/aarch64.sh links the core suites against to run them under qemu-user
# (libjemalloc-dev has no multi-arch form: only the native one, by name).
ARCH=$(dpkg --print-architecture)
PKGS="build-essential clang liburing-dev:$ARCH libjemalloc-dev:$ARCH libcmocka-dev:$ARCH pkg-config binutils valgrind libc6-dev-arm64-cross libuv1-dev libunwind-dev libzmq3-dev libmsgpack-dev zlib1g-dev:$ARCH curl wrk redis-tools"
# `sh tools/deps.sh test` (run by `make test`) adds what runs the core
# suites on aarch64 under qemu-user.
[ "$1" = test ] && [ "$ARCH" = amd64 ] &&
	PKGS="$PKGS qemu-user-static gcc-aarch64-linux-gnu liburing-dev:arm64 libcmocka-dev:arm64"
# ... and the real peers the observability and load tests start on
# loopback: Prometheus (promtool checks the metrics text, a server scrapes
# it), Locust (a master that weft-load workers join), and the servers
# weft-load's protocols are tested against (redis-server, memcached).
[ "$1" = test ] && PKGS="$PKGS prometheus python3-locust redis-server memcached"
[ "$1" = bench-io ] && PKGS="$PKGS nginx-light redis-server haproxy linux-perf util-linux gnuplot-nox"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "weft: installing missing Debian packages:$missing"
	export DEBIAN_FRONTEND=noninteractive
	case "$missing" in
	*:arm64*) dpkg --print-foreign-architectures | grep -qx arm64 ||
		dpkg --add-architecture arm64 ;;
	esac
	apt-get update -qq && apt-get install -y -qq $missing >/dev/null || {
		echo "weft: apt-get failed" >&2; exit 1; }
else
	echo "weft: missing Debian packages. Run:" >&2
	case "$missing" in
	*:arm64*) dpkg --print-foreign-architectures | grep -qx arm64 ||
		echo "  sudo dpkg --add-architecture arm64 && sudo apt-get update" >&2 ;;
	esac
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
