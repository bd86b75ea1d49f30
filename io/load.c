/*
 * The run driver of weft/load.h.
 *
 * Each connection is a task pinned to one loop (round robin), so a loop's
 * histogram and counters are touched by its own thread only: no locks or
 * atomics on the request path.  Collecting them (for an interval, the
 * progress line, the end) is a task pinned to that loop, which runs between
 * that loop's other tasks and so never sees a half-made record; it moves
 * the loop's numbers into the driver's pending interval and starts the
 * loop's afresh.
 *
 * A request is a stream write and a receive: the write queues the bytes and
 * returns, the stream's send is batched into the loop's next io_uring_enter
 * with every other connection's, and the task parks only to receive.
 */
#include "weft.h"
#include "io.h" /* the caller's scope and uninterruptible waits */

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PIPELINE 1024u
/* A response whose announced length is past this is malformed. */
#define MAX_NEED (256u << 20)

/* Per loop, written only by tasks pinned to it (and its collector). */
struct lstats {
	weft_hist h;
	weft_load_counts c;
	uint64_t lag_sum; /* open loop: of the sends' lags */
	uint64_t last_ns; /* the last measured answer */
} __attribute__((aligned(64))); /* one loop's, one loop's cache lines */

struct weft_load {
	weft_load_config cfg;
	weft_sockaddr addr;
	_Atomic int stop;
	_Atomic bool ran;
	weft_future *stopf;
	_Atomic uint64_t t_measure, t_end; /* WEFT_FOREVER until the start */
	_Atomic uint64_t issued;           /* measured requests claimed */
	_Atomic unsigned arrived;          /* connections at the barrier */
	_Atomic unsigned connected;        /* connections that ever connected */
	_Atomic int connect_error;         /* the first failed connect's -errno */
	weft_future *readyf; /* set when every connection arrived at the
				barrier, or by a stop: the barrier's wait */
	weft_event go;     /* the driver opened it: times are set */
	struct lstats *ls;
	unsigned nloops;
	/* The driver's own: what the collectors moved since the last
	 * interval, and the whole run. */
	weft_hist pend_h, total_h;
	weft_load_counts pend_c, total_c;
	uint64_t pend_lag, total_lag;
	uint64_t last_ns;
	uint64_t iv_from; /* the pending interval's start */
	unsigned iv_index;
};

struct conn {
	weft_load *l;
	unsigned id;
	struct lstats *ls;
	void *state;
	uint64_t *ring;  /* open loop: intended and actual send times */
	struct got *got; /* the responses read_responses took */
	bool connected;  /* at least once: counted in l->connected */
	_Atomic bool connecting; /* (re)connecting or at the barrier: nothing
				    in flight, so a stop cancels it at once */
};

enum { C_OK, C_STOP, C_ERR };

/* a + b, or WEFT_FOREVER (UINT64_MAX) past it: deadlines, and sums of lags
 * (584 years) */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > WEFT_FOREVER - b ? WEFT_FOREVER : a + b;
}

void weft_load_config_init(weft_load_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->conns = 10;
	cfg->pipeline = 1;
	cfg->duration_ns = 10000000000ull;
	cfg->late_ns = 1000000;
	cfg->max_lag_ns = WEFT_FOREVER;
	cfg->timeout_ns = 2000000000ull;
	cfg->connect_timeout_ns = 2000000000ull;
	cfg->progress = -1;
}

uint64_t weft_load_errors(const weft_load_counts *c)
{
	return c ? c->connect_errors + c->read_errors + c->timeouts + c->parse_errors + c->failed
		 : 0;
}

static void counts_add(weft_load_counts *d, const weft_load_counts *s);

void weft_load_counts_add(weft_load_counts *dst, const weft_load_counts *src)
{
	if (!dst || !src)
		return;
	uint64_t sent = dst->sent + src->sent;
	double mean = sent ? (dst->lag_mean_ns * (double)dst->sent +
			      src->lag_mean_ns * (double)src->sent) / (double)sent
			   : 0;
	counts_add(dst, src);
	dst->lag_mean_ns = mean;
}

