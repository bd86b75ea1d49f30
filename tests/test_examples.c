/*
 * The example programs under real clients (issue 4, item 9): each test
 * runs programs of $WEFT_TREE/examples/ as child processes and drives them
 * from this process with plain sockets, poll and ordinary tools.
 *
 *   http_server   curl (keep-alive, exact headers and body, HEAD, 404, 405,
 *                 HTTP/1.0, 431, malformed requests answered 400 and the
 *                 connection closed), raw sockets (pipelining, a request one
 *                 byte at a time, malformed requests answered 4xx/505 and
 *                 closed), wrk, and a flood of half-open and slow
 *                 connections next to a well-behaved client; a kept-alive
 *                 connection's stack stays at one resident page;
 *   http_get      against http_server, and an unreachable port;
 *   echo_server   concurrent clients, 1 byte to several MiB, exact echo;
 *                 --stats-ms lines that follow the clients;
 *   write_lines, subprocess: exit status and key output.
 *
 * A server is started with posix_spawn, its stdout on a pipe; its
 * "listening on HOST:PORT" line gives the port.  At the end it gets SIGTERM
 * and must exit 0 after "shut down after N connections": in the ASan tree
 * a leak or memory error under that traffic makes the exit status
 * nonzero, in the TSan tree a race does.  The servers' stderr is this
 * process's, so such reports appear in the test log.
 *
 * WEFT_TREE (set by tests/run.sh) names the build tree; without it the
 * tree is the one holding this binary (<tree>/tests/test_examples), else
 * "build".  curl and wrk are needed for some tests, which skip loudly
 * without them.
 *
 * Every child and socket is registered; the teardown kills and closes what
 * a failed assertion (a longjmp) left behind.  No runtime is used here,
 * and every assertion runs on the test's own thread.
 */
#include "weft_test_proc.h"

/* ---------------------------------------------------------------------- */
/* raw HTTP client                                                         */
/* ---------------------------------------------------------------------- */

struct conn {
	int fd;
	size_t len;
	char buf[1 << 16];
};

/* One more recv into c->buf: > 0 bytes, 0 EOF, -errno (-ETIMEDOUT). */
static ssize_t conn_fill(struct conn *c, double deadline)
{
	for (;;) {
		int left = (int)(deadline - now_ms());
		struct pollfd p = { c->fd, POLLIN, 0 };
		int r = left > 0 ? poll(&p, 1, left) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -ETIMEDOUT;
		if (c->len == sizeof c->buf)
			return -ENOBUFS;
		ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c->len += (size_t)n;
		return n;
	}
}

struct resp {
	int status;
	long clen;         /* Content-Length, -1 if none */
	char head[2048];   /* status line and fields, NUL-terminated */
	char body[256];
	size_t body_len;
};

/* Case-insensitive field value of r->head, or "" if absent. */
static const char *field(const struct resp *r, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
		if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
			static char v[256];
			const char *s = p + 3 + n;
			while (*s == ' ')
				s++;
			size_t k = strcspn(s, "\r");
			snprintf(v, sizeof v, "%.*s", (int)k, s);
			return v;
		}
	return "";
}

/* The next response on c, its body delimited by Content-Length (none after
 * HEAD).  1: got it; 0: EOF before any byte; -errno otherwise. */
static int read_response(struct conn *c, struct resp *r, bool head_req, int timeout_ms)
{
	double end = now_ms() + timeout_ms;
	memset(r, 0, sizeof *r);
	char *eoh;
	for (;;) {
		eoh = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (eoh)
			break;
		ssize_t n = conn_fill(c, end);
		if (n == 0 || n == -ECONNRESET)
			return c->len ? -EBADMSG : 0;
		if (n < 0)
			return (int)n;
	}
	size_t hl = (size_t)(eoh - c->buf) + 4;
	snprintf(r->head, sizeof r->head, "%.*s", (int)hl, c->buf);
	if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
		return -EBADMSG;
	const char *cl = field(r, "Content-Length");
	r->clen = *cl ? atol(cl) : -1;
	size_t blen = head_req || r->clen < 0 ? 0 : (size_t)r->clen;
	while (c->len < hl + blen) {
		ssize_t n = conn_fill(c, end);
		if (n <= 0)
			return n == 0 ? -EBADMSG : (int)n;
	}
	r->body_len = blen;
	memcpy(r->body, c->buf + hl, blen < sizeof r->body ? blen : sizeof r->body - 1);
	c->len -= hl + blen;
	memmove(c->buf, c->buf + hl + blen, c->len);
	return 1;
}

/* The server must close c within timeout_ms, sending nothing more: 0 if so
 * (EOF or a reset), -ETIMEDOUT, or -EPROTO for more bytes. */
static int await_close(struct conn *c, int timeout_ms)
{
	double end = now_ms() + timeout_ms;
	size_t before = c->len;
	for (;;) {
		ssize_t n = conn_fill(c, end);
		if (n == 0 || n == -ECONNRESET)
			return c->len == before ? 0 : -EPROTO;
		if (n < 0)
			return (int)n;
	}
}

