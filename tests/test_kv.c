/*
 * kv_server, the Redis-compatible example (issue 11, item 8), under real
 * clients: $WEFT_TREE/examples/kv_server started on port 0 with 2 loops
 * (weft_test_proc.h), then
 *
 *   redis-cli        PING, SET/GET (binary-safe values with CR LF inside,
 *                    a 1 MiB value from a file with -x), INCR, DEL, SET's
 *                    options, EXPIRE + TTL, and a key that expires going
 *                    away by the active sweep alone (DBSIZE, the key never
 *                    touched), within a bound;
 *   redis-benchmark  -n 20000 -c 20 -P 16 -t ping,set,get,incr completes
 *                    with a requests/s figure for every test, and no
 *                    CONFIG warning (its CONFIG GETs are answered);
 *   raw sockets      pipelined commands around big (100 KiB, 1 MiB)
 *                    values and many arguments (a DEL of 300000 keys),
 *                    answered in order; malformed input (bad and
 *                    negative lengths, a missing CRLF, huge bulk and
 *                    multibulk lengths, an endless inline line) answered
 *                    -ERR Protocol error and closed, the server serving a
 *                    fresh client after each; lengths claimed and not sent
 *                    cost no memory; clients vanishing mid-command (close
 *                    or reset) leave no connection behind; max_conns; a
 *                    command past twice --max-bulk refused; SIGTERM with
 *                    idle clients and one mid-command: the idle closed
 *                    at once, the other answered, no 5 s grace waited.
 *
 * And resp.h alone, on random commands cut at every point and with bytes
 * changed (test_kv_resp_parser).
 *
 * Every test ends with SIGTERM and exit status 0 after "shut down after":
 * in the ASan tree a leak or memory error makes that status nonzero.
 * redis-cli and redis-benchmark (Debian's redis-tools) are needed by some
 * tests, which skip loudly without them.
 */
#include "weft_test_proc.h"
#include "examples/resp.h"

#include <fcntl.h>
#include <sys/socket.h>

#define OUT_CAP (64 * 1024)

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

static void kv_start(struct server *s, const char *const extra[])
{
	server_start(s, "kv_server", extra);
}

/* A server and an OUT_CAP buffer for a client's output. */
static char *kv_begin(struct server *s)
{
	kv_start(s, NULL);
	char *out = malloc(OUT_CAP);
	assert_non_null(out);
	return out;
}

/* redis-cli -p PORT ARGS...: its output (stdout and stderr), exit 0. */
static char *cli(struct server *s, char *out, const char *const args[])
{
	char port[16];
	snprintf(port, sizeof port, "%u", s->port);
	const char *argv[32] = { "redis-cli", "-p", port };
	int n = 3;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	int st = run(argv, out, OUT_CAP, 10000 * SLOW);
	if (st != 0)
		fail_msg("redis-cli %s: exit status %d: %s", args[0], st, out);
	return out;
}

/* redis-cli's output must be `want` (its non-tty form: raw, a newline
 * after each reply, two after an error). */
