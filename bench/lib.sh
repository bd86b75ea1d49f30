# Shell helpers shared by the I/O benchmark drivers (bench/io.sh,
# bench/compare.sh, bench/scaling.sh): sourced, never run.  POSIX sh.
#
# The caller sets, before using them:
#   ME      the script's name, for messages ("io.sh")
#   here    the bench/ directory (for baseline/nginx.conf.in)
#   tmp     a scratch directory it removes on exit
#   port    the last port tried (start_server takes the next free one)
#   SCPU    the CPU list the server runs on (taskset -c; "0" or "0-1")
# and may set:
#   NGINX_WORKERS  nginx worker processes (default 1: no master, the one
#                  process is the worker; >1: a master and that many
#                  workers, whose CPU time and syscalls are summed)
#   SERVER_NOFILE  raise the server's open-file limit to this first
# start_server sets spid (the server's PID), rundir and port.

say() { echo "$ME: $*" >&2; }

TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# utime + stime of every thread of $1, in clock ticks (fields 14 and 15;
# the name in parentheses may hold spaces, so cut after the last ')').
cpu_ticks() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}

# The system-time part of cpu_ticks.
sys_ticks() {
	sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $13 }'
}

# $1 and its live children (nginx's workers), one PID a line.
proc_tree() {
	echo "$1"
	# the parent is field 4 of /proc/N/stat (2 after the name)
	for f in /proc/[0-9]*/stat; do
		read -r line <"$f" 2>/dev/null || continue
		echo "${f#/proc/}" "${line##*) }"
	done 2>/dev/null | awk -v p="$1" '$3 == p { sub(/\/stat$/, "", $1); print $1 }'
}

# CPU ticks of $1 and its children, summed (equal to cpu_ticks for a
# server that is one process).
cpu_ticks_tree() {
	t=0
	for p in $(proc_tree "$1"); do
		c=$(cpu_ticks "$p")
		t=$((t + ${c:-0}))
	done
	echo "$t"
}

