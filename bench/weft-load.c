/*
 * weft-load — an HTTP/1.1 and TCP-echo load generator built on weft.
 *
 *   weft-load -c CONNS -d DURATION [--loops N] [--rate R] [--json] URL
 *   (weft-load --help for every option)
 *
 * Each connection is a task pinned to one loop (round robin), so a loop's
 * histogram and counters are touched by its own thread only and merged at
 * the end.  A request is queued on the connection's stream (the send is a
 * stream-owned io_uring op, batched into the loop's next enter with every
 * other connection's), and the task parks only to receive.
 *
 * Closed loop (default): each connection sends, waits for the answer,
 * sends the next; latency is from the send.  Open loop (--rate R): R
 * requests/s in all, each connection on its own fixed schedule; latency is
 * measured from the *intended* send time, so a stalled server shows up as
 * the queueing delay every later request suffered (wrk2's correction for
 * coordinated omission), not as one slow sample.
 */
#include "weft.h"
#include "hist.h"
#include "load_opts.h"
#include "../examples/http_parse.h"
#include "../examples/http_body.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-loop results: written only by tasks pinned to that loop. */
struct loop_stats {
	hist h;
	uint64_t requests, non2xx, bytes;
	uint64_t connect_errors, read_errors, timeouts, parse_errors;
	uint64_t last_ns; /* last answer recorded */
	char pad[64];
};

struct run {
	struct load_opts o;
	weft_sockaddr addr;
	char *req;          /* pipeline copies of one request (or message) */
	size_t req_len, one_len;
	uint64_t t_measure; /* recording starts (after warm-up) */
	uint64_t t_end;     /* no new request after this */
	_Atomic int stop;
	_Atomic uint64_t issued; /* requests sent, for -n */
	struct loop_stats *ls;
	unsigned nloops;
	uint64_t interval_ns; /* open loop: per connection */
};

struct conn {
	struct run *run;
	unsigned id;
	struct loop_stats *ls;
};

enum { C_OK, C_STOP, C_ERR };

static bool stopping(struct run *r)
{
	return atomic_load_explicit(&r->stop, memory_order_relaxed);
}

/* Claim n requests of the -n budget: how many may be sent (0: done). */
static unsigned claim(struct run *r, unsigned n)
{
	if (!r->o.requests)
		return n;
	uint64_t had = atomic_fetch_add_explicit(&r->issued, n, memory_order_relaxed);
	if (had >= r->o.requests) {
		atomic_store_explicit(&r->stop, 1, memory_order_relaxed);
		return 0;
	}
	return had + n > r->o.requests ? (unsigned)(r->o.requests - had) : n;
}

static void record(struct conn *c, uint64_t now, uint64_t since, int status)
{
	struct run *r = c->run;
	if (now < r->t_measure || since > r->t_end)
		return; /* warm-up, or sent after the window */
	hist_record(&c->ls->h, now - since);
	c->ls->requests++;
	c->ls->last_ns = now;
	c->ls->non2xx += status && (status < 200 || status > 299);
}

/* Parse one whole HTTP response at the head of the stream's buffer,
 * waiting for more bytes as needed; its status, or -errno. */
static int read_response(weft_stream *s, struct loop_stats *ls)
{
	struct http_response rs;
	int rc;
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(s, &p);
		rc = n ? http_parse_response(p, n, &rs, 64 * 1024) : 0;
		if (rc > 0) {
			weft_stream_consume(s, (size_t)rc);
			ls->bytes += (size_t)rc;
			break;
		}
		if (rc < 0)
			return -EBADMSG;
		ssize_t f = weft_stream_fill(s);
		if (f <= 0)
			return f == 0 ? -ECONNRESET : (int)f;
	}
	if (rs.body == HTTP_BODY_EOF)
		return -EBADMSG; /* close-delimited: no keep-alive load */
	if (rs.body != HTTP_BODY_NONE) {
		size_t used = 0;
		int r = http_body_read(s, rs.body == HTTP_BODY_CHUNKED, rs.content_length, NULL,
				       NULL, &used);
		ls->bytes += used;
		if (r < 0)
			return r == -ENODATA ? -ECONNRESET : r;
	}
	return rs.status;
}

/* Echo: the message comes back whole. */
static int read_echo(weft_stream *s, struct loop_stats *ls, size_t len)
{
	while (weft_stream_buffered(s, NULL) < len) {
		ssize_t f = weft_stream_fill(s);
		if (f <= 0)
			return f == 0 ? -ECONNRESET : f == -EMSGSIZE ? -EBADMSG : (int)f;
	}
	weft_stream_consume(s, len);
	ls->bytes += len;
	return 0;
}