#define CLI_EQ(s, out, want, ...)                                                      \
	do {                                                                           \
		cli(s, out, (const char *const[]){ __VA_ARGS__, NULL });               \
		if (strcmp(out, want) != 0)                                            \
			fail_msg("redis-cli %s: '%s', expected '%s'", #__VA_ARGS__, out, want); \
	} while (0)

/* Read from fd until `want` bytes are in buf, EOF or the deadline: the
 * byte count (its sign flipped if EOF or a reset came first). */
static ssize_t read_n(int fd, char *buf, size_t want, int timeout_ms)
{
	double end = now_ms() + timeout_ms;
	size_t len = 0;
	while (len < want) {
		int left = (int)(end - now_ms());
		struct pollfd p = { fd, POLLIN, 0 };
		int r = left > 0 ? poll(&p, 1, left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t n = recv(fd, buf + len, want - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -(ssize_t)len - 1;
		len += (size_t)n;
	}
	return (ssize_t)len;
}

/* The next bytes on fd must be exactly want[0..n). */
static void expect_bytes(int fd, const char *want, size_t n)
{
	char *got = malloc(n + 1);
	assert_non_null(got);
	ssize_t r = read_n(fd, got, n, 10000 * SLOW);
	size_t k = r < 0 ? (size_t)(-r - 1) : (size_t)r;
	got[k] = 0;
	if (k != n || memcmp(got, want, n) != 0)
		fail_msg("got %zu bytes '%.200s', expected %zu '%.200s'", k, got, n, want);
	free(got);
}

#define EXPECT(fd, lit) expect_bytes(fd, lit, sizeof(lit) - 1)

/* The server must answer fd with exactly `want` and then close it. */
static void expect_reply_and_close(int fd, const char *want)
{
	char buf[1024];
	size_t n = strlen(want);
	ssize_t r = read_n(fd, buf, sizeof buf - 1, 5000 * SLOW);
	if (r >= 0)
		fail_msg("not closed within 5 s; got %zd bytes '%.*s'", r, (int)r, buf);
	size_t k = (size_t)(-r - 1);
	buf[k < sizeof buf ? k : sizeof buf - 1] = 0;
	if (k != n || memcmp(buf, want, n) != 0)
		fail_msg("got '%s' before the close, expected '%s'", buf, want);
}

static void send_str(int fd, const char *p)
{
	assert_true(send_all(fd, p, strlen(p)));
}

/* A fresh client gets PONG: the server is alive and serving. */
static void expect_alive(struct server *s)
{
	int fd = tcp_connect(s->port);
	send_str(fd, "*1\r\n$4\r\nPING\r\n");
	EXPECT(fd, "+PONG\r\n");
	xclose(fd);
}

/* "*3\r\n$3\r\nSET\r\n$K\r\nkey\r\n$N\r\n" + value + "\r\n" in one buffer. */
static char *set_cmd(const char *key, const char *val, size_t n, size_t *len)
{
	char *b = malloc(n + 128);
	assert_non_null(b);
	int h = snprintf(b, 128, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n", strlen(key), key, n);
	memcpy(b + h, val, n);
	memcpy(b + h + n, "\r\n", 2);
	*len = (size_t)h + n + 2;
	return b;
}

/* GET key must answer exactly val[0..n). */
static void expect_get(int fd, const char *key, const char *val, size_t n)
{
	char cmd[128], head[32];
	snprintf(cmd, sizeof cmd, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key), key);
	send_str(fd, cmd);
	int h = snprintf(head, sizeof head, "$%zu\r\n", n);
	expect_bytes(fd, head, (size_t)h);
	expect_bytes(fd, val, n);
	EXPECT(fd, "\r\n");
}

/* Bytes a..z over and over, with CR LF every 1000. */
static char *pattern(size_t n)
{
	char *v = malloc(n);
	assert_non_null(v);
	for (size_t i = 0; i < n; i++)
		v[i] = i % 1000 == 998 ? '\r' : i % 1000 == 999 ? '\n' : (char)('a' + i % 26);
	return v;
}

static long vm_size_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmSize: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* ---------------------------------------------------------------------- */
/* redis-cli                                                               */
/* ---------------------------------------------------------------------- */

static void test_kv_cli(void **state)
{
	(void)state;
	NEED_TOOL("redis-cli");
	struct server s;
	char *out = kv_begin(&s);

	CLI_EQ(&s, out, "PONG\n", "PING");
	CLI_EQ(&s, out, "hi there\n", "PING", "hi there");
	CLI_EQ(&s, out, "OK\n", "SET", "greeting", "hello world");
	CLI_EQ(&s, out, "hello world\n", "GET", "greeting");
	CLI_EQ(&s, out, "\n", "GET", "nothing"); /* nil: an empty line */
	CLI_EQ(&s, out, "1\n", "INCR", "n");
	CLI_EQ(&s, out, "11\n", "INCRBY", "n", "10");
	CLI_EQ(&s, out, "10\n", "DECR", "n");
	CLI_EQ(&s, out, "ERR value is not an integer or out of range\n\n", "INCR", "greeting");
	CLI_EQ(&s, out, "OK\n", "SET", "big", "9223372036854775807");
	CLI_EQ(&s, out, "ERR increment or decrement would overflow\n\n", "INCR", "big");
	CLI_EQ(&s, out, "2\n", "EXISTS", "n", "greeting", "nothing");
	CLI_EQ(&s, out, "2\n", "DEL", "n", "greeting", "nothing");
	CLI_EQ(&s, out, "0\n", "EXISTS", "n");
	CLI_EQ(&s, out, "echo\n", "ECHO", "echo");
	/* SET's options */
	CLI_EQ(&s, out, "\n", "SET", "k", "v", "XX");
	CLI_EQ(&s, out, "OK\n", "SET", "k", "v", "NX");
	CLI_EQ(&s, out, "\n", "SET", "k", "w", "NX");
	CLI_EQ(&s, out, "OK\n", "SET", "k", "w", "XX", "EX", "100");
	CLI_EQ(&s, out, "100\n", "TTL", "k");
	CLI_EQ(&s, out, "OK\n", "SET", "k", "x", "KEEPTTL");
	CLI_EQ(&s, out, "100\n", "TTL", "k");
	CLI_EQ(&s, out, "OK\n", "SET", "k", "y");
	CLI_EQ(&s, out, "-1\n", "TTL", "k");
	CLI_EQ(&s, out, "-2\n", "TTL", "nothing");
	CLI_EQ(&s, out, "ERR syntax error\n\n", "SET", "k", "v", "NX", "XX");
	CLI_EQ(&s, out, "ERR invalid expire time in 'set' command\n\n", "SET", "k", "v", "EX", "0");
	CLI_EQ(&s, out, "ERR value is not an integer or out of range\n\n", "SET", "k", "v", "PX",
	       "x");
	CLI_EQ(&s, out, "ERR wrong number of arguments for 'get' command\n\n", "GET");
	CLI_EQ(&s, out, "ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \n\n", "NOPE",
	       "a", "b");
	CLI_EQ(&s, out, "2\n", "DBSIZE"); /* big and k */
	CLI_EQ(&s, out, "OK\n", "FLUSHALL");
	CLI_EQ(&s, out, "0\n", "DBSIZE");

	/* binary-safe values from files (-x: stdin is the last argument) */
	char dir[] = "/tmp/weft-kv.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64], cmd[256];
	static const char crlf[] = "a\r\n$3\r\nGET\r\n*1\r\n\r\nz";
	size_t big = 1 << 20;
	char *val = pattern(big);
	for (int k = 0; k < 2; k++) {
		const char *v = k ? val : crlf;
		size_t n = k ? big : sizeof(crlf) - 1;
		snprintf(path, sizeof path, "%s/v%d", dir, k);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		assert_int_equal(fwrite(v, 1, n, f), n);
		fclose(f);
		snprintf(cmd, sizeof cmd, "redis-cli -p %u -x SET v%d < %s", s.port, k, path);
		assert_int_equal(run((const char *const[]){ "sh", "-c", cmd, NULL }, out, OUT_CAP,
				     10000 * SLOW), 0);
		assert_string_equal(out, "OK\n");
		unlink(path);
		int fd = tcp_connect(s.port); /* the exact bytes back */
		snprintf(cmd, sizeof cmd, "v%d", k);
		expect_get(fd, cmd, v, n);
		xclose(fd);
	}
	rmdir(dir);
	CLI_EQ(&s, out, "a\r\n$3\r\nGET\r\n*1\r\n\r\nz\n", "GET", "v0");
	free(val);
	free(out);
	server_stop(&s);
}

/* EXPIRE and TTL, and a key expiring away by the sweep alone: DBSIZE
 * counts it until the sweep deletes it (lazy expiry never sees it: it is
 * not touched). */
static void test_kv_cli_expire(void **state)
{
	(void)state;
	NEED_TOOL("redis-cli");
	struct server s;
	char *out = kv_begin(&s);
	CLI_EQ(&s, out, "OK\n", "SET", "stays", "1");
	CLI_EQ(&s, out, "OK\n", "SET", "goes", "1");
	CLI_EQ(&s, out, "0\n", "EXPIRE", "nothing", "1");
	/* 3 s: TTL stays 3 for its first half second, and the key lives until
	 * the PEXPIRE below, however slowly a loaded machine runs the clients */
	CLI_EQ(&s, out, "1\n", "EXPIRE", "goes", "3");
	CLI_EQ(&s, out, "3\n", "TTL", "goes");
	cli(&s, out, (const char *const[]){ "PTTL", "goes", NULL });
	long pttl = atol(out);
	assert_true(pttl > 0 && pttl <= 3000);
	CLI_EQ(&s, out, "2\n", "DBSIZE");
	/* lazy expiry: a key touched after its time is gone */
	CLI_EQ(&s, out, "OK\n", "SET", "lazy", "1", "PX", "1");
	msleep(5);
	CLI_EQ(&s, out, "\n", "GET", "lazy");
	/* EXPIRE with a time not in the future deletes */
	CLI_EQ(&s, out, "OK\n", "SET", "now", "1");
	CLI_EQ(&s, out, "1\n", "PEXPIRE", "now", "-1");
	CLI_EQ(&s, out, "0\n", "EXISTS", "now");
	/* "goes" brought forward to 300 ms (waiting out the 3 s cost every
	 * tree 3 s): the sweep (every 100 ms) deletes it soon after, not
	 * before, and DBSIZE counts it until then */
	double t1 = now_ms();
	CLI_EQ(&s, out, "1\n", "PEXPIRE", "goes", "300");
	long n = -1;
	while (now_ms() - t1 < 300 + 2000.0 * SLOW) {
		cli(&s, out, (const char *const[]){ "DBSIZE", NULL });
		n = atol(out);
		if (n == 1)
			break;
		assert_int_equal(n, 2);
		msleep(20);
	}
	double t = now_ms() - t1;
	print_message("expired key swept %.0f ms after its 300 ms PEXPIRE\n", t);
	if (n != 1)
		fail_msg("DBSIZE still %ld after %.0f ms: the sweep did not delete the key", n, t);
	assert_true(t >= 290);
	CLI_EQ(&s, out, "1\n", "EXISTS", "stays");
	free(out);
	server_stop(&s);
}

/* ---------------------------------------------------------------------- */
/* redis-benchmark                                                         */
/* ---------------------------------------------------------------------- */

static void test_kv_benchmark(void **state)
{
	(void)state;
	NEED_TOOL("redis-benchmark");
	struct server s;
	char *out = kv_begin(&s);
	char port[16];
	snprintf(port, sizeof port, "%u", s.port);
	const char *n = TSAN ? "5000" : "20000";
	int st = run((const char *const[]){ "redis-benchmark", "-p", port, "-q", "-n", n, "-c",
					     "20", "-P", "16", "-t", "ping,set,get,incr", NULL },
		     out, OUT_CAP, 30000 * SLOW);
	/* progress lines end in CR: one result per line */
	for (char *p = out; *p; p++)
		if (*p == '\r')
			*p = '\n';
	if (st != 0)
		fail_msg("redis-benchmark exit status %d: %s", st, out);
	static const char *const tests[] = { "PING_INLINE", "PING_MBULK", "SET", "GET", "INCR" };
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
		char key[32];
		snprintf(key, sizeof key, "\n%s: ", tests[i]);
		const char *l = NULL;
		for (const char *p = out - 1; (p = strstr(p + 1, key));) /* the last one */
			l = p;
		double rps = 0;
		if (!l || sscanf(l + strlen(key), "%lf requests per second", &rps) != 1 || rps <= 0)
			fail_msg("no requests per second for %s in:\n%s", tests[i], out);
		print_message("%s: %.0f requests/s\n", tests[i], rps);
	}
	if (strstr(out, "ERR") || strstr(out, "rror") || strstr(out, "WARN"))
		fail_msg("redis-benchmark reported a problem:\n%s", out);
	free(out);
	server_stop(&s);
}

/* ---------------------------------------------------------------------- */
/* raw sockets                                                             */
/* ---------------------------------------------------------------------- */

/* Pipelined commands around values the fast path cannot hold (100 KiB,
 * 1 MiB): every reply in order, the values exact. */
static void test_kv_pipeline_big(void **state)
{
	(void)state;
	struct server s;
	kv_start(&s, NULL);
	int fd = tcp_connect(s.port);
	size_t sizes[] = { 100 * 1024, 1 << 20, 20 * 1024 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *v = pattern(sizes[i]);
		size_t len;
		char *set = set_cmd("big", v, sizes[i], &len);
		send_str(fd, "PING\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"); /* inline, then RESP */
		assert_true(send_all(fd, set, len));
		send_str(fd, "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n");
		char want[64];
		int w = snprintf(want, sizeof want, "+PONG\r\n:%zu\r\n+OK\r\n+PONG\r\n$2\r\nhi\r\n",
				 i + 1);
		expect_bytes(fd, want, (size_t)w);
		expect_get(fd, "big", v, sizes[i]);
		free(set);
		free(v);
	}
	/* a DEL of 1000 keys: more arguments than the fast path takes */
	size_t cap = 1000 * 24 + 64, len = 0;
	char *del = malloc(cap);
	assert_non_null(del);
	len += (size_t)snprintf(del, cap, "*1001\r\n$3\r\nDEL\r\n");
	for (int k = 0; k < 1000; k++)
		len += (size_t)snprintf(del + len, cap - len, "$5\r\nk%04d\r\n", k);
	send_str(fd, "*3\r\n$3\r\nSET\r\n$5\r\nk0500\r\n$1\r\nx\r\n");
	assert_true(send_all(fd, del, len));
	send_str(fd, "*1\r\n$6\r\nDBSIZE\r\n");
	EXPECT(fd, "+OK\r\n:1\r\n:2\r\n"); /* big and n are left */
	free(del);
	/* 300000 keys, 3.9 MB: received in big steps (the 6 bytes every
	 * argument still to come needs at least), not parsed again from its
	 * start after every receive */
	enum { MANY = 300000 };
	cap = (size_t)MANY * 20 + 64;
	del = malloc(cap);
	assert_non_null(del);
	len = (size_t)snprintf(del, cap, "*%d\r\n$3\r\nDEL\r\n", MANY + 1);
	for (int k = 0; k < MANY; k++)
		len += (size_t)snprintf(del + len, cap - len, "$7\r\nk%06d\r\n", k);
	double t0 = now_ms();
	assert_true(send_all(fd, del, len));
	EXPECT(fd, ":0\r\n");
	print_message("DEL of %d keys (%zu bytes) answered in %.0f ms\n", MANY, len, now_ms() - t0);
	assert_true(now_ms() - t0 < 3000.0 * SLOW);
	free(del);
	xclose(fd);
	server_stop(&s);
}

/* Malformed input: -ERR Protocol error and the close, the replies to
 * what came before it first; then a fresh client is served. */
static void test_kv_malformed(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n" },
		{ "*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*1\r\n$4x\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*1\r\n$4\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*1\nPING", "-ERR Protocol error: invalid multibulk length\r\n" },
		{ "*1\r\n$4\r\nPINGxx", "-ERR Protocol error: expected CRLF after bulk data\r\n" },
		{ "*1\r\n+4\r\n", "-ERR Protocol error: expected '$'\r\n" },
		{ "*1\r\n$9999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*1\r\n$99999999999999999999999\r\n",
		  "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*1\r\n$536870913\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*99999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n" },
		{ "*1048577\r\n", "-ERR Protocol error: invalid multibulk length\r\n" },
		{ "PING\r\n*1\r\n$4\r\nPING\r\n*x\r\n",
		  "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n" },
		/* the slow path's own checks: a big command gone bad */
		{ "*100\r\n$3\r\nDEL\r\n$-3\r\n", "-ERR Protocol error: invalid bulk length\r\n" },
		{ "*100\r\n$3\r\nDEL\r\n:3\r\n", "-ERR Protocol error: expected '$'\r\n" },
		{ "*2\r\n$4\r\nECHO\r\n$40000\r\n", NULL }, /* + 40000 bytes and no CRLF */
	};
	struct server s;
	kv_start(&s, NULL);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int fd = tcp_connect(s.port);
		send_str(fd, cases[i][0]);
		if (!cases[i][1]) {
			char *v = pattern(40000);
			assert_true(send_all(fd, v, 40000));
			send_str(fd, "xx");
			free(v);
		}
		expect_reply_and_close(fd, cases[i][1] ? cases[i][1]
				       : "-ERR Protocol error: expected CRLF after bulk data\r\n");
		xclose(fd);
		expect_alive(&s);
	}
	/* an inline line with no end, past 32 KiB */
	int fd = tcp_connect(s.port);
	char *line = malloc(40000);
	assert_non_null(line);
	memset(line, 'A', 40000);
	assert_true(send_all(fd, line, 40000));
	free(line);
	expect_reply_and_close(fd, "-ERR Protocol error: too big inline request\r\n");
	xclose(fd);
	expect_alive(&s);
	server_stop(&s);
}

