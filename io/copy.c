/*
 * weft_stream_copy_bidirectional (weft/stream.h): a proxy's two byte
 * pumps, built on the public stream calls.
 *
 * Each direction is a child task of a task group: it moves what its
 * source has buffered into its destination's write queue (buffered,
 * write, consume: the bytes are copied once, into the queue), drains the
 * destination (its high/low water is the backpressure), and at end of
 * input shuts the destination's write side.  The first direction that
 * fails reports it with weft_task_fail, so the group cancels the other;
 * a cancelled caller (or an expired scope) cancels both, and the group's
 * wait returns only once both have finished: no task outlives the call.
 *
 * The idle limit is connection-wide: each wait runs in a scope ending
 * idle_timeout_ns after the last progress of either direction (a byte
 * read, or the destination's queue shrinking); when it fires, the
 * direction looks again and waits on if the other one moved meanwhile.
 */
#include "io.h"
#include "weft/stream.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

struct copy;

struct dir {
	struct copy *c;
	weft_stream *src, *dst;
	_Atomic uint64_t moved; /* queued on dst (read by the caller after) */
};

struct copy {
	uint64_t idle_ns;
	_Atomic uint64_t last_ns;  /* the last progress of either direction */
	_Atomic int err;           /* the first failure (0: none yet) */
	weft_stream *_Atomic failed; /* whose call it was (NULL: the idle limit) */
	_Atomic bool ended;        /* a source's input was ended (-ESHUTDOWN) */
	struct dir d[2];
};

void weft_stream_copy_config_init(weft_stream_copy_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->idle_timeout_ns = WEFT_FOREVER;
}

static void progress(struct copy *c)
{
	atomic_store_explicit(&c->last_ns, weft_now_ns(), memory_order_relaxed);
}

/* Record the first failure (later ones, and the cancellations the first
 * one causes, are not reported) and make the group cancel the other
 * direction. */
static int fail(struct dir *d, int err, weft_stream *who)
{
	int none = 0;
	if (atomic_compare_exchange_strong(&d->c->err, &none, err))
		atomic_store(&d->c->failed, who);
	weft_task_fail(err);
	return err;
}

enum { OP_FILL, OP_DRAIN, OP_SHUTDOWN };

/* The idle limit passed: idle_wait's result, told apart from a stream's
 * own -ETIMEDOUT (read_timeout_ns, a write limit). */
#define IDLE (-ETIMEDOUT - 4096)

/* One wait of direction d under the connection-wide idle limit: the op's
 * result, or IDLE once neither direction moved for idle_ns. */
static ssize_t idle_wait(struct dir *d, int op)
{
	struct copy *c = d->c;
	size_t pending = weft_stream_pending(d->dst);
	for (;;) {
		uint64_t dl = WEFT_FOREVER;
		weft_scope sc;
		if (c->idle_ns != WEFT_FOREVER) {
			dl = weft__deadline_add(atomic_load_explicit(&c->last_ns,
								     memory_order_relaxed),
						c->idle_ns);
			weft_scope_enter_at(&sc, dl);
		}
		ssize_t r = op == OP_FILL    ? weft_stream_fill(d->src)
			    : op == OP_DRAIN ? weft_stream_drain(d->dst)
					     : weft_stream_shutdown(d->dst);
		if (dl == WEFT_FOREVER)
			return r;
		if (weft_scope_exit(&sc) != 1 || r != -ETIMEDOUT)
			return r; /* done, or the stream's own error or limit */
		size_t now_pending = weft_stream_pending(d->dst);
		if (now_pending < pending) /* the peer took bytes meanwhile */
			progress(c);
		pending = now_pending;
		uint64_t last = atomic_load_explicit(&c->last_ns, memory_order_relaxed);
		if (weft__deadline_add(last, c->idle_ns) <= weft_now_ns())
			return IDLE;
	}
}

/* The end of a failed wait or write: nothing to report for a
 * cancellation (the group's, after the other direction failed, or the
 * caller's); else the first failure, `who` the stream whose call it was. */
static void *ended(struct dir *d, ssize_t r, weft_stream *who)
{
	if (r == IDLE)
		fail(d, -ETIMEDOUT, NULL);
	else if (r != -ECANCELED)
		fail(d, (int)r, who);
	return NULL;
}

static void *pump(void *arg)
{
	struct dir *d = arg;
	for (;;) {
		const char *p;
		size_t n = weft_stream_buffered(d->src, &p);
		ssize_t r;
		if (!n) {
			if ((r = idle_wait(d, OP_FILL)) == -ESHUTDOWN) {
				/* weft_stream_end_input (a server shutting down):
				 * stop reading, pass nothing on, let the other
				 * direction finish */
				atomic_store(&d->c->ended, true);
				return NULL;
			}
			if (r < 0)
				return ended(d, r, d->src);
			if (r == 0) /* end of input: pass it on */
				break;
			progress(d->c);
			continue;
		}
		if ((r = weft_stream_write(d->dst, p, n)) < 0)
			return ended(d, r, d->dst);
		weft_stream_consume(d->src, n);
		atomic_fetch_add_explicit(&d->moved, n, memory_order_relaxed);
		if ((r = idle_wait(d, OP_DRAIN)) < 0)
			return ended(d, r, d->dst);
	}
	ssize_t r = idle_wait(d, OP_SHUTDOWN);
	return r < 0 ? ended(d, r, d->dst) : NULL;
}

int weft_stream_copy_bidirectional(weft_stream *a, weft_stream *b,
				   const weft_stream_copy_config *cfg,
				   weft_stream_copied *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	weft_stream_copy_config dflt;
	if (!cfg) {
		weft_stream_copy_config_init(&dflt);
		cfg = &dflt;
	}
	if (!a || !b || a == b)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
		if (cfg->reserved[i])
			return -EINVAL;
	if (!weft__task_self())
		return -EPERM;
	struct copy c = { .idle_ns = cfg->idle_timeout_ns };
	atomic_init(&c.last_ns, weft_now_ns());
	c.d[0] = (struct dir){ .c = &c, .src = a, .dst = b };
	c.d[1] = (struct dir){ .c = &c, .src = b, .dst = a };
	weft_group *g;
	int r = weft_group_create(&g);
	if (r < 0)
		return r;
	for (int i = 0; i < 2 && r == 0; i++)
		r = weft_group_spawn(g, NULL, NULL, pump, &c.d[i]);
	if (r < 0)
		weft_group_cancel(g); /* then wait for the one that started */
	int w = weft_group_wait(g); /* cancels and waits for both if we are */
	weft_group_destroy(g);
	/* Precedence: the caller's own cancellation, then the first
	 * direction's failure, then the caller's scope (a failed spawn
	 * stays). */
	int err = atomic_load(&c.err);
	if (weft_task_cancelled())
		r = -ECANCELED;
	else if (r == 0)
		r = err ? err : w ? w : atomic_load(&c.ended) ? -ESHUTDOWN : 0;
	if (out) {
		out->a_to_b = atomic_load(&c.d[0].moved);
		out->b_to_a = atomic_load(&c.d[1].moved);
		out->failed = atomic_load(&c.failed);
	}
	return r;
}
