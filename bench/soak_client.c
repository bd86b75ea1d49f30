/*
 * soak_client — the disruptors of the soak (bench/soak.sh): clients that
 * misbehave, on purpose and checked, against weft's examples/http_server
 * or examples/echo_server while weft-load keeps a steady load on it.
 *
 *   soak_client http|echo PORT [--host ADDR] [-d SECONDS] [--loops N]
 *               [--churn N] [--resets N] [--slow-readers N]
 *               [--slow-writers N] [--malformed N] [--pause-ms MS]
 *               [--slow-ms MS] [--server-timeout-ms MS] [--stats-ms MS]
 *
 * Each option names how many workers of that kind run at once (defaults:
 * churn 4, the others 2; a worker is a task that repeats its disruption on
 * a fresh connection, pausing --pause-ms (10) between connections; one
 * loop unless --loops; 60 s unless -d):
 *
 *   churn         short connections that behave: one to three requests
 *                 (http: Connection: close, keep-alive, pipelined, HTTP/1.0;
 *                 echo: 1 B - 8 KiB messages), answers checked, closed.
 *   resets        abortive closes (SO_LINGER 0: an RST) right after connect,
 *                 mid-request, after a request, and while the server is
 *                 writing 200 pipelined answers (echo: 32 KiB in flight).
 *   slow readers  2000 pipelined requests (echo: 256 KiB) on a socket with
 *                 a 16 KiB receive buffer, read a fill at a time with
 *                 --slow-ms (40) pauses: the server's write side backs up.
 *                 Every fourth one resets the connection halfway through.
 *   slow writers  requests (echo: 64 B messages) sent a byte at a time,
 *                 --slow-ms apart, three per connection, answers checked.
 *                 With --server-timeout-ms T (the server's --head-timeout-ms
 *                 for http, --idle-timeout-ms for echo), worker 0 plays
 *                 slowloris every other round: a head that never ends (echo:
 *                 a connection that goes silent), which the server must cut
 *                 within 2T + 2 s.
 *   malformed     http: garbage, a 9 KiB header, bad chunked framing, an
 *                 unknown version, bare LFs, no Host, Content-Length with
 *                 Transfer-Encoding, half a request then EOF, a good request
 *                 followed by garbage; each must get its 400 / 431 / 505 (or
 *                 be closed, where the server answers nothing), then EOF.
 *                 echo: half messages, then EOF, an RST or a close.
 *
 * Every round has an expected outcome.  A round that gets it counts as
 * done (and as injected when it injected a fault: a reset, a malformed
 * request, a slowloris cut); anything else (a refused or timed-out
 * connect, a wrong status or echo, a reset the server was not provoked to,
 * a round over 30 s) is unexpected, printed on stderr (the first 20, then
 * every 100th) and counted.  Rounds cut by the end of the run count as
 * neither.
 *
 * Every --stats-ms (1000) one line on stderr:
 *   soak t_ms=T conns=N rounds=N injected=N unexpected=N churn=N resets=N
 *        slow_readers=N slow_writers=N malformed=N
 * (cumulative; the kinds count their rounds), and at the end one line per
 * kind and a total on stdout:
 *   soak_client <kind> conns=N rounds=N injected=N unexpected=N
 *   soak_client total conns=N rounds=N injected=N unexpected=N
 * Exit status 0, or 1 if anything was unexpected, 2 for bad arguments.
 */
#include "weft.h"
#include "../examples/http_parse.h"
#include "../examples/http_body.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000ull
#define ROUND_TIMEOUT_NS (30000 * MS)  /* a whole round, at most */
#define CONNECT_TIMEOUT_NS (5000 * MS)
#define ECHO_MAX 8192                  /* churn messages */
#define SLOW_HTTP_REQS 2000            /* a slow reader's pipelined requests */
#define SLOW_ECHO_BYTES (256u << 10)   /* a slow reader's echo */
#define SLOW_WRITE_ROUNDS 3
#define REPORT_FIRST 20
#define SLOW_RCVBUF 16384            /* a slow reader's SO_RCVBUF */

enum kind { K_CHURN, K_RESETS, K_SLOW_READERS, K_SLOW_WRITERS, K_MALFORMED, K_N };
static const char *const kind_name[K_N] = { "churn", "resets", "slow_readers", "slow_writers",
					    "malformed" };

struct counters {
	_Atomic uint64_t conns, rounds, injected, unexpected;
};

