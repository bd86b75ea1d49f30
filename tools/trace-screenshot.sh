#!/bin/sh
# Record an event trace of a real program under load and save a
# screenshot of it opened in a browser: docs/img/trace.png (the picture in
# docs/observability.md, "Event trace").  Not part of `make test`.
#
#   sh tools/trace-screenshot.sh [OUT.png]
#
# examples/echo_server runs with 2 loops and WEFT_TRACE set (the trace is
# written when it shuts down); 16 clients echo small lines at it, each
# pausing a little between lines, and the server gets SIGTERM while they
# are still at it, so the flight recorder's last events show the loops
# under load.  Then tools/trace-screenshot.js opens the trace in headless
# Chromium's DevTools Performance panel and saves the picture.
# Needs /usr/bin/chromium, node and npm (playwright-core is installed under
# build/tools/ on first use, from the npm registry), and /usr/bin/python3.
set -eu

out=${1:-docs/img/trace.png}
tree=${WEFT_TREE:-build}
tmp=$(mktemp -d)
server=
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

make -s "$tree/examples/echo_server"
if [ ! -d build/tools/node_modules/playwright-core ]; then
	mkdir -p build/tools
	npm install --prefix build/tools --no-audit --no-fund --silent playwright-core
fi

WEFT_TRACE="$tmp/trace.json" WEFT_TRACE_EVENTS=${WEFT_TRACE_EVENTS:-4096} \
	"$tree/examples/echo_server" --port 0 --loops 2 >"$tmp/server.out" 2>&1 &
server=$!
port=
for _ in $(seq 50); do
	port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\) .*/\1/p' "$tmp/server.out")
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/server.out" >&2; exit 1; }

/usr/bin/python3 - "$port" "$server" <<'PY'
import os, signal, socket, sys, threading, time

port, server = int(sys.argv[1]), int(sys.argv[2])
stop = time.monotonic() + 1.0

def client(i):
    try:
        s = socket.create_connection(("127.0.0.1", port))
        while time.monotonic() < stop:
            s.sendall(b"line %d\n" % i)
            if not s.recv(64):
                return
            time.sleep(0.0002 * (i % 4))
    except OSError:
        pass  # the server shut down under us: expected

threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
time.sleep(1.0)
os.kill(server, signal.SIGTERM)  # while the clients are still at it
for t in threads:
    t.join()
PY
wait "$server"
server=
/usr/bin/python3 -m json.tool "$tmp/trace.json" >/dev/null
mkdir -p "$(dirname "$out")"
NODE_PATH=build/tools/node_modules node tools/trace-screenshot.js "$tmp/trace.json" "$out" \
	${ZOOM_AT:-0.5} ${ZOOM_STEPS:-10}
cp "$tmp/trace.json" "${out%.png}.json"
echo "wrote $out (the trace: ${out%.png}.json)"