/* Lengths claimed and not sent cost nothing: 8 clients each announce a
 * 500 MB bulk (and a million arguments) and send a few bytes; the
 * server's address space grows by far less than the 4 GB claimed, and it
 * keeps serving. */
static void test_kv_claims_cost_nothing(void **state)
{
	(void)state;
	struct server s;
	kv_start(&s, NULL);
	expect_alive(&s);
	long before = vm_size_kb(s.pid);
	int fds[8];
	for (int i = 0; i < 8; i++) {
		fds[i] = tcp_connect(s.port);
		send_str(fds[i], i % 2 ? "*2\r\n$3\r\nGET\r\n$500000000\r\nabc"
				       : "*1000000\r\n$3\r\nDEL\r\n$1\r\nx\r\n$500000000\r\nab");
	}
	expect_alive(&s); /* each claim has been read by now (one loop each, or both) */
	msleep(50);
	long after = vm_size_kb(s.pid);
	print_message("VmSize %ld kB -> %ld kB with 4 GB claimed\n", before, after);
	assert_true(before > 0 && after > 0);
	assert_true(after - before < 256 * 1024);
	for (int i = 0; i < 8; i++)
		xclose(fds[i]);
	expect_alive(&s);
	server_stop(&s);
}

/* Clients that vanish mid-command, by close or by reset, at every kind of
 * place: nothing crashes, every connection is freed (the stats line's
 * conns and tasks come back), the server serves on; ASan's exit checks
 * the leaks. */