int weft_load_create(weft_load **out, const weft_load_config *cfg)
{
	if (!out || !cfg || !cfg->addr || !cfg->proto || !cfg->proto->write ||
	    !cfg->proto->parse || !cfg->conns || !cfg->pipeline || cfg->pipeline > MAX_PIPELINE ||
	    !(cfg->rate >= 0) || isinf(cfg->rate) || cfg->rate > 1e9 ||
	    (cfg->pacer_mode != WEFT_PACER_CONSTANT && cfg->pacer_mode != WEFT_PACER_POISSON) ||
	    (cfg->interval_ns && !cfg->on_interval) || cfg->progress < -1 || cfg->progress > 1 ||
	    cfg->addr->len > sizeof(cfg->addr->ss) ||
	    (cfg->addr->sa.sa_family != AF_INET && cfg->addr->sa.sa_family != AF_INET6))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
		if (cfg->reserved[i])
			return -EINVAL;
	weft_load *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	if (weft_future_create(&l->stopf) < 0 || weft_future_create(&l->readyf) < 0) {
		weft_future_release(l->stopf);
		free(l);
		return -ENOMEM;
	}
	l->cfg = *cfg;
	l->addr = *cfg->addr;
	l->cfg.addr = &l->addr;
	weft_event_init(&l->go);
	atomic_init(&l->t_measure, WEFT_FOREVER);
	atomic_init(&l->t_end, WEFT_FOREVER);
	*out = l;
	return 0;
}

int weft_load_stop(weft_load *l)
{
	if (!l)
		return -EINVAL;
	atomic_store_explicit(&l->stop, 1, memory_order_release);
	weft_future_set_result(l->stopf, NULL); /* -EALREADY after the first */
	weft_future_set_result(l->readyf, NULL); /* a stop opens the barrier */
	return 0;
}

void weft_load_destroy(weft_load *l)
{
	if (!l)
		return;
	weft_future_release(l->stopf);
	weft_future_release(l->readyf);
	weft_event_destroy(&l->go);
	free(l->ls);
	free(l);
}

static bool stopping(weft_load *l)
{
	return atomic_load_explicit(&l->stop, memory_order_relaxed);
}

static uint64_t t_measure(weft_load *l)
{
	return atomic_load_explicit(&l->t_measure, memory_order_relaxed);
}

static uint64_t t_end(weft_load *l)
{
	return atomic_load_explicit(&l->t_end, memory_order_relaxed);
}

/* Claim one measured request of the count: false when the count is done
 * (and the run is told to stop). */
static bool claim(weft_load *l)
{
	if (!l->cfg.requests)
		return true;
	if (atomic_fetch_add_explicit(&l->issued, 1, memory_order_relaxed) < l->cfg.requests)
		return true;
	weft_load_stop(l);
	return false;
}

/* A request sent (intended) at `since` was answered at `now`. */
static void record(struct conn *c, uint64_t now, uint64_t since, unsigned flags, size_t bytes)
{
	weft_load *l = c->l;
	if (since < t_measure(l) || since >= t_end(l))
		return; /* warm-up, or past the window */
	weft_hist_record(&c->ls->h, now > since ? now - since : 0);
	c->ls->c.requests++;
	c->ls->c.bytes_in += bytes;
	c->ls->c.failed += flags & WEFT_LOAD_RESP_FAILED ? 1 : 0;
	if (now > c->ls->last_ns)
		c->ls->last_ns = now;
}

/* One response parsed: its length and flags (WEFT_LOAD_RESP_*). */
struct got {
	uint32_t len, flags;
};

/*
 * Receive until at least one whole response is buffered, then take every
 * whole one there is, at most max: their lengths and flags into c->got,
 * consumed in one go, *now the time they were all in (one clock read per
 * receive, not per response: pipelined answers arrive together).  Returns
 * how many (>= 1) or -errno (-EBADMSG: malformed).
 */