/* One round: send n requests (pipelined), read n answers. */
static int round_trip(struct conn *c, weft_stream *s, unsigned n, uint64_t since,
		      uint64_t sent_at)
{
	struct run *r = c->run;
	if (weft_stream_write(s, r->req, r->one_len * n) < 0)
		return C_ERR;
	weft_stream_read_deadline(s, sent_at + r->o.timeout_ms * 1000000ull);
	for (unsigned i = 0; i < n; i++) {
		int st = r->o.mode == LOAD_HTTP ? read_response(s, c->ls)
						: read_echo(s, c->ls, r->one_len);
		if (st < 0) {
			if (st == -ETIMEDOUT)
				c->ls->timeouts++;
			else if (st == -EBADMSG)
				c->ls->parse_errors++;
			else if (st != -ECANCELED)
				c->ls->read_errors++;
			return C_ERR;
		}
		record(c, weft_now_ns(), since, st);
	}
	return C_OK;
}

/* Requests on one connection until the run ends or the connection fails. */
static int drive(struct conn *c, weft_stream *s)
{
	struct run *r = c->run;
	/* Open loop: this connection's schedule, phase-shifted by its id. */
	uint64_t next = r->interval_ns ? weft_now_ns() + r->interval_ns * c->id / r->o.conns : 0;
	while (!stopping(r)) {
		uint64_t since = weft_now_ns(), sent_at = since;
		if (r->interval_ns) {
			if (next > since) {
				if (weft_sleep(next - since) < 0)
					return C_STOP;
				sent_at = next;
			}
			since = next; /* latency from the intended time */
			next += r->interval_ns;
		}
		if (since > r->t_end)
			return C_STOP;
		unsigned n = claim(r, r->o.pipeline);
		if (!n)
			return C_STOP;
		if (round_trip(c, s, n, since, sent_at) != C_OK)
			return C_ERR;
	}
	return C_STOP;
}

static void *conn_task(void *arg)
{
	struct conn *c = arg;
	struct run *r = c->run;
	weft_stream_config sc;
	weft_stream_config_init(&sc);
	while (!stopping(r) && weft_now_ns() < r->t_end) {
		int fd = weft_tcp_connect(&r->addr, r->o.timeout_ms * 1000000ull);
		if (fd < 0) {
			if (fd == -ECANCELED)
				break;
			c->ls->connect_errors++;
			if (weft_sleep_ms(10) < 0)
				break;
			continue;
		}
		weft_stream *s;
		if (weft_stream_open(&s, fd, &sc) < 0) {
			close(fd);
			break;
		}
		int st = drive(c, s);
		weft_stream_close(s);
		if (st == C_STOP)
			break;
	}
	return NULL;
}

/* ---- building the request ---- */

static int build_request(struct run *r)
{
	struct load_opts *o = &r->o;
	char one[8192];
	size_t n = 0;
	if (o->mode == LOAD_TCP) {
		n = o->size;
		char *msg = malloc(n * o->pipeline);
		if (!msg)
			return -ENOMEM;
		for (size_t i = 0; i < n * o->pipeline; i++)
			msg[i] = (char)('a' + i % 26);
		r->req = msg;
		r->one_len = n;
		r->req_len = n * o->pipeline;
		return 0;
	}
	bool host_given = false;
	for (unsigned i = 0; i < o->nheaders; i++)
		host_given |= strncasecmp(o->headers[i], "host:", 5) == 0;
	int k = snprintf(one, sizeof(one), "GET %s HTTP/1.1\r\n", o->path);
	if (!host_given)
		k += snprintf(one + k, sizeof(one) - (size_t)k, "Host: %s:%u\r\n", o->host, o->port);
	for (unsigned i = 0; i < o->nheaders && k > 0 && (size_t)k < sizeof(one); i++)
		k += snprintf(one + k, sizeof(one) - (size_t)k, "%s\r\n", o->headers[i]);
	if (k < 0 || (size_t)k + 3 > sizeof(one))
		return -E2BIG;
	k += snprintf(one + k, sizeof(one) - (size_t)k, "\r\n");
	n = (size_t)k;
	r->req = malloc(n * o->pipeline);
	if (!r->req)
		return -ENOMEM;
	for (unsigned i = 0; i < o->pipeline; i++)
		memcpy(r->req + n * i, one, n);
	r->one_len = n;
	r->req_len = n * o->pipeline;
	return 0;
}

/* ---- reporting ---- */

struct totals {
	hist h;
	uint64_t requests, non2xx, bytes, connect_errors, read_errors, timeouts, parse_errors;
	uint64_t last_ns;
};