static void test_kv_vanish(void **state)
{
	(void)state;
	static const char *const halves[] = {
		"*", "*3\r", "*3\r\n$3\r\nSE", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab",
		"*2\r\n$4\r\nECHO\r\n$100000\r\nxyz", /* the slow path, mid-bulk */
		"*2\r\n$4\r\nECHO\r\n$100000\r\n",    /* ... before the bulk */
		"*200\r\n$3\r\nDEL\r\n$1\r\na\r\n",   /* ... between arguments */
		"PIN",
	};
	size_t cap = 256 * 1024, len = 0;
	char *out = calloc(1, cap);
	assert_non_null(out);
	struct server s;
	stats_server_start(&s, "kv_server", out, cap, &len);
	long base = stats_await(&s, out, cap, &len, 0, -1);
	for (int reset = 0; reset < 2; reset++)
		for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++) {
			int fd = tcp_connect(s.port);
			send_str(fd, halves[i]);
			if (reset) {
				struct linger lg = { 1, 0 };
				setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
			}
			msleep(2);
			xclose(fd);
		}
	expect_alive(&s);
	stats_await(&s, out, cap, &len, 0, base); /* none left behind */
	stats_server_stop(&s, out, cap, &len, "shut down after ");
	free(out);
}

/* --max-conns 2: a third client is closed at once, unanswered; once one
 * of the two leaves, a new one is served. */