static struct conn *conn_open(unsigned port)
{
	struct conn *c = malloc(sizeof *c);
	assert_non_null(c);
	c->fd = tcp_connect(port);
	c->len = 0;
	return c;
}

static void conn_close(struct conn *c)
{
	xclose(c->fd);
	free(c);
}

#define GET_REQ "GET / HTTP/1.1\r\nHost: t\r\n\r\n"

/* Expect a 200 "Hello, World!" as the next response on c. */
static void expect_hello(struct conn *c)
{
	struct resp r;
	int rc = read_response(c, &r, false, 3000 * SLOW);
	if (rc != 1)
		fail_msg("no response (%d: %s)", rc, rc < 0 ? strerror(-rc) : "EOF");
	assert_int_equal(r.status, 200);
	assert_int_equal(r.clen, 13);
	assert_int_equal(r.body_len, 13);
	assert_string_equal(r.body, "Hello, World!");
}

/* ---------------------------------------------------------------------- */
/* http_server with curl                                                   */
/* ---------------------------------------------------------------------- */

#define OUT_CAP (64 * 1024)

/* curl ARGS... URL; its output, asserting exit status 0. */
static char *curl(char *out, const char *const args[])
{
	const char *argv[24] = { "curl", "-s", "--max-time", "5" };
	int n = 4;
	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	int st = run(argv, out, OUT_CAP, 8000 * SLOW);
	if (st != 0)
		fail_msg("curl exit status %d: %s", st, out);
	return out;
}

/* A test of http_server with `tool` (NULL: none needed): the server
 * started, and a buffer of OUT_CAP for outputs. */
static char *http_begin(struct server *s, const char *tool)
{
	if (tool)
		NEED_TOOL(tool);
	server_start(s, "http_server", NULL);
	char *out = malloc(OUT_CAP);
	assert_non_null(out);
	return out;
}

static void http_end(struct server *s, char *out)
{
	free(out);
	server_stop(s);
}

static void test_http_curl_keepalive(void **state)
{
	(void)state;
	struct server s;
	char *out = http_begin(&s, "curl");
	const char *u = s.url;
	/* three requests on one connection: one connect, then reuse */
	curl(out, (const char *const[]){ "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
					 "-w", "%{http_code} %{num_connects}\\n", u, u, u, NULL });
	assert_string_equal(out, "200 1\n200 0\n200 0\n");
	/* and a 404 in between does not close it */
	char nope[80];
	snprintf(nope, sizeof nope, "%snope", u);
	curl(out, (const char *const[]){ "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null",
					 "-w", "%{http_code} %{num_connects}\\n", u, nope, u,
					 NULL });
	assert_string_equal(out, "200 1\n404 0\n200 0\n");
	/* HTTP/1.0 without keep-alive: every request on its own connection */
	curl(out, (const char *const[]){ "-0", "-o", "/dev/null", "-o", "/dev/null", "-w",
					 "%{http_code} %{num_connects}\\n", u, u, NULL });
	assert_string_equal(out, "200 1\n200 1\n");
	http_end(&s, out);
}

/* The head of curl -i output, its body after the empty line. */
static const char *split_head(char *out)
{
	char *e = strstr(out, "\r\n\r\n");
	if (!e)
		fail_msg("no response head in: %s", out);
	e[2] = 0;
	return e + 4;
}

static void test_http_curl_responses(void **state)
{
	(void)state;
	struct server s;
	char *out = http_begin(&s, "curl");
	const char *u = s.url;
	char nope[80];
	snprintf(nope, sizeof nope, "%snope", u);

	/* GET /: exact status, fields and body */
	curl(out, (const char *const[]){ "-i", u, NULL });
	const char *body = split_head(out);
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(out, "\r\nContent-Length: 13\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Type: text/plain\r\n"));
	assert_non_null(strstr(out, "\r\nDate: "));
	assert_null(strstr(out, "Connection: close"));
	assert_string_equal(body, "Hello, World!");

	/* HEAD: the same fields, no body */
	curl(out, (const char *const[]){ "-I", u, NULL });
	body = split_head(out);
	assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(out, "\r\nContent-Length: 13\r\n"));
	assert_string_equal(body, "");

	/* another path: 404, with a body */
	curl(out, (const char *const[]){ "-i", nope, NULL });
	body = split_head(out);
	assert_true(strncmp(out, "HTTP/1.1 404 ", 13) == 0);
	assert_string_equal(body, "Not Found\n");

	/* other methods on /: 405 with Allow */
	static const char *const methods[] = { "POST", "PUT", "DELETE", "PATCH" };
	for (size_t i = 0; i < sizeof methods / sizeof *methods; i++) {
		curl(out, (const char *const[]){ "-i", "-X", methods[i], "-d", "x=1", u, NULL });
		body = split_head(out);
		if (strncmp(out, "HTTP/1.1 405 ", 13) != 0)
			fail_msg("%s / answered: %s", methods[i], out);
		assert_non_null(strstr(out, "\r\nAllow: GET, HEAD\r\n"));
		assert_string_equal(body, "Method Not Allowed\n");
	}

	/* HTTP/1.0: answered, and the server says it closes */
	curl(out, (const char *const[]){ "-0", "-i", u, NULL });
	body = split_head(out);
	assert_true(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_non_null(strstr(out, "\r\nConnection: close\r\n"));
	assert_string_equal(body, "Hello, World!");

	/* a field of 9000 bytes: the head is over 8 KiB, 431 */
	size_t big = 9000;
	char *hdr = malloc(big + 16);
	assert_non_null(hdr);
	memcpy(hdr, "X-Big: ", 7);
	memset(hdr + 7, 'a', big);
	hdr[7 + big] = 0;
	curl(out, (const char *const[]){ "-o", "/dev/null", "-w", "%{http_code}", "-H", hdr, u,
					 NULL });
	assert_string_equal(out, "431");
	free(hdr);
	http_end(&s, out);
}

