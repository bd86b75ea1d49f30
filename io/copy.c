/*
 * weft_stream_copy_bidirectional (weft/stream.h): a proxy's two byte
 * pumps, as a state machine on the caller's loop, with no task of their
 * own.
 *
 * Each direction is a receive (a callback op of the relay's, prepared by
 * the source stream: io/stream.c, "a relay's receives") and the
 * destination's write queue.  Its callback queues the bytes on the
 * destination (weft__stream_put: one copy, as weft_stream_write) and,
 * unless that put the queue over high water, arms the next receive at
 * once: the steady state of a relayed connection runs entirely in
 * callbacks, and a waiting receive names no buffer (WEFT_OPH_BUFSEL), so
 * an idle connection holds none.  Everything else is the calling task's,
 * which parks until both directions are done and is woken only when one
 * needs it: a destination over high water (the direction waits on its
 * writer, as drain does, until it falls to low water: the backpressure),
 * end of input (the destination is flushed, then shut down for writing:
 * the SHUT_WR is owed from shut_begin on and the destination's writer
 * sends it once idle, so a copy stopped mid-flush still ends in a FIN),
 * a failure (the first one is kept, and the other direction's receive is
 * cancelled), weft_stream_end_input (the source's reader is interrupted,
 * which is this task), the streams' own read and write limits, the idle
 * limit, and the caller's cancellation or scope.  Then both receives are
 * cancelled and the task waits, uninterruptibly, for their final
 * callbacks: no op and no buffer outlives the call.  The task stays
 * pinned to its loop meanwhile (the ops are that loop's: rule 3 of
 * docs/architecture.md), so the callbacks and the task never run at once
 * and the state needs no lock; only the destinations' writers, which any
 * task may share, are reached through their locks.
 *
 * The idle limit is connection-wide: the task's park ends
 * idle_timeout_ns after the last progress of either direction (a byte
 * received, or a destination's queue shrinking: its peer took bytes,
 * whether or not the direction waits on it), and looks again before
 * failing, the kernel's send buffers included (kernel_progress).
 */
#include "io.h"
#include "weft/stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum {                  /* struct dir.st */
	D_RECV,         /* receiving (op armed), or about to */
	D_FULL,         /* the destination is over high water: wait */
	D_SHUT,         /* input ended: flush the destination, shut it */
	D_DONE,
};

struct copy;

struct dir {
	struct copy *c;
	weft_stream *src, *dst;
	weft__op op;        /* the receive */
	uint8_t st;         /* D_* */
	bool reader;        /* src is ours to read (relay_begin succeeded) */
	bool armed;         /* op in flight */
	bool rtimed;        /* op cancelled at src's read limit */
	bool intr;          /* src's input was ended (weft_stream_end_input) */
	bool shut;          /* dst's shutdown begun */
	bool linked;        /* w waits on dst's writer */
	bool tried;         /* a bulk try found nothing: the next one waits */
	uint64_t moved;     /* queued on dst */
	uint64_t rdl;       /* the receive's read limit (WEFT_FOREVER none) */
	uint64_t wstart, wdl; /* the wait on dst: since (0 unknown), limit */
	size_t pend;        /* dst's queue at the last put or look (idle
			       limit: less now means its peer took bytes) */
	uint64_t acked;     /* dst's TCP peer's acknowledged bytes at the
			       last look (idle limit: more now, the same) */
	weft__waiter w;
};

struct copy {
	weft_task *t;
	weft_loop *l;
	uint64_t idle_ns, last_ns;
	int err;            /* the first failure (0: none yet) */
	weft_stream *failed; /* whose call it was (NULL: the idle limit) */
	bool ended;         /* a source's input was ended (-ESHUTDOWN) */
	bool stop;          /* stop both directions */
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
	if (c->idle_ns != WEFT_FOREVER)
		c->last_ns = weft_now_ns();
}