struct soak {
	bool http;
	const char *host;
	unsigned port;
	weft_sockaddr addr;
	unsigned loops, workers[K_N];
	unsigned pause_ms, slow_ms, server_timeout_ms, stats_ms;
	double duration_s;
	_Atomic int stop;
	struct counters c[K_N];
	_Atomic uint64_t unexpected_seen;
};

struct worker {
	struct soak *sk;
	enum kind k;
	unsigned id;
	uint64_t round;
	uint64_t rng;
	bool reset;    /* close this round's connection with an RST */
	char why[160]; /* what was unexpected */
	char *big;     /* slow readers' echo pattern, SLOW_ECHO_BYTES */
};

/* Round results: as expected, as expected after injecting a fault, not. */
enum { R_DONE = 0, R_INJECTED = 1, R_BAD = -1 };

static bool stopping(struct soak *sk)
{
	return atomic_load_explicit(&sk->stop, memory_order_relaxed);
}

static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static int bad(struct worker *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->why, sizeof(w->why), fmt, ap);
	va_end(ap);
	return R_BAD;
}

/* Byte i of the echo pattern of a message seeded with `seed`. */
static char pat(uint64_t seed, size_t i)
{
	return (char)((seed >> (i % 7 * 8)) + i * 131);
}

static void fill_pattern(char *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(seed, i);
}

/* ---- connections ---- */

/* A fresh connection as a stream (rcvbuf > 0: that receive buffer). */
static int dial(struct worker *w, weft_stream **out, int rcvbuf)
{
	int fd = weft_tcp_connect(&w->sk->addr, CONNECT_TIMEOUT_NS);
	if (fd < 0)
		return bad(w, "connect: %s", weft_strerror(fd));
	atomic_fetch_add_explicit(&w->sk->c[w->k].conns, 1, memory_order_relaxed);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	int r = weft_stream_open(out, fd, NULL);
	if (r < 0) {
		close(fd);
		return bad(w, "stream_open: %s", weft_strerror(r));
	}
	return 0;
}

/* Close; with w->reset an abortive close (SO_LINGER 0: the peer gets an
 * RST), dropping whatever is still queued.  Bounded either way. */
static void hang_up(struct worker *w, weft_stream *s)
{
	weft_scope sc;
	if (w->reset) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(weft_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	weft_scope_enter(&sc, w->reset ? 1 * MS : 2000 * MS);
	weft_stream_close(s);
	weft_scope_exit(&sc);
}

/* Queue bytes and wait until they are sent. */
static int send_now(struct worker *w, weft_stream *s, const void *p, size_t n)
{
	ssize_t r = weft_stream_write(s, p, n);
	if (r >= 0)
		r = weft_stream_flush(s);
	return r < 0 ? bad(w, "send: %s", weft_strerror((int)r)) : 0;
}

/* Wait for more bytes, sleeping pause_ns first (a slow reader). */
static ssize_t fill(weft_stream *s, uint64_t pause_ns)
{
	if (pause_ns) {
		int r = weft_sleep(pause_ns);
		if (r < 0)
			return r;
	}
	return weft_stream_fill(s);
}

/* After the last answer: the server closes (0), or resets (-ECONNRESET). */
static int expect_eof(struct worker *w, weft_stream *s, bool reset_ok)
{
	if (weft_stream_buffered(s, NULL))
		return bad(w, "bytes after the last answer");
	ssize_t f = weft_stream_fill(s);
	if (f == 0 || (f == -ECONNRESET && reset_ok))
		return 0;
	return f > 0 ? bad(w, "bytes after the last answer")
		     : bad(w, "waiting for the server to close: %s", weft_strerror((int)f));
}

/* ---- HTTP ---- */

#define HELLO "Hello, World!"
#define REQ "GET / HTTP/1.1\r\nHost: soak\r\n\r\n"

struct body_check {
	size_t len;
	char buf[sizeof(HELLO)];
};

static int body_sink(void *ctx, const char *p, size_t n)
{
	struct body_check *b = ctx;
	for (size_t i = 0; i < n; i++, b->len++)
		if (b->len < sizeof(b->buf))
			b->buf[b->len] = p[i];
	return 0;
}

/* The next whole response: 1 with its status (and whether the server
 * closes after it) in *status / *closes, a 200's body checked; 0 at EOF
 * before its first byte; -EBADMSG for a garbled or truncated one or a 200
 * that is not Hello, World!; else the stream's error. */
static int http_read(weft_stream *s, uint64_t pause_ns, int *status, bool *closes)
{
	struct http_response rs;
	int rc;
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p);
		rc = n ? http_parse_response(p, n, &rs, 0) : 0;
		if (rc > 0)
			break;
		if (rc < 0)
			return -EBADMSG;
		ssize_t f = fill(s, pause_ns);
		if (f == 0)
			return n ? -EBADMSG : 0;
		if (f < 0)
			return (int)f;
	}
	*status = rs.status;
	*closes = !rs.keep_alive;
	enum http_body body = rs.body;
	int64_t length = rs.content_length;
	weft_stream_consume(s, (size_t)rc); /* rs points into the buffer: done with it */
	struct body_check bc = { 0 };
	if (body == HTTP_BODY_EOF)
		return -EBADMSG; /* the examples always frame their bodies */
	if (body != HTTP_BODY_NONE) {
		int r = http_body_read(s, body == HTTP_BODY_CHUNKED, length, body_sink, &bc, NULL);
		if (r < 0)
			return r == -ENODATA ? -EBADMSG : r;
	}
	if (*status == 200 &&
	    (bc.len != sizeof(HELLO) - 1 || memcmp(bc.buf, HELLO, sizeof(HELLO) - 1) != 0))
		return -EBADMSG;
	return 1;
}