static ssize_t read_responses(struct conn *c, weft_stream *s, unsigned max, uint64_t *now)
{
	const weft_load_proto *p = c->l->cfg.proto;
	void *arg = c->l->cfg.proto_arg;
	for (;;) {
		const char *buf;
		size_t n = weft_stream_buffered(s, &buf), off = 0, need = 0;
		unsigned k = 0;
		while (k < max) {
			unsigned flags = 0;
			need = 0;
			ssize_t r = p->parse(arg, c->state, n > off ? buf + off : "", n - off, &need,
					     &flags);
			if (r == 0)
				break;
			if (r < 0 || (size_t)r > n - off || r > UINT32_MAX)
				return -EBADMSG;
			c->got[k++] = (struct got){ (uint32_t)r, flags };
			off += (size_t)r;
		}
		if (k) {
			weft_stream_consume(s, off);
			*now = weft_now_ns();
			return k;
		}
		ssize_t f;
		if (need > n) { /* a unit of known length, past the stream's limit */
			if (need > MAX_NEED)
				return -EBADMSG;
			f = weft_stream_fill_to(s, need);
			if (f == -ENODATA)
				f = 0;
		} else {
			f = weft_stream_fill(s);
		}
		if (f <= 0)
			return f == 0 ? -ECONNRESET : f == -EMSGSIZE ? -EBADMSG : f;
	}
}

/* Whether an error of time t (the send, intended in an open loop, of the
 * oldest request it cost; else when it happened) is counted: not during
 * the warm-up, whose requests and drops are not counted either, so that
 * a server still warming up (a cold cache's timeouts) or a connection
 * set up again does not show in a window that had no error; nor after
 * the window, as record() drops the requests sent then.  The first
 * connects', before the window is set, are: they tell whether the
 * server can be reached at all. */
static bool counts_error(weft_load *l, uint64_t t)
{
	uint64_t tm = t_measure(l);
	return tm == WEFT_FOREVER || (t >= tm && t < t_end(l));
}

/* Count a failed read of requests sent at `since` (see counts_error);
 * C_STOP for a cancellation, else C_ERR. */
static int read_failed(struct conn *c, ssize_t r, uint64_t since)
{
	if (r == -ECANCELED)
		return C_STOP;
	if (!counts_error(c->l, since))
		return C_ERR;
	if (r == -ETIMEDOUT)
		c->ls->c.timeouts++;
	else if (r == -EBADMSG)
		c->ls->c.parse_errors++;
	else
		c->ls->c.read_errors++;
	return C_ERR;
}

/* Queue n requests due at `since` (a failure counted as read_failed's). */
static int send_requests(struct conn *c, weft_stream *s, unsigned n, uint64_t since)
{
	if (c->l->cfg.proto->write(c->l->cfg.proto_arg, c->state, s, n) >= 0)
		return C_OK;
	if (counts_error(c->l, since))
		c->ls->c.read_errors++;
	return C_ERR;
}

/* Closed loop: send a batch (pipelined), read its answers, again. */
static int drive_closed(struct conn *c, weft_stream *s)
{
	weft_load *l = c->l;
	unsigned depth = l->cfg.pipeline;
	while (!stopping(l)) {
		uint64_t since = weft_now_ns();
		if (since >= t_end(l))
			return C_STOP;
		unsigned n = depth;
		if (since >= t_measure(l) && l->cfg.requests) {
			for (n = 0; n < depth && claim(l); n++)
				;
			if (!n)
				return C_STOP;
		}
		if (send_requests(c, s, n, since) != C_OK)
			return C_ERR;
		weft_stream_read_deadline(s, add_sat(since, l->cfg.timeout_ns));
		for (unsigned done = 0; done < n;) {
			uint64_t now;
			ssize_t k = read_responses(c, s, n - done, &now);
			if (k < 0)
				return read_failed(c, k, since);
			for (ssize_t i = 0; i < k; i++)
				record(c, now, since, c->got[i].flags, c->got[i].len);
			done += (unsigned)k;
		}
	}
	return C_STOP;
}