static void stop_all(struct copy *c)
{
	c->stop = true;
	for (int i = 0; i < 2; i++)
		if (c->d[i].armed)
			weft__io_cancel(c->l, &c->d[i].op);
}

/* Record the first failure (later ones, and what stopping causes, are not
 * reported) and stop both directions. */
static void fail(struct copy *c, int err, weft_stream *who)
{
	if (!c->err) {
		c->err = err;
		c->failed = who;
	}
	stop_all(c);
}

static void wait_on_dst(struct dir *d, uint8_t st)
{
	d->st = st;
	d->pend = weft_stream_pending(d->dst);
}

static void recv_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags);

/* Move direction d on as far as it goes without waiting: arm its
 * receive, or wait on its destination's writer (w linked), or finish.
 * On the loop, from the task or a receive's callback. */
static void advance(struct dir *d)
{
	struct copy *c = d->c;
	for (;;) {
		int r;
		switch (d->st) {
		case D_RECV:
			if (d->armed)
				return;
			if (c->stop || d->intr) {
				c->ended |= d->intr && !c->stop;
				d->st = D_DONE;
				break;
			}
			d->op.cb = recv_done;
			r = weft__stream_relay_recv(d->src, &d->op, &d->rdl, d->tried);
			d->tried = false;
			if (r == 1) {
				wait_on_dst(d, D_SHUT);
			} else if (r == -ESHUTDOWN) { /* stop reading, pass nothing on */
				c->ended = true;
				d->st = D_DONE;
			} else if (r < 0) {
				fail(c, r, d->src);
			} else {
				weft__op_arm(c->l, &d->op);
				d->armed = true;
				return;
			}
			break;
		case D_FULL:
		case D_SHUT:
			if (d->linked) {
				weft__stream_relay_unwatch(d->dst, &d->w);
				d->linked = false;
			}
			if (c->stop) {
				d->st = D_DONE;
				break;
			}
			if (d->st == D_SHUT && !d->shut) {
				if ((r = weft__stream_shut_begin(d->dst, c->t)) < 0) {
					fail(c, r, d->dst);
					break;
				}
				d->shut = true;
			}
			r = weft__stream_relay_watch(d->dst, &d->w, c->t, d->st == D_SHUT,
						     &d->wstart, &d->wdl);
			if (r == 0) {
				d->linked = true;
				return;
			}
			if (r < 0) {
				fail(c, r, d->dst);
				break;
			}
			d->wstart = 0;
			progress(c); /* the peer took bytes */
			if (d->st == D_FULL) {
				d->st = D_RECV;
			} else {
				if ((r = weft__stream_shut_end(d->dst)) < 0)
					fail(c, r, d->dst);
				d->st = D_DONE;
			}
			break;
		default:
			return;
		}
	}
}

/* A receive's result, on the loop: the bytes are queued on the
 * destination and the next receive armed; anything else wakes the task. */
static void recv_done(weft_loop *l, weft__op *op, int32_t res, uint32_t flags)
{
	(void)l;
	(void)flags;
	struct dir *d = (struct dir *)((char *)op - offsetof(struct dir, op));
	struct copy *c = d->c;
	d->armed = false;
	res = weft__stream_relay_recvd(d->src, op, res);
	if (res <= 0)
		weft__stream_relay_release(d->src, op);
	if (res > 0) {
		bool over = false;
		int r = weft__stream_put(d->dst, op->a.p, (size_t)res, &over, &d->pend);
		weft__stream_relay_release(d->src, op);
		d->rtimed = false; /* the bytes won over the limit */
		if (r < 0) {
			fail(c, r, d->dst);
		} else {
			d->moved += (uint64_t)res;
			progress(c);
			if (over)
				wait_on_dst(d, D_FULL);
		}
	} else if (res == 0) {
		wait_on_dst(d, D_SHUT);
	} else if (res == -EAGAIN) { /* a bulk try found nothing: wait */
		d->tried = true;
		/* its read limit passed while it ran (limits() could not
		 * cancel it): the limit, as a cancelled receive's */
		if (d->rtimed && !c->stop && !d->intr)
			fail(c, -ETIMEDOUT, d->src);
	} else if (res == -ECANCELED ||
		   (res == -ENOBUFS && (c->stop || d->intr || d->rtimed))) {
		/* stopped, interrupted, or at src's read limit (a dry ring's
		 * receive is not tried again once cancelled) */
		if (d->rtimed && !c->stop && !d->intr)
			fail(c, -ETIMEDOUT, d->src);
	} else {
		fail(c, res, d->src);
	}
	advance(d);
	if (!d->armed) /* off the steady path: the task looks */
		weft__task_wake(c->t);
}