/* Malformed requests curl can be made to send: each answered 400, and the
 * connection closed (the second URL needs a connect of its own). */
static void test_http_curl_malformed(void **state)
{
	(void)state;
	struct server s;
	char *out = http_begin(&s, "curl");
	const char *u = s.url;
	static const char *const bad[][2] = {
		{ "-H", "Host:" },                 /* HTTP/1.1 without Host */
		{ "-H", "X-Bad : v" },             /* space before the colon */
		{ "--request-target", "/a b" },    /* a space in the target */
		{ "-X", "G(T" },                   /* not a token */
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		curl(out, (const char *const[]){ "-o", "/dev/null", "-o", "/dev/null", "-w",
						 "%{http_code} %{num_connects}\\n", bad[i][0],
						 bad[i][1], u, u, NULL });
		if (strcmp(out, "400 1\n400 1\n") != 0)
			fail_msg("curl %s '%s': %s", bad[i][0], bad[i][1], out);
	}
	/* and good requests still work */
	curl(out, (const char *const[]){ u, NULL });
	assert_string_equal(out, "Hello, World!");
	http_end(&s, out);
}

/* ---------------------------------------------------------------------- */
/* http_server with raw sockets                                            */
/* ---------------------------------------------------------------------- */

static void test_http_pipelining(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "http_server", NULL);

	/* five requests in one send, answered in order */
	struct conn *c = conn_open(s.port);
	static const char batch[] =
		GET_REQ
		"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
		"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
		"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
		"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nabc\r\n0\r\n\r\n"
		GET_REQ;
	assert_true(send_all(c->fd, batch, sizeof batch - 1));
	struct resp r;
	expect_hello(c);
	assert_int_equal(read_response(c, &r, true, 3000 * SLOW), 1);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.clen, 13);
	assert_int_equal(read_response(c, &r, false, 3000 * SLOW), 1);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body, "Not Found\n");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(read_response(c, &r, false, 3000 * SLOW), 1);
		assert_int_equal(r.status, 405);
	}
	expect_hello(c);

	/* many more in one send: every one answered, the connection stays */
	enum { MANY = 100 };
	size_t rl = strlen(GET_REQ);
	char *many = malloc(MANY * rl);
	assert_non_null(many);
	for (int i = 0; i < MANY; i++)
		memcpy(many + (size_t)i * rl, GET_REQ, rl);
	assert_true(send_all(c->fd, many, MANY * rl));
	free(many);
	for (int i = 0; i < MANY; i++)
		expect_hello(c);

	/* the last one asks to close: answered, then closed */
	static const char last[] = GET_REQ "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	assert_true(send_all(c->fd, last, sizeof last - 1));
	expect_hello(c);
	assert_int_equal(read_response(c, &r, false, 3000 * SLOW), 1);
	assert_int_equal(r.status, 200);
	assert_string_equal(field(&r, "Connection"), "close");
	assert_string_equal(r.body, "Hello, World!");
	assert_int_equal(await_close(c, 2000 * SLOW), 0);
	conn_close(c);

	/* HTTP/1.0: answered, then closed */
	c = conn_open(s.port);
	static const char v10[] = "GET / HTTP/1.0\r\n\r\n";
	assert_true(send_all(c->fd, v10, sizeof v10 - 1));
	assert_int_equal(read_response(c, &r, false, 3000 * SLOW), 1);
	assert_int_equal(r.status, 200);
	assert_string_equal(field(&r, "Connection"), "close");
	assert_int_equal(await_close(c, 2000 * SLOW), 0);
	conn_close(c);

	/* a request one byte per send, twice on the connection */
	c = conn_open(s.port);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < rl; i++) {
			assert_true(send_all(c->fd, &GET_REQ[i], 1));
			msleep(1);
		}
		expect_hello(c);
	}
	conn_close(c);
	server_stop(&s);
}

struct bad_case {
	const char *what;
	const char *req;
	int status;      /* 0: no answer needed, a 400 allowed; just closed */
	size_t len;      /* of req, if it holds a NUL (else 0: strlen) */
};