static void test_kv_max_conns(void **state)
{
	(void)state;
	struct server s;
	kv_start(&s, (const char *const[]){ "--max-conns", "2", NULL });
	int a = tcp_connect(s.port), b = tcp_connect(s.port);
	send_str(a, "PING\r\n");
	send_str(b, "PING\r\n");
	EXPECT(a, "+PONG\r\n");
	EXPECT(b, "+PONG\r\n");
	int c = tcp_connect(s.port);
	send_str(c, "PING\r\n");
	char buf[16];
	ssize_t r = read_n(c, buf, sizeof buf, 5000 * SLOW);
	if (r != -1)
		fail_msg("a third client over --max-conns 2 got %zd (not the close at once)", r);
	xclose(c);
	xclose(a);
	double end = now_ms() + 5000.0 * SLOW;
	for (;;) { /* until the server has counted a's close */
		int d = tcp_connect(s.port);
		send_str(d, "PING\r\n");
		r = read_n(d, buf, 7, 1000 * SLOW);
		xclose(d);
		if (r == 7 && memcmp(buf, "+PONG\r\n", 7) == 0)
			break;
		if (now_ms() > end)
			fail_msg("no client served after one of two left");
		msleep(10);
	}
	send_str(b, "PING\r\n");
	EXPECT(b, "+PONG\r\n");
	xclose(b);
	server_stop(&s);
}