/* The task's park ends here (WEFT_FOREVER: none): the idle limit, a
 * receive's read limit, a wait's write limit. */
static uint64_t next_deadline(const struct copy *c)
{
	uint64_t dl = WEFT_FOREVER;
	if (c->stop)
		return dl;
	if (c->idle_ns != WEFT_FOREVER)
		dl = weft__deadline_add(c->last_ns, c->idle_ns);
	for (int i = 0; i < 2; i++) {
		const struct dir *d = &c->d[i];
		if (d->armed && !d->rtimed && d->rdl < dl)
			dl = d->rdl;
		if (d->linked && d->wdl < dl)
			dl = d->wdl;
	}
	return dl;
}

/* The idle limit is about to fail: did a destination's peer take bytes
 * that had left its queue, from the kernel's send buffer?  A reply the
 * copy moved whole into the socket is invisible to weft_stream_pending,
 * however slowly it drains (a download to a slow client, the copy idle
 * in user space).  TCP's acknowledged bytes, looked at only here (a
 * getsockopt per destination at the limit's expiry, nothing per byte),
 * count as progress now when they grew since the last look.  They may
 * have grown long before it (before the last byte moved in user space,
 * even), so an idle connection is cut within twice the limit after its
 * last byte moved at worst, and never before the limit. */
static bool kernel_progress(struct copy *c, uint64_t now)
{
	bool moved = false;
	for (int i = 0; i < 2; i++) {
		struct dir *d = &c->d[i];
		uint64_t n = weft__stream_acked(d->dst);
		moved |= n > d->acked;
		d->acked = n;
	}
	if (moved)
		c->last_ns = now;
	return moved;
}

/* The park's own deadline passed: cancel the receives past their read
 * limits (their final callbacks fail them), count the destinations'
 * progress, and fail on the idle limit.  Write limits are advance's.
 * A destination's peer takes bytes while the direction receives too (a
 * reply under high water, drained by a slow reader): every direction's
 * destination is looked at, not only those waited on. */
static void limits(struct copy *c)
{
	uint64_t now = weft_now_ns();
	for (int i = 0; i < 2; i++) {
		struct dir *d = &c->d[i];
		if (d->armed && !d->rtimed && now >= d->rdl) {
			d->rtimed = true;
			weft__io_cancel(c->l, &d->op);
		}
		size_t n = weft_stream_pending(d->dst);
		if (n < d->pend)
			c->last_ns = now;
		d->pend = n;
	}
	if (c->idle_ns != WEFT_FOREVER && now >= weft__deadline_add(c->last_ns, c->idle_ns) &&
	    !kernel_progress(c, now))
		fail(c, -ETIMEDOUT, NULL);
}

/* weft_stream_end_input interrupted the task (the readers' one-shot
 * cancellation): find whose input it was and stop that direction; or
 * weft_stream_abort did (it ends the input too), which fails the copy as
 * the stream's reads now fail.  Cleared first, so an interruption that
 * lands meanwhile is seen by the next park. */
