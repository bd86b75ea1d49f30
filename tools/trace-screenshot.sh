#!/bin/sh
# Record an event trace of a small two-loop program under load and save a
# screenshot of it opened in a browser: docs/img/trace.png (the picture in
# docs/observability.md, "Event trace").  Not part of `make test`.
#
#   sh tools/trace-screenshot.sh [OUT.png]
#
# tools/trace-demo.c (producers on loop 0 handing work to consumers on
# loop 1 through a bounded queue, a logger reading a pipe, a ticker
# sleeping) records 8 ms with weft_trace_start/stop and writes the trace;
# tools/trace-screenshot.js opens it in headless Chromium's DevTools
# Performance panel and saves the picture.  Any program can be traced the
# same way without changing it: WEFT_TRACE=out.json (docs/observability.md).
# Needs /usr/bin/chromium, node and npm (playwright-core is installed under
# build/tools/ on first use, from the npm registry), and /usr/bin/python3
# (to check the JSON).  ZOOM_AT (0..1, or auto) and ZOOM_STEPS zoom in.
set -eu

out=${1:-docs/img/trace.png}
tree=${WEFT_TREE:-build}

make -s "$tree/libweft.a"
cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -pthread -Iinclude \
	tools/trace-demo.c -o "$tree/trace-demo" "$tree/libweft.a" -luring -ljemalloc -lpthread -lm
if [ ! -d build/tools/node_modules/playwright-core ]; then
	mkdir -p build/tools
	npm install --prefix build/tools --no-audit --no-fund --silent playwright-core
fi

json=build/trace-screenshot.json
"$tree/trace-demo" "$json"
/usr/bin/python3 -m json.tool "$json" >/dev/null
mkdir -p "$(dirname "$out")"
NODE_PATH=build/tools/node_modules node tools/trace-screenshot.js "$json" "$out" \
	"${ZOOM_AT:-0}" "${ZOOM_STEPS:-0}"
echo "wrote $out (the trace: $json)"