/* n answers, each a 200 (the last one closing when last_closes). */
static int http_expect_200s(struct worker *w, weft_stream *s, unsigned n, bool last_closes,
			    uint64_t pause_ns)
{
	for (unsigned i = 0; i < n; i++) {
		int st;
		bool closes;
		int r = http_read(s, pause_ns, &st, &closes);
		if (r <= 0)
			return bad(w, "answer %u of %u: %s", i + 1, n,
				   r == 0 ? "EOF" : weft_strerror(r));
		if (st != 200)
			return bad(w, "answer %u of %u: status %d, expected 200", i + 1, n, st);
		if (closes != (last_closes && i + 1 == n))
			return bad(w, "answer %u of %u: keep-alive %s", i + 1, n,
				   closes ? "off" : "on");
	}
	return 0;
}

static int http_churn(struct worker *w, weft_stream *s)
{
	static const char close_req[] = "GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n";
	static const char http10[] = "GET / HTTP/1.0\r\n\r\n";
	static const char three[] = REQ REQ REQ;
	switch (w->round % 4) {
	case 0: /* the server closes */
		if (send_now(w, s, close_req, sizeof(close_req) - 1) < 0 ||
		    http_expect_200s(w, s, 1, true, 0) < 0 || expect_eof(w, s, false) < 0)
			return R_BAD;
		return R_DONE;
	case 1: /* the client closes */
		if (send_now(w, s, REQ, sizeof(REQ) - 1) < 0 ||
		    http_expect_200s(w, s, 1, false, 0) < 0)
			return R_BAD;
		return R_DONE;
	case 2: /* pipelined */
		if (send_now(w, s, three, sizeof(three) - 1) < 0 ||
		    http_expect_200s(w, s, 3, false, 0) < 0)
			return R_BAD;
		return R_DONE;
	default: /* HTTP/1.0: closed after the answer */
		if (send_now(w, s, http10, sizeof(http10) - 1) < 0 ||
		    http_expect_200s(w, s, 1, true, 0) < 0 || expect_eof(w, s, false) < 0)
			return R_BAD;
		return R_DONE;
	}
}

static char pipelined_reqs[SLOW_HTTP_REQS * (sizeof(REQ) - 1)];

static int http_reset(struct worker *w, weft_stream *s)
{
	static const char half[] = "GET / HTTP/1.1\r\nHo";
	w->reset = true;
	switch (w->round % 4) {
	case 0: /* right after connect */
		return R_INJECTED;
	case 1: /* mid-request */
		return send_now(w, s, half, sizeof(half) - 1) < 0 ? R_BAD : R_INJECTED;
	case 2: /* a request, never read */
		return send_now(w, s, REQ, sizeof(REQ) - 1) < 0 ? R_BAD : R_INJECTED;
	default: { /* while the server writes 200 answers */
		if (send_now(w, s, pipelined_reqs, 200 * (sizeof(REQ) - 1)) < 0)
			return R_BAD;
		ssize_t f = weft_stream_fill(s);
		if (f <= 0)
			return bad(w, "reading the first answers: %s",
				   f == 0 ? "EOF" : weft_strerror((int)f));
		return R_INJECTED;
	}
	}
}