/* The pacer dropped k slots, their intended times in [from, to): count
 * those of the measured window, as only its sends are counted (spread
 * evenly over the range: to a slot for a constant rate). */
static void count_dropped(struct conn *c, uint64_t k, uint64_t from, uint64_t to)
{
	weft_load *l = c->l;
	uint64_t lo = from > t_measure(l) ? from : t_measure(l);
	uint64_t hi = to < t_end(l) ? to : t_end(l);
	if (!k || lo >= hi)
		return;
	if (lo > from || hi < to) /* the run straddles the window's edge */
		k = (uint64_t)((unsigned __int128)k * (hi - lo) / (to - from));
	c->ls->c.dropped += k;
}

/* Open loop: the connection's pacer says when to send; up to `pipeline`
 * requests in flight, each remembered by (intended, actual) send time in
 * c->ring; while fewer are in flight the receive also wakes for the next
 * slot. */
static int drive_open(struct conn *c, weft_stream *s, weft_pacer *pc)
{
	weft_load *l = c->l;
	unsigned depth = l->cfg.pipeline, head = 0, inflight = 0;
	uint64_t *ring = c->ring;
	while (!stopping(l)) {
		uint64_t now = weft_now_ns(), t;
		uint64_t dropped = pc->dropped, from = pc->next_ns;
		while (inflight < depth && weft_pacer_take(pc, now, &t)) {
			uint64_t lag = now - t;
			count_dropped(c, pc->dropped - dropped, from, t);
			dropped = pc->dropped;
			from = pc->next_ns;
			if (t >= t_end(l))
				return C_STOP;
			if (t >= t_measure(l)) {
				if (!claim(l))
					return C_STOP;
				c->ls->c.sent++;
				c->ls->c.late += lag > pc->late_ns;
				if (lag > c->ls->c.lag_max_ns)
					c->ls->c.lag_max_ns = lag;
				c->ls->lag_sum = add_sat(c->ls->lag_sum, lag);
			}
			if (send_requests(c, s, 1, t) != C_OK)
				return C_ERR;
			unsigned k = (head + inflight) % depth;
			ring[2 * k] = t;
			ring[2 * k + 1] = now;
			inflight++;
		}
		count_dropped(c, pc->dropped - dropped, from, pc->next_ns);
		if (!inflight) {
			if (weft_sleep_until(pc->next_ns) < 0)
				return C_STOP;
			continue;
		}
		uint64_t expire = add_sat(ring[2 * head + 1], l->cfg.timeout_ns), dl = expire;
		if (inflight < depth && pc->next_ns < dl)
			dl = pc->next_ns;
		weft_stream_read_deadline(s, dl);
		uint64_t done_at;
		ssize_t k = read_responses(c, s, inflight, &done_at);
		if (k == -ETIMEDOUT && dl < expire)
			continue; /* woke for the next slot */
		if (k < 0)
			return read_failed(c, k, ring[2 * head]);
		for (ssize_t i = 0; i < k; i++) {
			record(c, done_at, ring[2 * head], c->got[i].flags, c->got[i].len);
			head = (head + 1) % depth;
		}
		inflight -= (unsigned)k;
	}
	return C_STOP;
}

/* The start barrier: the last connection to arrive tells the driver, which
 * opens it (also after connect_timeout_ns) only once it has set the
 * measuring window: a connection must never see the run started with the
 * window unset, or it would send unclaimed requests that then count. */
static void arrive(weft_load *l)
{
	if (atomic_fetch_add(&l->arrived, 1) + 1 == l->cfg.conns)
		weft_future_set_result(l->readyf, NULL); /* wakes the driver */
}