/* A command whose bytes pass --max-bulk twice is refused as it arrives. */
static void test_kv_command_too_big(void **state)
{
	(void)state;
	struct server s;
	kv_start(&s, (const char *const[]){ "--max-bulk", "100000", NULL });
	int fd = tcp_connect(s.port);
	char *v = pattern(100000);
	send_str(fd, "*4\r\n$3\r\nDEL\r\n");
	for (int i = 0; i < 3; i++) {
		send_str(fd, "$100000\r\n");
		if (!send_all(fd, v, 100000) || !send_all(fd, "\r\n", 2))
			break; /* closed under us: what it answered is read below */
	}
	expect_reply_and_close(fd, "-ERR Protocol error: command too big\r\n");
	xclose(fd);
	fd = tcp_connect(s.port); /* one bulk at the limit is fine, one past it not */
	size_t len;
	char *set = set_cmd("k", v, 100000, &len);
	assert_true(send_all(fd, set, len));
	EXPECT(fd, "+OK\r\n");
	expect_get(fd, "k", v, 100000);
	send_str(fd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100001\r\n");
	expect_reply_and_close(fd, "-ERR Protocol error: invalid bulk length\r\n");
	xclose(fd);
	free(set);
	free(v);
	expect_alive(&s);
	server_stop(&s);
}

/* SIGTERM with idle clients and one in the middle of a command: the idle
 * ones are closed at once, the command in progress is answered when its
 * rest comes, and the server exits long before its 5 s grace. */
static void test_kv_shutdown_idle(void **state)
{
	(void)state;
	struct server s;
	kv_start(&s, NULL);
	int idle[3];
	for (int i = 0; i < 3; i++) {
		idle[i] = tcp_connect(s.port);
		send_str(idle[i], "PING\r\n");
		EXPECT(idle[i], "+PONG\r\n");
	}
	int mid = tcp_connect(s.port);
	send_str(mid, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab");
	msleep(50);
	double t0 = now_ms();
	signal_program(s.pid, SIGTERM);
	for (int i = 0; i < 3; i++) {
		expect_reply_and_close(idle[i], "");
		xclose(idle[i]);
	}
	send_str(mid, "cde\r\n");
	expect_reply_and_close(mid, "+OK\r\n");
	xclose(mid);
	server_reap(&s, t0);
	double t = now_ms() - t0;
	print_message("shut down %.0f ms after SIGTERM (grace: 5 s)\n", t);
	assert_true(t < 2000.0 * SLOW);
}

/* ---------------------------------------------------------------------- */
/* the parser alone                                                        */
/* ---------------------------------------------------------------------- */

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* resp.h's contracts on random commands (binary arguments with CR LF
 * inside, up to 100 of them, inline ones too), each in a heap block of
 * exactly its size so ASan sees a read past the end:
 *  - whole, it parses to exactly its arguments and its length;
 *  - every strict prefix is RESP_NEED (or RESP_BIG with a small array),
 *    and the bytes it says it needs are more than the prefix and never
 *    more than the whole command: the server receives up to there with
 *    fill_to, so more would wait for bytes that never come;
 *  - with a byte changed, whatever it returns stays inside the buffer. */
static void test_kv_resp_parser(void **state)
{
	(void)state;
	struct resp_arg argv[128], want[128];
	for (int iter = 0; iter < (WEFT_TEST_SANITIZED ? 2000 : 10000); iter++) {
		size_t nargs = 1 + rnd() % (iter % 10 == 0 ? 100 : 5), cap = 64 * 1024, len = 0;
		char *buf = malloc(cap), *data = malloc(cap);
		assert_non_null(buf);
		assert_non_null(data);
		bool inl = iter % 7 == 0;
		size_t dlen = 0;
		if (!inl)
			len += (size_t)snprintf(buf, cap, "*%zu\r\n", nargs);
		for (size_t i = 0; i < nargs; i++) {
			size_t n = inl ? 1 + rnd() % 8 : rnd() % (i % 13 == 0 ? 2000 : 12);
			for (size_t k = 0; k < n; k++)
				data[dlen + k] = inl ? (char)('a' + rnd() % 26) : "ab\r\n$*\0z"[rnd() % 8];
			want[i] = (struct resp_arg){ data + dlen, n };
			if (inl) {
				len += (size_t)snprintf(buf + len, cap - len, "%s%.*s", i ? " " : "", (int)n,
							data + dlen);
			} else {
				len += (size_t)snprintf(buf + len, cap - len, "$%zu\r\n", n);
				memcpy(buf + len, data + dlen, n);
				memcpy(buf + len + n, "\r\n", 2);
				len += n + 2;
			}
			dlen += n;
		}
		if (inl) {
			memcpy(buf + len, "\r\n", 2);
			len += 2;
		}
		for (size_t pre = 1; pre <= len; pre++) {
			if (pre < len && pre > 64 && rnd() % 8) /* long ones: a sample of prefixes */
				continue;
			char *b = malloc(pre);
			assert_non_null(b);
			memcpy(b, buf, pre);
			struct resp_cmd cmd = { argv, 0, sizeof argv / sizeof argv[0] };
			size_t known = 0;
			const char *err = NULL;
			ssize_t r = resp_parse(b, pre, &cmd, 512u << 20, &known, &err);
			if (pre < len) {
				if (r != RESP_NEED || (known && (known <= pre || known > len)))
					fail_msg("iter %d: prefix %zu of %zu: %zd, known %zu (%s): '%.*s'", iter,
						 pre, len, r, known, err ? err : "", (int)pre, b);
			} else {
				if (r != (ssize_t)len || cmd.argc != nargs)
					fail_msg("iter %d: whole (%zu): %zd, %zu args of %zu (%s)", iter, len,
						 r, cmd.argc, nargs, err ? err : "");
				for (size_t i = 0; i < nargs; i++)
					if (argv[i].n != want[i].n ||
					    memcmp(argv[i].p, want[i].p, want[i].n) != 0)
						fail_msg("iter %d: argument %zu differs", iter, i);
				/* a small array: RESP_BIG once it is full and more came */
				struct resp_cmd small = { argv, 0, 2 };
				r = resp_parse(b, pre, &small, 512u << 20, &known, &err);
				assert_true(nargs <= 2 ? r == (ssize_t)len : r == RESP_BIG);
			}
			/* one byte changed: any answer, all of it inside b */
			size_t at = rnd() % pre;
			b[at] = (char)rnd();
			r = resp_parse(b, pre, &cmd, 512u << 20, &known, &err);
			assert_true(r == RESP_NEED || r == RESP_ERROR || (r > 0 && (size_t)r <= pre));
			for (size_t i = 0; r > 0 && i < cmd.argc; i++)
				assert_true(argv[i].p >= b && argv[i].p + argv[i].n <= b + pre);
			free(b);
		}
		free(buf);
		free(data);
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
static const struct CMUnitTest tests[] = {
	T(test_kv_resp_parser),
	T(test_kv_cli),
	T(test_kv_cli_expire),
	T(test_kv_benchmark),
	T(test_kv_pipeline_big),
	T(test_kv_malformed),
	T(test_kv_claims_cost_nothing),
	T(test_kv_vanish),
	T(test_kv_max_conns),
	T(test_kv_command_too_big),
	T(test_kv_shutdown_idle),
};

WEFT_TEST_MAIN(tests)