static int http_slow_reader(struct worker *w, weft_stream *s)
{
	bool cut = w->round % 4 == 3;
	ssize_t r = weft_stream_write(s, pipelined_reqs, sizeof(pipelined_reqs));
	if (r < 0)
		return bad(w, "send: %s", weft_strerror((int)r));
	if (http_expect_200s(w, s, cut ? SLOW_HTTP_REQS / 2 : SLOW_HTTP_REQS, false,
			     w->sk->slow_ms * MS) < 0)
		return R_BAD;
	w->reset = cut;
	return cut ? R_INJECTED : R_DONE;
}

/* A head that never ends, a byte every 100 ms: the server's head timeout
 * (T) must cut it within 2T + 2 s. */
static int http_slowloris(struct worker *w, weft_stream *s)
{
	static const char head[] = "GET / HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
	uint64_t t0 = weft_now_ns(), limit = (2ull * w->sk->server_timeout_ms + 2000) * MS;
	if (send_now(w, s, head, sizeof(head) - 1) < 0)
		return R_BAD;
	while (weft_now_ns() - t0 < limit) {
		int r = weft_sleep_ms(100);
		if (r < 0)
			return bad(w, "slowloris: %s", weft_strerror(r));
		ssize_t e = weft_stream_write(s, "a", 1);
		if (e >= 0)
			e = weft_stream_flush(s);
		if (e == -EPIPE || e == -ECONNRESET)
			return R_INJECTED; /* cut by the server */
		if (e < 0)
			return bad(w, "slowloris: %s", weft_strerror((int)e));
	}
	return bad(w, "slowloris: still open after %llu ms (server timeout %u ms)",
		   (unsigned long long)(limit / MS), w->sk->server_timeout_ms);
}

static int http_slow_writer(struct worker *w, weft_stream *s)
{
	if (w->id == 0 && w->sk->server_timeout_ms && w->round % 2)
		return http_slowloris(w, s);
	for (unsigned k = 0; k < SLOW_WRITE_ROUNDS; k++) {
		for (size_t i = 0; i < sizeof(REQ) - 1; i++) {
			if (send_now(w, s, &REQ[i], 1) < 0)
				return R_BAD;
			int r = weft_sleep_ms(w->sk->slow_ms);
			if (r < 0)
				return bad(w, "sleep: %s", weft_strerror(r));
		}
		if (http_expect_200s(w, s, 1, false, 0) < 0)
			return R_BAD;
	}
	return R_DONE;
}

/* The malformed requests: what each must get back. */
struct bad_req {
	const char *name, *text;
	size_t len;    /* of text (0: strlen) */
	int status;    /* the answer expected; 0: none, the server just closes */
	bool reset_ok; /* the server may close with our bytes unread: an RST */
	bool half;     /* then shut our write side (EOF mid-request) */
	unsigned ok_first; /* good answers before it (pipelined behind good ones) */
};

static char big_header[9216 + 64];

