#!/bin/sh
# demo.sh DIR — a short tour of weft through the C twins of the asyncio
# examples in the seed articles.  DIR holds the built examples
# (`make demo` runs: sh examples/demo.sh build/examples).
#
# Every sleep is scaled down (--scale, --unit-us) so the whole tour takes
# well under 20 seconds; run the programs without those options to see the
# articles' real timings.

set -u

DIR=${1:-build/examples}
if [ ! -d "$DIR" ]; then
	echo "usage: $0 DIR   (DIR: the built examples, e.g. build/examples)" >&2
	exit 2
fi

# A step that hangs must not hang the tour.
TIMEOUT=
if command -v timeout >/dev/null 2>&1; then
	TIMEOUT="timeout 60"
fi

# Seconds since the epoch with a fraction where date(1) supports %N.
now() {
	t=$(date +%s.%N 2>/dev/null)
	case $t in
	*N* | "") date +%s ;;
	*) echo "$t" ;;
	esac
}

n=0
total=24
failed=0
tour_start=$(now)

# step TITLE EXPLANATION PROGRAM [ARGS...]
step() {
	title=$1
	explain=$2
	shift 2
	n=$((n + 1))
	printf '\n==> [%d/%d] %s\n' "$n" "$total" "$title"
	printf '    %s\n' "$explain"
	printf '$ %s\n' "$*"
	prog=$1
	shift
	t0=$(now)
	$TIMEOUT "$DIR/$prog" "$@"
	rc=$?
	t1=$(now)
	if [ "$rc" -ne 0 ]; then
		failed=$((failed + 1))
		printf -- '--- FAILED (exit status %d)' "$rc"
	else
		printf -- '---'
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf " took %.2f s\n", b - a }'
}

echo "weft demo: Python asyncio's model in C, on several event loops at once."

step "hello: asyncio.run(main())" \
	"weft_run() starts the loops, runs main_task, shuts down; weft_sleep_ms suspends only the task." \
	hello

step "count: five tasks, One sleep(1) Two sleep(2) Three (sleeps x0.1)" \
	"gather = spawn + join.  All five overlap: 3 s of sleeping (0.3 s here), not 15." \
	count --scale 0.1

step "count --sync: the same with blocking sleeps (x0.1)" \
	"time.sleep() blocks everything: one count after another, 15 s (1.5 s here)." \
	count --sync --scale 0.1

step "onetwo: the second article's One/Two with three tasks (x0.2)" \
	"All three Ones come before any Two: that order is the heart of async IO." \
	onetwo --scale 0.2

step "futures: foo awaits a future that bar resolves (x0.2)" \
	"weft_future_wait() suspends foo until weft_future_set_result() in bar." \
	futures --scale 0.2

step "tasks: create two tasks, await them in the other order (x0.2)" \
	"A task is a future for its own result: weft_task_join() hands it over." \
	tasks --scale 0.2

step "chain 9 6 3: coroutines calling coroutines (x0.05, fixed seed)" \
	"part1() and part2() are plain C calls that suspend: tasks are stackful." \
	chain --scale 0.05 --seed 2021 9 6 3

step "random_int: three tasks retry until lucky, gather collects results (x0.03)" \
	"Each retries on its own schedule; weft_gather hands back the results in order." \
	random_int --scale 0.03 --seed 7

step "gather: create_task, gather, a failing task with and without return_exceptions (x0.05)" \
	"weft_gather: results in input order; a failure is reported at once and does not cancel the other." \
	gather --scale 0.05

step "as_completed: results in the order the tasks finish (x0.05)" \
	"weft_as_completed_next() yields each task as it finishes; the fastest comes first." \
	as_completed --scale 0.05

step "powers: an async generator of powers of two, a filter, an early break (x0.2)" \
	"weft_gen_next() is async for; weft_gen_close() stops the producer and waits for its cleanup." \
	powers --scale 0.2

step "chess: Judit Polgar against 24 opponents, 12 h vs 1 h (1 story-s = 60 us)" \
	"One Judit task, 24 opponent tasks, a future per move: only waiting overlaps." \
	chess --both --unit-us 60

step "event_loops: two threads, each with its own runtime (x0.2)" \
	"Like asyncio.new_event_loop() per thread; the main thread runs no loop." \
	event_loops --scale 0.2 --seed 2

step "threads: 64 tasks spawned on one loop spread over all loops" \
	"Idle loops steal ready tasks; a task may resume on another loop after any suspension." \
	threads --tasks 64

step "semaphore: 1000 tasks, at most 10 inside the guarded section (x0.2)" \
	"asyncio.Semaphore(10): waiters are served in arrival order, across loops." \
	semaphore --scale 0.2 --seed 1

step "queue_demo -p 2 -c 5: producers, consumers, q.join(), then cancel the consumers" \
	"asyncio.Queue: each line is how long an item waited in the queue." \
	queue_demo -p 2 -c 5 --seed 1

step "pool: map a function over 1000 inputs on every loop, K at a time per loop" \
	"aiomultiprocess without processes: pinned workers, results in input order; a failure cancels the group." \
	pool --inputs 1000 --per-loop 4

step "write_lines: 64 tasks append 40 lines each to one file (aiofiles' 'a' mode)" \
	"weft_file_write on io_uring: O_APPEND writes are atomic, every line lands whole and once." \
	write_lines

step "subprocess: run 'ls -l /', stream its output line by line, report its exit status" \
	"asyncio.create_subprocess_exec: pipes, pidfd exit wait, no zombie left behind." \
	subprocess ls -l /

# The port of the "listening on HOST:PORT" line in file $1 (empty if none
# within 5 s).
listen_port() {
	for _ in $(seq 50); do
		p=$(sed -n 's/^listening on .*:\([0-9]*\) .*/\1/p' "$1")
		[ -n "$p" ] && { echo "$p"; return; }
		sleep 0.1
	done
}