# Is anything bound to local TCP port $1 (any state, IPv4 or IPv6)?
port_used() {
	awk -v p=":$(printf '%04X' "$1")" 'substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
port_listening() {
	awk -v p=":$(printf '%04X' "$1")" 'substr($2, length($2) - 4) == p && $4 == "0A" { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# value of key $1 in a "k=v k=v" line $2
kv() {
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

# The server command of NAME in list $2 (empty if absent).
server_cmd() {
	printf '%s\n' "$2" | awk -v n="$1" '$1 == n { $1 = ""; sub(/^ /, ""); print; exit }'
}
server_names() {
	printf '%s\n' "$1" | awk 'NF { print $1 }'
}

# Which servers of list $1 run: those whose binary is there (weft's may
# not be yet).
available() {
	for n in $(server_names "$1"); do
		# the program: past a leading `env VAR=value ...`
		exe=$(server_cmd "$n" "$1" | awk '{ for (i = 1; i <= NF; i++)
			if ($i != "env" && $i !~ /=/) { print $i; exit } }')
		if [ -x "$exe" ]; then
			printf '%s ' "$n"
		else
			say "$n: $exe not found, skipping it (and its targets)"
		fi
	done
}

# Rotate the words of $2 left by $1 places.
rotate() {
	echo "$2" | awk -v k="$1" '{ for (i = 0; i < NF; i++) printf "%s ", $((i + k) % NF + 1) }'
}

# The syscall counter: sets PERF=perf if perf can count
# raw_syscalls:sys_enter here (needs root or perf_event_paranoid), and $1
# (the perf window in seconds) is not 0.
perf_init() {
	PERF=
	if [ "$1" -gt 0 ] && command -v perf >/dev/null 2>&1 &&
		perf stat -e raw_syscalls:sys_enter -x, -o "$tmp/perf.check" true >/dev/null 2>&1 &&
		grep -q '^[0-9]' "$tmp/perf.check"; then
		PERF=perf
	else
		say "perf cannot count raw_syscalls:sys_enter here: no syscalls per request"
	fi
}

# Start server command $1 on a free port, on CPUs $SCPU; sets spid, port,
# rundir.  A command mentioning @DIR@/nginx.conf gets
# bench/baseline/nginx.conf.in there (with NGINX_WORKERS workers); one
# mentioning @DIR@/haproxy.cfg gets $tmp/haproxy.cfg.in (the caller's)
# with @PORT@ filled in.
start_server() {
	port=$((port + 1))
	while port_used "$port"; do port=$((port + 1)); done
	rundir=$tmp/run.$port
	mkdir -p "$rundir"
	cmd=$(echo "$1" | sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$rundir|g")
	case $cmd in
	*"$rundir/nginx.conf"*)
		if [ "${NGINX_WORKERS:-1}" -gt 1 ]; then
			# a master (the PID measured, with its workers) and N workers
			chmod 755 "$rundir"
			sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$rundir|g" \
				-e 's/^master_process off;/master_process on;/' \
				-e "s/^worker_processes 1;/worker_processes $NGINX_WORKERS;/" \
				"$here/baseline/nginx.conf.in" >"$rundir/nginx.conf"
		else
			sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$rundir|g" \
				"$here/baseline/nginx.conf.in" >"$rundir/nginx.conf"
		fi ;;
	*"$rundir/haproxy.cfg"*)
		sed -e "s|@PORT@|$port|g" "$tmp/haproxy.cfg.in" >"$rundir/haproxy.cfg" ;;
	esac
	# taskset execs the server (as does the sh raising the file limit):
	# $! is the server's own PID
	if [ -n "${SERVER_NOFILE:-}" ]; then
		# shellcheck disable=SC2086
		sh -c 'ulimit -n "$0" && exec "$@"' "$SERVER_NOFILE" taskset -c "$SCPU" $cmd \
			</dev/null >"$rundir/server.log" 2>&1 &
	else
		# shellcheck disable=SC2086
		taskset -c "$SCPU" $cmd </dev/null >"$rundir/server.log" 2>&1 &
	fi
	spid=$!
	i=0
	while [ $i -lt 100 ]; do
		kill -0 "$spid" 2>/dev/null || break
		port_listening "$port" && return 0
		sleep 0.05
		i=$((i + 1))
	done
	say "server did not come up: $cmd"
	sed 's/^/  | /' "$rundir/server.log" >&2
	stop_server
	return 1
}

stop_server() {
	[ -n "$spid" ] || return
	kill "$spid" 2>/dev/null
	i=0
	while kill -0 "$spid" 2>/dev/null && [ $i -lt 40 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -KILL "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	spid=
}

# wrk --latency output in file $1 ->
#   rps=.. p50_us=.. p90_us=.. p99_us=.. p999_us=- max_us=.. errors=.. requests=..
wrk_parse() {
	awk '
	function us(s) {
		if (s ~ /us$/) return s + 0
		if (s ~ /ms$/) return s * 1000
		if (s ~ /m$/) return s * 60e6
		return s * 1e6
	}
	$1 == "Latency" && NF >= 4 { max = us($4) }
	$1 == "50%" { p50 = us($2) }  $1 == "90%" { p90 = us($2) }
	$1 == "99%" { p99 = us($2) }
	/requests in/ { req = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { err += $NF }
	END {
		if (req == "") { req = 0; err++ }
		printf "rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=- max_us=%.1f errors=%d requests=%d\n",
			rps, p50, p90, p99, max, err, req
	}' "$1"
}

# weft-load --json output in file $1 -> the same line as wrk_parse
# (errors include timeouts).
load_parse() {
	tr -d ' \n' <"$1" | awk '
	function num(k,  m) {
		if (match($0, "\"" k "\":[-+0-9.eE]+")) {
			m = substr($0, RSTART, RLENGTH); sub(/^[^:]*:/, "", m); return m + 0
		}
		return ""
	}
	{
		req = num("requests"); rps = num("rps")
		err = num("errors") + num("timeouts")
		if (req == "") { req = 0; err++ }
		printf "rps=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%d requests=%d\n",
			rps, num("p50"), num("p90"), num("p99"), num("p999"), num("max"), err, req
		done = 1
	}
	END { if (!done) print "rps=0 p50_us=- p90_us=- p99_us=- p999_us=- max_us=- errors=1 requests=0" }'
}

# CPU seconds (user + system) of the children the shell reaped, from the
# `times` output in file $1 (its second line; dash and bash both print
# "XmY.YYYs XmY.YYYs").
times_cpu_s() {
	sed -n 2p "$1" | awk '{
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t += a[1] * 60 + a[2] }
		printf "%.3f\n", t
	}'
}

# The kernel's part of that CPU (system / (user + system)), or "-".
times_sys_share() {
	sed -n 2p "$1" | awk '{
		for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); t[i] = a[1] * 60 + a[2] }
		if (t[1] + t[2] > 0) printf "%.3f\n", t[2] / (t[1] + t[2]); else print "-"
	}'
}

# awk functions io.sh and compare.sh summarize with (prepend to a program;
# the program fills vals[key] with space-separated samples): fmt (3
# significant digits), median and range (min-max) of a key, label of a
# configuration.
STATS_AWK='
function fmt(v,  a) {
	if (v == "-" || v == "") return "-"
	a = v < 0 ? -v : v
	if (a >= 1000) return sprintf("%.0f", v)
	if (a >= 100) return sprintf("%.1f", v)
	if (a >= 10) return sprintf("%.2f", v)
	return sprintf("%.3f", v)
}
# sorted numeric samples of key k into s[1..n]; returns n
function samples(k, s,  n, i, j, t, parts) {
	n = split(vals[k], parts, " ")
	for (i = 1; i <= n; i++) s[i] = parts[i] + 0
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && s[j - 1] > s[j]; j--) { t = s[j]; s[j] = s[j - 1]; s[j - 1] = t }
	return n
}
function median(k,  s, n) {
	n = samples(k, s)
	if (!n) return "-"
	return n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
}
function range(k,  s, n) {
	n = samples(k, s)
	if (!n) return "-"
	return fmt(s[1]) "-" fmt(s[n])
}
function label(kind, c) { return kind == "echo" ? "echo" msg "_c" c : "http_c" c }
# Keep value v of field f of the row being read by its repeat (column 1):
# rep_[key, f, rep]
# (compare.sh pairs the contenders of a repeat by it).
function by_rep(key, f, v) {
	if (v == "-" || v == "") return
	rep_[key, f, $1] = v
	if (!($1 in repseen)) { repseen[$1] = 1; replist[++nr] = $1 }
}
'