#define BAD(name, text, ...) { name, text, sizeof(text) - 1, __VA_ARGS__ }
static const struct bad_req bad_reqs[] = {
	BAD("garbage", "\x01\x02\x7f garbage \xff\r\n\r\n", 400, false, false, 0),
	{ "9 KiB header", big_header, 0, 431, true, false, 0 },
	BAD("bad chunked", "POST / HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "zz\r\nhello\r\n0\r\n\r\n", 0, true, false, 0),
	BAD("HTTP/3.0", "GET / HTTP/3.0\r\nHost: soak\r\n\r\n", 505, false, false, 0),
	BAD("bare LF", "GET / HTTP/1.1\nHost: soak\n\n", 400, false, false, 0),
	BAD("no Host", "GET / HTTP/1.1\r\n\r\n", 400, false, false, 0),
	BAD("CL and TE", "POST / HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n"
	    "Transfer-Encoding: chunked\r\n\r\nhello", 400, false, false, 0),
	BAD("half then EOF", "GET / HTTP/1.1\r\nHost: so", 0, false, true, 0),
	BAD("good then garbage", REQ "\x00\x01\x02\r\n\r\n", 400, false, false, 1),
};

static int http_malformed(struct worker *w, weft_stream *s)
{
	const struct bad_req *b = &bad_reqs[w->round % (sizeof(bad_reqs) / sizeof(bad_reqs[0]))];
	size_t len = b->len ? b->len : strlen(b->text);
	if (send_now(w, s, b->text, len) < 0)
		return R_BAD;
	if (b->half) {
		int r = weft_stream_shutdown(s);
		if (r < 0)
			return bad(w, "%s: shutdown: %s", b->name, weft_strerror(r));
	}
	if (b->ok_first && http_expect_200s(w, s, b->ok_first, false, 0) < 0)
		return R_BAD;
	int st = 0;
	bool closes = false;
	int r = http_read(s, 0, &st, &closes);
	if (r == 1) {
		if (st != b->status)
			return bad(w, "%s: status %d, expected %d", b->name, st, b->status);
		if (!closes)
			return bad(w, "%s: %d without Connection: close", b->name, st);
		return expect_eof(w, s, true) < 0 ? R_BAD : R_INJECTED;
	}
	if (r == 0 && b->status == 0)
		return R_INJECTED;
	if (r == -ECONNRESET && (b->reset_ok || b->status == 0))
		return R_INJECTED;
	return bad(w, "%s: %s, expected %d", b->name, r == 0 ? "EOF" : weft_strerror(r),
		   b->status);
}

/* ---- echo ---- */

/* Read n bytes back and compare them with the pattern of `seed` from
 * offset `off` on. */
static int echo_expect(struct worker *w, weft_stream *s, size_t n, uint64_t seed, size_t off,
		       uint64_t pause_ns)
{
	size_t got = 0;
	while (got < n) {
		const char *p;
		size_t b = weft_stream_buffered(s, &p);
		if (!b) {
			ssize_t f = fill(s, pause_ns);
			if (f <= 0)
				return bad(w, "echo: %zu of %zu bytes, then %s", got, n,
					   f == 0 ? "EOF" : weft_strerror((int)f));
			continue;
		}
		if (b > n - got)
			b = n - got;
		for (size_t i = 0; i < b; i++)
			if (p[i] != pat(seed, off + got + i))
				return bad(w, "echo: byte %zu differs", off + got + i);
		weft_stream_consume(s, b);
		got += b;
	}
	return 0;
}

static int echo_churn(struct worker *w, weft_stream *s)
{
	char msg[ECHO_MAX];
	unsigned msgs = 1 + (unsigned)(w->round % 2);
	for (unsigned k = 0; k < msgs; k++) {
		size_t n = 1 + rnd(w) % ECHO_MAX;
		uint64_t seed = rnd(w);
		fill_pattern(msg, n, seed);
		if (send_now(w, s, msg, n) < 0 || echo_expect(w, s, n, seed, 0, 0) < 0)
			return R_BAD;
	}
	return R_DONE;
}

static int echo_reset(struct worker *w, weft_stream *s)
{
	char msg[32768];
	uint64_t seed = rnd(w);
	w->reset = true;
	fill_pattern(msg, sizeof(msg), seed);
	switch (w->round % 4) {
	case 0: /* right after connect */
		return R_INJECTED;
	case 1: /* 32 KiB in flight both ways */
		return send_now(w, s, msg, sizeof(msg)) < 0 ? R_BAD : R_INJECTED;
	case 2: /* part of the echo read */
		if (send_now(w, s, msg, 1024) < 0 || echo_expect(w, s, 100, seed, 0, 0) < 0)
			return R_BAD;
		return R_INJECTED;
	default: { /* while the server writes */
		if (send_now(w, s, msg, 16384) < 0)
			return R_BAD;
		int r = weft_sleep_ms(5);
		return r < 0 ? bad(w, "sleep: %s", weft_strerror(r)) : R_INJECTED;
	}
	}
}

static int echo_slow_reader(struct worker *w, weft_stream *s)
{
	bool cut = w->round % 4 == 3;
	uint64_t seed = rnd(w);
	fill_pattern(w->big, SLOW_ECHO_BYTES, seed);
	ssize_t r = weft_stream_write(s, w->big, SLOW_ECHO_BYTES);
	if (r < 0)
		return bad(w, "send: %s", weft_strerror((int)r));
	if (echo_expect(w, s, cut ? SLOW_ECHO_BYTES / 2 : SLOW_ECHO_BYTES, seed, 0,
			w->sk->slow_ms * MS) < 0)
		return R_BAD;
	w->reset = cut;
	return cut ? R_INJECTED : R_DONE;
}

static int echo_slow_writer(struct worker *w, weft_stream *s)
{
	char msg[64];
	uint64_t seed = rnd(w);
	fill_pattern(msg, sizeof(msg), seed);
	if (w->id == 0 && w->sk->server_timeout_ms && w->round % 2) {
		/* a connection that goes silent: the server's idle timeout (T)
		 * must close it within 2T + 2 s */
		if (send_now(w, s, msg, 10) < 0 || echo_expect(w, s, 10, seed, 0, 0) < 0)
			return R_BAD;
		weft_scope sc;
		weft_scope_enter(&sc, (2ull * w->sk->server_timeout_ms + 2000) * MS);
		ssize_t f = weft_stream_fill(s);
		weft_scope_exit(&sc);
		if (f == 0 || f == -ECONNRESET)
			return R_INJECTED;
		return bad(w, "silent connection: %s (server timeout %u ms)",
			   f > 0 ? "unexpected bytes" : f == -ETIMEDOUT ? "still open" : weft_strerror((int)f),
			   w->sk->server_timeout_ms);
	}
	for (unsigned k = 0; k < SLOW_WRITE_ROUNDS; k++) {
		for (size_t i = 0; i < sizeof(msg); i++) {
			if (send_now(w, s, msg + i, 1) < 0)
				return R_BAD;
			int r = weft_sleep_ms(w->sk->slow_ms);
			if (r < 0)
				return bad(w, "sleep: %s", weft_strerror(r));
		}
		if (echo_expect(w, s, sizeof(msg), seed, 0, 0) < 0)
			return R_BAD;
	}
	return R_DONE;
}

/* Half messages: half of 200 bytes, then EOF, an RST, or a close. */
static int echo_malformed(struct worker *w, weft_stream *s)
{
	char msg[100];
	uint64_t seed = rnd(w);
	fill_pattern(msg, sizeof(msg), seed);
	if (send_now(w, s, msg, sizeof(msg)) < 0)
		return R_BAD;
	switch (w->round % 3) {
	case 0: { /* then EOF: the half comes back, then the server's EOF */
		int r = weft_stream_shutdown(s);
		if (r < 0)
			return bad(w, "shutdown: %s", weft_strerror(r));
		if (echo_expect(w, s, sizeof(msg), seed, 0, 0) < 0 || expect_eof(w, s, false) < 0)
			return R_BAD;
		return R_INJECTED;
	}
	case 1: /* then an RST */
		w->reset = true;
		return R_INJECTED;
	default: /* the half comes back, then the client closes */
		return echo_expect(w, s, sizeof(msg), seed, 0, 0) < 0 ? R_BAD : R_INJECTED;
	}
}

/* ---- workers ---- */

typedef int (*round_fn)(struct worker *w, weft_stream *s);
static const round_fn http_rounds[K_N] = { http_churn, http_reset, http_slow_reader,
					   http_slow_writer, http_malformed };
static const round_fn echo_rounds[K_N] = { echo_churn, echo_reset, echo_slow_reader,
					   echo_slow_writer, echo_malformed };

static int one_round(struct worker *w)
{
	weft_stream *s;
	w->reset = false;
	w->why[0] = '\0';
	if (dial(w, &s, w->k == K_SLOW_READERS ? SLOW_RCVBUF : 0) < 0)
		return R_BAD;
	int r = (w->sk->http ? http_rounds : echo_rounds)[w->k](w, s);
	if (r == R_BAD)
		w->reset = true; /* no flush into a connection gone wrong */
	hang_up(w, s);
	return r;
}

static void report(struct worker *w)
{
	uint64_t n = atomic_fetch_add(&w->sk->unexpected_seen, 1) + 1;
	if (n <= REPORT_FIRST || n % 100 == 0)
		fprintf(stderr, "soak_client: UNEXPECTED (#%llu) %s worker %u round %llu: %s\n",
			(unsigned long long)n, kind_name[w->k], w->id,
			(unsigned long long)w->round, w->why);
}

static void *worker_task(void *arg)
{
	struct worker *w = arg;
	struct soak *sk = w->sk;
	struct counters *c = &sk->c[w->k];
	while (!stopping(sk)) {
		weft_scope sc;
		weft_scope_enter(&sc, ROUND_TIMEOUT_NS);
		int r = one_round(w);
		if (weft_scope_exit(&sc) == 1 && r == R_BAD && !stopping(sk))
			snprintf(w->why + strnlen(w->why, sizeof(w->why) - 32), 32,
				 " (round over %llu s)", ROUND_TIMEOUT_NS / 1000000000ull);
		if (stopping(sk) || weft_task_cancelled())
			break; /* cut by the end of the run: not counted */
		if (r == R_BAD) {
			atomic_fetch_add_explicit(&c->unexpected, 1, memory_order_relaxed);
			report(w);
		} else {
			atomic_fetch_add_explicit(&c->rounds, 1, memory_order_relaxed);
			if (r == R_INJECTED)
				atomic_fetch_add_explicit(&c->injected, 1, memory_order_relaxed);
		}
		w->round++;
		if (weft_sleep_ms(sk->pause_ms) < 0)
			break;
	}
	return NULL;
}

/* ---- reporting and main ---- */

static uint64_t ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

struct tally {
	uint64_t conns, rounds, injected, unexpected;
};

/* Kind k's counters (k == K_N: all kinds summed). */
static struct tally tally(struct soak *sk, int k)
{
	struct tally t = { 0 };
	for (int i = k == K_N ? 0 : k; i < (k == K_N ? K_N : k + 1); i++) {
		t.conns += ld(&sk->c[i].conns);
		t.rounds += ld(&sk->c[i].rounds);
		t.injected += ld(&sk->c[i].injected);
		t.unexpected += ld(&sk->c[i].unexpected);
	}
	return t;
}

static void stats_line(struct soak *sk, uint64_t t0)
{
	struct tally t = tally(sk, K_N);
	char line[512];
	int n = snprintf(line, sizeof(line),
			 "soak t_ms=%llu conns=%llu rounds=%llu injected=%llu unexpected=%llu",
			 (unsigned long long)((weft_now_ns() - t0) / MS), (unsigned long long)t.conns,
			 (unsigned long long)t.rounds, (unsigned long long)t.injected,
			 (unsigned long long)t.unexpected);
	for (int k = 0; k < K_N && n > 0 && (size_t)n < sizeof(line); k++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%llu", kind_name[k],
			      (unsigned long long)ld(&sk->c[k].rounds));
	if (n > 0 && (size_t)n < sizeof(line) - 1) {
		line[n++] = '\n';
		if (write(2, line, (size_t)n) < 0)
			return;
	}
}

static void summary(struct soak *sk)
{
	for (int k = 0; k <= K_N; k++) {
		struct tally t = tally(sk, k);
		printf("soak_client %s conns=%llu rounds=%llu injected=%llu unexpected=%llu\n",
		       k == K_N ? "total" : kind_name[k], (unsigned long long)t.conns,
		       (unsigned long long)t.rounds, (unsigned long long)t.injected,
		       (unsigned long long)t.unexpected);
	}
}

static void *main_task(void *arg)
{
	struct soak *sk = arg;
	unsigned n = 0;
	for (int k = 0; k < K_N; k++)
		n += sk->workers[k];
	struct worker *ws = calloc(n ? n : 1, sizeof(*ws));
	weft_group *g;
	if (!ws || weft_group_create(&g) < 0) {
		fprintf(stderr, "soak_client: out of memory\n");
		free(ws);
		return (void *)1;
	}
	uint64_t t0 = weft_now_ns();
	unsigned i = 0;
	for (int k = 0; k < K_N; k++)
		for (unsigned id = 0; id < sk->workers[k]; id++, i++) {
			struct worker *w = &ws[i];
			*w = (struct worker){ .sk = sk, .k = (enum kind)k, .id = id,
					      .rng = (0x9e3779b97f4a7c15ull * (i + 1) ^ t0) | 1 };
			if (k == K_SLOW_READERS && !sk->http && !(w->big = malloc(SLOW_ECHO_BYTES))) {
				fprintf(stderr, "soak_client: out of memory\n");
				atomic_store(&sk->stop, 1);
				break;
			}
			int r = weft_group_spawn(g, NULL, NULL, worker_task, w);
			if (r < 0) {
				fprintf(stderr, "soak_client: spawn: %s\n", weft_strerror(r));
				atomic_store(&sk->stop, 1);
				break;
			}
		}
	uint64_t end = t0 + (uint64_t)(sk->duration_s * 1e9), next = t0;
	while (!stopping(sk)) {
		uint64_t now = weft_now_ns();
		if (now >= end)
			break;
		next += sk->stats_ms * MS;
		if (next > end)
			next = end;
		if (next > now && weft_sleep(next - now) < 0)
			break;
		if (sk->stats_ms)
			stats_line(sk, t0);
	}
	atomic_store(&sk->stop, 1);
	weft_group_cancel(g);
	weft_group_wait(g);
	weft_group_destroy(g);
	summary(sk);
	for (unsigned k = 0; k < n; k++)
		free(ws[k].big);
	free(ws);
	return tally(sk, K_N).unexpected ? (void *)1 : NULL;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: soak_client http|echo PORT [--host ADDR] [-d SECONDS] [--loops N]\n"
		"         [--churn N] [--resets N] [--slow-readers N] [--slow-writers N]\n"
		"         [--malformed N] [--pause-ms MS] [--slow-ms MS]\n"
		"         [--server-timeout-ms MS] [--stats-ms MS]\n");
	return 2;
}