static void sum_stats(struct run *r, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	hist_init(&t->h);
	for (unsigned i = 0; i < r->nloops; i++) {
		struct loop_stats *l = &r->ls[i];
		hist_merge(&t->h, &l->h);
		t->requests += l->requests;
		t->non2xx += l->non2xx;
		t->bytes += l->bytes;
		t->connect_errors += l->connect_errors;
		t->read_errors += l->read_errors;
		t->timeouts += l->timeouts;
		t->parse_errors += l->parse_errors;
		if (l->last_ns > t->last_ns)
			t->last_ns = l->last_ns;
	}
}

static uint64_t errors_of(const struct totals *t)
{
	return t->connect_errors + t->read_errors + t->timeouts + t->parse_errors + t->non2xx;
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void report_json(struct run *r, const struct totals *t, double secs)
{
	const hist *h = &t->h;
	printf("{\"url\":\"%s\",\"connections\":%u,\"loops\":%u,\"mode\":\"%s\",\"rate\":%.3f,"
	       "\"pipeline\":%u,\"duration_s\":%.6f,\"requests\":%llu,\"rps\":%.3f,"
	       "\"bytes\":%llu,\"errors\":%llu,\"timeouts\":%llu,\"connect_errors\":%llu,"
	       "\"read_errors\":%llu,\"parse_errors\":%llu,\"non2xx\":%llu,"
	       "\"latency_us\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
	       "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}}\n",
	       r->o.url, r->o.conns, r->nloops, r->interval_ns ? "open" : "closed", r->o.rate,
	       r->o.pipeline, secs, (unsigned long long)t->requests, t->requests / secs,
	       (unsigned long long)t->bytes, (unsigned long long)errors_of(t),
	       (unsigned long long)t->timeouts, (unsigned long long)t->connect_errors,
	       (unsigned long long)t->read_errors, (unsigned long long)t->parse_errors,
	       (unsigned long long)t->non2xx, us(hist_min(h)), hist_mean(h) / 1000.0,
	       us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
	       us(hist_percentile(h, 99.9)), us(hist_max(h)));
}

static void report_text(struct run *r, const struct totals *t, double secs)
{
	const hist *h = &t->h;
	printf("  %u loops and %u connections, %s loop%s\n", r->nloops, r->o.conns,
	       r->interval_ns ? "open" : "closed", r->o.pipeline > 1 ? ", pipelined" : "");
	printf("  Latency  p50 %.1fus  p90 %.1fus  p99 %.1fus  p99.9 %.1fus  max %.1fus\n",
	       us(hist_percentile(h, 50)), us(hist_percentile(h, 90)), us(hist_percentile(h, 99)),
	       us(hist_percentile(h, 99.9)), us(hist_max(h)));
	if (r->o.latency) {
		static const double ps[] = { 50, 75, 90, 99, 99.9, 99.99, 100 };
		printf("  Latency distribution (corrected for coordinated omission: %s)\n",
		       r->interval_ns ? "yes" : "closed loop");
		for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
			printf("  %7.3f%%  %10.1fus\n", ps[i], us(hist_percentile(h, ps[i])));
	}
	printf("  %llu requests in %.2fs, %.1f MB read\n", (unsigned long long)t->requests, secs,
	       (double)t->bytes / 1e6);
	if (errors_of(t))
		printf("  Errors: connect %llu, read %llu, timeout %llu, parse %llu, non-2xx %llu\n",
		       (unsigned long long)t->connect_errors, (unsigned long long)t->read_errors,
		       (unsigned long long)t->timeouts, (unsigned long long)t->parse_errors,
		       (unsigned long long)t->non2xx);
	printf("Requests/sec: %.2f\n", t->requests / secs);
}

/* ---- main ---- */

/* A task stack is 64 KiB and a histogram 35 KiB: totals live on the heap. */
static struct totals *totals_new(struct run *r)
{
	struct totals *t = malloc(sizeof(*t));
	if (t)
		sum_stats(r, t);
	return t;
}

static void progress(struct run *r, uint64_t t0, uint64_t *last_req, uint64_t *last_t)
{
	struct totals *tp = totals_new(r); /* racy reads of other loops: display only */
	if (!tp)
		return;
	uint64_t reqs = tp->requests, errs = errors_of(tp);
	free(tp);
	uint64_t now = weft_now_ns();
	double dt = (double)(now - *last_t) / 1e9;
	fprintf(stderr, "\r  %5.1fs  %10llu req  %10.0f req/s  errors %llu   ", (now - t0) / 1e9,
		(unsigned long long)reqs, dt > 0 ? (reqs - *last_req) / dt : 0,
		(unsigned long long)errs);
	*last_req = reqs;
	*last_t = now;
}

static void *main_task(void *arg)
{
	struct run *r = arg;
	struct load_opts *o = &r->o;
	int n = weft_resolve(o->host, o->port, SOCK_STREAM, &r->addr, 1);
	if (n < 0) {
		fprintf(stderr, "weft-load: cannot resolve %s: %s\n", o->host, weft_strerror(n));
		return (void *)1;
	}
	r->nloops = weft_loop_count();
	r->ls = calloc(r->nloops, sizeof(*r->ls));
	struct conn *cs = calloc(o->conns, sizeof(*cs));
	weft_task **ts = calloc(o->conns, sizeof(*ts));
	if (!r->ls || !cs || !ts)
		return (void *)1;
	for (unsigned i = 0; i < r->nloops; i++)
		hist_init(&r->ls[i].h);
	if (o->rate > 0)
		r->interval_ns = (uint64_t)(1e9 * o->conns / o->rate);
	uint64_t t0 = weft_now_ns();
	r->t_measure = t0 + (uint64_t)(o->warmup_s * 1e9);
	r->t_end = r->t_measure + (uint64_t)(o->duration_s * 1e9);
	if (!o->json && o->requests)
		printf("Running %llu requests @ %s\n", (unsigned long long)o->requests, o->url);
	else if (!o->json)
		printf("Running %.1fs test @ %s\n", o->duration_s, o->url);
	for (unsigned i = 0; i < o->conns; i++) {
		cs[i] = (struct conn){ r, i, &r->ls[i % r->nloops] };
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = (int)(i % r->nloops);
		if (weft_task_spawn_ex(&ts[i], &tc, conn_task, &cs[i]) < 0)
			ts[i] = NULL;
	}
	bool tty = o->progress > 0 || (o->progress < 0 && isatty(2));
	uint64_t last_req = 0, last_t = t0;
	while (!stopping(r) && weft_now_ns() < r->t_end) {
		uint64_t left = r->t_end - weft_now_ns(), tick = o->requests ? 50000000ull
									       : 1000000000ull;
		weft_sleep(left < tick ? left : tick);
		if (tty)
			progress(r, t0, &last_req, &last_t);
	}
	if (tty)
		fputc('\n', stderr);
	atomic_store(&r->stop, 1);
	uint64_t t_stop = weft_now_ns();
	/* In-flight requests get their timeout to finish, then are cut. */
	weft_scope sc;
	weft_scope_enter(&sc, o->timeout_ms * 1000000ull);
	for (unsigned i = 0; i < o->conns; i++) {
		if (!ts[i])
			continue;
		if (weft_task_join(ts[i], NULL) == -ETIMEDOUT) {
			weft_task_cancel(ts[i]); /* joined below, once it is done */
		} else {
			weft_task_release(ts[i]);
			ts[i] = NULL;
		}
	}
	weft_scope_exit(&sc);
	for (unsigned i = 0; i < o->conns; i++)
		if (ts[i]) {
			weft_task_cancel(ts[i]);
			weft_task_join(ts[i], NULL);
			weft_task_release(ts[i]);
		}
	struct totals *t = totals_new(r);
	if (!t)
		return (void *)1;
	/* The window: to its end, or (-n) to the last answer. */
	uint64_t end = t_stop < r->t_end ? t_stop : r->t_end;
	if (o->requests && t->last_ns)
		end = t->last_ns;
	double secs = end > r->t_measure ? (double)(end - r->t_measure) / 1e9 : 1e-9;
	if (o->json)
		report_json(r, t, secs);
	else
		report_text(r, t, secs);
	free(t);
	free(cs);
	free(ts);
	free(r->ls);
	return NULL;
}

int main(int argc, char **argv)
{
	struct run r;
	memset(&r, 0, sizeof(r));
	char err[256];
	load_opts_defaults(&r.o);
	int p = load_opts_parse(argc, argv, &r.o, err, sizeof(err));
	if (p == 1) {
		fputs(load_usage(), stdout);
		return 0;
	}
	if (p < 0) {
		fprintf(stderr, "weft-load: %s\n%s", err, load_usage());
		return 2;
	}
	if (build_request(&r) < 0) {
		fprintf(stderr, "weft-load: request too large\n");
		return 2;
	}
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = r.o.loops;
	void *res = NULL;
	int rc = weft_run(&cfg, main_task, &r, &res);
	free(r.req);
	if (rc < 0) {
		fprintf(stderr, "weft-load: %s\n", weft_strerror(rc));
		return 1;
	}
	return res ? 1 : 0;
}