static void *conn_task(void *arg)
{
	struct conn *c = arg;
	weft_load *l = c->l;
	const weft_load_proto *p = l->cfg.proto;
	bool first = true, paced = false;
	weft_pacer pc;
	c->got = malloc(sizeof(*c->got) * l->cfg.pipeline);
	if (l->cfg.rate > 0)
		c->ring = malloc(2 * sizeof(uint64_t) * l->cfg.pipeline);
	while (!stopping(l) && weft_now_ns() < t_end(l) && c->got && (l->cfg.rate == 0 || c->ring)) {
		atomic_store(&c->connecting, true);
		int fd = weft_tcp_connect(&l->addr, l->cfg.connect_timeout_ns);
		weft_stream *s = NULL;
		int r = fd;
		if (fd >= 0) {
			weft_sock_nodelay(fd, true);
			r = weft_stream_open(&s, fd, NULL); /* plain receives: multishot
							    * was slower for HTTP here */
			if (r < 0)
				close(fd);
		}
		c->state = NULL;
		if (r >= 0 && p->conn_init && (r = p->conn_init(l->cfg.proto_arg, c->id, &c->state)) < 0)
			weft_stream_close(s);
		/* A set-up the stop ended is no failed connect, whatever error
		 * the protocol's conn_init made of its cancellation. */
		if (r == -ECANCELED || (r < 0 && stopping(l)))
			break;
		if (r < 0) {
			if (counts_error(l, weft_now_ns()))
				c->ls->c.connect_errors++;
			int none = 0;
			atomic_compare_exchange_strong(&l->connect_error, &none, r);
			if (first) {
				first = false;
				arrive(l);
				/* Every connection failed its first attempt: no
				 * server to load, so end the run rather than retry
				 * for ever (a request count would never be reached). */
				if (atomic_load(&l->arrived) >= l->cfg.conns && !atomic_load(&l->connected))
					weft_load_stop(l);
			}
			if (weft_sleep_ms(10) < 0)
				break;
			continue;
		}
		if (!c->connected) { /* before arriving: the last to arrive reads it */
			c->connected = true;
			atomic_fetch_add(&l->connected, 1);
		}
		if (first) {
			first = false;
			arrive(l);
		}
		int w = weft_event_wait(&l->go); /* at once once the run started */
		atomic_store(&c->connecting, false);
		/* seq_cst, as finish's: it sees us connecting (and cancels us),
		 * or we see its stop and send nothing */
		if (w < 0 || atomic_load(&l->stop)) {
			weft_stream_close(s);
			if (p->conn_fini) /* after the close, as load.h says */
				p->conn_fini(l->cfg.proto_arg, c->state);
			break;
		}
		if (l->cfg.rate > 0 && !paced) {
			paced = true;
			/* this connection's share of the rate, phase-shifted by its
			 * index so that the sends are spread */
			uint64_t t0 = weft_now_ns();
			weft_pacer_init(&pc, l->cfg.rate / l->cfg.conns, t0, l->cfg.pacer_mode,
					l->cfg.seed + c->id);
			weft_pacer_set_limits(&pc, l->cfg.late_ns, l->cfg.max_lag_ns);
			pc.next_ns = add_sat(t0, (uint64_t)((unsigned __int128)pc.gap_ns * c->id /
							    l->cfg.conns));
		}
		int st = l->cfg.rate > 0 ? drive_open(c, s, &pc) : drive_closed(c, s);
		weft_stream_close(s);
		if (p->conn_fini)
			p->conn_fini(l->cfg.proto_arg, c->state);
		if (st == C_STOP)
			break;
	}
	if (first)
		arrive(l);
	free(c->ring);
	free(c->got);
	return NULL;
}

/* ---- collecting the loops' numbers ---- */

static void counts_add(weft_load_counts *d, const weft_load_counts *s)
{
	d->requests += s->requests;
	d->failed += s->failed;
	d->bytes_in += s->bytes_in;
	d->connect_errors += s->connect_errors;
	d->read_errors += s->read_errors;
	d->timeouts += s->timeouts;
	d->parse_errors += s->parse_errors;
	d->sent += s->sent;
	d->late += s->late;
	d->dropped += s->dropped;
	if (s->lag_max_ns > d->lag_max_ns)
		d->lag_max_ns = s->lag_max_ns;
}

