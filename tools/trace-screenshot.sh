#!/bin/sh
# Record an event trace of a real program under load and save a
# screenshot of it opened in a browser: docs/img/trace.png (the picture in
# docs/observability.md, "Event trace").  Not part of `make test`.
#
#   sh tools/trace-screenshot.sh [OUT.png]
#
# examples/echo_server runs with 2 loops and WEFT_TRACE set (the trace is
# written when it shuts down); bench/weft-load echoes small messages at it,
# and the server gets SIGTERM while under that load, so the flight
# recorder's last events (WEFT_TRACE_EVENTS per loop) show the loops at
# work and then shutting down.  Then tools/trace-screenshot.js opens the trace in headless
# Chromium's DevTools Performance panel and saves the picture.
# Needs /usr/bin/chromium, node and npm (playwright-core is installed under
# build/tools/ on first use, from the npm registry), and /usr/bin/python3
# (to check the JSON).
set -eu

out=${1:-docs/img/trace.png}
tree=${WEFT_TREE:-build}
tmp=$(mktemp -d)
server=
load=
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null || true
	[ -n "$load" ] && kill "$load" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

make -s "$tree/examples/echo_server" "$tree/bench/weft-load"
if [ ! -d build/tools/node_modules/playwright-core ]; then
	mkdir -p build/tools
	npm install --prefix build/tools --no-audit --no-fund --silent playwright-core
fi

WEFT_TRACE="$tmp/trace.json" WEFT_TRACE_EVENTS=${WEFT_TRACE_EVENTS:-65536} \
	"$tree/examples/echo_server" --port 0 --loops 2 >"$tmp/server.out" 2>&1 &
server=$!
port=
for _ in $(seq 50); do
	port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\) .*/\1/p' "$tmp/server.out")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/server.out" >&2; exit 1; }

# bench/weft-load echoes 64-byte messages over 32 connections at a steady
# 40k/s; the server gets SIGTERM a second in, under that load.
"$tree/bench/weft-load" -c 32 -d 3s --loops 1 --size 64 --no-progress \
	"tcp://127.0.0.1:$port" >"$tmp/load.out" 2>&1 &
load=$!
sleep 1
kill -TERM "$server"
wait "$server"
server=
kill "$load" 2>/dev/null || true
wait "$load" || true # it lost its server: errors expected
load=
/usr/bin/python3 -m json.tool "$tmp/trace.json" >/dev/null
mkdir -p "$(dirname "$out")"
NODE_PATH=build/tools/node_modules node tools/trace-screenshot.js "$tmp/trace.json" "$out" \
	${ZOOM_AT:-auto} ${ZOOM_STEPS:-30}
cp "$tmp/trace.json" build/trace-screenshot.json
echo "wrote $out (the trace: build/trace-screenshot.json)"
