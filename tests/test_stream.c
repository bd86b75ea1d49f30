/*
 * Buffered streams (weft/stream.h) over socketpairs, TCP and pipes:
 * read, read_exact, read_line, read_until, the limit, fill/buffered/
 * consume, write with drain backpressure, flush, shutdown, close, sticky
 * send errors, one reader at a time, writes from several loops, read
 * timeouts and deadlines, configuration checks, the thread rule (task-only
 * calls from a foreign thread), and the memory of idle streams.
 *
 * docs/architecture.md rule 7: tasks record into structs; the test asserts
 * after weft_run returns.  Each test's `peer` is the raw other end of the
 * pair.
 */
#include "weft_test.h"
#include "weft_test_io.h"
#include "io/io.h" /* weft__stream_held, the loop's buffer ring */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */




/*
 * The fixture most tests use: a Unix socketpair, a stream (cfg, may be
 * NULL) on end 0, the raw fd `peer` on end 1.  A test's main runs
 * body(fixture) and the fixture is torn down after.
 */
struct fx {
	weft_stream *s;
	int peer;
	int open_rc;
	void *rec; /* the test's record */
};

typedef void (*body_fn)(struct fx *f);

struct fx_run {
	const weft_stream_config *cfg;
	bool tcp; /* a TCP loopback connection instead of a socketpair */
	body_fn body;
	void *rec;
	int open_rc;
	int close_rc;
	bool keep_stream; /* the body closed it */
	struct fx *f;
};