static void test_http_malformed(void **state)
{
	(void)state;
	struct server s;
	server_start(&s, "http_server", NULL);
	static char big[12000], many[4000];
	int n = snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(big + n, 'a', 9000);
	snprintf(big + n + 9000, sizeof big - (size_t)n - 9000, "\r\n\r\n");
	n = snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: t\r\n");
	for (int i = 0; i < 70; i++)
		n += snprintf(many + n, sizeof many - (size_t)n, "X-%d: v\r\n", i);
	snprintf(many + n, sizeof many - (size_t)n, "\r\n");
	const struct bad_case cases[] = {
		{ "space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400, 0 },
		{ "bare LF", "GET / HTTP/1.1\nHost: t\n\n", 400, 0 },
		{ "bare CR", "GET / HTTP/1.1\rHost: t\r\n\r\n", 400, 0 },
		{ "bad method", "G(T / HTTP/1.1\r\nHost: t\r\n\r\n", 400, 0 },
		{ "two spaces", "GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400, 0 },
		{ "no Host in 1.1", "GET / HTTP/1.1\r\n\r\n", 400, 0 },
		{ "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 0 },
		{ "TE and CL",
		  "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
		  "Content-Length: 5\r\n\r\n0\r\n\r\n",
		  400, 0 },
		{ "bad Content-Length", "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
		  400, 0 },
		{ "obs-fold", "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400, 0 },
		{ "NUL in a value", "GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 400, 35 },
		{ "bad chunk size",
		  "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0 },
		{ "TLS hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, 11 },
		{ "head over 8 KiB", big, 431, 0 },
		{ "70 fields", many, 431, 0 },
		{ "HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, 0 },
		{ "HTTP/3.1", "GET / HTTP/3.1\r\nHost: t\r\n\r\n", 505, 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct bad_case *k = &cases[i];
		size_t len = k->len ? k->len : strlen(k->req);
		struct conn *c = conn_open(s.port);
		assert_true(send_all(c->fd, k->req, len));
		struct resp r;
		int rc = read_response(c, &r, false, 3000 * SLOW);
		if (k->status == 0) {
			/* a body framing error: nothing to answer, just closed */
			if (rc != 0 && !(rc == 1 && r.status == 400))
				fail_msg("%s: got %d (status %d)", k->what, rc, r.status);
		} else {
			if (rc != 1)
				fail_msg("%s: no response (%d: %s)", k->what, rc,
					 rc < 0 ? strerror(-rc) : "EOF");
			if (r.status != k->status)
				fail_msg("%s: status %d, expected %d", k->what, r.status,
					 k->status);
			if (strcmp(field(&r, "Connection"), "close") != 0)
				fail_msg("%s: no Connection: close", k->what);
		}
		rc = await_close(c, 2000 * SLOW);
		if (rc != 0)
			fail_msg("%s: connection not closed after the error (%s)", k->what,
				 strerror(-rc));
		conn_close(c);
	}
	/* and the server still serves */
	struct conn *c = conn_open(s.port);
	assert_true(send_all(c->fd, GET_REQ, strlen(GET_REQ)));
	expect_hello(c);
	conn_close(c);
	server_stop(&s);
}

/* Connection stacks of a server (the 64 KiB read-write mappings without a
 * name): how many, and how many have more than one page resident. */
static void stack_pages(pid_t pid, int *stacks, int *deep)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	*stacks = *deep = 0;
	bool stack = false;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8];
		int name = 0;
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &name) == 3) {
			stack = hi - lo == 65536 && strcmp(perms, "rw-p") == 0 &&
				(!name || line[name] == '\0' || line[name] == '\n');
			continue;
		}
		unsigned long kb;
		if (stack && sscanf(line, "Rss: %lu kB", &kb) == 1) {
			(*stacks)++;
			*deep += kb > 4;
			stack = false;
		}
	}
	fclose(f);
}

/* A kept-alive connection's task stack stays at one page: http_server
 * parses a head in a frame of its own, so the 2 KiB request struct is not
 * on the stack under the writes, reads and waits (with it there, the
 * allocator's slow paths under a write reached a second page: the first
 * requests on each loop always did, and over minutes of the soak every
 * connection did). */
static void test_http_stack_one_page(void **state)
{
	(void)state;
	if (WEFT_TEST_SANITIZED) {
		print_message("skipped: sanitizer frames are larger\n");
		return;
	}
	enum { N = 64 };
	struct server s;
	server_start(&s, "http_server", NULL);
	struct conn *c[N];
	for (int i = 0; i < N; i++)
		c[i] = conn_open(s.port);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			assert_true(send_all(c[i]->fd, GET_REQ, sizeof GET_REQ - 1));
		for (int i = 0; i < N; i++)
			expect_hello(c[i]);
	}
	int stacks, deep;
	stack_pages(s.pid, &stacks, &deep);
	print_message("%d connections: %d stacks, %d with more than 4 KiB resident\n", N, stacks,
		      deep);
	assert_true(stacks >= N);
	assert_true(deep <= 2); /* the server's own tasks; connections: none */
	for (int i = 0; i < N; i++)
		conn_close(c[i]);
	server_stop(&s);
}

/* ---------------------------------------------------------------------- */
/* http_server with wrk                                                    */
/* ---------------------------------------------------------------------- */

static void test_http_wrk(void **state)
{
	(void)state;
	struct server s;
	char *out = http_begin(&s, "wrk");
	const char *conns = WEFT_TEST_SANITIZED ? "-c4" : "-c16";
	const char *const argv[] = { "wrk", "-t1", conns, "-d1s", "--latency", s.url, NULL };
	int st = run(argv, out, OUT_CAP, 8000);
	print_message("%s", out);
	if (st != 0)
		fail_msg("wrk exit status %d", st);
	const char *rps = strstr(out, "Requests/sec:");
	if (!rps)
		fail_msg("no Requests/sec in the wrk output");
	double v = atof(rps + strlen("Requests/sec:"));
	assert_true(v > (WEFT_TEST_SANITIZED ? 50 : 1000));
	assert_null(strstr(out, "Socket errors"));
	assert_null(strstr(out, "Non-2xx"));
	assert_non_null(strstr(out, "Latency Distribution"));
	http_end(&s, out);
}

/* ---------------------------------------------------------------------- */
/* http_server under a flood of half-open and slow connections             */
/* ---------------------------------------------------------------------- */

/* One GET on a fresh connection; its latency in ms, or -1. */
static double timed_get(unsigned port, int timeout_ms)
{
	double t0 = now_ms();
	struct conn *c = conn_open(port);
	struct resp r;
	int rc = send_all(c->fd, GET_REQ, strlen(GET_REQ)) ? read_response(c, &r, false, timeout_ms)
							  : -EPIPE;
	conn_close(c);
	return rc == 1 && r.status == 200 ? now_ms() - t0 : -1;
}

struct victim {
	int fd;
	double start;    /* connect (half-open) or first byte (slow) */
	double closed;   /* when the server closed it, 0 while open */
	size_t sent;
	bool answered;   /* some bytes came before the close */
};

/* Drain v->fd: note when the server closes it. */
static void victim_read(struct victim *v, double t)
{
	char buf[512];
	ssize_t n = recv(v->fd, buf, sizeof buf, MSG_DONTWAIT);
	if (n > 0)
		v->answered = true;
	else if (n == 0 || (errno != EAGAIN && errno != EINTR))
		v->closed = t;
}

static void test_http_flood(void **state)
{
	(void)state;
	enum { HEAD_MS = 300, IDLE_MS = 500, BYTE_MS = 100 };
	const int n_half = WEFT_TEST_SANITIZED ? 100 : 200;
	const int n_slow = WEFT_TEST_SANITIZED ? 15 : 30;
	const double max_latency = 200.0 * SLOW;
	struct server s;
	server_start(&s, "http_server",
		     (const char *const[]){ "--head-timeout-ms", "300", "--idle-timeout-ms",
					    "500", NULL });
	static const char slow_req[] = "GET / HTTP/1.1\r\nHost: t\r\nUser-Agent: slowloris\r\n"
				       "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
	int n = n_half + n_slow;
	struct victim *v = calloc((size_t)n, sizeof *v);
	struct pollfd *pf = calloc((size_t)n, sizeof *pf);
	assert_non_null(v);
	assert_non_null(pf);
	double t0 = now_ms();
	for (int i = 0; i < n; i++) {
		v[i].fd = tcp_connect(s.port);
		v[i].start = now_ms();
		if (i >= n_half) { /* slow: its first byte now */
			assert_true(send_all(v[i].fd, slow_req, 1));
			v[i].sent = 1;
		}
	}
	print_message("%d half-open and %d slow connections opened in %.0f ms\n", n_half,
		      n_slow, now_ms() - t0);

	int good = 0, bad = 0, open = n;
	double worst = 0, next_get = now_ms(), next_byte = now_ms() + BYTE_MS;
	double end = t0 + 3000.0 * SLOW;
	while (now_ms() < end && (open > 0 || good < 10)) {
		double t = now_ms();
		if (t >= next_get) { /* the well-behaved client */
			double ms = timed_get(s.port, 2000 * SLOW);
			if (ms < 0)
				bad++;
			else
				good++;
			worst = ms > worst ? ms : worst;
			next_get = now_ms() + 50;
		}
		if (t >= next_byte) { /* every slow client sends its next byte */
			for (int i = n_half; i < n; i++)
				if (!v[i].closed && v[i].sent < sizeof slow_req - 1) {
					if (!send_all(v[i].fd, slow_req + v[i].sent, 1))
						v[i].closed = v[i].closed ? v[i].closed : t;
					v[i].sent++;
				}
			next_byte += BYTE_MS;
		}
		for (int i = 0; i < n; i++)
			pf[i] = (struct pollfd){ v[i].closed ? -1 : v[i].fd, POLLIN, 0 };
		if (poll(pf, (nfds_t)n, 10) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		t = now_ms();
		open = 0;
		for (int i = 0; i < n; i++) {
			if (!v[i].closed && pf[i].revents)
				victim_read(&v[i], t);
			open += !v[i].closed;
		}
	}

	/* what happened to each kind, in ms after connect / first byte */
	double half_min = 1e9, half_max = 0, slow_min = 1e9, slow_max = 0;
	int half_open = 0, slow_open = 0, slow_answered = 0;
	for (int i = 0; i < n; i++) {
		double d = v[i].closed - v[i].start;
		bool half = i < n_half;
		if (!v[i].closed) {
			half_open += half;
			slow_open += !half;
			continue;
		}
		if (half) {
			half_min = d < half_min ? d : half_min;
			half_max = d > half_max ? d : half_max;
		} else {
			slow_min = d < slow_min ? d : slow_min;
			slow_max = d > slow_max ? d : slow_max;
			slow_answered += v[i].answered;
		}
	}
	print_message("well-behaved: %d ok, %d failed, worst %.1f ms\n"
		      "half-open closed after %.0f-%.0f ms (%d still open)\n"
		      "slow closed after %.0f-%.0f ms from the first byte (%d still open, "
		      "%d answered before)\n",
		      good, bad, worst, half_min, half_max, half_open, slow_min, slow_max,
		      slow_open, slow_answered);
	for (int i = 0; i < n; i++)
		xclose(v[i].fd);
	free(v);
	free(pf);

	assert_int_equal(bad, 0);
	assert_true(good >= 10);
	if (worst > max_latency)
		fail_msg("a well-behaved request took %.1f ms (limit %.0f)", worst, max_latency);
	assert_int_equal(half_open, 0);
	assert_int_equal(slow_open, 0);
	/* not before the limits (a little timer slack), and not long after */
	assert_true(half_min >= IDLE_MS * 0.9);
	assert_true(half_max <= 1500.0 * SLOW);
	assert_true(slow_min >= HEAD_MS * 0.9);
	assert_true(slow_max <= 1500.0 * SLOW);
	server_stop(&s);
}

/* ---------------------------------------------------------------------- */
/* http_get against http_server                                            */
/* ---------------------------------------------------------------------- */

/* A port nothing listens on, kept bound (not listening) by the fd. */
static unsigned closed_port(int *fd)
{
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(*fd >= 0);
	track_fd(*fd);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &al), 0);
	return ntohs(a.sin_port);
}

static void test_http_get(void **state)
{
	(void)state;
	struct server s;
	char *out = http_begin(&s, NULL), expect[512], nope[80];
	const char *prog = example("http_get");
	snprintf(nope, sizeof nope, "%snope", s.url);

	/* two URLs at once, results in order; the 404 makes it exit 1 */
	int st = run((const char *const[]){ prog, s.url, nope, NULL }, out, OUT_CAP, 8000 * SLOW);
	snprintf(expect, sizeof expect, "%s 200 13 -\n%s 404 10 -\n", s.url, nope);
	assert_string_equal(out, expect);
	assert_int_equal(st, 1);

	/* only good URLs: exit 0 */
	st = run((const char *const[]){ prog, s.url, s.url, s.url, NULL }, out, OUT_CAP,
		 8000 * SLOW);
	snprintf(expect, sizeof expect, "%s 200 13 -\n%s 200 13 -\n%s 200 13 -\n", s.url, s.url,
		 s.url);
	assert_string_equal(out, expect);
	assert_int_equal(st, 0);

	/* an unreachable port and a URL it cannot fetch: error lines, exit 1 */
	int fd;
	char down[80];
	snprintf(down, sizeof down, "http://127.0.0.1:%u/", closed_port(&fd));
	st = run((const char *const[]){ prog, down, "https://example.com/", s.url, NULL }, out,
		 OUT_CAP, 8000 * SLOW);
	print_message("%s", out);
	xclose(fd);
	snprintf(expect, sizeof expect, "%s error ", down);
	assert_true(strncmp(out, expect, strlen(expect)) == 0);
	assert_non_null(strstr(out, "refused"));
	assert_non_null(strstr(out, "\nhttps://example.com/ error: only http:// URLs are supported\n"));
	snprintf(expect, sizeof expect, "\n%s 200 13 -\n", s.url);
	assert_non_null(strstr(out, expect));
	assert_int_equal(st, 1);

	/* no URL: usage, exit 2 */
	st = run((const char *const[]){ prog, NULL }, out, OUT_CAP, 8000 * SLOW);
	assert_non_null(strstr(out, "usage: http_get"));
	assert_int_equal(st, 2);
	http_end(&s, out);
}

/* ---------------------------------------------------------------------- */
/* echo_server                                                             */
/* ---------------------------------------------------------------------- */

struct echo_client {
	int fd;
	size_t size, sent, got;
	const unsigned char *data;
	bool eof, wr_closed;
	int err;         /* errno of a failed call, or EPROTO for a wrong byte */
	size_t bad_at;   /* first wrong byte */
};

static void test_echo_server(void **state)
{
	(void)state;
	static const size_t sizes[] = { 1, 2, 100, 4096, 65537, 300001, 1u << 20, 4u << 20 };
	enum { N = sizeof sizes / sizeof *sizes, ROUNDS = 2 };
	size_t max = 0;
	for (int i = 0; i < N; i++)
		max = sizes[i] > max ? sizes[i] : max;
	unsigned char *pat = malloc(max + 64);
	assert_non_null(pat);
	for (size_t i = 0; i < max + 64; i++)
		pat[i] = (unsigned char)((i * 2654435761u) >> 13 ^ i);

	struct server s;
	server_start(&s, "echo_server", NULL);
	double t0 = now_ms();
	struct echo_client c[ROUNDS * N];
	struct pollfd pf[ROUNDS * N];
	for (int i = 0; i < ROUNDS * N; i++) { /* every size twice, all at once */
		c[i] = (struct echo_client){ .size = sizes[i % N], .data = pat + i };
		c[i].fd = tcp_connect(s.port);
		fcntl(c[i].fd, F_SETFL, O_NONBLOCK);
	}
	double end = t0 + 8000.0;
	int busy = ROUNDS * N;
	unsigned char buf[65536];
	while (busy && now_ms() < end) {
		for (int i = 0; i < ROUNDS * N; i++) {
			short ev = 0;
			if (!c[i].eof && !c[i].err)
				ev = POLLIN | (c[i].sent < c[i].size ? POLLOUT : 0);
			pf[i] = (struct pollfd){ ev ? c[i].fd : -1, ev, 0 };
		}
		if (poll(pf, ROUNDS * N, 100) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		busy = 0;
		for (int i = 0; i < ROUNDS * N; i++) {
			struct echo_client *e = &c[i];
			if (pf[i].revents & POLLOUT) {
				ssize_t w = send(e->fd, e->data + e->sent, e->size - e->sent,
						 MSG_NOSIGNAL);
				if (w > 0)
					e->sent += (size_t)w;
				else if (w < 0 && errno != EAGAIN)
					e->err = errno;
			}
			if (e->sent == e->size && !e->wr_closed) {
				shutdown(e->fd, SHUT_WR); /* the echo ends with EOF */
				e->wr_closed = true;
			}
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = recv(e->fd, buf, sizeof buf, 0);
				if (r > 0) {
					if (e->got + (size_t)r > e->size ||
					    memcmp(buf, e->data + e->got, (size_t)r) != 0) {
						e->err = EPROTO;
						e->bad_at = e->got;
					}
					e->got += (size_t)r;
				} else if (r == 0) {
					e->eof = true;
				} else if (errno != EAGAIN) {
					e->err = errno;
				}
			}
			busy += !e->eof && !e->err;
		}
	}
	double ms = now_ms() - t0;
	size_t total = 0;
	for (int i = 0; i < ROUNDS * N; i++) {
		struct echo_client *e = &c[i];
		if (e->err || !e->eof || e->got != e->size)
			fail_msg("client %d (%zu bytes): sent %zu, echoed %zu, eof %d, error %s "
				 "(first wrong byte %zu)",
				 i, e->size, e->sent, e->got, e->eof, e->err ? strerror(e->err) : "-",
				 e->bad_at);
		total += e->size;
		xclose(e->fd);
	}
	print_message("%d clients echoed %zu bytes exactly in %.0f ms\n", ROUNDS * N, total, ms);
	free(pat);
	server_stop(&s);
}

/* echo_server --stats-ms prints a stats line on a schedule: live tasks and
 * connections that follow the clients and come back to where they were. */
static void test_echo_server_stats(void **state)
{
	(void)state;
	enum { N = 3 };
	size_t cap = 256 * 1024, len = 0;
	char *out = calloc(1, cap);
	assert_non_null(out);
	struct server s;
	stats_server_start(&s, "echo_server", out, cap, &len);

	long base = stats_await(&s, out, cap, &len, 0, -1);
	assert_true(base >= 1); /* the stats task itself, at least */
	assert_int_equal(stats_value(out, 0, "rejected"), 0);
	assert_int_equal(stats_value(out, 0, "accept_errors"), 0);
	assert_true(stats_value(out, 0, "tasks_spawned") >= base);
	assert_true(stats_value(out, 0, "stacks") >= 1);
	assert_non_null(strstr(out, " backend="));

	struct conn *c[N];
	for (int i = 0; i < N; i++) { /* each echoed once: its task is running */
		c[i] = conn_open(s.port);
		assert_true(send_all(c[i]->fd, "x", 1));
		assert_int_equal(conn_fill(c[i], now_ms() + 5000.0 * SLOW), 1);
	}
	stats_await(&s, out, cap, &len, N, base + N);
	assert_int_equal(stats_value(out, 0, "accepted"), N);
	for (int i = 0; i < N; i++)
		conn_close(c[i]);
	stats_await(&s, out, cap, &len, 0, base); /* none left behind */
	stats_server_stop(&s, out, cap, &len, "shut down after 3 connections");
	free(out);
}

/* ---------------------------------------------------------------------- */
/* write_lines and subprocess                                              */
/* ---------------------------------------------------------------------- */

static void test_write_lines(void **state)
{
	(void)state;
	char *out = malloc(OUT_CAP);
	assert_non_null(out);
	const char *prog = example("write_lines");

	/* to a temporary file it removes */
	int st = run((const char *const[]){ prog, NULL }, out, OUT_CAP, 8000 * SLOW);
	print_message("%s", out);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "wrote 2560 lines to /tmp/weft-write-lines-"));
	assert_non_null(strstr(out, " bytes, 2560 lines from 64 tasks: 0 missing, 0 duplicated, "
				    "0 torn\n"));
	assert_non_null(strstr(out, "ok: every line present once and intact\n"));

	/* to a given file, over old contents: header plus 2560 lines */
	char dir[] = "/tmp/weft-test-examples-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/out.tsv", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("old contents\nto be replaced\n", f);
	fclose(f);
	st = run((const char *const[]){ prog, path, NULL }, out, OUT_CAP, 8000 * SLOW);
	f = fopen(path, "r");
	char line[256];
	int lines = 0;
	long bytes = 0;
	bool header = false, shape = true;
	while (f && fgets(line, sizeof line, f)) {
		if (lines == 0)
			header = strcmp(line, "source_url\tparsed_url\n") == 0;
		else
			shape &= strncmp(line, "https://site-", 13) == 0 && strchr(line, '\t');
		lines++;
		bytes += (long)strlen(line);
	}
	if (f)
		fclose(f);
	unlink(path);
	rmdir(dir);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "ok: every line present once and intact\n"));
	assert_true(header);
	assert_true(shape);
	assert_int_equal(lines, 1 + 64 * 40);
	char sz[64];
	snprintf(sz, sizeof sz, "%ld bytes, 2560 lines", bytes);
	assert_non_null(strstr(out, sz));
	free(out);
}