static void interrupted(struct copy *c)
{
	weft__task_interrupt_clear(c->t);
	for (int i = 0; i < 2; i++) {
		struct dir *d = &c->d[i];
		int r;
		if (!d->reader || d->intr || !(r = weft__stream_relay_interrupted(d->src)))
			continue;
		d->intr = true;
		if (r != -ESHUTDOWN)
			fail(c, r, d->src); /* cancels both receives */
		else if (d->armed)
			weft__io_cancel(c->l, &d->op);
	}
}

/* Queue what src had buffered before the call: it goes first. */
static void relay_buffered(struct dir *d)
{
	const char *p;
	size_t n = weft_stream_buffered(d->src, &p);
	if (!n)
		return;
	bool over = false;
	int r = weft__stream_put(d->dst, p, n, &over, &d->pend);
	if (r < 0) {
		fail(d->c, r, d->dst);
		return;
	}
	weft_stream_consume(d->src, n);
	d->moved += n;
	if (over)
		wait_on_dst(d, D_FULL);
}

/* Run both directions until both are done; with the caller's
 * cancellation or scope (*why), stop them and wait for their receives'
 * final callbacks. */
static void run(struct copy *c, int *why)
{
	weft_task *t = c->t;
	uint64_t saved = 0;
	for (int i = 0; i < 2; i++)
		advance(&c->d[i]);
	while (c->d[0].st != D_DONE || c->d[1].st != D_DONE) {
		int r = weft__park_task(t, weft__deadline_in(next_deadline(c)));
		if ((r == -ECANCELED || r == -ETIMEDOUT) && !*why) {
			*why = r; /* nothing interrupts the wait for the ops now */
			saved = weft__uninterruptible_begin(t);
			stop_all(c);
		} else if (r == -EINTR) {
			interrupted(c);
		} else if (r == -ETIME) {
			limits(c);
		}
		for (int i = 0; i < 2; i++)
			advance(&c->d[i]);
	}
	if (*why)
		weft__uninterruptible_end(t, saved);
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
	weft_task *t = weft__task_self();
	if (!t)
		return -EPERM;
	struct copy c = { .t = t, .l = weft__loop_self(), .idle_ns = cfg->idle_timeout_ns };
	c.last_ns = weft_now_ns();
	c.d[0] = (struct dir){ .c = &c, .src = a, .dst = b };
	c.d[1] = (struct dir){ .c = &c, .src = b, .dst = a };
	if (c.idle_ns != WEFT_FOREVER) /* what the peers had taken before */
		for (int i = 0; i < 2; i++)
			c.d[i].acked = weft__stream_acked(c.d[i].dst);
	int16_t pin = t->pin; /* the ops are this loop's */
	t->pin = (int16_t)c.l->index;
	for (int i = 0; i < 2; i++) {
		struct dir *d = &c.d[i];
		int r = weft__stream_relay_begin(d->src, t);
		if (r < 0)
			fail(&c, r, d->src);
		d->reader = r == 0;
	}
	for (int i = 0; i < 2 && !c.stop; i++)
		relay_buffered(&c.d[i]);
	int why = 0;
	run(&c, &why);
	bool intr = false;
	for (int i = 0; i < 2; i++)
		if (c.d[i].reader)
			intr |= weft__stream_relay_end(c.d[i].src);
	if (intr) /* no interruption outlives the call */
		weft__task_interrupt_clear(t);
	t->pin = pin;
	/* Precedence: the caller's own cancellation, then the first
	 * direction's failure, then the caller's scope.  The cancellation
	 * as a suspension point delivers it (weft__cancel_check): a copy
	 * inside the caller's shield went on, and returns its own result. */
	int r;
	if (weft__cancel_check(t) < 0)
		r = -ECANCELED;
	else
		r = c.err ? c.err : why ? why : c.ended ? -ESHUTDOWN : 0;
	if (out) {
		out->a_to_b = c.d[0].moved;
		out->b_to_a = c.d[1].moved;
		out->failed = c.failed;
	}
	return r;
}