struct collect {
	weft_load *l;
	unsigned loop;
};

/* Runs on the loop it collects (pinned): between that loop's tasks. */
static void *collect_task(void *arg)
{
	struct collect *k = arg;
	weft_load *l = k->l;
	struct lstats *s = &l->ls[k->loop];
	weft_hist_merge(&l->pend_h, &s->h);
	weft_hist_init(&s->h);
	counts_add(&l->pend_c, &s->c);
	memset(&s->c, 0, sizeof(s->c));
	l->pend_lag = add_sat(l->pend_lag, s->lag_sum);
	s->lag_sum = 0;
	if (s->last_ns > l->last_ns)
		l->last_ns = s->last_ns;
	return NULL;
}

/* Move every loop's numbers into the pending interval.  One collector at a
 * time, joined before the next: the driver's fields need no lock.  With
 * `direct` (the connections are all joined) they are read in place. */
static void collect(weft_load *l, bool direct)
{
	/* A cancelled driver, or one whose scope expired, still collects:
	 * a join cut short would leave the collector with `k` gone. */
	weft_task *self = weft__task_self();
	uint64_t saved = weft__uninterruptible_begin(self);
	for (unsigned i = 0; i < l->nloops; i++) {
		struct collect k = { l, i };
		weft_task *t;
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = (int)i;
		if (direct || weft_task_spawn_ex(&t, &tc, collect_task, &k) < 0) {
			if (direct)
				collect_task(&k);
			continue; /* no memory for a task: next time */
		}
		weft_task_join(t, NULL);
		weft_task_release(t);
	}
	weft__uninterruptible_end(self, saved);
}

static void lag_mean(weft_load_counts *c, uint64_t sum)
{
	c->lag_mean_ns = c->sent ? (double)sum / (double)c->sent : 0;
}

/* Hand the pending interval [iv_from, to) to the callback, fold it into
 * the run's totals, start the next.  An empty last interval is not
 * handed over. */
static void close_interval(weft_load *l, uint64_t to, bool last)
{
	if (to < l->iv_from)
		to = l->iv_from;
	if (l->cfg.on_interval && (!last || to > l->iv_from || l->pend_h.total)) {
		lag_mean(&l->pend_c, l->pend_lag);
		weft_load_interval iv = { l->iv_from, to, &l->pend_h, &l->pend_c, l->iv_index++ };
		l->cfg.on_interval(l->cfg.interval_arg, &iv);
	}
	l->iv_from = to;
	weft_hist_merge(&l->total_h, &l->pend_h);
	counts_add(&l->total_c, &l->pend_c);
	l->total_lag = add_sat(l->total_lag, l->pend_lag);
	weft_hist_init(&l->pend_h);
	memset(&l->pend_c, 0, sizeof(l->pend_c));
	l->pend_lag = 0;
}

static void progress_line(weft_load *l, uint64_t t0, uint64_t *last_req, uint64_t *last_t)
{
	uint64_t reqs = l->total_c.requests + l->pend_c.requests;
	uint64_t errs = weft_load_errors(&l->total_c) + weft_load_errors(&l->pend_c);
	uint64_t now = weft_now_ns();
	double dt = (double)(now - *last_t) / 1e9;
	fprintf(stderr, "\r  %5.1fs  %10llu req  %10.0f req/s  errors %llu   ", (now - t0) / 1e9,
		(unsigned long long)reqs, dt > 0 ? (double)(reqs - *last_req) / dt : 0,
		(unsigned long long)errs);
	*last_req = reqs;
	*last_t = now;
}

/* ---- the run ---- */

/* Wait for f (a stop, or the barrier) at most ns: 0 (f set, or ns
 * elapsed: the caller looks at the clock), or the caller's -ECANCELED, or
 * its -ETIMEDOUT when a deadline scope around it expired.  An expired
 * scope makes every wait return at once, so a driver taking it for its
 * own step would spin. */