/* subprocess ARGS...: its status, its output in out. */
static int subprocess(char *out, const char *const args[])
{
	const char *argv[16] = { example("subprocess") };
	int n = 1;
	while (*args)
		argv[n++] = *args++;
	argv[n] = NULL;
	return run(argv, out, OUT_CAP, 8000 * SLOW);
}

static void test_subprocess(void **state)
{
	(void)state;
	char *out = malloc(OUT_CAP);
	assert_non_null(out);

	/* the default command, ls -l / */
	int st = subprocess(out, (const char *const[]){ NULL });
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "started ls (pid "));
	assert_non_null(strstr(out, "\nout| "));
	assert_non_null(strstr(out, "ls exited with status 0; "));

	/* stdout and stderr apart, the last line without its newline */
	st = subprocess(out, (const char *const[]){ "sh", "-c",
						    "echo one; echo two >&2; printf 'three'", NULL });
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "out| one\n"));
	assert_non_null(strstr(out, "err| two\n"));
	assert_non_null(strstr(out, "out| three\n"));
	assert_non_null(strstr(out, "sh exited with status 0; 2 lines on stdout, 1 on stderr\n"));

	/* a failing command: its status is the program's */
	st = subprocess(out, (const char *const[]){ "false", NULL });
	assert_non_null(strstr(out, "false exited with status 1; 0 lines on stdout, 0 on stderr"));
	assert_int_equal(st, 1);
	st = subprocess(out, (const char *const[]){ "sh", "-c", "exit 7", NULL });
	assert_non_null(strstr(out, "sh exited with status 7"));
	assert_int_equal(st, 7);

	/* killed by a signal: 128 + N, as a shell says */
	st = subprocess(out, (const char *const[]){ "sh", "-c", "kill -KILL $$", NULL });
	assert_non_null(strstr(out, "sh was killed by signal 9 ("));
	assert_int_equal(st, 137);

	/* a program that does not exist: a clear message, nonzero */
	st = subprocess(out, (const char *const[]){ "/nonexistent/weft-no-such-program", NULL });
	print_message("missing program: status %d, %s", st, out);
	assert_non_null(strstr(out, "subprocess: cannot run /nonexistent/weft-no-such-program: "));
	assert_true(st != 0);
	assert_null(strstr(out, "started "));
	free(out);
}

