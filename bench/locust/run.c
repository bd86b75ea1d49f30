/*
 * bench/locust/run.c: a weft_load run under a Locust master's orders
 * (locust_run in run.h).
 *
 * The master hands out users over time (its dispatcher sends a new total
 * every second at the spawn rate) and may take some back.  weft_load runs
 * a fixed number of connections, so the users are batches: a rise starts a
 * new weft_load of the difference, a fall stops the newest batches (and
 * starts one for what it stopped too many).  Every batch reports its
 * 1-second intervals to the worker's accumulator, which the protocol
 * thread sends every 3 s; a batch's last interval holds everything it
 * counted after its stop, so the reports add up to the batches' results.
 */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct batch {
	weft_load *l;
	weft_task *t;
	unsigned conns;
	weft_load_result res;
	struct batch *prev; /* the older batches */
};

struct session {
	struct locust_worker *w;
	const weft_load_config *base;
	double rate_per_user;
	struct batch *top; /* newest first */
	unsigned users, peak;
	weft_load_result *total;
	double since_s, active_s; /* weft_now_ns seconds: users ran since, and in all */
};

static double wall_minus_mono(void)
{
	struct timespec r, m;
	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return (double)(r.tv_sec - m.tv_sec) + (r.tv_nsec - m.tv_nsec) / 1e9;
}

struct hist_iter {
	const weft_hist *h;
	unsigned slot;
};

static bool hist_iter_next(void *arg, uint64_t *v, uint64_t *n)
{
	struct hist_iter *it = arg;
	return weft_hist_next(it->h, &it->slot, v, n);
}

/* The driver's interval, as the worker counts it.  weft_now_ns is
 * CLOCK_MONOTONIC; Locust wants Unix seconds. */
static void on_interval(void *arg, const weft_load_interval *iv)
{
	struct locust_worker *w = arg;
	const weft_load_counts *c = iv->counts;
	double off = wall_minus_mono();
	struct hist_iter it = { iv->hist, 0 };
	struct locust_interval li = {
		.start_unix_s = iv->start_ns / 1e9 + off,
		.end_unix_s = iv->end_ns / 1e9 + off,
		.answered = c->requests,
		.failed = c->failed,
		.connect_errors = c->connect_errors,
		.read_errors = c->read_errors,
		.timeouts = c->timeouts,
		.parse_errors = c->parse_errors,
		.bytes = c->bytes_in,
		.min_ns = weft_hist_min(iv->hist),
		.max_ns = weft_hist_max(iv->hist),
		.sum_ns = (long double)iv->hist->sum_hi * 0x1p64L + (long double)iv->hist->sum_lo,
		.next = hist_iter_next,
		.next_arg = &it,
	};
	locust_worker_add(w, &li);
}

static void *batch_task(void *arg)
{
	struct batch *b = arg;
	return (void *)(intptr_t)weft_load_run(b->l, &b->res);
}

static int batch_start(struct session *s, unsigned conns)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	weft_load_config cfg = *s->base;
	cfg.conns = conns;
	cfg.duration_ns = WEFT_FOREVER; /* until the master says stop */
	cfg.requests = 0;
	cfg.warmup_ns = 0;
	cfg.rate = s->rate_per_user * conns;
	cfg.interval_ns = 1000000000ull;
	cfg.on_interval = on_interval;
	cfg.interval_arg = s->w;
	cfg.progress = 0;
	int rc = weft_load_create(&b->l, &cfg);
	if (rc == 0) {
		rc = weft_task_spawn(&b->t, batch_task, b);
		if (rc < 0)
			weft_load_destroy(b->l);
	}
	if (rc < 0) {
		free(b);
		return rc;
	}
	if (!s->top)
		s->since_s = weft_now_ns() / 1e9;
	b->conns = conns;
	b->prev = s->top;
	s->top = b;
	s->users += conns;
	if (s->users > s->peak)
		s->peak = s->users;
	return 0;
}

/* Stop the newest batches until at most `keep` users remain; all of them
 * are told to stop before the first is waited for. */
static void batches_stop(struct session *s, unsigned keep)
{
	unsigned users = s->users;
	for (struct batch *b = s->top; b && users > keep; b = b->prev) {
		weft_load_stop(b->l);
		users -= b->conns;
	}
	bool any = s->top && s->users > keep;
	weft_shield_begin(); /* a batch's numbers are never left behind */
	while (s->top && s->users > keep) {
		struct batch *b = s->top;
		weft_task_join(b->t, NULL);
		weft_task_release(b->t);
		weft_hist_merge(&s->total->hist, &b->res.hist);
		weft_load_counts_add(&s->total->counts, &b->res.counts);
		if (b->res.loops > s->total->loops)
			s->total->loops = b->res.loops;
		weft_load_destroy(b->l);
		s->users -= b->conns;
		s->top = b->prev;
		free(b);
	}
	weft_shield_end();
	if (any && !s->top)
		s->active_s += weft_now_ns() / 1e9 - s->since_s; /* the last user stopped */
}

/* Ctrl-C or a kill: leave the master properly (last counts, "quit"). */
static void *signal_task(void *arg)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (weft_signal_wait(&set) > 0)
		locust_worker_leave(arg);
	return NULL;
}

static int set_users(struct session *s, unsigned users)
{
	if (users < s->users)
		batches_stop(s, users);
	return users > s->users ? batch_start(s, users - s->users) : 0;
}

int locust_run(const weft_load_config *base, double rate_per_user,
	       const struct locust_config *lc, weft_load_result *total, unsigned *peak_users)
{
	struct session s = { .base = base, .rate_per_user = rate_per_user, .total = total };
	memset(total, 0, sizeof(*total));
	weft_hist_init(&total->hist);
	int rc = locust_worker_start(&s.w, lc);
	if (rc < 0)
		return rc;
	weft_task *sig = NULL;
	if (weft_task_spawn(&sig, signal_task, s.w) < 0)
		sig = NULL; /* then a signal kills, as it would without weft */
	for (bool done = false; !done;) {
		struct locust_cmd cmd;
		rc = locust_worker_next(s.w, &cmd);
		if (rc < 0)
			break;
		switch (cmd.kind) {
		case LOCUST_CMD_USERS:
			rc = set_users(&s, cmd.users);
			if (rc < 0 && lc->log)
				fprintf(lc->log, "weft-load locust: cannot start %u users: %s\n",
					cmd.users, weft_strerror(rc));
			locust_worker_running(s.w, s.users);
			break;
		case LOCUST_CMD_STOP:
			batches_stop(&s, 0);
			locust_worker_stopped(s.w);
			break;
		case LOCUST_CMD_LOST:
			rc = -ENOTCONN;
			done = true;
			break;
		default:
			rc = 0;
			done = true;
			break;
		}
	}
	batches_stop(&s, 0);
	if (sig) {
		weft_task_cancel(sig);
		weft_task_join(sig, NULL);
		weft_task_release(sig);
	}
	int frc = locust_worker_finish(s.w);
	total->seconds = s.active_s;
	*peak_users = s.peak;
	return rc < 0 ? rc : frc;
}