/* A whole decimal number in [0, max]: 0, or -1. */
static int number(const char *s, unsigned max, unsigned *out)
{
	char *e;
	unsigned long v = strtoul(s, &e, 10);
	if (!*s || *e || *s == '-' || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int main(int argc, char **argv)
{
	static struct soak sk = {
		.host = "127.0.0.1", .duration_s = 60, .loops = 1, .pause_ms = 10, .slow_ms = 40,
		.stats_ms = 1000, .workers = { 4, 2, 2, 2, 2 },
	};
	if (argc < 3)
		return usage();
	if (strcmp(argv[1], "http") == 0)
		sk.http = true;
	else if (strcmp(argv[1], "echo") != 0)
		return usage();
	if (number(argv[2], 65535, &sk.port) < 0 || !sk.port)
		return usage();
	static const struct {
		const char *name;
		unsigned max;
		size_t off;
	} opts[] = {
		{ "--loops", 64, offsetof(struct soak, loops) },
		{ "--churn", 10000, offsetof(struct soak, workers[K_CHURN]) },
		{ "--resets", 10000, offsetof(struct soak, workers[K_RESETS]) },
		{ "--slow-readers", 10000, offsetof(struct soak, workers[K_SLOW_READERS]) },
		{ "--slow-writers", 10000, offsetof(struct soak, workers[K_SLOW_WRITERS]) },
		{ "--malformed", 10000, offsetof(struct soak, workers[K_MALFORMED]) },
		{ "--pause-ms", 3600000, offsetof(struct soak, pause_ms) },
		{ "--slow-ms", 60000, offsetof(struct soak, slow_ms) },
		{ "--server-timeout-ms", 3600000, offsetof(struct soak, server_timeout_ms) },
		{ "--stats-ms", 3600000, offsetof(struct soak, stats_ms) },
	};
	for (int i = 3; i < argc; i++) {
		if (i + 1 >= argc)
			return usage();
		const char *a = argv[i], *v = argv[++i];
		if (strcmp(a, "--host") == 0) {
			sk.host = v;
			continue;
		}
		if (strcmp(a, "-d") == 0) {
			char *e;
			sk.duration_s = strtod(v, &e);
			if (*e || !(sk.duration_s > 0))
				return usage();
			continue;
		}
		size_t k = 0, nopts = sizeof(opts) / sizeof(opts[0]);
		while (k < nopts && strcmp(a, opts[k].name) != 0)
			k++;
		if (k == nopts || number(v, opts[k].max, (unsigned *)((char *)&sk + opts[k].off)) < 0)
			return usage();
	}
	if (weft_addr_ip(&sk.addr, sk.host, (uint16_t)sk.port) < 0) {
		fprintf(stderr, "soak_client: bad address %s\n", sk.host);
		return 2;
	}
	/* the pipelined requests and the 9 KiB header, built once */
	for (size_t i = 0; i < SLOW_HTTP_REQS; i++)
		memcpy(pipelined_reqs + i * (sizeof(REQ) - 1), REQ, sizeof(REQ) - 1);
	int n = snprintf(big_header, sizeof(big_header), "GET / HTTP/1.1\r\nHost: soak\r\nX-Big: ");
	memset(big_header + n, 'a', 9216);
	memcpy(big_header + n + 9216, "\r\n\r\n", 5);

	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = sk.loops;
	void *res = NULL;
	int r = weft_run(&cfg, main_task, &sk, &res);
	if (r < 0) {
		fprintf(stderr, "soak_client: %s\n", weft_strerror(r));
		return 1;
	}
	return res ? 1 : 0;
}