static int wait_for(weft_future *f, uint64_t ns)
{
	int r = weft_future_wait_timeout(f, NULL, ns);
	if (r == -ECANCELED || (r == -ETIMEDOUT && weft__scope_expired(weft__task_self())))
		return r;
	return 0;
}

/* Wait until the connections have all arrived (or failed once), at most
 * connect_timeout_ns, or a stop: the last to arrive, or the stop, wakes
 * the driver at once.  0, or wait_for's -ECANCELED / -ETIMEDOUT. */
static int start_barrier(weft_load *l)
{
	return wait_for(l->readyf, l->cfg.connect_timeout_ns);
}

/* Measure until the end, the count or a stop, closing intervals and
 * updating the progress line on the way.  0, or wait_stop's -ECANCELED /
 * -ETIMEDOUT. */
static int measure(weft_load *l, uint64_t t0, bool tty)
{
	uint64_t tm = t_measure(l), te = t_end(l), iv = l->cfg.interval_ns;
	uint64_t next_iv = iv ? add_sat(tm, iv) : WEFT_FOREVER;
	uint64_t next_pg = tty ? add_sat(t0, 1000000000ull) : WEFT_FOREVER;
	uint64_t last_req = 0, last_t = t0;
	int r = 0;
	while (!stopping(l)) {
		uint64_t now = weft_now_ns();
		if (now >= te)
			break;
		uint64_t wake = te < next_iv ? te : next_iv;
		wake = wake < next_pg ? wake : next_pg;
		if (wake > now) {
			if ((r = wait_for(l->stopf, wake - now)) < 0)
				break;
			now = weft_now_ns();
		}
		if (now >= next_iv && now < te && !stopping(l)) {
			collect(l, false);
			close_interval(l, now, false);
			next_iv = add_sat(next_iv, iv);
			if (next_iv <= now)
				next_iv = add_sat(now, iv);
		}
		if (now >= next_pg) {
			collect(l, false);
			progress_line(l, t0, &last_req, &last_t);
			next_pg = add_sat(now, 1000000000ull);
		}
	}
	if (tty)
		fputc('\n', stderr);
	return r;
}

/* Stop the connections: those connecting have nothing in flight and are
 * cancelled at once; in-flight requests get timeout_ns to finish, within
 * the caller's deadline scopes (the caller's cancellation does not cut
 * it: the stop has come already), then are cancelled, and every
 * connection is joined whatever the caller's state (they use cs).
 * Returns 0, or -ETIMEDOUT when a scope of the caller cut the grace. */
static int finish(weft_load *l, struct conn *cs, weft_task **ts)
{
	weft_task *self = weft__task_self();
	int rc = 0;
	weft_load_stop(l);
	atomic_store(&l->stop, 1); /* seq_cst, before looking at `connecting`:
				      see conn_task */
	for (unsigned i = 0; i < l->cfg.conns; i++)
		if (ts[i] && atomic_load(&cs[i].connecting))
			weft_task_cancel(ts[i]);
	weft_shield_begin();
	uint64_t until = add_sat(weft_now_ns(), l->cfg.timeout_ns);
	for (unsigned i = 0; i < l->cfg.conns && !rc; i++) {
		if (!ts[i])
			continue;
		uint64_t now = weft_now_ns();
		int r = weft_task_join_timeout(ts[i], NULL, until > now ? until - now : 0);
		if (r == 0) {
			weft_task_release(ts[i]);
			ts[i] = NULL;
		} else if (r == -ETIMEDOUT && weft__scope_expired(self)) {
			rc = -ETIMEDOUT; /* the rest are cancelled at once */
		}
	}
	weft_shield_end();
	uint64_t saved = weft__uninterruptible_begin(self);
	for (unsigned i = 0; i < l->cfg.conns; i++)
		if (ts[i]) {
			weft_task_cancel(ts[i]);
			weft_task_join(ts[i], NULL);
			weft_task_release(ts[i]);
		}
	weft__uninterruptible_end(self, saved);
	return rc;
}