/* SIGTERM to subprocess goes to its child, which it then reports.  (Its
 * stdout is a pipe here, so "started" comes out with the first line the
 * child prints.) */
static void test_subprocess_forwards_sigterm(void **state)
{
	(void)state;
	const char *const argv[] = { example("subprocess"), "sh", "-c", "echo ready; exec sleep 5",
				     NULL };
	int fd;
	pid_t pid = spawn(argv, &fd, true);
	char out[4096] = "";
	size_t len = 0;
	read_until(fd, out, sizeof out, &len, now_ms() + 3000.0 * SLOW, "out| ready\n");
	assert_non_null(strstr(out, "started sh (pid "));
	assert_non_null(strstr(out, "out| ready\n"));
	msleep(100 * SLOW); /* its signal task is surely listening by now */
	double t0 = now_ms();
	signal_program(pid, SIGTERM);
	bool eof = read_until(fd, out, sizeof out, &len, now_ms() + 3000.0 * SLOW, NULL);
	xclose(fd);
	int st = reap(pid, eof ? 1000 * SLOW : 0);
	print_message("%s(status %d after %.0f ms)\n", out, st, now_ms() - t0);
	assert_non_null(strstr(out, "subprocess: forwarding signal 15 to the child\n"));
	assert_non_null(strstr(out, "sh was killed by signal 15 ("));
	assert_int_equal(st, 128 + SIGTERM);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
static const struct CMUnitTest tests[] = {
	T(test_http_curl_keepalive),
	T(test_http_curl_responses),
	T(test_http_curl_malformed),
	T(test_http_pipelining),
	T(test_http_malformed),
	T(test_http_stack_one_page),
	T(test_http_wrk),
	T(test_http_flood),
	T(test_http_get),
	T(test_echo_server),
	T(test_echo_server_stats),
	T(test_write_lines),
	T(test_subprocess),
	T(test_subprocess_forwards_sigterm),
};

WEFT_TEST_MAIN(tests)