static void *fx_main(void *arg)
{
	struct fx_run *r = arg;
	int sv[2];
	if (r->tcp ? tcp_loop_pair(sv) < 0 : socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r->open_rc = -errno;
		return NULL;
	}
	struct fx f = { .peer = sv[1], .rec = r->rec };
	if ((r->open_rc = weft_stream_open(&f.s, sv[0], r->cfg)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	r->f = &f;
	r->body(&f);
	if (f.s)
		r->close_rc = weft_stream_close(f.s);
	if (f.peer >= 0)
		close(f.peer);
	return NULL;
}

/* Run body over a fresh fixture in a runtime of `loops` loops; assert it
 * opened and closed cleanly. */
static void run_fx_loops(unsigned loops, const weft_stream_config *cfg, body_fn body, void *rec)
{
	struct fx_run r = { .cfg = cfg, .body = body, .rec = rec };
	weft_test_run_loops(loops, fx_main, &r);
	assert_int_equal(r.open_rc, 0);
	assert_int_equal(r.close_rc, 0);
}

/* The configuration tests that pass NULL get: the defaults, or (in the
 * multishot variants) multishot receives. */
static const weft_stream_config *default_cfg;

static void run_fx(const weft_stream_config *cfg, body_fn body, void *rec)
{
	run_fx_loops(2, cfg ? cfg : default_cfg, body, rec);
}

/* run_fx over TCP loopback (zero-copy sends need a TCP socket). */
static void run_fx_tcp(const weft_stream_config *cfg, body_fn body, void *rec)
{
	struct fx_run r = { .cfg = cfg ? cfg : default_cfg, .tcp = true, .body = body, .rec = rec };
	weft_test_run_loops(2, fx_main, &r);
	assert_int_equal(r.open_rc, 0);
	assert_int_equal(r.close_rc, 0);
}

/* Peer writes, one per call, with a pause before each (a task). */
struct drip {
	int fd;
	const char *const *parts;
	unsigned pause_ms;
	bool close_after; /* shutdown(SHUT_WR) after the last */
};

static void *drip_main(void *arg)
{
	struct drip *d = arg;
	for (const char *const *p = d->parts; *p; p++) {
		weft_sleep_ms(d->pause_ms);
		weft_send_all(d->fd, *p, strlen(*p), 0, NULL);
	}
	if (d->close_after)
		shutdown(d->fd, SHUT_WR);
	return NULL;
}

/* Start a drip task on `peer` (released by finish()). */
static weft_task *drip(struct drip *d, int fd, const char *const *parts, unsigned pause_ms,
		       bool close_after)
{
	*d = (struct drip){ fd, parts, pause_ms, close_after };
	return go_pinned(drip_main, d, WEFT_PIN_NONE);
}

/* Record one returned unit as text (for read_line / read_until). */
struct units {
	ssize_t rc[8];
	char text[8][128];
	int n;
};

static void keep_unit(struct units *u, ssize_t r, const char *p)
{
	if (u->n >= 8)
		return;
	u->rc[u->n] = r;
	if (r > 0)
		snprintf(u->text[u->n], sizeof u->text[0], "%.*s", (int)r, p);
	u->n++;
}

/* ---------------------------------------------------------------------- */
/* reading                                                                 */
/* ---------------------------------------------------------------------- */

struct read_rec {
	ssize_t r1, r2, r0, rnull, eof;
	char b1[8], b2[16];
	size_t buffered_after_first;
};

static void read_body(struct fx *f)
{
	struct read_rec *x = f->rec;
	send(f->peer, "hello world", 11, 0);
	x->r1 = weft_stream_read(f->s, x->b1, 5);
	x->buffered_after_first = weft_stream_buffered(f->s, NULL);
	x->r2 = weft_stream_read(f->s, x->b2, sizeof x->b2);
	x->r0 = weft_stream_read(f->s, x->b2, 0);
	x->rnull = weft_stream_read(f->s, NULL, 4);
	shutdown(f->peer, SHUT_WR);
	x->eof = weft_stream_read(f->s, x->b2, sizeof x->b2);
}

static void test_read(void **state)
{
	(void)state;
	struct read_rec x = { 0 };
	run_fx(NULL, read_body, &x);
	assert_int_equal(x.r1, 5);
	assert_memory_equal(x.b1, "hello", 5);
	assert_int_equal(x.buffered_after_first, 6);
	assert_int_equal(x.r2, 6); /* what is buffered, no wait for more */
	assert_memory_equal(x.b2, " world", 6);
	assert_int_equal(x.r0, 0);
	assert_int_equal(x.rnull, -EINVAL);
	assert_int_equal(x.eof, 0);
}

struct exact_rec {
	ssize_t whole, early, left_read, eof;
	char whole_buf[16], left[16];
	size_t buffered_after_early;
};

static void exact_body(struct fx *f)
{
	struct exact_rec *x = f->rec;
	static const char *const parts[] = { "0123", "456", "789", "abcd", NULL };
	struct drip d;
	weft_task *t = drip(&d, f->peer, parts, 10, true);
	x->whole = weft_stream_read_exact(f->s, x->whole_buf, 10); /* over 3 sends */
	x->early = weft_stream_read_exact(f->s, x->whole_buf + 10, 6); /* 4 left, then EOF */
	x->buffered_after_early = weft_stream_buffered(f->s, NULL);
	x->left_read = weft_stream_read(f->s, x->left, sizeof x->left);
	x->eof = weft_stream_read(f->s, x->left + 8, 4);
	finish(t);
}

static void test_read_exact_and_early_eof(void **state)
{
	(void)state;
	struct exact_rec x = { 0 };
	run_fx(NULL, exact_body, &x);
	assert_int_equal(x.whole, 10);
	assert_memory_equal(x.whole_buf, "0123456789", 10);
	assert_int_equal(x.early, -ENODATA);
	assert_int_equal(x.buffered_after_early, 4); /* the partial bytes stay */
	assert_int_equal(x.left_read, 4);
	assert_memory_equal(x.left, "abcd", 4);
	assert_int_equal(x.eof, 0);
}

struct line_rec {
	struct units u;
	ssize_t long_line;
	char long_text[128];
};

static void line_body(struct fx *f)
{
	struct line_rec *x = f->rec;
	static const char *const parts[] = { "line one\nline t", "wo\nthr", "ee", "\nlast, no newline",
					     NULL };
	struct drip d;
	weft_task *t = drip(&d, f->peer, parts, 5, false);
	const char *p;
	for (int i = 0; i < 3; i++) {
		ssize_t r = weft_stream_read_line(f->s, &p);
		keep_unit(&x->u, r, p);
	}
	finish(t);
	/* A 100-byte line sent one byte at a time. */
	static char bytes[101][2];
	static const char *one_by_one[102];
	for (int i = 0; i < 100; i++) {
		bytes[i][0] = (char)('a' + i % 26);
		one_by_one[i] = bytes[i];
	}
	bytes[100][0] = '\n';
	one_by_one[100] = bytes[100];
	one_by_one[101] = NULL;
	/* ... after the unterminated "last" line, which stays first. */
	t = drip(&d, f->peer, one_by_one + 0, 0, false);
	ssize_t r = weft_stream_read_line(f->s, &p);
	x->long_line = r;
	if (r > 0)
		snprintf(x->long_text, sizeof x->long_text, "%.*s", (int)r, p);
	finish(t);
	shutdown(f->peer, SHUT_WR);
	for (int i = 0; i < 2; i++) {
		r = weft_stream_read_line(f->s, &p);
		keep_unit(&x->u, r, p);
	}
}

static void test_read_line(void **state)
{
	(void)state;
	struct line_rec x = { 0 };
	run_fx(NULL, line_body, &x);
	assert_int_equal(x.u.n, 5);
	assert_string_equal(x.u.text[0], "line one\n");
	assert_string_equal(x.u.text[1], "line two\n");
	assert_string_equal(x.u.text[2], "three\n");
	/* "last, no newline" + the 100 dripped bytes + "\n" form one line */
	assert_int_equal(x.long_line, 16 + 101);
	assert_true(strncmp(x.long_text, "last, no newlineabcdefghijklmnopqrstuvwxyzabcd",
			    46) == 0);
	assert_int_equal(x.long_text[x.long_line - 1], '\n');
	/* Nothing more: EOF gives 0 (twice). */
	assert_int_equal(x.u.rc[3], 0);
	assert_int_equal(x.u.rc[4], 0);
}

struct final_line_rec {
	struct units u;
};

static void final_line_body(struct fx *f)
{
	struct final_line_rec *x = f->rec;
	send(f->peer, "a\nunterminated", 14, 0);
	shutdown(f->peer, SHUT_WR);
	const char *p;
	for (int i = 0; i < 3; i++) {
		ssize_t r = weft_stream_read_line(f->s, &p);
		keep_unit(&x->u, r, p);
	}
}

static void test_read_line_final_unterminated(void **state)
{
	(void)state;
	struct final_line_rec x = { 0 };
	run_fx(NULL, final_line_body, &x);
	assert_int_equal(x.u.rc[0], 2);
	assert_string_equal(x.u.text[0], "a\n");
	assert_int_equal(x.u.rc[1], 12);
	assert_string_equal(x.u.text[1], "unterminated");
	assert_int_equal(x.u.rc[2], 0);
}

struct until_rec {
	struct units u;
	size_t rest_n;
	char rest[32];
	ssize_t partial, partial_read, none, bad_delim, bad_out;
	char partial_text[16];
};

static void until_body(struct fx *f)
{
	struct until_rec *x = f->rec;
	/* The delimiter straddles two receives, then one byte per send. */
	static const char *const parts[] = { "HEAD 1\r\n\r", "\nBODY", "\r", "\n", "\r", "\n", "X",
					     NULL };
	struct drip d;
	weft_task *t = drip(&d, f->peer, parts, 10, false);
	const char *p;
	ssize_t r = weft_stream_read_until(f->s, "\r\n\r\n", 4, &p);
	keep_unit(&x->u, r, p);
	r = weft_stream_read_until(f->s, "\r\n\r\n", 4, &p);
	keep_unit(&x->u, r, p);
	finish(t);
	if (!weft_stream_buffered(f->s, NULL))
		weft_stream_fill(f->s); /* "X" was sent; take it in */
	const char *b;
	x->rest_n = weft_stream_buffered(f->s, &b);
	snprintf(x->rest, sizeof x->rest, "%.*s", (int)x->rest_n, b);
	x->bad_delim = weft_stream_read_until(f->s, "", 0, &p);
	x->bad_out = weft_stream_read_until(f->s, "\n", 1, NULL);
	/* EOF before a delimiter: -ENODATA, bytes stay for a plain read. */
	send(f->peer, "tail", 4, 0);
	shutdown(f->peer, SHUT_WR);
	x->partial = weft_stream_read_until(f->s, "\r\n\r\n", 4, &p);
	x->partial_read = weft_stream_read(f->s, x->partial_text, sizeof x->partial_text);
	x->none = weft_stream_read_until(f->s, "\r\n\r\n", 4, &p);
}

static void test_read_until_straddling_delimiter(void **state)
{
	(void)state;
	struct until_rec x = { 0 };
	run_fx(NULL, until_body, &x);
	assert_int_equal(x.u.rc[0], 10);
	assert_string_equal(x.u.text[0], "HEAD 1\r\n\r\n");
	assert_int_equal(x.u.rc[1], 8);
	assert_string_equal(x.u.text[1], "BODY\r\n\r\n");
	assert_int_equal(x.rest_n, 1);
	assert_string_equal(x.rest, "X");
	assert_int_equal(x.bad_delim, -EINVAL);
	assert_int_equal(x.bad_out, -EINVAL);
	assert_int_equal(x.partial, -ENODATA);
	assert_int_equal(x.partial_read, 5);
	assert_memory_equal(x.partial_text, "Xtail", 5);
	assert_int_equal(x.none, 0);
}

struct limit_rec {
	ssize_t line_rc, until_rc;
	size_t got;
	size_t bad;
	ssize_t after_line;
	char after[16];
	int fill_rc;
};

static void limit_body(struct fx *f)
{
	struct limit_rec *x = f->rec;
	enum { N = 300 };
	char big[N + 1];
	for (int i = 0; i < N; i++)
		big[i] = (char)('A' + i % 26);
	big[N] = '\n';
	weft_send_all(f->peer, big, N + 1, 0, NULL);
	weft_send_all(f->peer, "ok\n", 3, 0, NULL);
	const char *p;
	weft_sleep_ms(10); /* all of it is in the socket */
	x->line_rc = weft_stream_read_line(f->s, &p);
	x->until_rc = weft_stream_read_until(f->s, "\n", 1, &p);
	/* Nothing was lost: the long line reads back in plain reads. */
	char buf[64];
	while (x->got < N + 1) {
		ssize_t r = weft_stream_read(f->s, buf, sizeof buf < N + 1 - x->got ? sizeof buf
										     : N + 1 - x->got);
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			x->bad += buf[i] != big[x->got + (size_t)i];
		x->got += (size_t)r;
	}
	x->after_line = weft_stream_read_line(f->s, &p);
	if (x->after_line > 0)
		snprintf(x->after, sizeof x->after, "%.*s", (int)x->after_line, p);
}

static void test_limit_emsgsize_keeps_bytes(void **state)
{
	(void)state;
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.limit = 100;
	struct limit_rec x = { 0 };
	run_fx(&cfg, limit_body, &x);
	assert_int_equal(x.line_rc, -EMSGSIZE);
	assert_int_equal(x.until_rc, -EMSGSIZE);
	assert_int_equal(x.got, 301);
	assert_int_equal(x.bad, 0);
	assert_int_equal(x.after_line, 3);
	assert_string_equal(x.after, "ok\n");
}

struct fill_rec {
	ssize_t fill1, fill_full, fill_eof;
	size_t n1, n2, n3;
	char view1[16], view2[16];
	int consume_ok, consume_big, consume_rest;
	size_t n_end;
};

static void fill_body(struct fx *f)
{
	struct fill_rec *x = f->rec;
	const char *p;
	send(f->peer, "abcdef", 6, 0);
	x->fill1 = weft_stream_fill(f->s);
	x->n1 = weft_stream_buffered(f->s, &p);
	snprintf(x->view1, sizeof x->view1, "%.*s", (int)x->n1, p);
	x->consume_ok = weft_stream_consume(f->s, 2);
	x->n2 = weft_stream_buffered(f->s, &p);
	snprintf(x->view2, sizeof x->view2, "%.*s", (int)x->n2, p);
	x->consume_big = weft_stream_consume(f->s, 5);
	/* Fill up to the limit (8): then -EMSGSIZE. */
	send(f->peer, "ghijklmnop", 10, 0);
	while (weft_stream_buffered(f->s, NULL) < 8)
		if (weft_stream_fill(f->s) <= 0)
			break;
	x->fill_full = weft_stream_fill(f->s);
	x->n3 = weft_stream_buffered(f->s, NULL);
	x->consume_rest = weft_stream_consume(f->s, x->n3);
	shutdown(f->peer, SHUT_WR);
	/* drain what the socket still holds, then EOF */
	ssize_t r;
	while ((r = weft_stream_fill(f->s)) > 0)
		weft_stream_consume(f->s, weft_stream_buffered(f->s, NULL));
	x->fill_eof = r;
	x->n_end = weft_stream_buffered(f->s, NULL);
}

static void test_fill_buffered_consume(void **state)
{
	(void)state;
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.limit = 8;
	struct fill_rec x = { 0 };
	run_fx(&cfg, fill_body, &x);
	assert_int_equal(x.fill1, 6);
	assert_int_equal(x.n1, 6);
	assert_string_equal(x.view1, "abcdef");
	assert_int_equal(x.consume_ok, 0);
	assert_int_equal(x.n2, 4);
	assert_string_equal(x.view2, "cdef");
	assert_int_equal(x.consume_big, -EINVAL);
	assert_int_equal(x.fill_full, -EMSGSIZE);
	assert_true(x.n3 >= 8);
	assert_int_equal(x.consume_rest, 0);
	assert_int_equal(x.fill_eof, 0);
	assert_int_equal(x.n_end, 0);
}

/* ---------------------------------------------------------------------- */
/* writing                                                                 */
/* ---------------------------------------------------------------------- */

/* Read `total` pattern bytes from fd (after an optional delay), checking
 * them; stops at EOF. */
struct sink {
	int fd;
	unsigned delay_ms;
	size_t total; /* 0: until EOF */
	size_t got, bad;
	ssize_t last;
	uint64_t started_ns;
};

static void *sink_main(void *arg)
{
	struct sink *k = arg;
	if (k->delay_ms)
		weft_sleep_ms(k->delay_ms);
	k->started_ns = weft_now_ns();
	uint8_t *buf = malloc(65536); /* not TLS: tasks migrate */
	while (buf) {
		if (k->total && k->got >= k->total)
			break;
		ssize_t r = weft_recv(k->fd, buf, 65536, 0);
		k->last = r;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			k->bad += buf[i] != pat(k->got + (size_t)i);
		k->got += (size_t)r;
	}
	free(buf);
	return NULL;
}

/* Shrink the peer's receive and the stream's send buffer to `bytes`, so a
 * peer that does not read soon stops the sender. */
static void small_buffers(struct fx *f, int bytes)
{
	weft_sock_buffers(f->peer, bytes, 0);
	weft_sock_buffers(weft_stream_fd(f->s), 0, bytes);
}

/* Queue n pattern bytes starting at offset off, in 16 KiB writes. */
static ssize_t write_pat(weft_stream *s, size_t off, size_t n)
{
	uint8_t buf[16384];
	size_t done = 0;
	while (done < n) {
		size_t k = n - done < sizeof buf ? n - done : sizeof buf;
		for (size_t i = 0; i < k; i++)
			buf[i] = pat(off + done + i);
		ssize_t r = weft_stream_write(s, buf, k);
		if (r < 0)
			return r;
		done += k;
	}
	return (ssize_t)done;
}

struct drain_rec {
	int small_drain;
	uint64_t small_ns;
	ssize_t wrote;
	size_t pending_before;
	int timed_rc, timed_exit;
	uint64_t timed_ns;
	int drain_rc;
	uint64_t drain_done_ns;
	size_t pending_after;
	int flush_rc;
	size_t pending_flushed;
	struct sink k;
};

static void drain_body(struct fx *f)
{
	struct drain_rec *x = f->rec;
	size_t total = 1u << 20;
	small_buffers(f, 4096);
	/* Under high water: drain returns at once. */
	uint64_t t0 = weft_now_ns();
	weft_stream_write(f->s, "", 0);
	x->small_drain = weft_stream_drain(f->s);
	x->small_ns = weft_now_ns() - t0;
	x->wrote = write_pat(f->s, 0, total);
	x->pending_before = weft_stream_pending(f->s);
	/* The peer does not read: drain blocks; a scope ends it. */
	weft_scope sc;
	t0 = weft_now_ns();
	weft_scope_enter(&sc, 80 * MS);
	x->timed_rc = weft_stream_drain(f->s);
	x->timed_exit = weft_scope_exit(&sc);
	x->timed_ns = weft_now_ns() - t0;
	/* Now the peer reads (after 50 ms): drain returns. */
	x->k = (struct sink){ .fd = f->peer, .delay_ms = 50, .total = total };
	weft_task *t = go_pinned(sink_main, &x->k, 1);
	x->drain_rc = weft_stream_drain(f->s);
	x->drain_done_ns = weft_now_ns();
	x->pending_after = weft_stream_pending(f->s);
	x->flush_rc = weft_stream_flush(f->s);
	x->pending_flushed = weft_stream_pending(f->s);
	finish(t);
}

static void test_write_drain_backpressure(void **state)
{
	(void)state;
	struct drain_rec x = { 0 };
	run_fx(NULL, drain_body, &x);
	assert_int_equal(x.small_drain, 0);
	assert_true(x.small_ns < 50 * MS);
	assert_int_equal(x.wrote, 1 << 20);
	assert_true(x.pending_before > 64 * 1024);
	assert_int_equal(x.timed_rc, -ETIMEDOUT);
	assert_int_equal(x.timed_exit, 1);
	assert_true(x.timed_ns >= 75 * MS);
	assert_int_equal(x.drain_rc, 0);
	assert_true(x.drain_done_ns >= x.k.started_ns); /* only once it read */
	assert_true(x.pending_after <= 16 * 1024);   /* down to low water */
	assert_int_equal(x.flush_rc, 0);
	assert_int_equal(x.pending_flushed, 0);
	assert_int_equal(x.k.got, 1 << 20);
	assert_int_equal(x.k.bad, 0);
}

struct shut_rec {
	ssize_t w1;
	int shut_rc;
	ssize_t w_after;
	int drain_after;
	struct sink k;
	ssize_t reply;
	char reply_buf[8];
};

static void shut_body(struct fx *f)
{
	struct shut_rec *x = f->rec;
	x->k = (struct sink){ .fd = f->peer };
	weft_task *t = go_pinned(sink_main, &x->k, WEFT_PIN_NONE);
	x->w1 = write_pat(f->s, 0, 100000);
	x->shut_rc = weft_stream_shutdown(f->s);
	x->w_after = weft_stream_write(f->s, "late", 4);
	x->drain_after = weft_stream_drain(f->s);
	finish(t); /* the peer saw EOF */
	/* This side can still read. */
	send(f->peer, "reply", 5, 0);
	x->reply = weft_stream_read(f->s, x->reply_buf, sizeof x->reply_buf);
}

static void test_shutdown_eof_then_epipe(void **state)
{
	(void)state;
	struct shut_rec x = { 0 };
	run_fx(NULL, shut_body, &x);
	assert_int_equal(x.w1, 100000);
	assert_int_equal(x.shut_rc, 0);
	assert_int_equal(x.w_after, -EPIPE);
	assert_int_equal(x.drain_after, 0);
	assert_int_equal(x.k.got, 100000);
	assert_int_equal(x.k.bad, 0);
	assert_int_equal(x.k.last, 0); /* EOF */
	assert_int_equal(x.reply, 5);
	assert_memory_equal(x.reply_buf, "reply", 5);
}

/* A shutdown cut short (here by a scope) while the queue flushes still
 * shuts: later writes get -EPIPE, and the FIN follows the last queued
 * byte by itself once the peer reads, with nobody waiting for it. */
struct shut_cut_rec {
	ssize_t w1, w_after;
	int shut_rc;
	size_t pending;
	struct sink k;
};

static void shut_cut_body(struct fx *f)
{
	struct shut_cut_rec *x = f->rec;
	weft_sock_buffers(weft_stream_fd(f->s), 0, 4096);
	x->w1 = write_pat(f->s, 0, 1u << 20);
	weft_scope sc;
	weft_scope_enter(&sc, 30 * MS);
	x->shut_rc = weft_stream_shutdown(f->s);
	weft_scope_exit(&sc);
	x->pending = weft_stream_pending(f->s);
	x->w_after = weft_stream_write(f->s, "late", 4);
	x->k = (struct sink){ .fd = f->peer };
	weft_task *t = go_pinned(sink_main, &x->k, WEFT_PIN_NONE);
	weft_wait_for(t, NULL, 1000 * MS); /* cancels a sink that never sees EOF */
	weft_task_release(t);
}

static void test_shutdown_cut_short_still_shuts(void **state)
{
	(void)state;
	struct shut_cut_rec x = { 0 };
	run_fx(NULL, shut_cut_body, &x);
	assert_int_equal(x.w1, 1 << 20);
	assert_int_equal(x.shut_rc, -ETIMEDOUT);
	assert_true(x.pending > 0);
	assert_int_equal(x.w_after, -EPIPE);
	assert_int_equal(x.k.got, 1 << 20);
	assert_int_equal(x.k.bad, 0);
	assert_int_equal(x.k.last, 0); /* EOF */
}

struct close_rec {
	ssize_t wrote;
	int close_rc;
	struct sink k;
};

static void close_body(struct fx *f)
{
	struct close_rec *x = f->rec;
	size_t total = 8u << 20;
	x->k = (struct sink){ .fd = f->peer, .delay_ms = 20 };
	weft_task *t = go_pinned(sink_main, &x->k, 1);
	x->wrote = write_pat(f->s, 0, total);
	x->close_rc = weft_stream_close(f->s); /* at once: it flushes */
	f->s = NULL;
	finish(t);
}

static void test_close_flushes_everything(void **state)
{
	(void)state;
	struct close_rec x = { 0 };
	run_fx(NULL, close_body, &x);
	assert_int_equal(x.wrote, 8 << 20);
	assert_int_equal(x.close_rc, 0);
	assert_int_equal(x.k.got, 8u << 20);
	assert_int_equal(x.k.bad, 0);
	assert_int_equal(x.k.last, 0);
}

/* Sticky send error: TCP, the peer resets. */
struct sticky_rec {
	int setup;
	int first_err;
	int writes_until_err;
	ssize_t w_again;
	int drain_again, flush_again;
	int close_rc;
};

static void *sticky_main(void *arg)
{
	struct sticky_rec *x = arg;
	int sv[2];
	weft_stream *s;
	if (tcp_loop_pair(sv) < 0 || weft_stream_open(&s, sv[0], NULL) < 0) {
		x->setup = -1;
		return NULL;
	}
	struct linger lg = { 1, 0 };
	setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(sv[1]); /* RST */
	weft_sleep_ms(5);
	char buf[4096];
	memset(buf, 'x', sizeof buf);
	int r = 0;
	for (int i = 0; i < 1000 && !r; i++) {
		x->writes_until_err = i;
		ssize_t w = weft_stream_write(s, buf, sizeof buf);
		if (w < 0) {
			r = (int)w;
			break;
		}
		r = weft_stream_flush(s);
	}
	x->first_err = r;
	x->w_again = weft_stream_write(s, buf, 1);
	x->drain_again = weft_stream_drain(s);
	x->flush_again = weft_stream_flush(s);
	x->close_rc = weft_stream_close(s);
	return NULL;
}

static void test_sticky_send_error_after_reset(void **state)
{
	(void)state;
	struct sticky_rec x = { 0 };
	weft_test_run_loops(2, sticky_main, &x);
	assert_int_equal(x.setup, 0);
	assert_true(x.first_err == -ECONNRESET || x.first_err == -EPIPE);
	assert_int_equal(x.w_again, x.first_err);
	assert_int_equal(x.drain_again, x.first_err);
	assert_int_equal(x.flush_again, x.first_err);
	assert_int_equal(x.close_rc, x.first_err);
}

/* ---------------------------------------------------------------------- */
/* write limits                                                            */
/* ---------------------------------------------------------------------- */

/* The defaults with a write_timeout_ns. */
static weft_stream_config timeout_cfg(uint64_t write_timeout_ns)
{
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.write_timeout_ns = write_timeout_ns;
	return cfg;
}

/* A peer that never reads: drain fails with -ETIMEDOUT within the stall
 * limit, sticky; close returns it at once and releases the fd. */
struct wto_rec {
	ssize_t wrote;
	size_t pending_before;
	int drain_rc;
	uint64_t drain_ns;
	ssize_t w_again;
	int drain_again, flush_again, shut_again;
	int close_rc;
	uint64_t close_ns;
	int fd_after; /* fcntl(F_GETFD) of the stream's fd after close */
};

static void wto_body(struct fx *f)
{
	struct wto_rec *x = f->rec;
	small_buffers(f, 4096);
	int fd = weft_stream_fd(f->s);
	x->wrote = write_pat(f->s, 0, 1u << 20);
	x->pending_before = weft_stream_pending(f->s);
	uint64_t t0 = weft_now_ns();
	x->drain_rc = weft_stream_drain(f->s);
	x->drain_ns = weft_now_ns() - t0;
	x->w_again = weft_stream_write(f->s, "x", 1);
	x->drain_again = weft_stream_drain(f->s);
	x->flush_again = weft_stream_flush(f->s);
	x->shut_again = weft_stream_shutdown(f->s);
	t0 = weft_now_ns();
	x->close_rc = weft_stream_close(f->s);
	x->close_ns = weft_now_ns() - t0;
	f->s = NULL;
	x->fd_after = fcntl(fd, F_GETFD) < 0 ? -errno : 0;
}

static void test_write_timeout_non_reading_peer(void **state)
{
	(void)state;
	weft_stream_config cfg = timeout_cfg(100 * MS);
	struct wto_rec x = { 0 };
	run_fx(&cfg, wto_body, &x);
	print_message("drain gave up after %.0f ms, close took %.1f ms\n", x.drain_ns / 1e6,
		      x.close_ns / 1e6);
	assert_int_equal(x.wrote, 1 << 20);
	assert_true(x.pending_before > 64 * 1024);
	assert_int_equal(x.drain_rc, -ETIMEDOUT);
	assert_true(x.drain_ns >= 95 * MS && x.drain_ns < 1500 * MS);
	assert_int_equal(x.w_again, -ETIMEDOUT);
	assert_int_equal(x.drain_again, -ETIMEDOUT);
	assert_int_equal(x.flush_again, -ETIMEDOUT);
	assert_int_equal(x.shut_again, -ETIMEDOUT);
	assert_int_equal(x.close_rc, -ETIMEDOUT);
	assert_true(x.close_ns < 500 * MS);
	assert_int_equal(x.fd_after, -EBADF);
}

/* A slow but steady reader (8 KiB every 20 ms, 128 KiB in all, ~320 ms)
 * is not cut by a 100 ms stall limit: progress restarts the clock. */
struct slow_sink {
	int fd;
	size_t total, got, bad;
	size_t chunk; /* bytes per receive (8 KiB when 0) */
	uint64_t max_gap_ns; /* the longest time between two receives that
				took bytes (the first: from the start) */
};

static void *slow_sink_main(void *arg)
{
	struct slow_sink *k = arg;
	size_t chunk = k->chunk ? k->chunk : 8192;
	uint8_t *buf = malloc(chunk); /* not on a task's stack */
	uint64_t last = weft_now_ns();
	while (buf && k->got < k->total) {
		weft_sleep_ms(20);
		ssize_t r = weft_recv(k->fd, buf, chunk, 0);
		if (r <= 0)
			break;
		uint64_t now = weft_now_ns();
		if (now - last > k->max_gap_ns)
			k->max_gap_ns = now - last;
		last = now;
		for (ssize_t i = 0; i < r; i++)
			k->bad += buf[i] != pat(k->got + (size_t)i);
		k->got += (size_t)r;
	}
	free(buf);
	return NULL;
}

struct wslow_rec {
	ssize_t wrote;
	int flush_rc;
	uint64_t flush_ns;
	int dl_rc;        /* a write deadline 50 ms ahead, 200 KiB to go */
	ssize_t dl_write;
	int zero_dl_rc;   /* deadline 0 with nothing queued: no wait, 0 */
	uint64_t gap_ns;  /* the first reader's longest time between receives */
	struct slow_sink k;
};

static void wslow_body(struct fx *f)
{
	struct wslow_rec *x = f->rec;
	small_buffers(f, 4096);
	x->k = (struct slow_sink){ .fd = f->peer, .total = 128 * 1024 };
	weft_task *t = go_pinned(slow_sink_main, &x->k, WEFT_PIN_NONE);
	uint64_t t0 = weft_now_ns();
	x->wrote = write_pat(f->s, 0, 128 * 1024);
	x->flush_rc = weft_stream_flush(f->s);
	x->flush_ns = weft_now_ns() - t0;
	if (x->flush_rc < 0) /* the queued bytes were dropped: the sink would
				wait for them forever */
		shutdown(f->peer, SHUT_RDWR);
	finish(t);
	x->gap_ns = x->k.max_gap_ns;
	if (x->flush_rc < 0) { /* the test says why; close returns it too */
		weft_stream_close(f->s);
		f->s = NULL;
		return;
	}
	/* Nothing queued: an expired deadline does not matter. */
	weft_stream_write_deadline(f->s, 0);
	x->zero_dl_rc = weft_stream_flush(f->s);
	/* The whole-reply deadline: the slow reader cannot take 512 KiB in
	 * 50 ms, so the flush fails, sticky. */
	weft_stream_write_deadline(f->s, weft_now_ns() + 50 * MS);
	x->k = (struct slow_sink){ .fd = f->peer, .total = 512 * 1024 };
	t = go_pinned(slow_sink_main, &x->k, WEFT_PIN_NONE);
	write_pat(f->s, 0, 512 * 1024);
	x->dl_rc = weft_stream_flush(f->s);
	x->dl_write = weft_stream_write(f->s, "x", 1);
	shutdown(f->peer, SHUT_RDWR); /* ends the sink */
	finish(t);
	weft_stream_close(f->s);
	f->s = NULL;
}

/* The stall limit is wall time, and the reader is a task of this very
 * process: when the machine keeps it off the CPU past the limit (a loaded
 * machine, a stopped process) the writer gives up rightly.  Such a run
 * says nothing of the stream and is run again; a writer that gave up
 * while the reader kept taking bytes well within the limit fails. */
static void test_write_timeout_spares_slow_reader(void **state)
{
	(void)state;
	weft_stream_config cfg = timeout_cfg(100 * MS);
	struct wslow_rec x;
	for (int run = 0; run < 3; run++) {
		x = (struct wslow_rec){ 0 };
		run_fx(&cfg, wslow_body, &x);
		if (x.flush_rc == 0 || x.gap_ns < 50 * MS)
			break;
		print_message("the reader was kept off the CPU for %.0f ms: again\n",
			      x.gap_ns / 1e6);
	}
	print_message("slow reader flushed in %.0f ms (%d), receives at most %.0f ms apart\n",
		      x.flush_ns / 1e6, x.flush_rc, x.gap_ns / 1e6);
	assert_int_equal(x.wrote, 128 * 1024);
	assert_int_equal(x.flush_rc, 0);
	assert_true(x.flush_ns > 150 * MS); /* longer than the limit */
	assert_int_equal(x.zero_dl_rc, 0);
	assert_int_equal(x.dl_rc, -ETIMEDOUT);
	assert_int_equal(x.dl_write, -ETIMEDOUT);
}

/* ---------------------------------------------------------------------- */
/* writing without copies                                                  */
/* ---------------------------------------------------------------------- */

/* Read what the peer has within ms (non-blocking once it stops): bytes. */
static size_t peer_take(int fd, char *buf, size_t cap, unsigned ms)
{
	size_t got = 0;
	weft_scope sc;
	weft_scope_enter(&sc, ms * MS);
	while (got < cap) {
		ssize_t r = weft_recv(fd, buf + got, cap - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	weft_scope_exit(&sc);
	return got;
}

struct resv_other {
	weft_stream *s;
	int reserve_rc, commit_rc;
	ssize_t write_rc;
	int drain_rc;
};

/* Another task while the reservation is open: its reserve is refused,
 * its commit too, its write queues behind. */
static void *resv_other_main(void *arg)
{
	struct resv_other *o = arg;
	void *p;
	o->reserve_rc = weft_stream_reserve(o->s, 10, &p);
	o->commit_rc = weft_stream_commit(o->s, 0);
	o->write_rc = weft_stream_write(o->s, "B", 1);
	return NULL;
}

/* A drainer on another task: the write deadline passes while it waits. */
static void *resv_drainer(void *arg)
{
	struct resv_other *o = arg;
	o->drain_rc = weft_stream_drain(o->s);
	return NULL;
}

struct resv_rec {
	int bad_len, bad_out;
	int r1, again;
	ssize_t own_write;
	int own_drain, own_flush, own_shut;
	size_t early; /* bytes the peer got before the commit */
	int over, commit, commit_again;
	char got[32];
	size_t got_n;
	int cancel_r, cancel_commit;
	ssize_t after_cancel;
	char got2[8];
	size_t got2_n;
	struct resv_other o;
	/* sticky error while open */
	int big_r;
	int sticky_commit, sticky_reserve;
	void *sticky_out;
	struct resv_other d;
	int close_rc;
};

static void resv_body(struct fx *f)
{
	struct resv_rec *x = f->rec;
	void *p = (void *)1;
	x->bad_len = weft_stream_reserve(f->s, 0, &p);
	x->bad_out = weft_stream_reserve(f->s, 10, NULL);
	x->r1 = weft_stream_reserve(f->s, 100, &p);
	void *q;
	x->again = weft_stream_reserve(f->s, 10, &q);
	x->o.s = f->s;
	finish(go_pinned(resv_other_main, &x->o, 1)); /* another loop */
	x->own_write = weft_stream_write(f->s, "A", 1);
	x->own_drain = weft_stream_drain(f->s);
	x->own_flush = weft_stream_flush(f->s);
	x->own_shut = weft_stream_shutdown(f->s);
	if (x->r1 == 0)
		memcpy(p, "hello", 5);
	weft_sleep_ms(20);
	char tmp[8];
	x->early = peer_take(f->peer, tmp, sizeof tmp, 20);
	x->over = weft_stream_commit(f->s, 101);
	x->commit = weft_stream_commit(f->s, 5);
	x->commit_again = weft_stream_commit(f->s, 0);
	weft_stream_flush(f->s);
	x->got_n = peer_take(f->peer, x->got, 7, 500);
	/* n == 0 cancels: nothing of it is sent */
	x->cancel_r = weft_stream_reserve(f->s, 10, &p);
	if (x->cancel_r == 0)
		memcpy(p, "xxxxxxxxxx", 10);
	x->cancel_commit = weft_stream_commit(f->s, 0);
	x->after_cancel = weft_stream_write(f->s, "Z", 1);
	weft_stream_flush(f->s);
	x->got2_n = peer_take(f->peer, x->got2, sizeof x->got2, 50);
	/* A sticky error while a reservation is open: the queue is over
	 * the peer's buffers, another task drains past the write deadline. */
	small_buffers(f, 4096);
	write_pat(f->s, 0, 1u << 20);
	x->big_r = weft_stream_reserve(f->s, 64, &p);
	weft_stream_write_deadline(f->s, weft_now_ns() + 30 * MS);
	x->d.s = f->s;
	finish(go_pinned(resv_drainer, &x->d, WEFT_PIN_NONE));
	x->sticky_commit = weft_stream_commit(f->s, 64);
	x->sticky_out = (void *)1;
	x->sticky_reserve = weft_stream_reserve(f->s, 8, &x->sticky_out);
	x->close_rc = weft_stream_close(f->s);
	f->s = NULL;
}

static void test_reserve_commit_rules(void **state)
{
	(void)state;
	struct resv_rec x = { 0 };
	run_fx(NULL, resv_body, &x);
	assert_int_equal(x.bad_len, -EINVAL);
	assert_int_equal(x.bad_out, -EINVAL);
	assert_int_equal(x.r1, 0);
	assert_int_equal(x.again, -EBUSY);         /* second reserve, same task */
	assert_int_equal(x.o.reserve_rc, -EBUSY);  /* from another task */
	assert_int_equal(x.o.commit_rc, -EINVAL);  /* not its reservation */
	assert_int_equal(x.o.write_rc, 1);         /* queued behind it */
	assert_int_equal(x.own_write, 1);
	assert_int_equal(x.own_drain, 0);          /* not over high water */
	assert_int_equal(x.own_flush, -EBUSY);
	assert_int_equal(x.own_shut, -EBUSY);
	assert_int_equal(x.early, 0);              /* nothing before the commit */
	assert_int_equal(x.over, -EINVAL);         /* stays open */
	assert_int_equal(x.commit, 0);
	assert_int_equal(x.commit_again, -EINVAL); /* none open */
	assert_int_equal(x.got_n, 7);
	assert_memory_equal(x.got, "helloBA", 7);
	assert_int_equal(x.cancel_r, 0);
	assert_int_equal(x.cancel_commit, 0);
	assert_int_equal(x.after_cancel, 1);
	assert_int_equal(x.got2_n, 1);
	assert_memory_equal(x.got2, "Z", 1);
	assert_int_equal(x.big_r, 0);
	assert_int_equal(x.d.drain_rc, -ETIMEDOUT);
	assert_int_equal(x.sticky_commit, -ETIMEDOUT);
	assert_int_equal(x.sticky_reserve, -ETIMEDOUT);
	assert_null(x.sticky_out);
	assert_int_equal(x.close_rc, -ETIMEDOUT);
}

/* close with a reservation open cancels it; what came before is sent. */
struct resv_close_rec {
	int r;
	int close_rc;
	char got[16];
	size_t got_n;
	ssize_t eof;
};

static void resv_close_body(struct fx *f)
{
	struct resv_close_rec *x = f->rec;
	void *p;
	weft_stream_write(f->s, "pre", 3);
	x->r = weft_stream_reserve(f->s, 10, &p);
	if (x->r == 0)
		memcpy(p, "never", 5);
	weft_stream_write(f->s, "post", 4);
	x->close_rc = weft_stream_close(f->s);
	f->s = NULL;
	x->got_n = peer_take(f->peer, x->got, sizeof x->got, 500);
	x->eof = recv(f->peer, x->got, 1, MSG_DONTWAIT);
}

static void test_close_cancels_open_reservation(void **state)
{
	(void)state;
	struct resv_close_rec x = { 0 };
	run_fx(NULL, resv_close_body, &x);
	assert_int_equal(x.r, 0);
	assert_int_equal(x.close_rc, 0);
	assert_int_equal(x.got_n, 7);
	assert_memory_equal(x.got, "prepost", 7);
	assert_int_equal(x.eof, 0);
}

/* writev's argument checks and its all-or-nothing. */
struct writev_rec {
	ssize_t neg, null_iov, null_base, zero, big, huge;
	char got[8];
	size_t got_n;
};

static void writev_body(struct fx *f)
{
	struct writev_rec *x = f->rec;
	struct iovec v[3] = { { "ab", 2 }, { NULL, 0 }, { "cd", 2 } };
	x->neg = weft_stream_writev(f->s, v, -1);
	x->null_iov = weft_stream_writev(f->s, NULL, 1);
	struct iovec bad[2] = { { "ab", 2 }, { NULL, 1 } };
	x->null_base = weft_stream_writev(f->s, bad, 2);
	struct iovec over[2] = { { "ab", 2 }, { "cd", SSIZE_MAX } };
	x->huge = weft_stream_writev(f->s, over, 2);
	x->zero = weft_stream_writev(f->s, NULL, 0);
	x->big = weft_stream_writev(f->s, v, 3); /* a NULL base of length 0 is fine */
	weft_stream_flush(f->s);
	x->got_n = peer_take(f->peer, x->got, sizeof x->got, 50);
}

static void test_writev_arguments(void **state)
{
	(void)state;
	struct writev_rec x = { 0 };
	run_fx(NULL, writev_body, &x);
	assert_int_equal(x.neg, -EINVAL);
	assert_int_equal(x.null_iov, -EINVAL);
	assert_int_equal(x.null_base, -EINVAL);
	assert_int_equal(x.huge, -EINVAL);
	assert_int_equal(x.zero, 0);
	assert_int_equal(x.big, 4);
	assert_int_equal(x.got_n, 4); /* nothing of the refused ones */
	assert_memory_equal(x.got, "abcd", 4);
}

/* write_zc over TCP: the bytes arrive in order with the plain writes
 * around it, though the buffer is scribbled the moment it returns. */
#define ZC_BIG (4u << 20)

static uint8_t *pat_buf(size_t off, size_t n)
{
	uint8_t *b = malloc(n);
	for (size_t i = 0; b && i < n; i++)
		b[i] = pat(off + i);
	return b;
}

struct zc_rec {
	ssize_t pre, zc, post;
	int flush_rc;
	struct sink k;
};

static void zc_body(struct fx *f)
{
	struct zc_rec *x = f->rec;
	x->k = (struct sink){ .fd = f->peer, .total = 100000 + ZC_BIG + 100000 };
	weft_task *t = go_pinned(sink_main, &x->k, WEFT_PIN_NONE);
	uint8_t *b = pat_buf(100000, ZC_BIG);
	x->pre = write_pat(f->s, 0, 100000);
	x->zc = b ? weft_stream_write_zc(f->s, b, ZC_BIG) : -ENOMEM;
	if (b)
		memset(b, 0xEE, ZC_BIG);
	x->post = write_pat(f->s, 100000 + ZC_BIG, 100000);
	x->flush_rc = weft_stream_flush(f->s);
	free(b);
	finish(t);
}

static void test_write_zc_order_and_buffer_reuse(void **state)
{
	(void)state;
	struct zc_rec x = { 0 };
	run_fx_tcp(NULL, zc_body, &x);
	assert_int_equal(x.pre, 100000);
	assert_int_equal(x.zc, ZC_BIG);
	assert_int_equal(x.post, 100000);
	assert_int_equal(x.flush_rc, 0);
	assert_int_equal(x.k.got, 100000 + ZC_BIG + 100000);
	assert_int_equal(x.k.bad, 0);
}

/* Cancelled while the zero-copy send waits for a peer that does not
 * read: it returns -ECANCELED only once the kernel is done with the
 * buffer, and what it had not sent is queued: scribbling the buffer right
 * after the return changes nothing the peer receives. */
struct zc_cancel {
	weft_stream *s;
	uint8_t *buf;
	ssize_t rc;
	_Atomic uint64_t ret_ns; /* read by the test body while it runs */
};

static void *zc_cancel_writer(void *arg)
{
	struct zc_cancel *z = arg;
	z->rc = weft_stream_write_zc(z->s, z->buf, ZC_BIG);
	atomic_store(&z->ret_ns, weft_now_ns());
	memset(z->buf, 0xEE, ZC_BIG); /* at once: must not reach the peer */
	return NULL;
}

struct zc_cancel_rec {
	struct zc_cancel z;
	uint64_t ret_early; /* when it returned, if before the peer read */
	size_t pending;
	int flush_rc;
	struct sink k;
};

static void zc_cancel_body(struct fx *f)
{
	struct zc_cancel_rec *x = f->rec;
	/* Small, but not so small that TCP's window updates stall (loopback
	 * MSS is 64 KiB): 4 MiB stays in flight while the peer waits. */
	small_buffers(f, 256 * 1024);
	x->z = (struct zc_cancel){ .s = f->s, .buf = pat_buf(0, ZC_BIG) };
	if (!x->z.buf)
		return;
	weft_task *t = go_pinned(zc_cancel_writer, &x->z, WEFT_PIN_NONE);
	weft_sleep_ms(30); /* in flight, the peer's window full */
	weft_task_cancel(t);
	/* The kernel holds pages of buf until the peer has them: the
	 * cancelled call waits for that (on io_uring; a copy returned at
	 * once). */
	weft_sleep_ms(30);
	x->ret_early = atomic_load(&x->z.ret_ns);
	x->k = (struct sink){ .fd = f->peer, .total = ZC_BIG };
	weft_task *k = go_pinned(sink_main, &x->k, WEFT_PIN_NONE);
	finish(t);
	x->pending = weft_stream_pending(f->s);
	x->flush_rc = weft_stream_flush(f->s);
	finish(k);
	free(x->z.buf);
}

static void test_write_zc_cancelled_in_flight_keeps_bytes(void **state)
{
	(void)state;
	struct zc_cancel_rec x = { 0 };
	run_fx_tcp(NULL, zc_cancel_body, &x);
	print_message("cancelled write_zc: %zd, %zu bytes left queued\n", x.z.rc, x.pending);
	/* io_uring: cancelled while sending; a copy (epoll) returned at
	 * once with everything queued.  When a cancelled call returns is the
	 * kernel's: once every page it sent from is acknowledged (bytes the
	 * peer's buffer took are, so under TSan's slower pace it may be before
	 * the peer reads).  A return while the kernel still read buf would
	 * show below: the bytes were scribbled at once. */
	print_message("returned %s the peer began to read\n",
		      x.ret_early ? "before" : "after");
	assert_true(x.z.rc == -ECANCELED || x.z.rc == ZC_BIG);
	assert_int_equal(x.flush_rc, 0);
	assert_int_equal(x.k.got, ZC_BIG);
	assert_int_equal(x.k.bad, 0);
}

/* A peer that never reads and a write_timeout_ns: the zero-copy send
 * gives up within the limit (the connection is reset to get the pages
 * back), sticky; a copy (epoll) fails the flush after it the same way. */
struct zc_wto_rec {
	ssize_t rc;
	uint64_t ns;
	ssize_t again;
	int close_rc;
};

static void zc_wto_body(struct fx *f)
{
	struct zc_wto_rec *x = f->rec;
	small_buffers(f, 4096);
	uint8_t *b = pat_buf(0, ZC_BIG);
	uint64_t t0 = weft_now_ns();
	x->rc = b ? weft_stream_write_zc(f->s, b, ZC_BIG) : -ENOMEM;
	if (x->rc == ZC_BIG)
		x->rc = weft_stream_flush(f->s);
	x->ns = weft_now_ns() - t0;
	if (b)
		memset(b, 0xEE, ZC_BIG);
	free(b);
	x->again = weft_stream_write(f->s, "x", 1);
	x->close_rc = weft_stream_close(f->s);
	f->s = NULL;
}

static void test_write_zc_write_timeout(void **state)
{
	(void)state;
	weft_stream_config cfg = timeout_cfg(100 * MS);
	struct zc_wto_rec x = { 0 };
	run_fx_tcp(&cfg, zc_wto_body, &x);
	print_message("write_zc gave up after %.0f ms\n", x.ns / 1e6);
	assert_int_equal(x.rc, -ETIMEDOUT);
	assert_true(x.ns >= 95 * MS && x.ns < 1500 * MS);
	assert_int_equal(x.again, -ETIMEDOUT);
	assert_int_equal(x.close_rc, -ETIMEDOUT);
}

/* A slow but steady reader (64 KiB every 20 ms) of a 2 MiB zero-copy
 * write (~640 ms) is not cut by a 300 ms stall limit: the bytes it
 * acknowledges are progress.  (Not 100 ms: TCP itself may stall for a
 * 200 ms retransmission timeout with windows this small.) */
struct zc_slow_rec {
	ssize_t rc;
	uint64_t ns;
	struct slow_sink k;
};

static void zc_slow_body(struct fx *f)
{
	struct zc_slow_rec *x = f->rec;
	small_buffers(f, 128 * 1024);
	x->k = (struct slow_sink){ .fd = f->peer, .total = 2u << 20, .chunk = 65536 };
	weft_task *t = go_pinned(slow_sink_main, &x->k, WEFT_PIN_NONE);
	uint8_t *b = pat_buf(0, 2u << 20);
	uint64_t t0 = weft_now_ns();
	x->rc = b ? weft_stream_write_zc(f->s, b, 2u << 20) : -ENOMEM;
	if (x->rc > 0)
		x->rc = weft_stream_flush(f->s) ?: x->rc;
	x->ns = weft_now_ns() - t0;
	free(b);
	if (x->rc < 0)
		shutdown(f->peer, SHUT_RDWR); /* ends the sink */
	finish(t);
	if (x->rc < 0) { /* the test says why; close returns it too */
		weft_stream_close(f->s);
		f->s = NULL;
	}
}

/* As test_write_timeout_spares_slow_reader: a run whose reader was kept
 * off the CPU for half the limit or more says nothing and runs again. */
static void test_write_zc_spares_slow_reader(void **state)
{
	(void)state;
	weft_stream_config cfg = timeout_cfg(300 * MS);
	struct zc_slow_rec x;
	for (int run = 0; run < 3; run++) {
		x = (struct zc_slow_rec){ 0 };
		run_fx_tcp(&cfg, zc_slow_body, &x);
		if (x.rc >= 0 || x.k.max_gap_ns < 150 * MS)
			break;
		print_message("the reader was kept off the CPU for %.0f ms: again\n",
			      x.k.max_gap_ns / 1e6);
	}
	print_message("slow reader took 2 MiB of write_zc in %.0f ms (%zd), receives at most "
		      "%.0f ms apart\n", x.ns / 1e6, x.rc, x.k.max_gap_ns / 1e6);
	assert_int_equal(x.rc, 2 << 20);
	assert_true(x.ns > 350 * MS); /* longer than the limit */
	assert_int_equal(x.k.got, 2u << 20);
	assert_int_equal(x.k.bad, 0);
}

/* The peer resets: write_zc fails with the send error, sticky. */
struct zc_reset_rec {
	ssize_t rc, again;
	int close_rc;
};

static void zc_reset_body(struct fx *f)
{
	struct zc_reset_rec *x = f->rec;
	struct linger lg = { 1, 0 };
	setsockopt(f->peer, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(f->peer); /* RST */
	f->peer = -1;
	weft_sleep_ms(5);
	uint8_t *b = pat_buf(0, ZC_BIG);
	x->rc = -ENOMEM;
	for (int i = 0; b && i < 10; i++) { /* the first may land before the RST is seen */
		x->rc = weft_stream_write_zc(f->s, b, ZC_BIG);
		if (x->rc < 0)
			break;
		x->rc = weft_stream_flush(f->s);
		if (x->rc < 0)
			break;
	}
	free(b);
	x->again = weft_stream_write(f->s, "x", 1);
	x->close_rc = weft_stream_close(f->s);
	f->s = NULL;
}

static void test_write_zc_peer_reset(void **state)
{
	(void)state;
	struct zc_reset_rec x = { 0 };
	run_fx_tcp(NULL, zc_reset_body, &x);
	assert_true(x.rc == -ECONNRESET || x.rc == -EPIPE);
	assert_int_equal(x.again, x.rc);
	assert_int_equal(x.close_rc, x.rc);
}

/* ---------------------------------------------------------------------- */
/* concurrency                                                             */
/* ---------------------------------------------------------------------- */

/* Each read call once, where each must be refused: their returns. */
struct read_calls {
	ssize_t read, exact, line, until, fill;
};

static void try_reads(weft_stream *s, struct read_calls *c)
{
	char b[4];
	const char *p;
	c->read = weft_stream_read(s, b, sizeof b);
	c->exact = weft_stream_read_exact(s, b, 2);
	c->line = weft_stream_read_line(s, &p);
	c->until = weft_stream_read_until(s, "x", 1, &p);
	c->fill = weft_stream_fill(s);
}

static void assert_reads_refused(const struct read_calls *c, ssize_t err)
{
	assert_int_equal(c->read, err);
	assert_int_equal(c->exact, err);
	assert_int_equal(c->line, err);
	assert_int_equal(c->until, err);
	assert_int_equal(c->fill, err);
}

struct busy_rec {
	struct fx *f;
	int pin;
	ssize_t first;
	struct read_calls second; /* while the first waits */
	char buf[8];
};

static void *first_reader(void *arg)
{
	struct busy_rec *x = arg;
	x->first = weft_stream_read(x->f->s, x->buf, sizeof x->buf);
	return NULL;
}

static void busy_body(struct fx *f)
{
	struct busy_rec *x = f->rec;
	x->f = f;
	weft_task *t = go_pinned(first_reader, x, x->pin);
	/* Until its read call is under way (a fixed sleep was not enough
	 * under a loaded TSan run: the second read then waited for data
	 * that is only sent after it). */
	for (int i = 0; i < 10000 && !weft__stream_reading(f->s); i++)
		weft_sleep_ms(1);
	try_reads(f->s, &x->second);
	send(f->peer, "data", 4, 0);
	finish(t);
}

static void check_busy(const struct busy_rec *r)
{
	struct busy_rec x = *r;
	assert_reads_refused(&x.second, -EBUSY);
	assert_int_equal(x.first, 4);
	assert_memory_equal(x.buf, "data", 4);
}

/* Both readers on one loop. */
static void test_two_readers_ebusy(void **state)
{
	(void)state;
	struct busy_rec x = { .pin = WEFT_PIN_CURRENT };
	run_fx_loops(1, NULL, busy_body, &x);
	check_busy(&x);
}

/* Regression: the one-reader flag is atomic, so readers on two loops
 * cannot both get past the -EBUSY check (TSan saw the old plain bool). */
static void test_two_readers_ebusy_across_loops(void **state)
{
	(void)state;
	for (int i = 0; i < 10; i++) {
		struct busy_rec x = { .pin = 1 };
		run_fx_loops(2, NULL, busy_body, &x);
		check_busy(&x);
	}
}

/*
 * One stream read from both loops in turn while its receives go short.
 * On epoll a receive skips the attempt when the loop's latch says the
 * input ran dry there and no input edge came since (io/epoll.c,
 * recv_skips); each loop has its own set and its own latch for the fd, so
 * a reader that hops sees a latch the other loop's reads did not move.  A
 * foreign thread writes bursts of 1 byte to 12 KiB and waits until each is
 * read whole before the next, so a receive that waits for an edge that
 * never comes (no more bytes follow) fails by the read timeout instead of
 * catching up with the next burst.  Readers are short tasks pinned to loop
 * 0 and 1 alternately, one to three reads of 1 byte to 6 KiB each; receives
 * are at most 4 KiB (max_read), so bursts leave bytes behind full ones.
 */
struct hop {
	weft_stream *s;
	int peer;
	unsigned bursts;
	_Atomic uint64_t written, consumed;
	_Atomic bool stop;
	uint64_t bad, hops, short_reads;
	ssize_t err; /* the failed read, if any */
	bool eof;
	unsigned seed; /* rand_r's, for the readers */
	uint8_t buf[6144];
};

static void *hop_writer(void *arg)
{
	struct hop *h = arg;
	unsigned seed = 12345;
	uint8_t *buf = malloc(12288);
	uint64_t off = 0;
	for (unsigned b = 0; buf && b < h->bursts && !atomic_load(&h->stop); b++) {
		size_t n = 1 + (unsigned)rand_r(&seed) % 12288;
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(off + i);
		for (size_t done = 0; done < n;) {
			ssize_t w = write(h->peer, buf + done, n - done);
			if (w <= 0)
				goto out;
			done += (size_t)w;
		}
		off += n;
		atomic_store(&h->written, off);
		while (atomic_load(&h->consumed) < off && !atomic_load(&h->stop))
			nanosleep(&(struct timespec){ .tv_nsec = 20000 }, NULL);
	}
out:
	free(buf);
	shutdown(h->peer, SHUT_WR); /* the readers see the end */
	return NULL;
}

static void *hop_reader(void *arg)
{
	struct hop *h = arg;
	unsigned reads = 1 + (unsigned)rand_r(&h->seed) % 3;
	for (unsigned i = 0; i < reads; i++) {
		size_t len = 1 + (unsigned)rand_r(&h->seed) % sizeof h->buf;
		ssize_t r = weft_stream_read(h->s, h->buf, len);
		if (r <= 0) {
			h->err = r;
			h->eof = r == 0;
			return NULL;
		}
		uint64_t off = atomic_load(&h->consumed);
		for (ssize_t j = 0; j < r; j++)
			h->bad += h->buf[j] != pat(off + (uint64_t)j);
		h->short_reads += (size_t)r < len;
		atomic_store(&h->consumed, off + (uint64_t)r);
	}
	return NULL;
}

static void *hop_main(void *arg)
{
	struct hop *h = arg;
	int sv[2];
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.max_read = 4096;
	cfg.read_timeout_ns = 5000 * MS; /* a lost edge: -ETIMEDOUT, not a hang */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    weft_stream_open(&h->s, sv[0], &cfg) < 0) {
		h->err = -EBADF;
		return NULL;
	}
	h->peer = sv[1];
	pthread_t th;
	if (pthread_create(&th, NULL, hop_writer, h) != 0) {
		h->err = -EAGAIN;
		close(sv[1]);
		weft_stream_close(h->s);
		return NULL;
	}
	while (!h->eof && !h->err)
		finish(go_pinned(hop_reader, h, (int)(h->hops++ & 1)));
	atomic_store(&h->stop, true);
	pthread_join(th, NULL);
	close(sv[1]);
	weft_stream_close(h->s);
	return NULL;
}

static void test_read_hops_loops_while_input_runs_dry(void **state)
{
	(void)state;
	struct hop h = { .bursts = WEFT_TEST_SANITIZED ? 400 : 2000, .seed = 777 };
	uint64_t t0 = weft_now_ns();
	weft_test_run_loops(2, hop_main, &h);
	print_message("%u bursts, %llu bytes in %llu hops (%llu short reads), %.0f ms\n",
		      h.bursts, (unsigned long long)atomic_load(&h.consumed),
		      (unsigned long long)h.hops, (unsigned long long)h.short_reads,
		      (weft_now_ns() - t0) / 1e6);
	assert_int_equal(h.err, 0);
	assert_true(h.eof);
	assert_int_equal(atomic_load(&h.consumed), atomic_load(&h.written));
	assert_int_equal(h.bad, 0);
	assert_true(h.short_reads > h.bursts / 4);
}

/*
 * Writers on both loops share one stream; each message is a 8-byte header
 * (writer, seq, length) and a body of one repeated byte.  The peer parses
 * the stream: a message split by another writer's bytes shows up as a bad
 * header or body.
 */
enum { WRITERS = 8 };

struct mw {
	weft_stream *s;
	int id;
	unsigned msgs;
	int err;
	int mode; /* MW_WRITE, ... */
	unsigned busy; /* reserve found another's open: -EBUSY, retried */
};

enum { MW_WRITE, MW_WRITEV, MW_RESERVE, MW_ZC, MW_MODES };

struct mw_rec {
	bool modes; /* writers use write, writev, reserve/commit, write_zc */
	struct mw w[WRITERS];
	unsigned seen[WRITERS];
	unsigned bad, order_bad;
	size_t bytes;
	int peer_err;
	int peer;
};

/* Message seq of writer id (8 + len bytes) into msg. */
static void mw_fill(uint8_t *msg, int id, unsigned seq, uint16_t len)
{
	msg[0] = 0xA5;
	msg[1] = (uint8_t)id;
	memcpy(msg + 2, &seq, 4);
	memcpy(msg + 6, &len, 2);
	memset(msg + 8, (int)(uint8_t)(id * 31 + seq), len);
}

/* MW_WRITEV: a batch of n messages (from seq), each as 3 iovecs (header
 * halves, body), in one weft_stream_writev: n = 400 makes 1200 > IOV_MAX. */
static ssize_t mw_writev(struct mw *w, unsigned seq, unsigned n, uint32_t *rng)
{
	uint8_t *msgs = malloc((size_t)n * (8 + 6000));
	struct iovec *iov = malloc((size_t)n * 3 * sizeof *iov);
	ssize_t r = -ENOMEM;
	if (msgs && iov) {
		for (unsigned i = 0; i < n; i++) {
			*rng ^= *rng << 13;
			*rng ^= *rng >> 17;
			*rng ^= *rng << 5;
			uint16_t len = (uint16_t)(1 + *rng % 6000);
			uint8_t *m = msgs + (size_t)i * (8 + 6000);
			mw_fill(m, w->id, seq + i, len);
			iov[3 * i] = (struct iovec){ m, 3 };
			iov[3 * i + 1] = (struct iovec){ m + 3, 5 };
			iov[3 * i + 2] = (struct iovec){ m + 8, len };
		}
		r = weft_stream_writev(w->s, iov, (int)(3 * n));
	}
	free(msgs);
	free(iov);
	return r;
}

/* MW_RESERVE: build the message in place; another writer's open
 * reservation (-EBUSY) is waited out by yielding. */
static ssize_t mw_reserve(struct mw *w, unsigned seq, uint16_t len)
{
	void *p;
	int r;
	while ((r = weft_stream_reserve(w->s, 8u + 6000u, &p)) == -EBUSY) {
		w->busy++;
		weft_yield();
	}
	if (r < 0)
		return r;
	mw_fill(p, w->id, seq, len);
	if (seq % 3 == 0)
		weft_yield(); /* others write behind the open reservation */
	r = weft_stream_commit(w->s, 8u + len);
	return r < 0 ? r : 8 + len;
}

static void *mw_writer(void *arg)
{
	struct mw *w = arg;
	uint32_t rng = 77u * (uint32_t)(w->id + 1);
	uint8_t msg[8 + 6000];
	for (unsigned seq = 0; seq < w->msgs; seq++) {
		ssize_t r;
		if (w->mode == MW_WRITEV) {
			unsigned n = seq % 50 == 0 && seq + 400 <= w->msgs ? 400 : 1;
			r = mw_writev(w, seq, n, &rng);
			seq += n - 1;
			goto written;
		}
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		uint16_t len = (uint16_t)(1 + rng % 6000);
		if (w->mode == MW_RESERVE) {
			r = mw_reserve(w, seq, len);
			goto written;
		}
		mw_fill(msg, w->id, seq, len);
		r = w->mode == MW_ZC ? weft_stream_write_zc(w->s, msg, 8u + len)
				     : weft_stream_write(w->s, msg, 8u + len);
		if (w->mode == MW_ZC)
			memset(msg, 0xEE, sizeof msg); /* the kernel is done with it */
	written:
		if (r < 0 || (seq % 8 == 0 && (r = weft_stream_drain(w->s)) < 0)) {
			w->err = (int)r;
			return NULL;
		}
		if (rng % 4 == 0)
			weft_yield();
	}
	return NULL;
}

/* Parse messages from the peer until EOF. */
static void *mw_parser(void *arg)
{
	struct mw_rec *x = arg;
	weft_stream *in;
	if (weft_stream_open(&in, x->peer, NULL) < 0) {
		x->peer_err = -1;
		return NULL;
	}
	uint8_t msg[8 + 6000];
	for (;;) {
		ssize_t r = weft_stream_read_exact(in, msg, 8);
		if (r != 8) {
			bool clean = r == -ENODATA && weft_stream_buffered(in, NULL) == 0;
			x->peer_err = clean ? 0 : (int)r;
			break;
		}
		uint32_t seq;
		uint16_t len;
		memcpy(&seq, msg + 2, 4);
		memcpy(&len, msg + 6, 2);
		if (msg[0] != 0xA5 || msg[1] >= WRITERS || len == 0 || len > 6000) {
			x->bad++;
			break; /* lost framing: nothing after is meaningful */
		}
		if ((r = weft_stream_read_exact(in, msg + 8, len)) != len) {
			x->bad++;
			break;
		}
		for (unsigned i = 0; i < len; i++)
			if (msg[8 + i] != (uint8_t)(msg[1] * 31 + seq)) {
				x->bad++;
				break;
			}
		if (seq != x->seen[msg[1]])
			x->order_bad++;
		x->seen[msg[1]] = seq + 1;
		x->bytes += 8u + len;
	}
	weft_stream_close(in);
	return NULL;
}

static void mw_body(struct fx *f)
{
	struct mw_rec *x = f->rec;
	x->peer = f->peer;
	f->peer = -1; /* the parser's stream owns it */
	weft_task *parser = go_pinned(mw_parser, x, WEFT_PIN_NONE);
	weft_task *t[WRITERS];
	unsigned msgs = WEFT_TEST_SANITIZED ? 300 : 2000;
	for (int i = 0; i < WRITERS; i++) {
		x->w[i] = (struct mw){ f->s, i, msgs, 0, x->modes ? i % MW_MODES : MW_WRITE, 0 };
		t[i] = go_pinned(mw_writer, &x->w[i], i % 2); /* both loops */
	}
	for (int i = 0; i < WRITERS; i++)
		finish(t[i]);
	weft_stream_close(f->s); /* flushes; the parser then sees EOF */
	f->s = NULL;
	finish(parser);
}

static void test_writes_from_two_loops_never_interleave(void **state)
{
	(void)state;
	struct mw_rec x = { 0 };
	run_fx(NULL, mw_body, &x);
	assert_int_equal(x.peer_err, 0);
	assert_int_equal(x.bad, 0);
	assert_int_equal(x.order_bad, 0);
	for (int i = 0; i < WRITERS; i++) {
		assert_int_equal(x.w[i].err, 0);
		assert_int_equal(x.seen[i], x.w[i].msgs);
	}
	print_message("%zu KiB in %u messages, none split\n", x.bytes >> 10,
		      WRITERS * x.w[0].msgs);
}

/* The same with every kind of write at once: write, writev (batches of
 * 1200 iovecs), reserve/commit (yielding while open), write_zc (a low
 * threshold: over TCP on io_uring these are zero-copy sends holding the
 * send slot while the others queue behind). */
static void mw_modes_check(bool tcp)
{
	struct mw_rec x = { .modes = true };
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.zc_threshold = 1024;
	if (tcp)
		run_fx_tcp(&cfg, mw_body, &x);
	else
		run_fx(&cfg, mw_body, &x);
	assert_int_equal(x.peer_err, 0);
	assert_int_equal(x.bad, 0);
	assert_int_equal(x.order_bad, 0);
	unsigned busy = 0;
	for (int i = 0; i < WRITERS; i++) {
		assert_int_equal(x.w[i].err, 0);
		assert_int_equal(x.seen[i], x.w[i].msgs);
		busy += x.w[i].busy;
	}
	print_message("%zu KiB, none split; reserve found another open %u times\n",
		      x.bytes >> 10, busy);
}

static void test_all_write_kinds_never_interleave(void **state)
{
	(void)state;
	mw_modes_check(false);
}

static void test_all_write_kinds_never_interleave_tcp(void **state)
{
	(void)state;
	mw_modes_check(true);
}

/* ---------------------------------------------------------------------- */
/* timeouts                                                                */
/* ---------------------------------------------------------------------- */

struct rto_rec {
	ssize_t idle_rc;
	uint64_t idle_ns;
	ssize_t after;
	char buf[8];
	ssize_t dl_rc;
	uint64_t dl_ns;
	int dl_set, dl_clear;
	ssize_t after_clear;
	const char *line;
	char line_text[32];
	int dl_bad;
};

static void rto_body(struct fx *f)
{
	struct rto_rec *x = f->rec;
	/* read_timeout_ns (60 ms): an idle receive fails. */
	uint64_t t0 = weft_now_ns();
	x->idle_rc = weft_stream_read(f->s, x->buf, sizeof x->buf);
	x->idle_ns = weft_now_ns() - t0;
	send(f->peer, "late", 4, 0);
	x->after = weft_stream_read(f->s, x->buf, sizeof x->buf);
	/* A deadline 150 ms out; the peer drips a byte every 20 ms, so the
	 * idle timeout never fires, but the deadline does. */
	static const char *const parts[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
					     "k", "l", "m", "n", "\n", NULL };
	struct drip d;
	weft_task *t = drip(&d, f->peer, parts, 20, false);
	t0 = weft_now_ns();
	x->dl_set = weft_stream_read_deadline(f->s, t0 + 150 * MS);
	const char *p;
	x->dl_rc = weft_stream_read_line(f->s, &p);
	x->dl_ns = weft_now_ns() - t0;
	x->dl_clear = weft_stream_read_deadline(f->s, WEFT_FOREVER);
	x->after_clear = weft_stream_read_line(f->s, &p);
	if (x->after_clear > 0)
		snprintf(x->line_text, sizeof x->line_text, "%.*s", (int)x->after_clear, p);
	finish(t);
	x->dl_bad = weft_stream_read_deadline(NULL, 1);
}

static void test_read_timeout_and_deadline(void **state)
{
	(void)state;
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.read_timeout_ns = 60 * MS;
	struct rto_rec x = { 0 };
	run_fx(&cfg, rto_body, &x);
	assert_int_equal(x.idle_rc, -ETIMEDOUT);
	assert_true(x.idle_ns >= 55 * MS && x.idle_ns < 1000 * MS);
	assert_int_equal(x.after, 4);
	assert_memory_equal(x.buf, "late", 4);
	assert_int_equal(x.dl_set, 0);
	assert_int_equal(x.dl_rc, -ETIMEDOUT);
	assert_true(x.dl_ns >= 145 * MS && x.dl_ns < 1000 * MS);
	assert_int_equal(x.dl_clear, 0);
	/* Nothing lost: the whole line arrives after the deadline is gone. */
	assert_int_equal(x.after_clear, 15);
	assert_string_equal(x.line_text, "abcdefghijklmn\n");
	assert_int_equal(x.dl_bad, -EINVAL);
}

/* ---------------------------------------------------------------------- */
/* configuration and misuse                                                */
/* ---------------------------------------------------------------------- */

struct keep_rec {
	int close_rc, fd_open_after, fd;
};

static void *keep_main(void *arg)
{
	struct keep_rec *x = arg;
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.keep_fd = true;
	weft_stream *s;
	if (weft_stream_open(&s, sv[0], &cfg) < 0)
		return NULL;
	weft_stream_write(s, "kept", 4);
	x->close_rc = weft_stream_close(s);
	x->fd_open_after = fcntl(sv[0], F_GETFD) >= 0;
	char b[8];
	x->fd = (int)recv(sv[1], b, sizeof b, MSG_DONTWAIT);
	close(sv[0]);
	close(sv[1]);
	return NULL;
}

static void *close_stream(void *arg)
{
	return P(weft_stream_close(arg));
}

static void test_config_validation_and_misuse(void **state)
{
	(void)state;
	weft_stream *s = NULL;
	weft_stream_config cfg;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(weft_stream_open(&s, -1, NULL), -EINVAL);
	assert_int_equal(weft_stream_open(NULL, sv[0], NULL), -EINVAL);
	weft_stream_config_init(&cfg);
	assert_int_equal(cfg.limit, 64 * 1024);
	assert_int_equal(cfg.high_water, 64 * 1024);
	assert_int_equal(cfg.low_water, 16 * 1024);
	assert_int_equal(cfg.max_read, 256 * 1024);
	cfg.low_water = cfg.high_water + 1;
	assert_int_equal(weft_stream_open(&s, sv[0], &cfg), -EINVAL);
	weft_stream_config_init(&cfg);
	cfg.limit = 0;
	assert_int_equal(weft_stream_open(&s, sv[0], &cfg), -EINVAL);
	weft_stream_config_init(&cfg);
	cfg.reserved[0] = 1;
	assert_int_equal(weft_stream_open(&s, sv[0], &cfg), -EINVAL);
	assert_null(s);

	/* NULL stream */
	assert_int_equal(weft_stream_close(NULL), -EINVAL);
	assert_int_equal(weft_stream_fd(NULL), -EINVAL);
	assert_int_equal(weft_stream_consume(NULL, 0), -EINVAL);
	assert_int_equal(weft_stream_write(NULL, "x", 1), -EINVAL);
	assert_int_equal(weft_stream_drain(NULL), -EINVAL);
	assert_int_equal(weft_stream_flush(NULL), -EINVAL);

	/* Open is allowed anywhere; the rest is task-only. */
	assert_int_equal(weft_stream_open(&s, sv[0], NULL), 0);
	assert_int_equal(weft_stream_fd(s), sv[0]);
	char b[4];
	const char *p;
	assert_int_equal(weft_stream_read(s, b, sizeof b), -EPERM);
	assert_int_equal(weft_stream_read_line(s, &p), -EPERM);
	assert_int_equal(weft_stream_write(s, "x", 1), -EPERM);
	assert_int_equal(weft_stream_drain(s), -EPERM);
	assert_int_equal(weft_stream_flush(s), -EPERM);
	assert_int_equal(weft_stream_close(s), -EPERM); /* not freed */
	assert_int_equal(weft_stream_pending(s), 0);
	/* Close it from a task (frees it; ASan checks). */
	void *r = weft_test_run_loops(1, close_stream, s);
	assert_int_equal((int)(intptr_t)r, 0);
	assert_true(fcntl(sv[0], F_GETFD) < 0); /* closed with the stream */
	close(sv[1]);

	struct keep_rec k = { 0 };
	weft_test_run_loops(2, keep_main, &k);
	assert_int_equal(k.close_rc, 0);
	assert_true(k.fd_open_after);
	assert_int_equal(k.fd, 4);
}

/* A stream over a pipe: writes with weft_write, shutdown only flushes,
 * close gives the reader EOF. */
struct pipe_rec {
	int setup;
	ssize_t w, line, eof, shut;
	char text[16];
	int close_w, close_r;
};

static void *pipe_main(void *arg)
{
	struct pipe_rec *x = arg;
	int p[2];
	weft_stream *r, *w;
	if (pipe2(p, O_CLOEXEC) < 0 || weft_stream_open(&r, p[0], NULL) < 0 ||
	    weft_stream_open(&w, p[1], NULL) < 0) {
		x->setup = -1;
		return NULL;
	}
	x->w = weft_stream_write(w, "over a pipe\n", 12);
	x->shut = weft_stream_shutdown(w);
	const char *l;
	x->line = weft_stream_read_line(r, &l);
	if (x->line > 0)
		snprintf(x->text, sizeof x->text, "%.*s", (int)x->line, l);
	x->close_w = weft_stream_close(w);
	x->eof = weft_stream_read_line(r, &l);
	x->close_r = weft_stream_close(r);
	return NULL;
}

static void test_stream_over_pipe(void **state)
{
	(void)state;
	struct pipe_rec x = { 0 };
	weft_test_run_loops(2, pipe_main, &x);
	assert_int_equal(x.setup, 0);
	assert_int_equal(x.w, 12);
	assert_int_equal(x.shut, 0);
	assert_int_equal(x.line, 12);
	assert_string_equal(x.text, "over a pipe\n");
	assert_int_equal(x.close_w, 0);
	assert_int_equal(x.eof, 0);
	assert_int_equal(x.close_r, 0);
}

/* A writer cancelled while it waits in drain loses nothing it queued. */
struct cdrain_rec {
	struct fx *f;
	ssize_t wrote;
	int drain_rc;
	struct sink k;
	int close_rc;
};

static void *cdrain_writer(void *arg)
{
	struct cdrain_rec *x = arg;
	x->wrote = write_pat(x->f->s, 0, 512 * 1024);
	x->drain_rc = weft_stream_drain(x->f->s);
	return NULL;
}

static void cdrain_body(struct fx *f)
{
	struct cdrain_rec *x = f->rec;
	x->f = f;
	weft_task *w = go_pinned(cdrain_writer, x, 1);
	weft_sleep_ms(30); /* the peer does not read yet: it waits in drain */
	weft_task_cancel(w);
	finish(w);
	x->k = (struct sink){ .fd = f->peer, .total = 512 * 1024 };
	weft_task *t = go_pinned(sink_main, &x->k, WEFT_PIN_NONE);
	x->close_rc = weft_stream_close(f->s);
	f->s = NULL;
	finish(t);
}

static void test_cancel_in_drain_loses_nothing(void **state)
{
	(void)state;
	struct cdrain_rec x = { 0 };
	run_fx(NULL, cdrain_body, &x);
	assert_int_equal(x.wrote, 512 * 1024);
	assert_int_equal(x.drain_rc, -ECANCELED);
	assert_int_equal(x.close_rc, 0);
	assert_int_equal(x.k.got, 512 * 1024);
	assert_int_equal(x.k.bad, 0);
}

/* The minimal reproduction of the find_delim bug above (build/asan:
 * "io/stream.c: runtime error: null pointer passed as argument 1"). */
struct fresh_rec {
	ssize_t line, until, eof_line;
	char text[16];
};

static void fresh_body(struct fx *f)
{
	struct fresh_rec *x = f->rec;
	const char *p;
	send(f->peer, "one\n", 4, 0);
	x->line = weft_stream_read_line(f->s, &p);
	if (x->line > 0)
		snprintf(x->text, sizeof x->text, "%.*s", (int)x->line, p);
	shutdown(f->peer, SHUT_WR);
	x->eof_line = weft_stream_read_line(f->s, &p);
}

static void fresh_until_body(struct fx *f)
{
	struct fresh_rec *x = f->rec;
	const char *p;
	shutdown(f->peer, SHUT_WR);
	x->until = weft_stream_read_until(f->s, "\r\n", 2, &p);
}

static void test_read_until_on_fresh_stream(void **state)
{
	(void)state;
	struct fresh_rec x = { 0 };
	run_fx(NULL, fresh_body, &x);
	assert_int_equal(x.line, 4);
	assert_string_equal(x.text, "one\n");
	assert_int_equal(x.eof_line, 0);
	run_fx(NULL, fresh_until_body, &x);
	assert_int_equal(x.until, 0);
}

/* ---------------------------------------------------------------------- */
/* weft_stream_end_input and weft_stream_fill_to                           */
/* ---------------------------------------------------------------------- */

struct endin {
	int how;              /* WEFT_END_* */
	bool from_thread;     /* end from a foreign thread, not a task */
	const char *partial;  /* sent before the end (NULL: nothing) */
	const char *rest;     /* sent after it */
	ssize_t first, second, third;
	char line[64];
	size_t buffered_after;
	uint64_t ended_after_ns;
	int einval[2];
};

struct ender {
	weft_stream *s;
	int how;
};

static void *end_thread(void *arg)
{
	struct ender *e = arg;
	usleep(50 * 1000);
	weft_stream_end_input(e->s, e->how);
	return NULL;
}

static void *end_task(void *arg)
{
	struct ender *e = arg;
	weft_sleep_ms(50);
	weft_stream_end_input(e->s, e->how);
	return NULL;
}

static void *send_rest(void *arg)
{
	struct fx *f = arg;
	struct endin *x = f->rec;
	weft_sleep_ms(150); /* well after the end */
	weft_send_all(f->peer, x->rest, strlen(x->rest), 0, NULL);
	return NULL;
}

/* The reader waits in read_line; 50 ms later input is ended from another
 * task (on any loop) or a foreign thread. */
static void endin_body(struct fx *f)
{
	struct endin *x = f->rec;
	x->einval[0] = weft_stream_end_input(NULL, WEFT_END_IDLE);
	x->einval[1] = weft_stream_end_input(f->s, 3);
	if (x->partial)
		weft_send_all(f->peer, x->partial, strlen(x->partial), 0, NULL);
	struct ender e = { f->s, x->how };
	pthread_t th;
	weft_task *t = NULL;
	if (x->from_thread)
		pthread_create(&th, NULL, end_thread, &e);
	else
		t = go_pinned(end_task, &e, WEFT_PIN_NONE);
	weft_task *r = x->rest ? go_pinned(send_rest, f, WEFT_PIN_NONE) : NULL;
	uint64_t t0 = weft_now_ns();
	const char *p;
	x->first = weft_stream_read_line(f->s, &p);
	x->ended_after_ns = weft_now_ns() - t0;
	if (x->first > 0)
		snprintf(x->line, sizeof x->line, "%.*s", (int)x->first, p);
	x->buffered_after = weft_stream_buffered(f->s, &p);
	x->second = weft_stream_read_line(f->s, &p);
	x->third = weft_stream_fill(f->s);
	if (x->from_thread)
		pthread_join(th, NULL);
	else
		finish(t);
	if (r)
		finish(r);
}

/* Idle: a reader waiting with nothing buffered is interrupted at once;
 * from a task and from a foreign thread. */
static void test_end_input_idle_interrupts_waiting_reader(void **state)
{
	(void)state;
	for (int th = 0; th < 2; th++) {
		struct endin x = { .how = WEFT_END_IDLE, .from_thread = th };
		run_fx(NULL, endin_body, &x);
		print_message("ended after %.1f ms (%s)\n", x.ended_after_ns / 1e6,
			      th ? "thread" : "task");
		assert_int_equal(x.einval[0], -EINVAL);
		assert_int_equal(x.einval[1], -EINVAL);
		assert_int_equal(x.first, -ESHUTDOWN);
		assert_true(x.ended_after_ns >= 40 * MS && x.ended_after_ns < 2000 * MS);
		assert_int_equal(x.second, -ESHUTDOWN); /* sticky */
		assert_int_equal(x.third, -ESHUTDOWN);
	}
}

/* Idle, with half a line buffered: the read goes on and gets its line;
 * the next one, with nothing buffered, ends. */
static void test_end_input_idle_lets_unit_finish(void **state)
{
	(void)state;
	struct endin x = { .how = WEFT_END_IDLE, .partial = "hal", .rest = "f\n" };
	run_fx(NULL, endin_body, &x);
	assert_int_equal(x.first, 5);
	assert_string_equal(x.line, "half\n");
	assert_true(x.ended_after_ns >= 100 * MS); /* it waited for the rest */
	assert_int_equal(x.second, -ESHUTDOWN);
}

/* Now: the read waiting for the rest of its line is interrupted, and the
 * half line stays buffered (nothing lost). */
static void test_end_input_now_keeps_buffered_bytes(void **state)
{
	(void)state;
	for (int th = 0; th < 2; th++) {
		struct endin x = { .how = WEFT_END_NOW, .from_thread = th, .partial = "hal" };
		run_fx(NULL, endin_body, &x);
		assert_int_equal(x.first, -ESHUTDOWN);
		assert_true(x.ended_after_ns < 2000 * MS);
		assert_int_equal(x.buffered_after, 3);
		assert_int_equal(x.second, -ESHUTDOWN);
	}
}

/* Ended before any read: what is already there is still read. */
struct endin_pre {
	ssize_t r1, r2;
	char buf[16];
};

static void endin_pre_body(struct fx *f)
{
	struct endin_pre *x = f->rec;
	weft_send_all(f->peer, "abc", 3, 0, NULL);
	weft_sleep_ms(20);
	weft_stream_fill(f->s); /* buffered now */
	weft_stream_end_input(f->s, WEFT_END_NOW);
	x->r1 = weft_stream_read(f->s, x->buf, sizeof x->buf);
	x->r2 = weft_stream_read(f->s, x->buf, sizeof x->buf);
}

static void test_end_input_reads_what_is_buffered(void **state)
{
	(void)state;
	struct endin_pre x = { 0 };
	run_fx(NULL, endin_pre_body, &x);
	assert_int_equal(x.r1, 3);
	assert_int_equal(x.r2, -ESHUTDOWN);
}

/* The race: a line arrives as input is ended.  Whatever the reader gets,
 * no received byte is lost: the line was read, or it is still buffered,
 * or it is still in the socket. */
struct endin_race {
	int rounds, got_line, got_end, lost, bad;
};

static void *race_ender(void *arg)
{
	struct ender *e = arg;
	weft_stream_end_input(e->s, e->how);
	return NULL;
}

static void *race_round(void *arg)
{
	struct endin_race *x = arg;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	weft_stream *s;
	if (weft_stream_open(&s, sv[0], default_cfg) < 0) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	struct ender e = { s, WEFT_END_IDLE };
	weft_task *t = go_pinned(race_ender, &e, WEFT_PIN_NONE);
	(void)!write(sv[1], "line\n", 5);
	const char *p;
	ssize_t r = weft_stream_read_line(s, &p);
	finish(t);
	size_t seen = 0;
	if (r == 5) {
		x->got_line++;
		seen = 5;
	} else if (r == -ESHUTDOWN) {
		x->got_end++;
		weft_sleep_ms(2); /* a multishot's completion may be on its way */
		seen = weft_stream_buffered(s, &p);
		char tmp[8];
		ssize_t k = recv(sv[0], tmp, sizeof tmp, MSG_DONTWAIT);
		seen += k > 0 ? (size_t)k : 0;
		/* multishot: received after the end, still pending */
		if (!seen && weft__stream_held(s))
			seen = 5;
	} else {
		x->bad++;
	}
	if (seen != 5)
		x->lost++;
	weft_stream_close(s);
	close(sv[1]);
	x->rounds++;
	return NULL;
}

static void *race_main(void *arg)
{
	struct endin_race *x = arg;
	for (int i = 0; i < (WEFT_TEST_SANITIZED ? 300 : 2000); i++)
		race_round(x);
	return NULL;
}

static void test_end_input_race_loses_nothing(void **state)
{
	(void)state;
	struct endin_race x = { 0 };
	weft_test_run_loops(2, race_main, &x);
	print_message("%d rounds: %d lines, %d ended\n", x.rounds, x.got_line, x.got_end);
	assert_true(x.rounds >= 300);
	assert_int_equal(x.bad, 0);
	assert_int_equal(x.lost, 0);
}

/* fill_to: a unit longer than the limit, for this read only; the buffer
 * grows as bytes arrive, not up front; -ENODATA at end of input. */
struct fillto {
	ssize_t big, line_after, short_eof;
	size_t buffered;
	int mismatch;
	size_t held_claim; /* memory while waiting on a claimed 64 MiB */
	ssize_t claim_rc;
};

static void *fillto_sender(void *arg)
{
	struct fx *f = arg;
	static char chunk[100 * 1024];
	for (size_t i = 0; i < sizeof chunk; i++)
		chunk[i] = (char)pat(i);
	for (size_t off = 0; off < sizeof chunk; off += 10 * 1024) {
		weft_send_all(f->peer, chunk + off, 10 * 1024, 0, NULL);
		weft_sleep_ms(1);
	}
	weft_send_all(f->peer, "x\n", 2, 0, NULL);
	return NULL;
}

static void *claim_watch(void *arg)
{
	struct fx *f = arg;
	struct fillto *x = f->rec;
	weft_sleep_ms(100);
	x->held_claim = weft__stream_held(f->s); /* racy read, a snapshot */
	shutdown(f->peer, SHUT_WR);
	return NULL;
}

static void fillto_body(struct fx *f)
{
	struct fillto *x = f->rec;
	weft_task *t = go_pinned(fillto_sender, f, WEFT_PIN_NONE);
	x->big = weft_stream_fill_to(f->s, 100 * 1024);
	const char *p;
	x->buffered = weft_stream_buffered(f->s, &p);
	for (size_t i = 0; x->big > 0 && i < 100 * 1024; i++)
		x->mismatch += p[i] != (char)pat(i);
	if (x->big > 0)
		weft_stream_consume(f->s, 100 * 1024);
	x->line_after = weft_stream_read_line(f->s, &p);
	finish(t);
	/* A peer that claims much and sends 10 bytes, then ends. */
	weft_send_all(f->peer, "0123456789", 10, 0, NULL);
	t = go_pinned(claim_watch, f, WEFT_PIN_NONE);
	x->claim_rc = weft_stream_fill_to(f->s, 64u << 20);
	finish(t);
	x->short_eof = weft_stream_buffered(f->s, &p);
}

static void test_fill_to_past_limit(void **state)
{
	(void)state;
	weft_stream_config c;
	weft_stream_config_init(&c);
	if (default_cfg)
		c = *default_cfg;
	c.limit = 1024;
	struct fillto x = { 0 };
	run_fx(&c, fillto_body, &x);
	print_message("fill_to 100 KiB: %zd buffered; waiting on a 64 MiB claim held %zu bytes\n",
		      x.big, x.held_claim);
	assert_true(x.big >= 100 * 1024);
	assert_true(x.buffered >= 100 * 1024);
	assert_int_equal(x.mismatch, 0);
	assert_int_equal(x.line_after, 2);
	assert_int_equal(x.claim_rc, -ENODATA);
	assert_int_equal(x.short_eof, 10); /* the partial unit stays */
	assert_true(x.held_claim < 256 * 1024);
}

/* ---------------------------------------------------------------------- */
/* Send `total` bytes of pat() on fd through buf (cap bytes). */
static void send_pat(int fd, size_t total, char *buf, size_t cap)
{
	for (size_t off = 0; buf && off < total;) {
		size_t n = total - off < cap ? total - off : cap;
		for (size_t i = 0; i < n; i++)
			buf[i] = (char)pat(off + i);
		if (weft_send_all(fd, buf, n, 0, NULL) < 0)
			break;
		off += n;
	}
}

/* Receives sized for throughput (issue 14): a bulk transfer's receives
 * double while they fill their buffers, up to max_read, so a reader that
 * drains the buffer each time still gets large receives; small traffic
 * brings them back to 4 KiB; and a stream waiting for input still holds
 * no buffer, whatever size it had reached. */
struct adapt_rec {
	size_t total, got, max_read, max_rsize, rsize_small, held_idle, held_max;
	uint64_t mismatches;
	ssize_t err;
	char echo[8];
};

static void *adapt_sender(void *arg)
{
	struct fx *f = arg;
	struct adapt_rec *x = f->rec;
	char *buf = malloc(256 * 1024);
	send_pat(f->peer, x->total, buf, 256 * 1024);
	free(buf);
	return NULL;
}

/* The reader lets bytes pile up now and then, as a busy one would. */
static void adapt_room(struct fx *f)
{
	int sz = 1 << 20;
	setsockopt(f->peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(weft_stream_fd(f->s), SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

static void *adapt_idle_reader(void *arg)
{
	struct fx *f = arg;
	struct adapt_rec *x = f->rec;
	ssize_t r = weft_stream_read_exact(f->s, x->echo, 4);
	if (r != 4)
		x->err = r < 0 ? r : -EIO;
	return NULL;
}

static void adapt_body(struct fx *f)
{
	struct adapt_rec *x = f->rec;
	adapt_room(f);
	weft_task *t = go_pinned(adapt_sender, f, WEFT_PIN_NONE);
	char *buf = malloc(1 << 20);
	ssize_t r = buf ? 0 : -ENOMEM;
	/* Half of it parsed in place (fill, buffered, consume: the stream's
	 * own receives), half read into a large buffer (straight into it
	 * when nothing is buffered). */
	for (unsigned n = 0; buf && x->got < x->total; n++) {
		if (n % 8 == 0)
			weft_sleep_ms(1);
		const char *p = buf;
		if (x->got < x->total / 2) {
			if (!weft_stream_buffered(f->s, NULL) && (r = weft_stream_fill(f->s)) <= 0)
				break;
			r = (ssize_t)weft_stream_buffered(f->s, &p);
			if (r > (ssize_t)(x->total / 2 - x->got))
				r = (ssize_t)(x->total / 2 - x->got);
		} else if ((r = weft_stream_read(f->s, buf, 1 << 20)) <= 0) {
			break;
		}
		for (ssize_t i = 0; i < r; i++)
			x->mismatches += p[i] != (char)pat(x->got + (size_t)i);
		if (p != buf)
			weft_stream_consume(f->s, (size_t)r);
		x->got += (size_t)r;
		if (p != buf) /* the stream's own receives */
			x->max_read = (size_t)r > x->max_read ? (size_t)r : x->max_read;
		size_t rs = weft__stream_rsize(f->s);
		x->max_rsize = rs > x->max_rsize ? rs : x->max_rsize;
	}
	finish(t);
	x->err = r < 0 ? r : 0;
	/* Waiting for input after the bulk: no buffer held. */
	weft_task *w = go_pinned(adapt_idle_reader, f, WEFT_PIN_NONE);
	weft_sleep_ms(20);
	x->held_idle = weft__stream_held(f->s); /* racy read, a snapshot */
	send(f->peer, "ping", 4, 0);
	finish(w);
	/* Small request/response traffic: the receive size comes back down. */
	for (int i = 0; i < 8 && x->err == 0; i++) {
		send(f->peer, "ping", 4, 0);
		if ((r = weft_stream_read_exact(f->s, x->echo, 4)) != 4)
			x->err = r < 0 ? r : -EIO;
	}
	x->rsize_small = weft__stream_rsize(f->s);
	free(buf);
}

static void test_receive_size_adapts(void **state)
{
	(void)state;
	for (int tcp = 0; tcp < 2; tcp++) {
		struct adapt_rec x = { .total = 16u << 20 };
		struct fx_run r = { .cfg = default_cfg, .body = adapt_body, .rec = &x, .tcp = tcp };
		weft_test_run_loops(2, fx_main, &r);
		assert_int_equal(r.open_rc, 0);
		print_message("%s: most buffered %zu, largest receive size %zu, after small traffic %zu\n",
			      tcp ? "tcp" : "unix", x.max_read, x.max_rsize, x.rsize_small);
		assert_int_equal(x.err, 0);
		assert_int_equal(x.got, x.total);
		assert_int_equal(x.mismatches, 0);
		assert_int_equal(x.max_rsize, 256 * 1024);
		assert_true(x.max_read > 64 * 1024);
		assert_int_equal(x.rsize_small, 4096);
		assert_int_equal(x.held_idle, 0);
	}
}

/* max_read bounds the receive size, and so the read buffer (reads into
 * a caller's buffer large enough for a whole receive skip it). */
static void capped_body(struct fx *f)
{
	struct adapt_rec *x = f->rec;
	adapt_room(f);
	weft_task *t = go_pinned(adapt_sender, f, WEFT_PIN_NONE);
	char *buf = malloc(1 << 20);
	ssize_t r = buf ? 0 : -ENOMEM;
	for (unsigned n = 0; buf && x->got < x->total; n++) {
		if ((r = weft_stream_read(f->s, buf, 8192)) <= 0)
			break;
		if (n % 64 == 0)
			weft_sleep_ms(1);
		size_t h = weft__stream_held(f->s);
		x->held_max = h > x->held_max ? h : x->held_max;
		x->got += (size_t)r;
		x->max_read = (size_t)r > x->max_read ? (size_t)r : x->max_read;
		size_t rs = weft__stream_rsize(f->s);
		x->max_rsize = rs > x->max_rsize ? rs : x->max_rsize;
	}
	finish(t);
	x->err = r < 0 ? r : 0;
	free(buf);
}

static void test_receive_size_max_read(void **state)
{
	(void)state;
	weft_stream_config c;
	weft_stream_config_init(&c);
	if (default_cfg)
		c = *default_cfg;
	c.max_read = 16 * 1024;
	struct adapt_rec x = { .total = 4u << 20 };
	struct fx_run r = { .cfg = &c, .body = capped_body, .rec = &x, .tcp = true };
	weft_test_run_loops(2, fx_main, &r);
	assert_int_equal(r.open_rc, 0);
	assert_int_equal(x.err, 0);
	assert_int_equal(x.got, x.total);
	assert_int_equal(x.max_rsize, 16 * 1024);
	assert_true(x.held_max <= 16 * 1024);
}

/* ---------------------------------------------------------------------- */
/* multishot receives                                                      */
/* ---------------------------------------------------------------------- */

static weft_stream_config multishot_cfg(void)
{
	weft_stream_config c;
	weft_stream_config_init(&c);
	c.multishot = true;
	return c;
}

/* weft_stream_open_in: a stream in the task's own frame (storage dirtied
 * first: open must not rely on zeroed memory) reads, writes more than a
 * send's worth and closes, and close closes the fd without freeing the
 * storage (ASan would report that free); plain and multishot receives. */
struct open_in_rec {
	int einval_null, einval_fd, open_rc, close_rc, fd_closed;
	ssize_t got, wrote;
	char line[16];
	struct sink k;
};

static void *open_in_main(void *arg)
{
	struct open_in_rec *x = arg;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	weft_stream_storage mem;
	memset(&mem, 0xa5, sizeof mem);
	weft_stream *s = NULL;
	x->einval_null = weft_stream_open_in(NULL, &s, sv[0], default_cfg);
	x->einval_fd = weft_stream_open_in(&mem, &s, -1, default_cfg);
	if ((x->open_rc = weft_stream_open_in(&mem, &s, sv[0], default_cfg)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	send(sv[1], "ping\n", 5, 0);
	const char *p;
	x->got = weft_stream_read_line(s, &p);
	if (x->got > 0)
		snprintf(x->line, sizeof x->line, "%.*s", (int)x->got, p);
	x->k = (struct sink){ .fd = sv[1], .delay_ms = 5 };
	weft_task *k = go_pinned(sink_main, &x->k, 1);
	x->wrote = write_pat(s, 0, 256 * 1024); /* past a send's worth */
	x->close_rc = weft_stream_close(s); /* flushes, closes, frees nothing */
	x->fd_closed = fcntl(sv[0], F_GETFD) < 0 && errno == EBADF;
	finish(k);
	close(sv[1]);
	return NULL;
}

static void test_open_in_caller_storage(void **state)
{
	(void)state;
	weft_stream_config ms = multishot_cfg();
	for (int i = 0; i < 2; i++) {
		default_cfg = i ? &ms : NULL;
		struct open_in_rec x = { 0 };
		weft_test_run_loops(2, open_in_main, &x);
		default_cfg = NULL;
		assert_int_equal(x.einval_null, -EINVAL);
		assert_int_equal(x.einval_fd, -EINVAL);
		assert_int_equal(x.open_rc, 0);
		assert_int_equal(x.got, 5);
		assert_string_equal(x.line, "ping\n");
		assert_int_equal(x.wrote, 256 * 1024);
		assert_int_equal(x.close_rc, 0);
		assert_true(x.fd_closed);
		assert_int_equal(x.k.got, 256u * 1024);
		assert_int_equal(x.k.bad, 0);
		assert_int_equal(x.k.last, 0); /* then end of input */
	}
}

/* The reading tests again, receiving through the loop's buffer ring. */
static void test_multishot_reads(void **state)
{
	weft_stream_config c = multishot_cfg();
	default_cfg = &c;
	test_read(state);
	test_read_exact_and_early_eof(state);
	test_read_line(state);
	test_read_until_straddling_delimiter(state);
	test_limit_emsgsize_keeps_bytes(state);
	test_fill_buffered_consume(state);
	test_end_input_idle_interrupts_waiting_reader(state);
	test_end_input_idle_lets_unit_finish(state);
	test_end_input_now_keeps_buffered_bytes(state);
	test_end_input_race_loses_nothing(state);
	test_fill_to_past_limit(state);
	default_cfg = NULL;
}

struct ms_bulk {
	size_t total, got;
	uint64_t mismatches;
	int cancel_rc;
};

static void *ms_sender(void *arg)
{
	struct fx *f = arg;
	struct ms_bulk *x = f->rec;
	uint8_t buf[16384]; /* tasks have 64 KiB stacks */
	for (size_t off = 0; off < x->total;) {
		size_t n = x->total - off < sizeof(buf) ? x->total - off : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = pat(off + i);
		if (weft_send_all(f->peer, buf, n, 0, NULL) < 0)
			break;
		off += n;
	}
	shutdown(f->peer, SHUT_WR);
	return NULL;
}

/* Megabytes through 4 KiB provided buffers, read slowly at times so the
 * per-stream cap pauses the receive and the next read re-arms it; a reader
 * cancelled mid-wait loses nothing. */
static void ms_bulk_body(struct fx *f)
{
	struct ms_bulk *x = f->rec;
	weft_task *snd = go_pinned(ms_sender, f, WEFT_PIN_NONE);
	uint8_t buf[3000];
	for (unsigned round = 0;; round++) {
		if (round % 64 == 0)
			weft_sleep_ms(2); /* let the pending bytes pile up past the cap */
		ssize_t r = weft_stream_read(f->s, buf, sizeof(buf));
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			x->mismatches += buf[i] != pat(x->got + (size_t)i);
		x->got += (size_t)r;
	}
	finish(snd);
}

static void test_multishot_bulk_and_cap(void **state)
{
	(void)state;
	weft_stream_config c = multishot_cfg();
	struct ms_bulk x = { .total = WEFT_TEST_SANITIZED ? (4u << 20) : (32u << 20) };
	run_fx(&c, ms_bulk_body, &x);
	assert_int_equal(x.got, x.total);
	assert_int_equal(x.mismatches, 0);
}

/* A reader that stops reading while the peer keeps sending: the
 * multishot receive pauses at its cap, so the stream holds at most that
 * much (stream.h, "Memory"); the rest waits in the kernel's socket
 * buffers, and everything still arrives, in order, once it reads again. */
struct ms_stall {
	size_t total, got, held_max, max_read;
	uint64_t mismatches;
};

static void *stall_sender(void *arg)
{
	struct fx *f = arg;
	struct ms_stall *x = f->rec;
	static char buf[64 * 1024];
	send_pat(f->peer, x->total, buf, sizeof buf);
	return NULL;
}

static void ms_stall_body(struct fx *f)
{
	struct ms_stall *x = f->rec;
	int sz = 4 << 20; /* room in the kernel for the stalled bytes */
	setsockopt(f->peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	setsockopt(weft_stream_fd(f->s), SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	weft_task *t = go_pinned(stall_sender, f, WEFT_PIN_NONE);
	static char buf[256 * 1024];
	ssize_t r = weft_stream_read(f->s, buf, 1); /* arms the receive */
	if (r == 1) {
		x->mismatches += buf[0] != (char)pat(0);
		x->got = 1;
	}
	for (int i = 0; i < 30; i++) { /* stalled for 300 ms */
		weft_sleep_ms(10);
		size_t h = weft__stream_held(f->s);
		x->held_max = h > x->held_max ? h : x->held_max;
	}
	while (x->got < x->total && (r = weft_stream_read(f->s, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			x->mismatches += buf[i] != (char)pat(x->got + (size_t)i);
		x->got += (size_t)r;
		x->max_read = (size_t)r > x->max_read ? (size_t)r : x->max_read;
	}
	finish(t);
}

static void test_multishot_stalled_reader_is_capped(void **state)
{
	(void)state;
	weft_stream_config c = multishot_cfg();
	for (int tcp = 0; tcp < 2; tcp++) {
		struct ms_stall x = { .total = 8u << 20 };
		struct fx_run r = { .cfg = &c, .body = ms_stall_body, .rec = &x, .tcp = tcp };
		weft_test_run_loops(2, fx_main, &r);
		assert_int_equal(r.open_rc, 0);
		print_message("%s: stalled reader held at most %zu bytes; largest read %zu\n",
			      tcp ? "tcp" : "unix", x.held_max, x.max_read);
		assert_int_equal(x.got, x.total);
		assert_int_equal(x.mismatches, 0);
		assert_true(x.held_max <= 128 * 1024);
	}
}

/* The same with many connections at once (issue 14): their receives
 * share the loop's buffer ring, which grows to its full size, so a cap
 * checked only as completions are reaped let each stalled stream hold
 * hundreds of KiB.  Every stream must stay within stream.h's bound
 * ("Memory"): 64 KiB pending plus its read buffer; and no read returns
 * more than the pending cap. */
#define MSS_CONNS 32
static _Atomic size_t mss_rss_max; /* the process's resident bytes, at most */

static size_t rss_now(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

struct mss_conn {
	weft_stream *s;
	int peer;
	size_t total, got, held_max, max_read;
	uint64_t mismatches;
	ssize_t err;
	bool nolimit; /* act as a kernel without the multishot byte limit */
	bool ring;    /* the loop has a buffer ring: multishot receives */
};

static void *mss_sender(void *arg)
{
	struct mss_conn *c = arg;
	char buf[16384]; /* tasks have 64 KiB stacks */
	send_pat(c->peer, c->total, buf, sizeof buf);
	return NULL;
}

static void *mss_reader(void *arg)
{
	struct mss_conn *c = arg;
	if (c->nolimit)
		weft__loop_self()->recv_nolimit = true;
	char *buf = malloc(256 * 1024);
	ssize_t r = buf ? weft_stream_read(c->s, buf, 1) : -ENOMEM; /* arms the receive */
	if (r == 1) {
		c->mismatches += buf[0] != (char)pat(0);
		c->got = 1;
	}
	c->ring = weft__loop_self()->bufring != NULL;
	for (int i = 0; i < 150 && r > 0; i++) { /* stalled for 300 ms */
		weft_sleep_ms(2);
		size_t h = weft__stream_held(c->s);
		c->held_max = h > c->held_max ? h : c->held_max;
		size_t rss = rss_now(), m = atomic_load(&mss_rss_max);
		while (rss > m && !atomic_compare_exchange_weak(&mss_rss_max, &m, rss))
			;
	}
	while (r > 0 && c->got < c->total && (r = weft_stream_read(c->s, buf, 256 * 1024)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			c->mismatches += buf[i] != (char)pat(c->got + (size_t)i);
		c->got += (size_t)r;
		c->max_read = (size_t)r > c->max_read ? (size_t)r : c->max_read;
		size_t h = weft__stream_held(c->s);
		c->held_max = h > c->held_max ? h : c->held_max;
	}
	c->err = r < 0 ? r : 0;
	free(buf);
	return NULL;
}

struct mss_run {
	struct mss_conn c[MSS_CONNS];
	int setup_rc;
	bool nolimit;
	size_t rss0; /* resident bytes once every stream is open */
};

static void *mss_main(void *arg)
{
	struct mss_run *x = arg;
	weft_stream_config cfg = multishot_cfg();
	weft_task *snd[MSS_CONNS], *rd[MSS_CONNS];
	for (int i = 0; i < MSS_CONNS; i++) {
		struct mss_conn *c = &x->c[i];
		int sv[2];
		if (tcp_loop_pair(sv) < 0 || weft_stream_open(&c->s, sv[0], &cfg) < 0) {
			x->setup_rc = -1;
			return NULL;
		}
		c->peer = sv[1];
		c->total = WEFT_TEST_TSAN ? 1u << 20 : 4u << 20; /* TSan: the check of
			every byte was most of its 8 s; 1 MiB is still 4x the cap */
		c->nolimit = x->nolimit;
		int sz = 4 << 20; /* room in the kernel for the stalled bytes */
		setsockopt(c->peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
		setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	}
	x->rss0 = rss_now();
	atomic_store(&mss_rss_max, x->rss0);
	for (int i = 0; i < MSS_CONNS; i++) {
		rd[i] = go_pinned(mss_reader, &x->c[i], 0); /* one loop, one ring */
		snd[i] = go_pinned(mss_sender, &x->c[i], WEFT_PIN_NONE);
	}
	for (int i = 0; i < MSS_CONNS; i++) {
		finish(rd[i]);
		finish(snd[i]);
		weft_stream_close(x->c[i].s);
		close(x->c[i].peer);
	}
	return NULL;
}

static void test_multishot_many_stalled_readers_are_capped(void **state)
{
	(void)state;
	for (int nolimit = 0; nolimit < 2; nolimit++) {
		struct mss_run *x = calloc(1, sizeof(*x));
		assert_non_null(x);
		x->nolimit = nolimit;
		weft_test_run_loops(2, mss_main, x);
		assert_int_equal(x->setup_rc, 0);
		size_t held = 0, rd = 0;
		bool ring = x->c[0].ring;
		for (int i = 0; i < MSS_CONNS; i++) {
			struct mss_conn *c = &x->c[i];
			ring = ring && c->ring;
			held = c->held_max > held ? c->held_max : held;
			rd = c->max_read > rd ? c->max_read : rd;
			assert_int_equal(c->err, 0);
			assert_int_equal(c->got, c->total);
			assert_int_equal(c->mismatches, 0);
		}
		print_message("%d stalled readers%s: one held at most %zu bytes; largest read %zu; "
			      "RSS grew by %zu KiB while stalled\n",
			      MSS_CONNS, nolimit ? " (no byte limit)" : "", held, rd,
			      (atomic_load(&mss_rss_max) - x->rss0) / 1024);
		if (!ring) { /* epoll: plain receives, max_read at most */
			assert_true(held <= 256 * 1024);
			assert_true(rd <= 256 * 1024);
		} else if (!nolimit) { /* what it took (64 KiB) + 64 KiB pending */
			assert_true(held <= 128 * 1024);
			assert_true(rd <= 64 * 1024);
		}
		free(x);
	}
}

struct ms_cancel {
	weft_stream *s;
	ssize_t first, second;
	char b[8];
};

static void *ms_reader(void *arg)
{
	struct ms_cancel *x = arg;
	x->first = weft_stream_read(x->s, x->b, sizeof(x->b));
	return NULL;
}

/* A reader cancelled while the multishot stays armed: the bytes that come
 * next are kept for the next reader; close from another loop ends it. */
static void ms_cancel_body(struct fx *f)
{
	struct ms_cancel *x = f->rec;
	x->s = f->s;
	weft_task *t = go_pinned(ms_reader, x, 1);
	weft_sleep_ms(10);
	weft_task_cancel(t);
	finish(t);
	send(f->peer, "kept", 4, 0);
	weft_sleep_ms(5); /* lands in the armed receive's buffers */
	x->second = weft_stream_read(f->s, x->b, sizeof(x->b));
}

static void test_multishot_cancel_keeps_bytes(void **state)
{
	(void)state;
	weft_stream_config c = multishot_cfg();
	struct ms_cancel x = { 0 };
	run_fx(&c, ms_cancel_body, &x);
	assert_int_equal(x.first, -ECANCELED);
	assert_int_equal(x.second, 4);
	assert_memory_equal(x.b, "kept", 4);
}

struct ms_xclose {
	int sv[2];
	weft_stream *s;
	ssize_t first, after;
	int close_rc;
	char b[8];
};

static void *ms_xclose_arm(void *arg)
{
	struct ms_xclose *x = arg;
	x->first = weft_stream_read(x->s, x->b, sizeof(x->b)); /* arms on loop 0 */
	return NULL;
}

static void *ms_xclose_close(void *arg)
{
	struct ms_xclose *x = arg;
	x->close_rc = weft_stream_close(x->s); /* on loop 1 */
	return NULL;
}

static void *ms_xclose_main(void *arg)
{
	struct ms_xclose *x = arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->sv) < 0)
		return NULL;
	weft_stream_config c = multishot_cfg();
	c.keep_fd = true;
	if (weft_stream_open(&x->s, x->sv[0], &c) < 0)
		return NULL;
	send(x->sv[1], "one", 3, 0);
	finish(go_pinned(ms_xclose_arm, x, 0));
	finish(go_pinned(ms_xclose_close, x, 1));
	/* The fd is the caller's again, read side intact. */
	send(x->sv[1], "two", 3, 0);
	x->after = weft_recv(x->sv[0], x->b, sizeof(x->b), 0);
	close(x->sv[0]);
	close(x->sv[1]);
	return NULL;
}

/* Closing a multishot stream from another loop cancels the receive on its
 * own loop (rule 3) and leaves a keep_fd socket fully usable. */
static void test_multishot_close_from_other_loop(void **state)
{
	(void)state;
	struct ms_xclose x = { 0 };
	weft_test_run_loops(2, ms_xclose_main, &x);
	assert_int_equal(x.first, 3);
	assert_int_equal(x.close_rc, 0);
	assert_int_equal(x.after, 3);
	assert_memory_equal(x.b, "two", 3);
}

/* ---------------------------------------------------------------------- */
/* threads: a stream belongs to its tasks                                  */
/* ---------------------------------------------------------------------- */

struct foreign_rec {
	weft_stream *s;
	int sv[2];
	size_t buffered_before;
	/* from the foreign thread */
	struct read_calls reads;
	ssize_t write;
	size_t buffered, pending;
	const char *bufp;
	int consume, deadline, drain, flush, shut, close, fd;
	/* back in a task */
	ssize_t line1, line2, wrote, peer_n;
	int close_rc;
	char text1[8], text2[8], peer_got[8];
};

static void *foreign_setup(void *arg)
{
	struct foreign_rec *x = arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->sv) < 0 ||
	    weft_stream_open(&x->s, x->sv[0], NULL) < 0)
		return P(1);
	send(x->sv[1], "abc\ndef\n", 8, 0);
	while (weft_stream_buffered(x->s, NULL) < 8)
		if (weft_stream_fill(x->s) <= 0)
			return P(1);
	x->buffered_before = weft_stream_buffered(x->s, NULL);
	return NULL;
}

/* A plain pthread: every call finds bytes buffered and must refuse. */
static void *foreign_calls(void *arg)
{
	struct foreign_rec *x = arg;
	weft_stream *s = x->s;
	try_reads(s, &x->reads);
	x->bufp = "not touched";
	x->buffered = weft_stream_buffered(s, &x->bufp);
	x->consume = weft_stream_consume(s, 1);
	x->deadline = weft_stream_read_deadline(s, 1);
	x->write = weft_stream_write(s, "w", 1);
	x->drain = weft_stream_drain(s);
	x->flush = weft_stream_flush(s);
	x->shut = weft_stream_shutdown(s);
	x->close = weft_stream_close(s);
	x->pending = weft_stream_pending(s); /* any thread */
	x->fd = weft_stream_fd(s);           /* any thread */
	return NULL;
}

/* Nothing the foreign thread tried changed the stream. */
static void *foreign_check(void *arg)
{
	struct foreign_rec *x = arg;
	const char *l;
	x->line1 = weft_stream_read_line(x->s, &l); /* no deadline was set */
	if (x->line1 > 0)
		snprintf(x->text1, sizeof x->text1, "%.*s", (int)x->line1, l);
	x->line2 = weft_stream_read_line(x->s, &l);
	if (x->line2 > 0)
		snprintf(x->text2, sizeof x->text2, "%.*s", (int)x->line2, l);
	x->wrote = weft_stream_write(x->s, "ok", 2); /* not shut down */
	x->close_rc = weft_stream_close(x->s);
	x->peer_n = recv(x->sv[1], x->peer_got, sizeof x->peer_got - 1, 0);
	close(x->sv[1]);
	return NULL;
}

/* Defect: weft_stream_read, read_line, read_exact, buffered and consume
 * succeeded from a non-weft thread when bytes were buffered, while write,
 * flush and close returned -EPERM.  One rule now: all but open,
 * config_init, fd and pending are task-only, -EPERM (buffered: 0, NULL)
 * from any other thread, and do nothing there. */
static void test_foreign_thread_eperm(void **state)
{
	(void)state;
	struct foreign_rec x = { 0 };
	weft_runtime *rt = start_rt(1);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, foreign_setup, &x, &res), 0);
	assert_null(res);
	assert_int_equal(x.buffered_before, 8);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, foreign_calls, &x), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(weft_runtime_call(rt, foreign_check, &x, &res), 0);
	weft_runtime_destroy(rt);

	assert_reads_refused(&x.reads, -EPERM);
	assert_int_equal(x.buffered, 0);
	assert_null(x.bufp);
	assert_int_equal(x.consume, -EPERM);
	assert_int_equal(x.deadline, -EPERM);
	assert_int_equal(x.write, -EPERM);
	assert_int_equal(x.drain, -EPERM);
	assert_int_equal(x.flush, -EPERM);
	assert_int_equal(x.shut, -EPERM);
	assert_int_equal(x.close, -EPERM);
	assert_int_equal(x.pending, 0);
	assert_int_equal(x.fd, x.sv[0]);

	assert_int_equal(x.line1, 4);
	assert_string_equal(x.text1, "abc\n");
	assert_int_equal(x.line2, 4);
	assert_string_equal(x.text2, "def\n");
	assert_int_equal(x.wrote, 2);
	assert_int_equal(x.close_rc, 0);
	assert_int_equal(x.peer_n, 2);
	assert_string_equal(x.peer_got, "ok");
}

/* ---------------------------------------------------------------------- */
/* memory: an idle stream holds no buffer                                  */
/* ---------------------------------------------------------------------- */

struct idle_rec {
	ssize_t line1, timed_out, wrote, line2, line3;
	int flushed;
	size_t held_read, held_idle, held_written, held_flushed, held_end;
	ssize_t peer_n;
	char text2[16], text3[16], peer_got[8];
};

static void idle_body(struct fx *f)
{
	struct idle_rec *x = f->rec;
	const char *l;
	char b[8];
	send(f->peer, "hello\n", 6, 0);
	x->line1 = weft_stream_read_line(f->s, &l);
	x->held_read = weft__stream_held(f->s); /* l points into it */
	/* All consumed: the read gives the buffer back, then waits. */
	weft_stream_read_deadline(f->s, weft_now_ns() + 20 * MS);
	x->timed_out = weft_stream_read(f->s, b, sizeof b);
	x->held_idle = weft__stream_held(f->s);
	weft_stream_read_deadline(f->s, WEFT_FOREVER);
	/* A write buffer while bytes are queued, none once they are sent. */
	x->wrote = weft_stream_write(f->s, "pong\n", 5);
	x->held_written = weft__stream_held(f->s);
	x->flushed = weft_stream_flush(f->s);
	x->held_flushed = weft__stream_held(f->s);
	x->peer_n = recv(f->peer, x->peer_got, sizeof x->peer_got - 1, 0);
	/* The next bytes come while the reader waits holding nothing: it takes
	 * a buffer again (twice: a line cut in two waits in its own). */
	struct drip d;
	static const char *const parts[] = { "again\n", "one li", "ne\n", NULL };
	weft_task *t = drip(&d, f->peer, parts, 15, false);
	x->line2 = weft_stream_read_line(f->s, &l);
	if (x->line2 > 0)
		snprintf(x->text2, sizeof x->text2, "%.*s", (int)x->line2, l);
	x->line3 = weft_stream_read_line(f->s, &l);
	if (x->line3 > 0)
		snprintf(x->text3, sizeof x->text3, "%.*s", (int)x->line3, l);
	finish(t);
	weft_stream_read_deadline(f->s, weft_now_ns() + 10 * MS);
	weft_stream_read(f->s, b, sizeof b);
	weft_stream_read_deadline(f->s, WEFT_FOREVER);
	x->held_end = weft__stream_held(f->s);
}

/* A stream that has read everything and waits for more holds no read
 * buffer, one that has sent everything no write buffer; reading after
 * that takes a buffer again and loses nothing (io_uring: a provided
 * buffer; epoll: one taken once the socket is readable). */
static void test_idle_stream_holds_no_buffer(void **state)
{
	(void)state;
	struct idle_rec x = { 0 };
	run_fx(NULL, idle_body, &x);
	assert_int_equal(x.line1, 6);
	assert_true(x.held_read > 0);
	assert_int_equal(x.timed_out, -ETIMEDOUT);
	assert_int_equal(x.held_idle, 0);
	assert_int_equal(x.wrote, 5);
	assert_true(x.held_written > 0);
	assert_int_equal(x.flushed, 0);
	assert_int_equal(x.held_flushed, 0);
	assert_int_equal(x.peer_n, 5);
	assert_string_equal(x.peer_got, "pong\n");
	assert_int_equal(x.line2, 6);
	assert_string_equal(x.text2, "again\n");
	assert_int_equal(x.line3, 9);
	assert_string_equal(x.text3, "one line\n");
	assert_int_equal(x.held_end, 0);
}

/* Request/response exchanges with the reply built by reserve/commit, on
 * one loop; the loop's caches are read between the steps. */
struct rr_exchange {
	ssize_t line, peer;
	int resv, commit, flush;
	char got[8];
};

struct rr_rec {
	struct rr_exchange ex[2];
	ssize_t idle_read;
	size_t held_idle;
	bool ring;
	unsigned rx_idle, rx_busy, resv_idle, resv_busy;
};

/* One exchange: a request line in, "ok\n" out through a reservation;
 * *rx_busy and *resv_busy (if not NULL): the caches' lengths after the
 * read and after the reservation. */
static void rr_exchange(struct fx *f, struct rr_exchange *e, unsigned *rx_busy,
			unsigned *resv_busy)
{
	weft_loop *l = weft__loop_self();
	const char *line;
	void *p;
	send(f->peer, "req\n", 4, 0);
	e->line = weft_stream_read_line(f->s, &line);
	if (rx_busy)
		*rx_busy = l->rxbuf_cache.len;
	e->resv = weft_stream_reserve(f->s, 16, &p);
	if (resv_busy)
		*resv_busy = l->wresv_cache.len;
	if (e->resv == 0)
		memcpy(p, "ok\n", 3);
	e->commit = e->resv == 0 ? weft_stream_commit(f->s, 3) : e->resv;
	e->flush = weft_stream_flush(f->s);
	e->peer = recv(f->peer, e->got, 3, 0);
}

static void rr_body(struct fx *f)
{
	struct rr_rec *x = f->rec;
	weft_loop *l = weft__loop_self();
	char b[8];
	rr_exchange(f, &x->ex[0], NULL, NULL);
	/* All read and sent: the next read gives the buffer back and waits. */
	weft_stream_read_deadline(f->s, weft_now_ns() + 20 * MS);
	x->idle_read = weft_stream_read(f->s, b, sizeof b);
	weft_stream_read_deadline(f->s, WEFT_FOREVER);
	x->held_idle = weft__stream_held(f->s);
	x->rx_idle = l->rxbuf_cache.len;
	x->resv_idle = l->wresv_cache.len;
	rr_exchange(f, &x->ex[1], &x->rx_busy, &x->resv_busy);
	x->ring = weft__bufring_get(l) != NULL;
}

/* Each request of a request/response stream takes a receive buffer and,
 * for a reply built in place, a reservation record, and gives both back
 * once idle (the stream then holds none).  They go to the loop's caches,
 * not the allocator, and the next request takes them from there: on
 * epoll (or a loop without a buffer ring) the receive buffer, on either
 * backend the reservation record.  Before, both were a malloc and a free
 * per request. */
static void test_request_response_reuses_loop_buffers(void **state)
{
	(void)state;
	struct rr_rec x = { 0 };
	run_fx_loops(1, NULL, rr_body, &x);
	for (int i = 0; i < 2; i++) {
		struct rr_exchange *e = &x.ex[i];
		assert_int_equal(e->line, 4);
		assert_int_equal(e->resv, 0);
		assert_int_equal(e->commit, 0);
		assert_int_equal(e->flush, 0);
		assert_int_equal(e->peer, 3);
		assert_memory_equal(e->got, "ok\n", 3);
	}
	assert_int_equal(x.idle_read, -ETIMEDOUT);
	assert_int_equal(x.held_idle, 0);
	print_message("loop caches while idle / busy: receive buffers %u / %u (%s), "
		      "reservation records %u / %u\n",
		      x.rx_idle, x.rx_busy, x.ring ? "buffer ring" : "no ring", x.resv_idle,
		      x.resv_busy);
#if !WEFT_ASAN /* ASan keeps no caches: it sees every free */
	if (x.ring) { /* the receives took the ring's buffers */
		assert_int_equal(x.rx_busy, x.rx_idle);
	} else {
		assert_true(x.rx_idle >= 1);
		assert_int_equal(x.rx_busy, x.rx_idle - 1);
	}
	assert_true(x.resv_idle >= 1);
	assert_int_equal(x.resv_busy, x.resv_idle - 1);
#endif
}

/* The same through the multishot receive, which stays armed while idle. */
static void test_multishot_idle_holds_no_buffer(void **state)
{
	weft_stream_config c;
	weft_stream_config_init(&c);
	c.multishot = true;
	default_cfg = &c;
	test_idle_stream_holds_no_buffer(state);
	default_cfg = NULL;
}

/* Many idle streams on one loop receive at once, each keeping half of
 * what came buffered until all have theirs: on io_uring more provided
 * buffers than the loop's ring has at first, so it grows to its cap, and
 * the receives past the cap take their bytes into malloc'd buffers.  Every
 * byte arrives, and each stream holds nothing once it has read all.
 * Then the ring gives back what the burst made it take: light traffic
 * through a few of the streams cycles its buffers, and between rounds a
 * trim (what the loop does about once a second) halves it, down to its
 * first size, the pages of the rest given back to the kernel. */
#define BURST_MAX 1100u
struct burst {
	const weft_stream_config *cfg;
	unsigned n;
	int peers[BURST_MAX];
	weft_stream *s[BURST_MAX];
	unsigned idx[BURST_MAX];
	weft_event all_half;
	_Atomic unsigned half, bad, timeouts, held;
	int setup;
	int ring;           /* loop 0 has a buffer ring */
	unsigned ring_count; /* its buffers after the burst */
	size_t resident_peak, resident_after; /* its pages in memory, bytes */
	unsigned shrunk_count, shrink_rounds, shrink_bad;
};
static struct burst burst_x;

static void *burst_reader(void *arg)
{
	unsigned i = *(unsigned *)arg;
	struct burst *b = &burst_x;
	uint8_t m[32];
	ssize_t r1 = weft_stream_read_exact(b->s[i], m, 16);
	if (atomic_fetch_add(&b->half, 1) + 1 == b->n)
		weft_event_set(&b->all_half);
	weft_event_wait(&b->all_half);
	ssize_t r2 = weft_stream_read_exact(b->s[i], m + 16, 16);
	bool ok = r1 == 16 && r2 == 16;
	for (unsigned k = 0; ok && k < 32; k++)
		ok = m[k] == pat((uint64_t)i * 32 + k);
	if (!ok)
		atomic_fetch_add(&b->bad, 1);
	weft_stream_read_deadline(b->s[i], weft_now_ns() + 5 * MS);
	if (weft_stream_read(b->s[i], m, 1) == -ETIMEDOUT)
		atomic_fetch_add(&b->timeouts, 1);
	atomic_fetch_add(&b->held, (unsigned)weft__stream_held(b->s[i]));
	return NULL;
}

static void *burst_ring(void *arg)
{
	struct burst *b = arg;
	weft__bufring *br = weft__loop_self()->bufring;
	b->ring = br != NULL;
	b->ring_count = br ? weft__bufring_count(br) : 0;
	return NULL;
}

/* On loop 0, after the burst: rounds of a trim, then one message through
 * each of 8 streams until as many receives as the ring has buffers (the
 * kernel takes them in order, so each comes back once), until the ring is
 * back to its first size; a last trim gives back the pages. */
static void *burst_shrink(void *arg)
{
	struct burst *b = arg;
	weft_loop *l = weft__loop_self();
	weft__bufring *br = l->bufring;
	if (!br)
		return NULL;
	b->resident_peak = weft__bufring_resident(br);
	uint8_t m[16] = { 0 };
	unsigned k = 0;
	for (unsigned i = 0; i < 8; i++) /* the readers' last deadline */
		weft_stream_read_deadline(b->s[i], WEFT_FOREVER);
	for (; b->shrink_rounds < 12 && weft__bufring_count(br) > WEFT__BUFRING_INIT;
	     b->shrink_rounds++) {
		weft__io_trim(l);
		for (unsigned i = 0; i < weft__bufring_count(br) + 16; i++, k = (k + 1) % 8) {
			if (send(b->peers[k], m, sizeof m, 0) != (ssize_t)sizeof m ||
			    weft_stream_read_exact(b->s[k], m, sizeof m) != (ssize_t)sizeof m) {
				b->shrink_bad++;
				return NULL;
			}
		}
	}
	weft__io_trim(l);
	b->shrunk_count = weft__bufring_count(br);
	b->resident_after = weft__bufring_resident(br);
	return NULL;
}

static void *burst_main(void *arg)
{
	struct burst *b = arg;
	unsigned opened = 0;
	for (; opened < b->n; opened++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			break;
		if (weft_stream_open(&b->s[opened], sv[0], b->cfg) < 0) {
			close(sv[0]);
			close(sv[1]);
			break;
		}
		b->peers[opened] = sv[1];
		uint8_t m[32];
		for (unsigned k = 0; k < 32; k++)
			m[k] = pat((uint64_t)opened * 32 + k);
		send(sv[1], m, sizeof m, 0); /* there before its reader asks */
		b->idx[opened] = opened;
	}
	b->setup = opened == b->n ? 0 : -1;
	weft_task **t = calloc(b->n, sizeof(*t));
	for (unsigned i = 0; t && i < opened; i++)
		t[i] = go_pinned(burst_reader, &b->idx[i], 0);
	if (opened < b->n) /* the readers could never all have their half */
		weft_event_set(&b->all_half);
	for (unsigned i = 0; t && i < opened; i++)
		finish(t[i]);
	free(t);
	finish(go_pinned(burst_ring, b, 0));
	if (b->setup == 0)
		finish(go_pinned(burst_shrink, b, 0));
	for (unsigned i = 0; i < opened; i++) {
		weft_stream_close(b->s[i]);
		close(b->peers[i]);
	}
	return NULL;
}

static void run_burst(const weft_stream_config *cfg)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	struct burst *b = &burst_x;
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->n = rl.rlim_cur > 2 * BURST_MAX + 128 ? BURST_MAX : (unsigned)(rl.rlim_cur - 128) / 2;
	assert_int_equal(weft_event_init(&b->all_half), 0);
	weft_test_run_loops(2, burst_main, b);
	assert_int_equal(b->setup, 0);
	assert_int_equal(b->half, b->n);
	assert_int_equal(b->bad, 0);
	assert_int_equal(b->timeouts, b->n);
	assert_int_equal(b->held, 0);
	/* Grown as the burst needed (every reader held one of its buffers at
	 * once, or one of its own only once the ring was at its cap). */
	if (b->ring)
		assert_true(b->ring_count >= (b->n < WEFT__BUFRING_MAX ? b->n : WEFT__BUFRING_MAX));
	print_message("ring: %u buffers, %zu KiB resident after the burst; %u buffers, %zu KiB "
		      "after %u rounds of traffic and trims\n",
		      b->ring_count, b->resident_peak >> 10, b->shrunk_count,
		      b->resident_after >> 10, b->shrink_rounds);
	if (b->ring) { /* (epoll has no pool: its receives free their buffers) */
		assert_int_equal(b->shrink_bad, 0);
		assert_int_equal(b->shrunk_count, WEFT__BUFRING_INIT);
		assert_true(b->resident_peak >= (size_t)b->ring_count * WEFT__BUFRING_SIZE / 2);
		assert_true(b->resident_after <= (WEFT__BUFRING_INIT + 16) * WEFT__BUFRING_SIZE);
	}
	weft_event_destroy(&b->all_half);
}

static void test_many_idle_streams_wake_at_once(void **state)
{
	(void)state;
	run_burst(NULL);
}

static void test_multishot_many_idle_streams_wake_at_once(void **state)
{
	(void)state;
	weft_stream_config c;
	weft_stream_config_init(&c);
	c.multishot = true;
	run_burst(&c);
}

/* A ring that runs dry while it shrinks takes back the buffers that had
 * left and grows from there, and a later shrink still ends at its first
 * size: 64 -> 128 buffers (a grow), a shrink to 64 begun, ~40 of the top
 * 64 out when it runs dry again; then traffic, trims, and back to 64.
 * Every message arrives intact through it all. */
struct ring_regrow {
	int ring, bad;
	unsigned grown, during, regrown, after;
	bool again;
};

/* Send n messages of 16 bytes through s and read each back intact. */
static int ring_traffic(weft_stream *s, int peer, unsigned n, unsigned *seq)
{
	for (unsigned i = 0; i < n; i++, (*seq)++) {
		uint8_t m[16], r[16];
		for (unsigned k = 0; k < 16; k++)
			m[k] = pat((uint64_t)*seq * 16 + k);
		if (send(peer, m, sizeof m, 0) != (ssize_t)sizeof m ||
		    weft_stream_read_exact(s, r, sizeof r) != (ssize_t)sizeof r ||
		    memcmp(m, r, sizeof m) != 0)
			return -1;
	}
	return 0;
}

static void *ring_regrow_body(void *arg)
{
	struct ring_regrow *x = arg;
	weft_loop *l = weft__loop_self();
	weft__bufring *br = weft__bufring_get(l);
	int sv[2];
	weft_stream *s;
	if (!(x->ring = br != NULL) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	if (weft_stream_open(&s, sv[0], NULL) < 0) {
		close(sv[0]);
		close(sv[1]);
		x->bad = -1;
		return NULL;
	}
	unsigned seq = 0;
	weft__bufring_grow(br, weft__bufring_count(br)); /* 64 -> 128 */
	x->grown = weft__bufring_count(br);
	weft__io_trim(l); /* it ran dry: stays */
	weft__io_trim(l); /* quiet: halving begins */
	x->bad |= ring_traffic(s, sv[1], 64 + 40, &seq); /* 0..63, then ~40 leave */
	x->during = weft__bufring_count(br);
	x->again = weft__bufring_grow(br, x->during);
	x->regrown = weft__bufring_count(br);
	x->bad |= ring_traffic(s, sv[1], 300, &seq);
	for (int i = 0; i < 6 && weft__bufring_count(br) > WEFT__BUFRING_INIT; i++) {
		weft__io_trim(l);
		x->bad |= ring_traffic(s, sv[1], weft__bufring_count(br) + 8, &seq);
	}
	x->after = weft__bufring_count(br);
	weft_stream_close(s);
	close(sv[1]);
	return NULL;
}

static void run_on_loop0_no_fd_left(weft_fn fn, void *arg);

static void test_ring_grows_while_shrinking(void **state)
{
	(void)state;
	struct ring_regrow x = { 0 };
	run_on_loop0_no_fd_left(ring_regrow_body, &x);
	if (!x.ring) {
		print_message("SKIPPED: no provided-buffer ring on this loop (epoll, or an old "
			      "kernel): nothing to shrink\n");
		skip();
	}
	print_message("ring: %u, shrinking %u, dry again %u (%s), at last %u\n", x.grown, x.during,
		      x.regrown, x.again ? "try again" : "full", x.after);
	assert_int_equal(x.bad, 0);
	assert_int_equal(x.grown, 2 * WEFT__BUFRING_INIT);
	assert_int_equal(x.during, 2 * WEFT__BUFRING_INIT); /* not all out yet */
	assert_true(x.again);
	assert_int_equal(x.regrown, 2 * WEFT__BUFRING_INIT); /* what had left is back */
	assert_int_equal(x.after, WEFT__BUFRING_INIT);
}

struct ms_nostack {
	struct ms_xclose c;
	weft_event go;
	int capped, join_rc;
};

static void *ms_nostack_close(void *arg)
{
	struct ms_nostack *x = arg;
	weft_event_wait(&x->go); /* started (with its stack) before the cap */
	return ms_xclose_close(&x->c);
}

static void *ms_nostack_main(void *arg)
{
	struct ms_nostack *x = arg;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, x->c.sv) < 0)
		return NULL;
	weft_stream_config c = multishot_cfg();
	c.keep_fd = true;
	if (weft_stream_open(&x->c.s, x->c.sv[0], &c) < 0)
		return NULL;
	send(x->c.sv[1], "one", 3, 0);
	finish(go_pinned(ms_xclose_arm, &x->c, 0));
	weft_task *t = go_pinned(ms_nostack_close, x, 1);
	weft_sleep_ms(20);
	rlim_t old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	x->capped = old != 0;
	weft_event_set(&x->go);
	x->join_rc = t ? weft_task_join_timeout(t, NULL, 5000 * MS) : -1;
	weft_test_uncap_as(old);
	if (x->join_rc == 0) {
		weft_task_release(t);
		close(x->c.sv[0]);
		close(x->c.sv[1]);
	}
	return NULL;
}

/* The same when the task that would cancel the receive on its own loop
 * cannot get a stack: the close still ends the receive (by shutting the
 * socket's read side) and returns, instead of waiting forever for a
 * canceller that never runs. */
static void test_multishot_close_from_other_loop_without_stack(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_test_stackless_config(&cfg, 2);
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct ms_nostack x = { 0 };
	assert_int_equal(weft_event_init(&x.go), 0);
	assert_int_equal(weft_runtime_call(rt, ms_nostack_main, &x, NULL), 0);
	WEFT_TEST_SKIP_UNCAPPED(x.capped);
	assert_int_equal(x.c.first, 3);
	assert_int_equal(x.join_rc, 0); /* else the close hangs */
	assert_int_equal(x.c.close_rc, 0);
	weft_runtime_destroy(rt);
	weft_event_destroy(&x.go);
}

/* ---------------------------------------------------------------------- */
/* weft_stream_abort                                                       */
/* ---------------------------------------------------------------------- */

/* Open fds of the process (test thread, before and after a runtime). */
static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Read fd until the connection ends, within 3 s: 0 (FIN) or -errno; *got
 * the bytes read. */
static ssize_t drain_peer(int fd, size_t *got)
{
	char buf[16 * 1024];
	weft_scope sc;
	weft_scope_enter(&sc, 3000 * MS);
	ssize_t r;
	while ((r = weft_recv(fd, buf, sizeof buf, 0)) > 0)
		*got += (size_t)r;
	weft_scope_exit(&sc);
	return r;
}

struct abort_rec {
	size_t pending;        /* queued when aborted */
	int abort_rc, again_rc;
	ssize_t waiting_read;  /* a reader waiting when the abort came */
	int waiting_drain;     /* a writer waiting in drain */
	ssize_t write_rc, read_rc, fill_rc;
	int drain_rc, flush_rc, shutdown_rc;
	ssize_t peer_end;
	size_t peer_got;
};

static void *abort_reader(void *arg)
{
	struct fx *f = arg;
	struct abort_rec *x = f->rec;
	char buf[16];
	x->waiting_read = weft_stream_read(f->s, buf, sizeof buf);
	return NULL;
}

static void *abort_writer(void *arg)
{
	struct fx *f = arg;
	struct abort_rec *x = f->rec;
	static char big[4u << 20];
	weft_stream_write(f->s, big, sizeof big);
	x->waiting_drain = weft_stream_drain(f->s);
	return NULL;
}

static void abort_body(struct fx *f)
{
	struct abort_rec *x = f->rec;
	weft_sock_buffers(f->peer, 16384, 0);
	weft_sock_buffers(weft_stream_fd(f->s), 0, 16384);
	weft_task *r = go_pinned(abort_reader, f, WEFT_PIN_NONE);
	weft_task *w = go_pinned(abort_writer, f, WEFT_PIN_NONE);
	weft_sleep_ms(50); /* both wait: the peer reads nothing */
	x->pending = weft_stream_pending(f->s);
	x->abort_rc = weft_stream_abort(f->s);
	x->again_rc = weft_stream_abort(f->s);
	finish(r);
	finish(w);
	char buf[4];
	x->write_rc = weft_stream_write(f->s, "x", 1);
	x->read_rc = weft_stream_read(f->s, buf, sizeof buf);
	x->fill_rc = weft_stream_fill(f->s);
	x->drain_rc = weft_stream_drain(f->s);
	x->flush_rc = weft_stream_flush(f->s);
	x->shutdown_rc = weft_stream_shutdown(f->s);
	x->peer_end = drain_peer(f->peer, &x->peer_got);
}

/* The peer sees a reset (not an end of input) with megabytes queued;
 * waiting and later calls fail with -ECONNABORTED; close only releases
 * (the fixture checks it returns 0); no fd is left behind. */
static void test_abort_resets_and_fails_later_calls(void **state)
{
	(void)state;
	int fds0 = count_fds();
	struct abort_rec x = { 0 };
	run_fx_tcp(NULL, abort_body, &x);
	print_message("aborted with %zu queued; the peer read %zu, then %s\n", x.pending,
		      x.peer_got, weft_strerror((int)x.peer_end));
	assert_true(x.pending > (1u << 20));
	assert_int_equal(x.abort_rc, 0);
	assert_int_equal(x.again_rc, 0);
	assert_int_equal(x.peer_end, -ECONNRESET);
	/* the queue was dropped: the peer got no more than the socket
	 * buffers held (an in-flight send counts as pending) */
	assert_true(x.peer_got < (1u << 20));
	assert_int_equal(x.waiting_read, -ECONNABORTED);
	assert_int_equal(x.waiting_drain, -ECONNABORTED);
	assert_int_equal(x.write_rc, -ECONNABORTED);
	assert_int_equal(x.read_rc, -ECONNABORTED);
	assert_int_equal(x.fill_rc, -ECONNABORTED);
	assert_int_equal(x.drain_rc, -ECONNABORTED);
	assert_int_equal(x.flush_rc, -ECONNABORTED);
	assert_int_equal(x.shutdown_rc, -ECONNABORTED);
	assert_int_equal(weft_stream_abort(NULL), -EINVAL);
	assert_int_equal(count_fds(), fds0);
}

/* ---------------------------------------------------------------------- */
/* weft_stream_copy_bidirectional                                          */
/* ---------------------------------------------------------------------- */

/* A proxy in the middle: client c0 <-> [a  copy  b] <-> s1 server, over
 * two TCP loopback connections; the copy runs in a task of its own. */
struct proxy {
	int c0, s1;
	weft_stream *a, *b;
	weft_stream_copy_config cfg;
	int rc;
	weft_stream_copied out;
	uint64_t start_ns, end_ns;
	bool abort_on_error; /* reset both ends, as a proxy passes a reset on */
	const weft_stream_config *acfg, *bcfg; /* NULL: default_cfg */
	uint64_t scope_ns;   /* the copy in a scope this long (0: none) */
	bool shield;         /* the copy inside weft_shield_begin/end */
};

static int proxy_open(struct proxy *p)
{
	int c[2], sv[2];
	if (tcp_loop_pair(c) < 0)
		return -errno;
	if (tcp_loop_pair(sv) < 0) {
		close(c[0]);
		close(c[1]);
		return -errno;
	}
	p->c0 = c[0];
	p->s1 = sv[1];
	weft_stream_open(&p->a, c[1], p->acfg ? p->acfg : default_cfg);
	weft_stream_open(&p->b, sv[0], p->bcfg ? p->bcfg : default_cfg);
	return p->a && p->b ? 0 : -ENOMEM;
}

static void *proxy_copy(void *arg)
{
	struct proxy *p = arg;
	p->start_ns = weft_now_ns();
	weft_scope sc;
	if (p->scope_ns)
		weft_scope_enter(&sc, p->scope_ns);
	if (p->shield)
		weft_shield_begin();
	p->rc = weft_stream_copy_bidirectional(p->a, p->b, &p->cfg, &p->out);
	if (p->shield)
		weft_shield_end();
	if (p->scope_ns)
		weft_scope_exit(&sc);
	p->end_ns = weft_now_ns();
	if (p->rc < 0 && p->abort_on_error) {
		weft_stream_abort(p->a);
		weft_stream_abort(p->b);
	}
	return NULL;
}

static void proxy_close(struct proxy *p)
{
	weft_stream_close(p->a);
	weft_stream_close(p->b);
	close(p->c0);
	close(p->s1);
}

/* One end's traffic on a raw socket: send `send` random bytes (seed) in
 * `chunk`s with `gap_ms` between them, then shut down the write side;
 * receive until end of input.  With eof_first, receive to the end before
 * sending (the other end half-closed first). */
struct peer {
	int fd;
	size_t send, chunk;
	unsigned gap_ms;
	uint32_t seed;
	bool eof_first;
	uint64_t tx_hash, rx_hash;
	size_t got;
	ssize_t end, sent_rc;
};

static uint64_t hash_bytes(uint64_t h, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static void *peer_send(void *arg)
{
	struct peer *x = arg;
	size_t chunk = x->chunk ? x->chunk : 64 * 1024;
	uint8_t *buf = malloc(chunk);
	uint32_t r = x->seed | 1;
	x->tx_hash = 0xcbf29ce484222325ull;
	for (size_t off = 0; buf && off < x->send; off += chunk) {
		size_t n = x->send - off < chunk ? x->send - off : chunk;
		for (size_t i = 0; i < n; i++) {
			r ^= r << 13;
			r ^= r >> 17;
			r ^= r << 5;
			buf[i] = (uint8_t)r;
		}
		x->tx_hash = hash_bytes(x->tx_hash, buf, n);
		if ((x->sent_rc = weft_send_all(x->fd, buf, n, 0, NULL)) < 0)
			break;
		if (x->gap_ms)
			weft_sleep_ms(x->gap_ms);
	}
	shutdown(x->fd, SHUT_WR);
	free(buf);
	return NULL;
}

static void peer_recv(struct peer *x)
{
	uint8_t buf[16 * 1024]; /* the task's own: two ends may share a thread */
	x->rx_hash = 0xcbf29ce484222325ull;
	weft_scope sc;
	weft_scope_enter(&sc, 20000 * MS);
	while ((x->end = weft_recv(x->fd, buf, sizeof buf, 0)) > 0) {
		x->rx_hash = hash_bytes(x->rx_hash, buf, (size_t)x->end);
		x->got += (size_t)x->end;
	}
	weft_scope_exit(&sc);
}

static void *peer_main(void *arg)
{
	struct peer *x = arg;
	if (x->eof_first) {
		peer_recv(x);
		peer_send(x);
		return NULL;
	}
	weft_task *t = go_pinned(peer_send, x, WEFT_PIN_NONE);
	peer_recv(x);
	finish(t);
	return NULL;
}

struct copy_run {
	struct proxy p;
	struct peer c, s;   /* the client's end (c0), the server's (s1) */
	int open_rc;
	uint64_t tasks_before, tasks_after;
};

static uint64_t tasks_live(void)
{
	weft_runtime_stats st;
	weft_runtime_stats_get(weft_runtime_current(), &st);
	return st.tasks_live;
}

/* tasks_live() once it is down to `want`, or after a second: a task that
 * has returned is reaped by its loop a moment later, longer on a loaded
 * machine (10 ms was once too short), so a fixed sleep would be a race. */
static uint64_t tasks_settle(uint64_t want)
{
	uint64_t n, t0 = weft_now_ns();
	while ((n = tasks_live()) > want && weft_now_ns() - t0 < 1000 * MS)
		weft_sleep_ms(2);
	return n;
}

/* Open the proxy and start the copy (t[0], on loop 0), the client's end
 * (t[1]) and the server's (t[2], running `server`); -1 if the open
 * failed (x->open_rc says why). */
static int copy_run_start(struct copy_run *x, weft_fn server, weft_task *t[3])
{
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return -1;
	x->c.fd = x->p.c0;
	x->s.fd = x->p.s1;
	x->tasks_before = tasks_live();
	t[0] = go_pinned(proxy_copy, &x->p, 0);
	t[1] = go_pinned(peer_main, &x->c, WEFT_PIN_NONE);
	t[2] = go_pinned(server, &x->s, 1);
	return 0;
}

static void *copy_run_main(void *arg)
{
	struct copy_run *x = arg;
	weft_task *t[3];
	if (copy_run_start(x, peer_main, t) < 0)
		return NULL;
	weft_task *cp = t[0], *tc = t[1], *ts = t[2];
	finish(tc);
	finish(ts);
	finish(cp);
	x->tasks_after = tasks_settle(x->tasks_before);
	proxy_close(&x->p);
	return NULL;
}

/* Run main(arg) on a two-loop runtime: no fd is left open after it. */
static void run_no_fd_left(weft_fn main, void *arg)
{
	int fds0 = count_fds();
	weft_test_run_loops(2, main, arg);
	assert_int_equal(count_fds(), fds0);
}

/* run_on_loop0 (where the copies run) as run_no_fd_left. */
static void run_on_loop0_no_fd_left(weft_fn fn, void *arg)
{
	struct on_loop0 o = { fn, arg };
	run_no_fd_left(on_loop0_main, &o);
}

static void run_copy(struct copy_run *x)
{
	if (!x->p.cfg.idle_timeout_ns)
		weft_stream_copy_config_init(&x->p.cfg);
	run_no_fd_left(copy_run_main, x);
	assert_int_equal(x->open_rc, 0);
	assert_int_equal(x->tasks_after, x->tasks_before);
}

/* 8 MiB of random bytes each way at once (2 MiB under sanitizers),
 * checked by hash on arrival; both ends half-close when done. */
static void test_copy_both_ways(void **state)
{
	(void)state;
	size_t n = WEFT_TEST_SANITIZED ? 2u << 20 : 8u << 20;
	struct copy_run x = { .c = { .send = n, .seed = 1 }, .s = { .send = n, .seed = 2 } };
	run_copy(&x);
	print_message("copied %llu and %llu bytes in %.0f ms\n",
		      (unsigned long long)x.p.out.a_to_b, (unsigned long long)x.p.out.b_to_a,
		      (x.p.end_ns - x.p.start_ns) / 1e6);
	assert_int_equal(x.p.rc, 0);
	assert_null(x.p.out.failed);
	assert_int_equal(x.p.out.a_to_b, n);
	assert_int_equal(x.p.out.b_to_a, n);
	assert_int_equal(x.s.got, n);
	assert_int_equal(x.c.got, n);
	assert_int_equal(x.s.rx_hash, x.c.tx_hash);
	assert_int_equal(x.c.rx_hash, x.s.tx_hash);
	assert_int_equal(x.c.end, 0);
	assert_int_equal(x.s.end, 0);
}

/* Half-close in each direction: one end sends and shuts down; the other
 * reads to the end of input (so it was passed on) and only then sends
 * its own bytes and shuts down. */
static void half_close(bool client_first)
{
	size_t n1 = 1u << 20, n2 = 3u << 19;
	struct copy_run x = { .c = { .send = client_first ? n1 : n2, .seed = 3 },
			      .s = { .send = client_first ? n2 : n1, .seed = 4 } };
	if (client_first)
		x.s.eof_first = true;
	else
		x.c.eof_first = true;
	run_copy(&x);
	assert_int_equal(x.p.rc, 0);
	assert_int_equal(x.p.out.a_to_b, x.c.send);
	assert_int_equal(x.p.out.b_to_a, x.s.send);
	assert_int_equal(x.s.got, x.c.send);
	assert_int_equal(x.c.got, x.s.send);
	assert_int_equal(x.s.rx_hash, x.c.tx_hash);
	assert_int_equal(x.c.rx_hash, x.s.tx_hash);
}

static void test_copy_half_close_client_first(void **state)
{
	(void)state;
	half_close(true);
}

static void test_copy_half_close_server_first(void **state)
{
	(void)state;
	half_close(false);
}

/* The server end resets mid-transfer: the copy returns its error with
 * b as the failed stream and the counts so far, promptly; the proxy
 * passes the reset on (abort a) and the client sees it. */
struct copy_reset {
	struct proxy p;
	struct peer c;
	int open_rc;
	size_t server_read;
	uint64_t reset_ns;
};

static void *reset_server_end(void *arg)
{
	struct copy_reset *x = arg;
	static char buf[64 * 1024];
	while (x->server_read < (1u << 20)) {
		ssize_t r = weft_recv(x->p.s1, buf, sizeof buf, 0);
		if (r <= 0)
			break;
		x->server_read += (size_t)r;
	}
	setsockopt(x->p.s1, SOL_SOCKET, SO_LINGER, &(struct linger){ 1, 0 },
		   sizeof(struct linger));
	x->reset_ns = weft_now_ns();
	close(x->p.s1);
	x->p.s1 = -1;
	return NULL;
}

static void *copy_reset_main(void *arg)
{
	struct copy_reset *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	x->p.abort_on_error = true;
	x->c.fd = x->p.c0;
	x->c.send = 64u << 20; /* far more than gets through */
	weft_task *cp = go_pinned(proxy_copy, &x->p, 0);
	weft_task *tc = go_pinned(peer_main, &x->c, WEFT_PIN_NONE);
	weft_task *ts = go_pinned(reset_server_end, x, 1);
	finish(ts);
	finish(cp);
	finish(tc);
	weft_stream_close(x->p.a);
	weft_stream_close(x->p.b);
	close(x->p.c0);
	return NULL;
}

static void test_copy_peer_reset(void **state)
{
	(void)state;
	struct copy_reset x = { 0 };
	weft_stream_copy_config_init(&x.p.cfg);
	run_no_fd_left(copy_reset_main, &x);
	print_message("reset after %zu bytes: copy returned %s %.1f ms later, %llu copied; "
		      "the client's send got %s, its receive %s\n",
		      x.server_read, weft_strerror(x.p.rc), (x.p.end_ns - x.reset_ns) / 1e6,
		      (unsigned long long)x.p.out.a_to_b, weft_strerror((int)x.c.sent_rc),
		      weft_strerror((int)x.c.end));
	assert_int_equal(x.open_rc, 0);
	assert_true(x.p.rc == -ECONNRESET || x.p.rc == -EPIPE);
	assert_ptr_equal(x.p.out.failed, x.p.b);
	assert_true(x.p.out.a_to_b >= x.server_read);
	assert_true(x.p.out.a_to_b < x.c.send);
	assert_true(x.p.end_ns - x.reset_ns < 1000 * MS);
	assert_true(x.c.sent_rc == -ECONNRESET || x.c.sent_rc == -EPIPE ||
		    x.c.end == -ECONNRESET);
}

/* The idle limit fires when both ends are silent... */
static void test_copy_idle_timeout(void **state)
{
	(void)state;
	struct copy_run x = { .c = { .eof_first = true }, .s = { .eof_first = true } };
	weft_stream_copy_config_init(&x.p.cfg);
	x.p.cfg.idle_timeout_ns = 100 * MS;
	x.p.abort_on_error = true;
	/* the ends wait for an end of input that never comes: the copy's
	 * timeout ends it, and both ends are reset */
	run_no_fd_left(copy_run_main, &x);
	uint64_t ms = (x.p.end_ns - x.p.start_ns) / MS;
	print_message("idle copy ended after %llu ms: %s\n", (unsigned long long)ms,
		      weft_strerror(x.p.rc));
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.p.rc, -ETIMEDOUT);
	assert_null(x.p.out.failed);
	assert_true(ms >= 95 && ms < 1000);
}

/* ... and not during a one-way download longer than it: the server end
 * sends 16 KiB every 20 ms for about 0.6 s (about 0.2 s under
 * sanitizers) with a 150 ms limit while the client sends nothing. */
static void test_copy_idle_not_cut_by_one_way_download(void **state)
{
	(void)state;
	size_t n = WEFT_TEST_SANITIZED ? 160u * 1024 : 480u * 1024;
	struct copy_run x = { .c = { .eof_first = true },
			      .s = { .send = n, .chunk = 16 * 1024, .gap_ms = 20, .seed = 5 } };
	weft_stream_copy_config_init(&x.p.cfg);
	x.p.cfg.idle_timeout_ns = 150 * MS;
	run_copy(&x);
	uint64_t ms = (x.p.end_ns - x.p.start_ns) / MS;
	print_message("download of %zu bytes over %llu ms: %s\n", n, (unsigned long long)ms,
		      weft_strerror(x.p.rc));
	assert_int_equal(x.p.rc, 0);
	assert_true(ms > 150);
	assert_int_equal(x.p.out.b_to_a, n);
	assert_int_equal(x.c.got, n);
	assert_int_equal(x.c.rx_hash, x.s.tx_hash);
}

/* ... nor while a's peer is still taking a reply that b sent in one go
 * and that fits under a's high water (so the direction never waits on
 * a's writer): 48 KiB, most of it held in a's queue (small kernel
 * buffers), read by the client 4 KiB every 10 ms (about 120 ms) with a
 * 60 ms limit.  Its peer taking bytes is progress, as the limit's
 * comment says: from a's queue, and from the kernel's send buffer (TCP's
 * acknowledged bytes, looked at when the limit expires). */
struct copy_drain {
	struct proxy p;
	int open_rc;
	int a_sndbuf;  /* a's SO_SNDBUF (0: 4096) */
	int c_rcvbuf;  /* the client's SO_RCVBUF (0: 4096, -1: the default) */
	size_t n;      /* the reply (0: DRAIN_N) */
	size_t chunk;  /* what the client reads every 10 ms (0: 4096) */
	size_t got, max_pending;
	ssize_t end;
};

enum { DRAIN_N = 48 * 1024 };

static void *drain_server_end(void *arg)
{
	struct copy_drain *x = arg;
	char *reply = malloc(x->n);
	if (reply) {
		memset(reply, 'r', x->n);
		weft_send_all(x->p.s1, reply, x->n, 0, NULL);
		free(reply);
	}
	char b[64]; /* then wait for the client's end of input */
	while (weft_recv(x->p.s1, b, sizeof b, 0) > 0)
		;
	shutdown(x->p.s1, SHUT_WR);
	return NULL;
}

static void *drain_client_end(void *arg)
{
	struct copy_drain *x = arg;
	char *b = malloc(x->chunk); /* not on the task's stack: up to 64 KiB */
	while (b && x->got < x->n) {
		weft_sleep_ms(10);
		size_t n = weft_stream_pending(x->p.a);
		x->max_pending = n > x->max_pending ? n : x->max_pending;
		if ((x->end = weft_recv(x->p.c0, b, x->chunk, 0)) <= 0)
			break;
		x->got += (size_t)x->end;
	}
	shutdown(x->p.c0, SHUT_WR);
	while (b && (x->end = weft_recv(x->p.c0, b, x->chunk, 0)) > 0)
		;
	free(b);
	return NULL;
}

static void *copy_drain_body(void *arg)
{
	struct copy_drain *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	int small = 4096, snd = x->a_sndbuf ? x->a_sndbuf : small;
	int rcv = x->c_rcvbuf ? x->c_rcvbuf : small;
	x->n = x->n ? x->n : DRAIN_N;
	x->chunk = x->chunk ? x->chunk : 4096;
	setsockopt(weft_stream_fd(x->p.a), SOL_SOCKET, SO_SNDBUF, &snd, sizeof snd);
	if (rcv > 0)
		setsockopt(x->p.c0, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
	weft_task *cp = go_pinned(proxy_copy, &x->p, 0);
	weft_task *ts = go_pinned(drain_server_end, x, 1);
	weft_task *tc = go_pinned(drain_client_end, x, WEFT_PIN_NONE);
	finish(cp);
	if (x->p.rc < 0) { /* the ends would wait for each other */
		shutdown(x->p.c0, SHUT_RDWR);
		shutdown(x->p.s1, SHUT_RDWR);
	}
	finish(tc);
	finish(ts);
	proxy_close(&x->p);
	return NULL;
}

static void test_copy_idle_not_cut_while_peer_drains(void **state)
{
	(void)state;
	struct copy_drain x = { 0 };
	weft_stream_copy_config_init(&x.p.cfg);
	x.p.cfg.idle_timeout_ns = 60 * MS;
	run_on_loop0_no_fd_left(copy_drain_body, &x);
	uint64_t ms = (x.p.end_ns - x.p.start_ns) / MS;
	print_message("reply drained to a slow client over %llu ms (up to %zu bytes queued on a): "
		      "%s, the client got %zu\n",
		      (unsigned long long)ms, x.max_pending, weft_strerror(x.p.rc), x.got);
	assert_int_equal(x.open_rc, 0);
	assert_true(x.max_pending > 0); /* the reply did wait in a's queue */
	assert_int_equal(x.p.rc, 0);
	assert_int_equal(x.p.out.b_to_a, DRAIN_N);
	assert_int_equal(x.got, DRAIN_N);
}

/* ... nor while the reply drains from a's kernel send buffer with nothing
 * left in a's queue (a's SO_SNDBUF holds all of it): the copy has moved
 * every byte of a 256 KiB reply at once, and only the kernel sees the
 * client (64 KiB receive buffer) take them, 16 KiB every 10 ms for about
 * 160 ms against a 60 ms limit.  The peer's acknowledged bytes (TCP_INFO),
 * looked at when the limit expires, are its progress.  (Not the 4 KiB
 * receive buffer above: with it loopback TCP itself stalled here, 12 KiB
 * in 180 ms, which the limit rightly cuts.) */
static void test_copy_idle_not_cut_while_kernel_drains(void **state)
{
	(void)state;
	struct copy_drain x = { .a_sndbuf = 256 * 1024, .c_rcvbuf = 64 * 1024, .n = 256 * 1024,
				.chunk = 16 * 1024 };
	weft_stream_copy_config_init(&x.p.cfg);
	x.p.cfg.idle_timeout_ns = 60 * MS;
	run_on_loop0_no_fd_left(copy_drain_body, &x);
	uint64_t ms = (x.p.end_ns - x.p.start_ns) / MS;
	print_message("reply drained from the kernel to a slow client over %llu ms (up to %zu "
		      "bytes queued on a): %s, the client got %zu\n",
		      (unsigned long long)ms, x.max_pending, weft_strerror(x.p.rc), x.got);
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.max_pending, 0); /* nothing waited in a's queue */
	assert_int_equal(x.p.rc, 0);
	assert_true(ms > 60);
	assert_int_equal(x.p.out.b_to_a, x.n);
	assert_int_equal(x.got, x.n);
}

/* Cancelling the caller cancels both directions and waits for them:
 * -ECANCELED, and no task is left. */
struct copy_cancel {
	struct proxy p;
	int open_rc;
	uint64_t tasks_before, tasks_after, cancel_ns;
};

static void *copy_cancel_main(void *arg)
{
	struct copy_cancel *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	weft_send_all(x->p.c0, "hello", 5, 0, NULL); /* some traffic first */
	x->tasks_before = tasks_live();
	weft_task *cp = go_pinned(proxy_copy, &x->p, WEFT_PIN_NONE);
	weft_sleep_ms(50);
	x->cancel_ns = weft_now_ns();
	weft_task_cancel(cp);
	if (x->p.shield) { /* the copy goes on: end both directions */
		weft_sleep_ms(20);
		shutdown(x->p.c0, SHUT_WR);
		shutdown(x->p.s1, SHUT_WR);
	}
	finish(cp);
	x->tasks_after = tasks_settle(x->tasks_before);
	proxy_close(&x->p);
	return NULL;
}

static void test_copy_cancel(void **state)
{
	(void)state;
	struct copy_cancel x = { 0 };
	weft_stream_copy_config_init(&x.p.cfg);
	run_no_fd_left(copy_cancel_main, &x);
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.p.rc, -ECANCELED);
	assert_int_equal(x.p.out.a_to_b, 5);
	assert_true(x.p.end_ns - x.cancel_ns < 500 * MS);
	assert_int_equal(x.tasks_after, x.tasks_before);
}

/* A caller that shields the copy and is cancelled during it (weft.h: no
 * suspension point inside a shield returns -ECANCELED): the copy is not
 * cut, and returns 0 once both directions have ended, not -ECANCELED. */
static void test_copy_cancel_shielded(void **state)
{
	(void)state;
	struct copy_cancel x = { .p.shield = true };
	weft_stream_copy_config_init(&x.p.cfg);
	run_no_fd_left(copy_cancel_main, &x);
	print_message("shielded copy cancelled, then both ends shut: %s\n",
		      weft_strerror(x.p.rc));
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.p.rc, 0);
	assert_int_equal(x.p.out.a_to_b, 5);
	assert_int_equal(x.tasks_after, x.tasks_before);
}

/* A copy stopped while it shuts a destination down (the client's end of
 * input passed on, b's queue still flushing to a server end that does
 * not read) leaves b shut for good: b refuses writes, and its peer,
 * once it reads, gets every byte and then end of input (the FIN follows
 * the queue by itself), not a connection that is neither open nor
 * closed.  Stopped by a cancellation, or by the idle limit (b's peer
 * taking nothing is no progress).  1 MiB under b's high water (4 MiB
 * here: no backpressure), b's kernel send buffer small, so most of it
 * waits in b's queue. */
enum { SHUT_N = 1 << 20 };

struct copy_shut {
	struct proxy p;
	bool idle;          /* stop it with the idle limit, not a cancel */
	int open_rc;
	size_t pending_b;   /* queued on b when the copy was stopped */
	ssize_t write_rc;   /* a write to b after the copy */
	size_t got;         /* the server end's bytes */
	ssize_t end;        /* its last receive: 0 at end of input */
};

static void *copy_shut_body(void *arg)
{
	struct copy_shut *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	int small = 4096;
	setsockopt(weft_stream_fd(x->p.b), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	weft_task *cp = go_pinned(proxy_copy, &x->p, 0);
	char *req = calloc(1, SHUT_N);
	if (req)
		weft_send_all(x->p.c0, req, SHUT_N, 0, NULL);
	free(req);
	shutdown(x->p.c0, SHUT_WR);
	/* until the copy has taken every byte (c0 has none unacknowledged, a
	 * none unread), then the end of input: b's shutdown waits */
	uint64_t t0 = weft_now_ns();
	int outq = 1, unread = 1;
	while ((outq || unread) && weft_now_ns() - t0 < 300 * MS) {
		weft_sleep_ms(1);
		if (ioctl(x->p.c0, SIOCOUTQ, &outq) < 0 ||
		    ioctl(weft_stream_fd(x->p.a), FIONREAD, &unread) < 0)
			outq = unread = 0;
	}
	weft_sleep_ms(10);
	x->pending_b = weft_stream_pending(x->p.b);
	if (!x->idle)
		weft_task_cancel(cp);
	finish(cp);
	x->write_rc = weft_stream_write(x->p.b, "x", 1);
	static char buf[64 * 1024];
	weft_scope sc;
	weft_scope_enter(&sc, 500 * MS);
	while ((x->end = weft_recv(x->p.s1, buf, sizeof buf, 0)) > 0)
		x->got += (size_t)x->end;
	weft_scope_exit(&sc);
	proxy_close(&x->p);
	return NULL;
}

static void copy_shut(bool idle)
{
	weft_stream_config big;
	weft_stream_config_init(&big);
	big.high_water = 4u << 20;
	struct copy_shut x = { .idle = idle, .p = { .bcfg = &big } };
	weft_stream_copy_config_init(&x.p.cfg);
	if (idle)
		x.p.cfg.idle_timeout_ns = 50 * MS;
	run_on_loop0_no_fd_left(copy_shut_body, &x);
	print_message("copy stopped with %zu bytes queued on b: %s; b's peer then got %zu "
		      "bytes and %s\n", x.pending_b, weft_strerror(x.p.rc), x.got,
		      x.end == 0 ? "end of input" : weft_strerror((int)x.end));
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.p.rc, idle ? -ETIMEDOUT : -ECANCELED);
	assert_true(x.pending_b > 0); /* stopped while b's queue flushed */
	assert_int_equal(x.p.out.a_to_b, SHUT_N);
	assert_int_equal(x.write_rc, -EPIPE);
	assert_int_equal(x.got, SHUT_N);
	assert_int_equal(x.end, 0);
}

static void test_copy_cancel_mid_shutdown(void **state)
{
	(void)state;
	copy_shut(false);
}

static void test_copy_idle_mid_shutdown(void **state)
{
	(void)state;
	copy_shut(true);
}

/* Backpressure: a server end that reads nothing for 300 ms while the
 * client sends 8 MiB: the copy waits in drain, so what it holds queued on
 * b stays near b's high_water (64 KiB) plus one receive, and everything
 * arrives intact once the server end reads. */
struct copy_bp {
	struct copy_run r;
	size_t max_pending;
};

static void *slow_server_end(void *arg)
{
	struct peer *x = arg;
	weft_sleep_ms(300);
	peer_recv(x);
	shutdown(x->fd, SHUT_WR);
	return NULL;
}

static void *copy_bp_main(void *arg)
{
	struct copy_bp *x = arg;
	struct copy_run *r = &x->r;
	weft_task *t[3];
	if (copy_run_start(r, slow_server_end, t) < 0)
		return NULL;
	weft_task *cp = t[0], *tc = t[1], *ts = t[2];
	for (int i = 0; i < 60; i++) {
		size_t n = weft_stream_pending(r->p.b);
		x->max_pending = n > x->max_pending ? n : x->max_pending;
		weft_sleep_ms(5);
	}
	finish(tc);
	finish(ts);
	finish(cp);
	proxy_close(&r->p);
	return NULL;
}

static void test_copy_backpressure(void **state)
{
	(void)state;
	size_t n = 8u << 20;
	struct copy_bp x = { .r = { .c = { .send = n, .seed = 6 } } };
	weft_stream_copy_config_init(&x.r.p.cfg);
	run_no_fd_left(copy_bp_main, &x);
	print_message("most queued on b while its peer did not read: %zu bytes\n",
		      x.max_pending);
	assert_int_equal(x.r.open_rc, 0);
	assert_int_equal(x.r.p.rc, 0);
	assert_int_equal(x.r.s.got, n);
	assert_int_equal(x.r.s.rx_hash, x.r.c.tx_hash);
	assert_true(x.max_pending > 0 && x.max_pending <= (1u << 20));
}

struct copy_args {
	int same, null_a, reserved;
};

static void *copy_args_main(void *arg)
{
	struct copy_args *x = arg;
	struct proxy p = { 0 };
	if (proxy_open(&p) < 0)
		return NULL;
	weft_stream_copy_config cfg;
	weft_stream_copy_config_init(&cfg);
	x->same = weft_stream_copy_bidirectional(p.a, p.a, NULL, NULL);
	x->null_a = weft_stream_copy_bidirectional(NULL, p.b, NULL, NULL);
	cfg.reserved[1] = 1;
	x->reserved = weft_stream_copy_bidirectional(p.a, p.b, &cfg, NULL);
	proxy_close(&p);
	return NULL;
}

static void test_copy_bad_arguments(void **state)
{
	(void)state;
	struct copy_args x = { 0 };
	weft_test_run_loops(1, copy_args_main, &x);
	assert_int_equal(x.same, -EINVAL);
	assert_int_equal(x.null_a, -EINVAL);
	assert_int_equal(x.reserved, -EINVAL);
	assert_int_equal(weft_stream_copy_bidirectional(NULL, NULL, NULL, NULL), -EINVAL);
}

/* Receive exactly n bytes from fd (a test end's raw socket). */
static ssize_t recv_n(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = weft_recv(fd, buf + got, n - got, 0);
		if (r <= 0)
			return r < 0 ? r : -ENODATA;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* A relayed connection costs the caller's task and nothing else: no task
 * per direction, and between exchanges neither stream holds a buffer
 * (the receives wait with none, the queues are sent and freed). */
struct copy_idle {
	struct proxy p;
	int open_rc;
	ssize_t exchanges;
	uint64_t tasks_added;
	size_t held_a, held_b;
};

static void *copy_idle_body(void *arg)
{
	struct copy_idle *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	weft_stream_copy_config_init(&x->p.cfg);
	uint64_t before = tasks_live();
	weft_task *cp = go_pinned(proxy_copy, &x->p, 0);
	char buf[8];
	for (int i = 0; i < 3; i++) { /* requests and responses */
		if (weft_send_all(x->p.c0, "ping", 4, 0, NULL) < 0 || recv_n(x->p.s1, buf, 4) < 0 ||
		    weft_send_all(x->p.s1, "pong!", 5, 0, NULL) < 0 || recv_n(x->p.c0, buf, 5) < 0)
			break;
		x->exchanges++;
	}
	weft_sleep_ms(20); /* the send completions are in */
	x->tasks_added = tasks_settle(before) - before;
	x->held_a = weft__stream_held(x->p.a);
	x->held_b = weft__stream_held(x->p.b);
	shutdown(x->p.c0, SHUT_WR);
	shutdown(x->p.s1, SHUT_WR);
	finish(cp);
	proxy_close(&x->p);
	return NULL;
}

static void test_copy_one_task_idle_holds_nothing(void **state)
{
	(void)state;
	struct copy_idle x = { 0 };
	run_on_loop0_no_fd_left(copy_idle_body, &x);
	print_message("tasks added by the copy: %llu; held while idle: %zu and %zu bytes\n",
		      (unsigned long long)x.tasks_added, x.held_a, x.held_b);
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.exchanges, 3);
	assert_int_equal(x.p.rc, 0);
	assert_int_equal(x.p.out.a_to_b, 12);
	assert_int_equal(x.p.out.b_to_a, 15);
	assert_int_equal(x.tasks_added, 1); /* the caller's own */
	assert_int_equal(x.held_a, 0);
	assert_int_equal(x.held_b, 0);
}

/* Stopped mid-transfer, with the client sending as fast as it can to a
 * server end that reads nothing (so one direction waits on b's writer
 * and the other's receive is armed): a cancellation, or the caller's
 * scope, returns promptly, counts kept, no task, buffer or fd left (ASan
 * checks the buffers). */
enum { STOP_CANCEL, STOP_SCOPE, STOP_ITSELF /* a limit of b's */ };

struct copy_stop {
	struct proxy p;
	struct peer c;
	int open_rc;
	int how;            /* STOP_* */
	size_t pending_b;
	uint64_t stop_ns, tasks_before, tasks_after;
};

static void *copy_stop_body(void *arg)
{
	struct copy_stop *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	weft_stream_copy_config_init(&x->p.cfg);
	x->p.scope_ns = x->how == STOP_SCOPE ? 400 * MS : 0;
	x->p.abort_on_error = true;
	x->c.fd = x->p.c0;
	x->c.send = 256u << 20; /* far more than gets through */
	/* Small kernel buffers towards the server end, so b's queue fills
	 * soon however slowly the client's sender runs. */
	int small = 16 * 1024;
	setsockopt(x->p.s1, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	setsockopt(weft_stream_fd(x->p.b), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	x->tasks_before = tasks_live();
	uint64_t t0 = weft_now_ns();
	weft_task *cp = go_pinned(proxy_copy, &x->p, 0);
	weft_task *tc = go_pinned(peer_send, &x->c, 1);
	do { /* until the copy waits on b's writer (or the scope is near) */
		weft_sleep_ms(5);
		x->pending_b = weft_stream_pending(x->p.b);
	} while (!x->pending_b && weft_now_ns() - t0 < 350 * MS);
	if (x->how == STOP_SCOPE)
		weft_sleep_ms(10);
	x->stop_ns = weft_now_ns();
	if (x->how == STOP_CANCEL)
		weft_task_cancel(cp);
	finish(cp); /* it aborted both: b's queue is not waited for */
	shutdown(x->p.c0, SHUT_RDWR); /* the sender gives up */
	finish(tc);
	x->tasks_after = tasks_settle(x->tasks_before);
	proxy_close(&x->p);
	return NULL;
}

static void copy_stop(int how)
{
	struct copy_stop x = { .how = how };
	run_on_loop0_no_fd_left(copy_stop_body, &x);
	print_message("%s after %llu bytes (%zu queued on b): %s %.1f ms later\n",
		      how == STOP_SCOPE ? "scope expired" : "cancelled",
		      (unsigned long long)x.p.out.a_to_b, x.pending_b, weft_strerror(x.p.rc),
		      ((int64_t)x.p.end_ns - (int64_t)x.stop_ns) / 1e6);
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.p.rc, how == STOP_SCOPE ? -ETIMEDOUT : -ECANCELED);
	assert_null(x.p.out.failed);
	assert_true(x.pending_b > 0); /* it was waiting on b's writer */
	assert_true(x.p.out.a_to_b > 0 && x.p.out.a_to_b < x.c.send);
	assert_int_equal(x.p.out.b_to_a, 0);
	assert_true(x.p.end_ns < x.stop_ns + 500 * MS);
	assert_int_equal(x.tasks_after, x.tasks_before);
}

static void test_copy_cancel_mid_transfer(void **state)
{
	(void)state;
	copy_stop(STOP_CANCEL);
}

static void test_copy_scope_mid_transfer(void **state)
{
	(void)state;
	copy_stop(STOP_SCOPE);
}

/* weft_stream_end_input on a (a server's graceful shutdown) stops the
 * a->b direction quietly while a download from b goes on to its end:
 * -ESHUTDOWN, every byte of the download delivered. */
struct copy_end {
	struct copy_run r;
	int end_rc;
};

static void *copy_end_body(void *arg)
{
	struct copy_end *x = arg;
	struct copy_run *r = &x->r;
	weft_task *t[3];
	if (copy_run_start(r, peer_main, t) < 0)
		return NULL;
	weft_task *cp = t[0], *tc = t[1], *ts = t[2];
	weft_sleep_ms(50);
	x->end_rc = weft_stream_end_input(r->p.a, WEFT_END_IDLE);
	finish(cp);
	/* Nothing more is passed to the server end (its input is never
	 * shut by the copy) nor from the client's: let their receives end. */
	shutdown(r->p.s1, SHUT_RD);
	finish(ts);
	shutdown(r->p.c0, SHUT_WR);
	finish(tc);
	proxy_close(&r->p);
	return NULL;
}

static void test_copy_end_input_lets_download_finish(void **state)
{
	(void)state;
	size_t n = 320u * 1024;
	struct copy_end x = { .r = { .c = { .eof_first = true },
				     .s = { .send = n, .chunk = 16 * 1024, .gap_ms = 10, .seed = 7 } } };
	weft_stream_copy_config_init(&x.r.p.cfg);
	run_on_loop0_no_fd_left(copy_end_body, &x);
	assert_int_equal(x.r.open_rc, 0);
	assert_int_equal(x.end_rc, 0);
	assert_int_equal(x.r.p.rc, -ESHUTDOWN);
	assert_null(x.r.p.out.failed);
	assert_int_equal(x.r.p.out.a_to_b, 0);
	assert_int_equal(x.r.p.out.b_to_a, n);
	assert_int_equal(x.r.c.got, n);
	assert_int_equal(x.r.c.rx_hash, x.r.s.tx_hash);
}

/* The streams' own limits still apply to the copy's waits: a's
 * read_timeout_ns (nothing is sent) fails it with a as the failed stream;
 * b's write_timeout_ns (its peer stopped reading while the client sends)
 * with b. */
static void test_copy_stream_read_limit(void **state)
{
	(void)state;
	weft_stream_config lim;
	weft_stream_config_init(&lim);
	lim.read_timeout_ns = 100 * MS;
	struct copy_run y = { .c = { .eof_first = true }, .s = { .eof_first = true } };
	weft_stream_copy_config_init(&y.p.cfg);
	y.p.acfg = &lim;
	y.p.abort_on_error = true; /* the ends wait for an end: the reset */
	run_no_fd_left(copy_run_main, &y);
	uint64_t ms = (y.p.end_ns - y.p.start_ns) / MS;
	print_message("read limit: %s after %llu ms\n", weft_strerror(y.p.rc),
		      (unsigned long long)ms);
	assert_int_equal(y.open_rc, 0);
	assert_int_equal(y.p.rc, -ETIMEDOUT);
	assert_ptr_equal(y.p.out.failed, y.p.a);
	assert_true(ms >= 95 && ms < 2000);
}

static void test_copy_stream_write_limit(void **state)
{
	(void)state;
	weft_stream_config lim;
	weft_stream_config_init(&lim);
	lim.write_timeout_ns = 200 * MS;
	struct copy_stop x = { .how = STOP_ITSELF, .p = { .bcfg = &lim, .abort_on_error = true } };
	run_on_loop0_no_fd_left(copy_stop_body, &x);
	uint64_t ms = (x.p.end_ns - x.p.start_ns) / MS;
	print_message("write limit: %s after %llu ms, %llu bytes\n", weft_strerror(x.p.rc),
		      (unsigned long long)ms, (unsigned long long)x.p.out.a_to_b);
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.p.rc, -ETIMEDOUT);
	assert_ptr_equal(x.p.out.failed, x.p.b);
	assert_true(ms >= 195 && ms < 2000);
	assert_int_equal(x.tasks_after, x.tasks_before);
}

/* weft_stream_abort of a from another task while the copy waits on
 * both receives (no traffic): a's reads fail with -ECONNABORTED, so the
 * copy ends promptly with that error and a as the failed stream, rather
 * than waiting for b's peer (the scope is only the test's bound). */
struct copy_abort {
	struct proxy p;
	int open_rc, abort_rc;
	uint64_t abort_ns;
};

static void *copy_abort_body(void *arg)
{
	struct copy_abort *x = arg;
	if ((x->open_rc = proxy_open(&x->p)) < 0)
		return NULL;
	weft_stream_copy_config_init(&x->p.cfg);
	x->p.scope_ns = 1000 * MS;
	weft_task *cp = go_pinned(proxy_copy, &x->p, 0);
	weft_sleep_ms(20);
	x->abort_ns = weft_now_ns();
	x->abort_rc = weft_stream_abort(x->p.a);
	finish(cp);
	proxy_close(&x->p);
	return NULL;
}

static void test_copy_abort_ends_copy(void **state)
{
	(void)state;
	struct copy_abort x = { 0 };
	run_on_loop0_no_fd_left(copy_abort_body, &x);
	print_message("a aborted: the copy returned %s %.1f ms later\n", weft_strerror(x.p.rc),
		      ((int64_t)x.p.end_ns - (int64_t)x.abort_ns) / 1e6);
	assert_int_equal(x.open_rc, 0);
	assert_int_equal(x.abort_rc, 0);
	assert_int_equal(x.p.rc, -ECONNABORTED);
	assert_ptr_equal(x.p.out.failed, x.p.a);
	assert_true(x.p.end_ns < x.abort_ns + 200 * MS);
}

/* The same over streams with a multishot receive. */
static void test_multishot_abort_and_copy(void **state)
{
	weft_stream_config c = multishot_cfg();
	default_cfg = &c;
	test_abort_resets_and_fails_later_calls(state);
	test_copy_both_ways(state);
	test_copy_half_close_client_first(state);
	test_copy_peer_reset(state);
	test_copy_cancel(state);
	default_cfg = NULL;
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_reserve_commit_rules),
	cmocka_unit_test(test_close_cancels_open_reservation),
	cmocka_unit_test(test_writev_arguments),
	cmocka_unit_test(test_write_zc_order_and_buffer_reuse),
	cmocka_unit_test(test_write_zc_cancelled_in_flight_keeps_bytes),
	cmocka_unit_test(test_write_zc_peer_reset),
	cmocka_unit_test(test_write_zc_write_timeout),
	cmocka_unit_test(test_write_zc_spares_slow_reader),
	cmocka_unit_test(test_all_write_kinds_never_interleave),
	cmocka_unit_test(test_all_write_kinds_never_interleave_tcp),
	cmocka_unit_test(test_write_timeout_non_reading_peer),
	cmocka_unit_test(test_write_timeout_spares_slow_reader),
	cmocka_unit_test(test_multishot_close_from_other_loop_without_stack),
	cmocka_unit_test(test_multishot_close_from_other_loop),
	cmocka_unit_test(test_end_input_idle_interrupts_waiting_reader),
	cmocka_unit_test(test_end_input_idle_lets_unit_finish),
	cmocka_unit_test(test_end_input_now_keeps_buffered_bytes),
	cmocka_unit_test(test_end_input_reads_what_is_buffered),
	cmocka_unit_test(test_end_input_race_loses_nothing),
	cmocka_unit_test(test_fill_to_past_limit),
	cmocka_unit_test(test_multishot_reads),
	cmocka_unit_test(test_multishot_stalled_reader_is_capped),
	cmocka_unit_test(test_multishot_many_stalled_readers_are_capped),
	cmocka_unit_test(test_receive_size_adapts),
	cmocka_unit_test(test_receive_size_max_read),
	cmocka_unit_test(test_multishot_bulk_and_cap),
	cmocka_unit_test(test_multishot_cancel_keeps_bytes),
	cmocka_unit_test(test_read),
	cmocka_unit_test(test_read_exact_and_early_eof),
	cmocka_unit_test(test_read_line),
	cmocka_unit_test(test_read_line_final_unterminated),
	cmocka_unit_test(test_read_until_straddling_delimiter),
	cmocka_unit_test(test_limit_emsgsize_keeps_bytes),
	cmocka_unit_test(test_fill_buffered_consume),
	cmocka_unit_test(test_write_drain_backpressure),
	cmocka_unit_test(test_shutdown_eof_then_epipe),
	cmocka_unit_test(test_shutdown_cut_short_still_shuts),
	cmocka_unit_test(test_close_flushes_everything),
	cmocka_unit_test(test_sticky_send_error_after_reset),
	cmocka_unit_test(test_two_readers_ebusy),
	cmocka_unit_test(test_two_readers_ebusy_across_loops),
	cmocka_unit_test(test_read_hops_loops_while_input_runs_dry),
	cmocka_unit_test(test_writes_from_two_loops_never_interleave),
	cmocka_unit_test(test_read_timeout_and_deadline),
	cmocka_unit_test(test_config_validation_and_misuse),
	cmocka_unit_test(test_stream_over_pipe),
	cmocka_unit_test(test_open_in_caller_storage),
	cmocka_unit_test(test_cancel_in_drain_loses_nothing),
	cmocka_unit_test(test_read_until_on_fresh_stream),
	cmocka_unit_test(test_foreign_thread_eperm),
	cmocka_unit_test(test_idle_stream_holds_no_buffer),
	cmocka_unit_test(test_request_response_reuses_loop_buffers),
	cmocka_unit_test(test_multishot_idle_holds_no_buffer),
	cmocka_unit_test(test_many_idle_streams_wake_at_once),
	cmocka_unit_test(test_multishot_many_idle_streams_wake_at_once),
	cmocka_unit_test(test_ring_grows_while_shrinking),
	cmocka_unit_test(test_abort_resets_and_fails_later_calls),
	cmocka_unit_test(test_copy_both_ways),
	cmocka_unit_test(test_copy_half_close_client_first),
	cmocka_unit_test(test_copy_half_close_server_first),
	cmocka_unit_test(test_copy_peer_reset),
	cmocka_unit_test(test_copy_idle_timeout),
	cmocka_unit_test(test_copy_idle_not_cut_by_one_way_download),
	cmocka_unit_test(test_copy_idle_not_cut_while_peer_drains),
	cmocka_unit_test(test_copy_idle_not_cut_while_kernel_drains),
	cmocka_unit_test(test_copy_cancel),
	cmocka_unit_test(test_copy_cancel_shielded),
	cmocka_unit_test(test_copy_cancel_mid_shutdown),
	cmocka_unit_test(test_copy_idle_mid_shutdown),
	cmocka_unit_test(test_copy_backpressure),
	cmocka_unit_test(test_copy_bad_arguments),
	cmocka_unit_test(test_copy_one_task_idle_holds_nothing),
	cmocka_unit_test(test_copy_cancel_mid_transfer),
	cmocka_unit_test(test_copy_scope_mid_transfer),
	cmocka_unit_test(test_copy_end_input_lets_download_finish),
	cmocka_unit_test(test_copy_stream_read_limit),
	cmocka_unit_test(test_copy_stream_write_limit),
	cmocka_unit_test(test_copy_abort_ends_copy),
	cmocka_unit_test(test_multishot_abort_and_copy),
};

WEFT_TEST_MAIN(tests)