int weft_load_run(weft_load *l, weft_load_result *res)
{
	if (!l)
		return -EINVAL;
	if (!weft_runtime_current() || weft_loop_index() < 0)
		return -EPERM;
	if (atomic_exchange(&l->ran, true))
		return -EALREADY;
	l->nloops = weft_loop_count();
	l->ls = aligned_alloc(64, sizeof(*l->ls) * l->nloops);
	struct conn *cs = calloc(l->cfg.conns, sizeof(*cs));
	weft_task **ts = calloc(l->cfg.conns, sizeof(*ts));
	if (!l->ls || !cs || !ts) {
		free(cs);
		free(ts);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < l->nloops; i++) {
		memset(&l->ls[i].c, 0, sizeof(l->ls[i].c));
		weft_hist_init(&l->ls[i].h);
		l->ls[i].lag_sum = 0;
		l->ls[i].last_ns = 0;
	}
	weft_hist_init(&l->pend_h);
	weft_hist_init(&l->total_h);
	int rc = 0;
	bool tty = l->cfg.progress > 0 || (l->cfg.progress < 0 && isatty(2));
	for (unsigned i = 0; i < l->cfg.conns && !stopping(l); i++) {
		cs[i] = (struct conn){ .l = l, .id = i, .ls = &l->ls[i % l->nloops] };
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = (int)(i % l->nloops);
		if (weft_task_spawn_ex(&ts[i], &tc, conn_task, &cs[i]) < 0) {
			ts[i] = NULL;
			arrive(l); /* counts as arrived: the barrier does not wait for it */
		}
	}
	if (!stopping(l))
		rc = start_barrier(l);
	bool stopped = stopping(l);
	if (rc < 0) /* the caller's cancellation or scope: stop before go, so
		       no connection waiting at the barrier starts driving */
		atomic_store(&l->stop, 1);
	uint64_t t0 = weft_now_ns(), tm = add_sat(t0, l->cfg.warmup_ns);
	l->iv_from = tm;
	atomic_store(&l->t_measure, tm);
	atomic_store(&l->t_end, add_sat(tm, l->cfg.duration_ns));
	weft_event_set(&l->go);
	if (rc == 0 && !stopping(l)) {
		rc = measure(l, t0, tty);
	}
	if (rc == 0)
		stopped = stopping(l);
	uint64_t t_stop = weft_now_ns();
	int frc = finish(l, cs, ts);
	if (rc == 0)
		rc = frc;
	collect(l, true);
	uint64_t te = t_end(l), end = t_stop < te ? t_stop : te;
	if (l->cfg.requests && l->last_ns)
		end = l->last_ns;
	close_interval(l, end, true);
	/* The caller's cancellation wins over a stop or an end that came
	 * first (weft.h: a cancelled wait returns -ECANCELED), whenever it
	 * came before this return: a stop leaves no wait to see it (and
	 * the driver's waits after the measuring are shielded).  It wins
	 * over an expired scope too, as at any suspension point.  Nothing
	 * is dropped either way: *res is the run's.  Delivered as a
	 * suspension point delivers it (weft__cancel_check), so a caller
	 * that shields the run gets the run's own return, the cancellation
	 * coming after its shield as weft.h says, not -ECANCELED from a run
	 * its shield let go on to the end. */
	if (weft__cancel_check(weft__task_self()) < 0)
		rc = -ECANCELED;
	if (res) {
		res->hist = l->total_h;
		res->counts = l->total_c;
		lag_mean(&res->counts, l->total_lag);
		res->seconds = end > tm ? (double)(end - tm) / 1e9 : 0;
		res->loops = l->nloops;
		res->connected = atomic_load(&l->connected);
		res->connect_error = atomic_load(&l->connect_error);
		/* a stop by the count is the run's own end */
		res->stopped = stopped && !(l->cfg.requests &&
					    atomic_load(&l->issued) >= l->cfg.requests);
	}
	free(cs);
	free(ts);
	return rc;
}