# server_step TITLE EXPLANATION SERVER CLIENT: start SERVER on a free port,
# run the shell function CLIENT with that port, stop the server (SIGTERM).
server_step() {
	title=$1
	explain=$2
	server=$3
	client=$4
	n=$((n + 1))
	printf '\n==> [%d/%d] %s\n' "$n" "$total" "$title"
	printf '    %s\n' "$explain"
	out=$(mktemp)
	"$DIR/$server" --port 0 --loops 2 >"$out" 2>&1 &
	pid=$!
	port=$(listen_port "$out")
	t0=$(now)
	rc=1
	if [ -n "$port" ]; then
		printf '$ %s --port 0 --loops 2 &     # got port %s\n' "$server" "$port"
		$client "$port"
		rc=$?
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	src=$?
	sed 's/^/    server: /' "$out"
	rm -f "$out"
	t1=$(now)
	if [ "$rc" -ne 0 ] || [ "$src" -ne 0 ]; then
		failed=$((failed + 1))
		printf -- '--- FAILED (client %d, server %d)' "$rc" "$src"
	else
		printf -- '---'
	fi
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf " took %.2f s\n", b - a }'
}

skip_step() {
	n=$((n + 1))
	printf '\n==> [%d/%d] %s: skipped (%s not installed)\n' "$n" "$total" "$1" "$2"
}

fetch_pages() {
	echo "\$ http_get http://127.0.0.1:$1/ http://localhost:$1/ http://127.0.0.1:$1/missing"
	$TIMEOUT "$DIR/http_get" "http://127.0.0.1:$1/" "http://localhost:$1/" \
		"http://127.0.0.1:$1/missing"
	[ $? -eq 1 ] # the 404 makes http_get exit 1
}

curl_keepalive() {
	u="http://127.0.0.1:$1/"
	printf '$ curl -s -w "%%{http_code} connects=%%{num_connects}\\n" -o /dev/null (x3) %s %s %s\n' "$u" "$u" "$u"
	$TIMEOUT curl -s -w '%{http_code} connects=%{num_connects}\n' \
		-o /dev/null -o /dev/null -o /dev/null "$u" "$u" "$u"
}

echo_mib() {
	echo "\$ python3: send 1 MiB to port $1, read it back"
	$TIMEOUT python3 - "$1" <<'PY'
import socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
data = bytes(range(256)) * 4096
threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))).start()
got = bytearray()
while chunk := s.recv(65536):
    got += chunk
print("echoed", len(got), "bytes, intact:", got == data)
sys.exit(0 if got == data else 1)
PY
}

# tcp_proxy in front of the echo server on port $1: echo_mib through it.
proxy_mib() {
	pout=$(mktemp)
	"$DIR/tcp_proxy" --port 0 --loops 2 --upstream "127.0.0.1:$1" --verbose >"$pout" 2>&1 &
	ppid_=$!
	pport=$(listen_port "$pout")
	echo "\$ tcp_proxy --port 0 --loops 2 --upstream 127.0.0.1:$1 --verbose &     # got port $pport"
	prc=1
	[ -n "$pport" ] && { echo_mib "$pport"; prc=$?; }
	kill -TERM "$ppid_" 2>/dev/null
	wait "$ppid_" || prc=1
	sed 's/^/    proxy: /' "$pout"
	rm -f "$pout"
	return $prc
}

kv_session() {
	for cmd in "SET greeting hello" "GET greeting" "INCR visits" "INCRBY visits 41" \
		"SET session abc EX 60" "TTL session" "DBSIZE"; do
		echo "\$ redis-cli -p $1 $cmd"
		# shellcheck disable=SC2086
		$TIMEOUT redis-cli -p "$1" $cmd || return 1
	done
	echo "\$ redis-benchmark -p $1 -q -n 20000 -P 16 -t set,get"
	$TIMEOUT redis-benchmark -p "$1" -q -n 20000 -P 16 -t set,get | tr '\r' '\n' | grep 'per second'
}

server_step "http_server + http_get: fetch pages concurrently, print status, length, title" \
	"aiohttp's concurrent fetches against weft's HTTP/1.1 server; SIGTERM shuts it down gracefully." \
	http_server fetch_pages

if command -v curl >/dev/null 2>&1; then
	server_step "http_server + curl: three requests on one kept-alive connection" \
		"One connection for all three: num_connects is 1, then 0 and 0." \
		http_server curl_keepalive
else
	skip_step "http_server + curl" curl
fi

if command -v python3 >/dev/null 2>&1; then
	server_step "echo_server: a client sends 1 MiB and reads it back" \
		"asyncio.start_server with read/write/drain: one task per connection, spread over the loops." \
		echo_server echo_mib
	server_step "tcp_proxy in front of echo_server: 1 MiB through the proxy and back" \
		"A task per client, weft_stream_copy_bidirectional both ways; the client's half-close is passed on." \
		echo_server proxy_mib
else
	skip_step "echo_server" python3
	skip_step "tcp_proxy" python3
fi

if command -v redis-cli >/dev/null 2>&1 && command -v redis-benchmark >/dev/null 2>&1; then
	server_step "kv_server + redis-cli, redis-benchmark: a Redis-compatible store" \
		"RESP parsed in place, pipelined commands answered in one send; one store shared by every loop." \
		kv_server kv_session
else
	skip_step "kv_server" redis-tools
fi

tour_end=$(now)
printf '\n'
awk -v a="$tour_start" -v b="$tour_end" -v n="$n" -v f="$failed" \
	'BEGIN { printf "weft demo: %d steps, %d failed, %.2f s in all.\n", n, f, b - a }'
[ "$failed" -eq 0 ]
