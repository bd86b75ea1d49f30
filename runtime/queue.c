/*
 * Queues: FIFO, LIFO and priority, multi-producer multi-consumer across
 * loops and foreign threads, built on weft__wait_locked.
 *
 * Invariants (all under q->lock):
 *  - getters wait only while the queue is empty, putters only while it is
 *    full; so a put that finds a getter hands it the item directly, and a
 *    get from a full queue refills the freed slot from the longest putter.
 *  - a hand-off writes the waiter's item/err and fires it under the lock;
 *    a fired waiter wins over its own timeout or cancellation
 *    (weft__wait_locked), so nothing handed over is lost, and a waiter that
 *    gave up first has already unlinked itself, so nothing is handed to it.
 * The common path (neither waiting) is one uncontended lock and a few
 * stores; the lock (runtime/lock.h) is held for a few instructions, never
 * across a suspension or a system call.
 * WEFT_QUEUE_SPSC replaces the locked buffer by a lock-free ring (see the
 * SPSC section); waiting, shutdown and join are shared with the rest.
 */
#include "internal.h"
#include "weft/queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { OPEN, SHUT_GRACEFUL, SHUT_IMMEDIATE };

/* A waiting getter or putter: the item travels through it. */
typedef struct qwaiter {
	weft__waiter w; /* first: the list holds &w */
	void *item;
	int err;
} qwaiter;

struct weft_queue {
	weft__lock lock;
	int kind;
	int shut;
	size_t cap;      /* 0: unbounded */
	void **buf;      /* ring (FIFO), stack (LIFO) or heap (PRIORITY) */
	size_t bufcap;   /* slots in buf; a power of two for FIFO */
	size_t head;     /* FIFO ring start */
	_Atomic size_t len;    /* atomic only so size() may read it lock-free */
	_Atomic int shut_a;    /* copy of shut for the lock-free SPSC paths */
	bool spsc;
	weft_queue_cmp_fn cmp;
	void *cmp_arg;
	weft_queue_drop_fn drop;
	void *drop_arg;
	weft__waitlist getters, putters, joiners;
	/* Unfinished items = puts - dones.  puts has one writer at a time
	 * (the lock holder, or the single SPSC producer), so it needs no
	 * read-modify-write; task_done adds to dones from anywhere. */
	_Atomic uint64_t puts;
	_Atomic uint64_t dones;
	/* SPSC ring: producer and consumer indices on their own cache lines,
	 * each side caching the other's so the common path touches no shared
	 * line.  Slots are atomics because an immediate shutdown may take an
	 * item the consumer is reading (the head CAS decides who owns it). */
	_Atomic(void *) *ring;
	void **dropbuf;          /* SPSC immediate shutdown: items to drop */
	_Alignas(64) _Atomic size_t tail;
	size_t head_cache;       /* producer's view of head */
	_Alignas(64) _Atomic size_t rhead;
	size_t tail_cache;       /* consumer's view of tail */
	_Alignas(64) _Atomic int get_waiting;
	_Atomic int put_waiting;
};

void weft_queue_config_init(weft_queue_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof(*cfg));
}

static bool config_ok(const weft_queue_config *c)
{
	for (size_t i = 0; i < sizeof(c->reserved) / sizeof(c->reserved[0]); i++)
		if (c->reserved[i])
			return false;
	if (c->flags & ~(unsigned)WEFT_QUEUE_SPSC)
		return false;
	if ((c->flags & WEFT_QUEUE_SPSC) && (c->kind != WEFT_QUEUE_FIFO || !c->capacity))
		return false;
	if (c->kind == WEFT_QUEUE_PRIORITY)
		return c->cmp != NULL;
	return (c->kind == WEFT_QUEUE_FIFO || c->kind == WEFT_QUEUE_LIFO) && !c->cmp;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

static int spsc_create(weft_queue *q, weft_queue **out)
{
	q->bufcap = pow2_at_least(q->cap);
	q->ring = calloc(q->bufcap, sizeof(*q->ring));
	q->dropbuf = malloc(q->cap * sizeof(void *));
	if (!q->ring || !q->dropbuf) {
		free(q->ring);
		free(q->dropbuf);
		free(q);
		return -ENOMEM;
	}
	*out = q;
	return 0;
}

int weft_queue_create(weft_queue **out, const weft_queue_config *cfg)
{
	weft_queue_config def;
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg) {
		weft_queue_config_init(&def);
		cfg = &def;
	}
	if (!config_ok(cfg) || cfg->capacity > SIZE_MAX / 4 / sizeof(void *))
		return -EINVAL;
	/* aligned: the SPSC indices sit on their own cache lines */
	size_t sz = (sizeof(weft_queue) + 63) & ~(size_t)63;
	weft_queue *q = aligned_alloc(64, sz);
	if (!q)
		return -ENOMEM;
	memset(q, 0, sz);
	q->kind = cfg->kind;
	q->cap = cfg->capacity;
	q->cmp = cfg->cmp;
	q->cmp_arg = cfg->cmp_arg;
	q->drop = cfg->drop;
	q->drop_arg = cfg->drop_arg;
	atomic_init(&q->lock.v, 0);
	atomic_init(&q->len, 0);
	q->spsc = cfg->flags & WEFT_QUEUE_SPSC;
	if (q->spsc)
		return spsc_create(q, out);
	/* Bounded: allocate everything now, so put never fails for memory
	 * and a get's refill from a putter cannot fail either. */
	q->bufcap = q->cap ? (q->kind == WEFT_QUEUE_FIFO ? pow2_at_least(q->cap) : q->cap) : 16;
	q->buf = malloc(q->bufcap * sizeof(void *));
	if (!q->buf) {
		free(q);
		return -ENOMEM;
	}
	*out = q;
	return 0;
}

static size_t qlen(const weft_queue *q)
{
	weft_queue *m = (weft_queue *)q;
	if (q->spsc) { /* head first: then tail >= head */
		size_t h = atomic_load_explicit(&m->rhead, memory_order_seq_cst);
		return atomic_load_explicit(&m->tail, memory_order_seq_cst) - h;
	}
	return atomic_load_explicit(&m->len, memory_order_relaxed);
}

/* One more unfinished item (one writer at a time: see struct). */
static void count_put(weft_queue *q)
{
	uint64_t p = atomic_load_explicit(&q->puts, memory_order_relaxed);
	atomic_store_explicit(&q->puts, p + 1, memory_order_release);
}

static uint64_t unfinished(weft_queue *q)
{
	uint64_t d = atomic_load_explicit(&q->dones, memory_order_acquire);
	return atomic_load_explicit(&q->puts, memory_order_acquire) - d;
}

/* n items done; wake joiners when none is left unfinished.  With the
 * lock held (wk given), the wakes go into wk; else they are made here. */
static void count_done(weft_queue *q, uint64_t n, weft__wakes *wk)
{
	atomic_fetch_add_explicit(&q->dones, n, memory_order_acq_rel);
	if (unfinished(q) != 0)
		return;
	if (wk) {
		weft__waitlist_fire_all(&q->joiners, wk); /* they re-check */
		return;
	}
	weft__wakes own = WEFT_WAKES_INIT;
	weft__lock_acquire(&q->lock);
	weft__waitlist_fire_all(&q->joiners, &own);
	weft__unlock_wake(&q->lock, &own);
}

static void set_len(weft_queue *q, size_t n)
{
	atomic_store_explicit(&q->len, n, memory_order_relaxed);
}

/* Unbounded growth (under the lock; rare: doubling).  A FIFO ring is
 * unrolled so head becomes 0. */
static int grow(weft_queue *q)
{
	size_t n = q->bufcap * 2, len = qlen(q);
	void **nb = malloc(n * sizeof(void *));
	if (!nb)
		return -ENOMEM;
	if (q->kind == WEFT_QUEUE_FIFO) {
		for (size_t i = 0; i < len; i++)
			nb[i] = q->buf[(q->head + i) & (q->bufcap - 1)];
		q->head = 0;
	} else {
		memcpy(nb, q->buf, len * sizeof(void *));
	}
	free(q->buf);
	q->buf = nb;
	q->bufcap = n;
	return 0;
}

static void heap_up(weft_queue *q, size_t i)
{
	void *x = q->buf[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (q->cmp(x, q->buf[p], q->cmp_arg) >= 0)
			break;
		q->buf[i] = q->buf[p];
		i = p;
	}
	q->buf[i] = x;
}

static void heap_down(weft_queue *q, size_t len)
{
	size_t i = 0;
	void *x = q->buf[0];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= len)
			break;
		if (c + 1 < len && q->cmp(q->buf[c + 1], q->buf[c], q->cmp_arg) < 0)
			c++;
		if (q->cmp(q->buf[c], x, q->cmp_arg) >= 0)
			break;
		q->buf[i] = q->buf[c];
		i = c;
	}
	q->buf[i] = x;
}

/* Store an item (room is checked by the caller; grows when unbounded). */
static int push(weft_queue *q, void *item)
{
	size_t len = qlen(q);
	if (len == q->bufcap) {
		int r = grow(q);
		if (r < 0)
			return r;
	}
	switch (q->kind) {
	case WEFT_QUEUE_FIFO:
		q->buf[(q->head + len) & (q->bufcap - 1)] = item;
		break;
	case WEFT_QUEUE_LIFO:
		q->buf[len] = item;
		break;
	default:
		q->buf[len] = item;
		heap_up(q, len);
		break;
	}
	set_len(q, len + 1);
	count_put(q);
	return 0;
}

/* Remove the next item (len > 0). */
static void *pop(weft_queue *q)
{
	size_t len = qlen(q) - 1;
	void *item;
	switch (q->kind) {
	case WEFT_QUEUE_FIFO:
		item = q->buf[q->head];
		q->head = (q->head + 1) & (q->bufcap - 1);
		break;
	case WEFT_QUEUE_LIFO:
		item = q->buf[len];
		break;
	default:
		item = q->buf[0];
		q->buf[0] = q->buf[len];
		if (len)
			heap_down(q, len);
		break;
	}
	set_len(q, len);
	return item;
}

/* Fire the longest waiter of wl with an outcome (under the lock; its
 * wake is made from wk once the lock is released). */
static void hand_off(weft__waitlist *wl, void *item, int err, weft__wakes *wk)
{
	qwaiter *w = (qwaiter *)wl->head;
	w->item = item;
	w->err = err;
	weft__waitlist_fire_one(wl, wk);
}

/* Fire every waiter of wl with err (under the lock, wakes into wk). */
static void fail_all(weft__waitlist *wl, int err, weft__wakes *wk)
{
	for (weft__waiter *w = wl->head; w; w = w->next)
		((qwaiter *)w)->err = err;
	weft__waitlist_fire_all(wl, wk);
}

/*
 * Spin briefly before waiting (docs/architecture.md rule 5): with the other
 * side running on another loop or thread, the item or slot usually shows up
 * within a few hundred nanoseconds, far cheaper than a park and a cross-loop
 * wake (microseconds).  Not worth it with one loop: nothing else can run
 * while we spin.  Bounded, so deadlines and cancellation are seen late by at most a
 * few microseconds.
 */
#define QSPIN 64

/* Whether the caller's loop has another task ready: spinning would then
 * only delay it (it may be the very task we wait for).  Owner-only fields
 * are safe to read here: the caller runs on loop l. */
static void spin_for(const weft_queue *q, bool want_item)
{
	weft_loop *l = weft__loop_self();
	if (l && (l->rt->nloops < 2 || weft__loop_has_ready(l)))
		return;
	for (int i = 0; i < QSPIN; i++) {
		size_t n = qlen(q);
		if (want_item ? n != 0 : n < q->cap)
			return;
		weft__cpu_relax();
	}
}

/* Cancellation and an expired deadline scope are checked before a
 * blocking call, so such a task never enqueues or takes anything (the
 * caller can tell from the -ECANCELED / -ETIMEDOUT). */
static int enter(weft_task *self, bool block)
{
	return self && block ? weft__checkpoint(self) : 0;
}

/* ---- single producer, single consumer (WEFT_QUEUE_SPSC) ----
 *
 * The ring is lock-free; the lock and wait lists are used only to sleep.
 * A side about to sleep sets its *_waiting flag under the lock and then
 * re-checks the ring; the other side publishes and then reads the flag,
 * both separated by seq_cst fences (Dekker): at least one of them sees the
 * other, so a wake is never missed.  Nothing is handed through a waiter:
 * a woken side re-checks the ring, so a waiter that gives up (timeout,
 * cancellation) leaves every item where it is. */

static int shut_state(const weft_queue *q)
{
	return atomic_load_explicit(&((weft_queue *)q)->shut_a, memory_order_acquire);
}

/* Wake the other side if it said it is going to sleep. */
static void spsc_wake(weft_queue *q, _Atomic int *flag, weft__waitlist *wl)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (!atomic_load_explicit(flag, memory_order_relaxed))
		return;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&q->lock);
	weft__waitlist_fire_all(wl, &wk);
	weft__unlock_wake(&q->lock, &wk);
}

/* Producer: publish item if there is room. */
static bool spsc_push(weft_queue *q, void *item)
{
	size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (t - q->head_cache >= q->cap) {
		q->head_cache = atomic_load_explicit(&q->rhead, memory_order_acquire);
		if (t - q->head_cache >= q->cap)
			return false;
	}
	count_put(q); /* before the item is visible: task_done may follow */
	atomic_store_explicit(&q->ring[t & (q->bufcap - 1)], item, memory_order_relaxed);
	atomic_store_explicit(&q->tail, t + 1, memory_order_release);
	return true;
}

/* Take the head item; the CAS arbitrates against an immediate shutdown
 * draining the ring at the same time. */
static bool spsc_take_at(weft_queue *q, size_t tail, void **item)
{
	size_t h = atomic_load_explicit(&q->rhead, memory_order_acquire);
	while (h != tail && (ptrdiff_t)(tail - h) > 0) {
		void *v = atomic_load_explicit(&q->ring[h & (q->bufcap - 1)], memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(&q->rhead, &h, h + 1, memory_order_acq_rel,
							  memory_order_acquire)) {
			*item = v;
			return true;
		}
	}
	return false;
}

/* Consumer side: uses (and refreshes) the cached tail. */
static bool spsc_take(weft_queue *q, void **item)
{
	if (spsc_take_at(q, q->tail_cache, item))
		return true;
	q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
	return spsc_take_at(q, q->tail_cache, item);
}

/* Items put while an immediate shutdown drained the ring: dropped by the
 * consumer's next get (or by destroy). */
static void spsc_drop_rest(weft_queue *q)
{
	void *v;
	uint64_t n = 0;
	while (spsc_take(q, &v)) {
		n++;
		if (q->drop)
			q->drop(v, q->drop_arg);
	}
	if (n)
		count_done(q, n, NULL);
}

/* Sleep until woken, unless `ready` already holds once the flag is up.
 * Returns 0 to retry, or the wait's error. */
static int spsc_sleep(weft_queue *q, weft_task *self, bool getter, uint64_t deadline)
{
	_Atomic int *flag = getter ? &q->get_waiting : &q->put_waiting;
	weft__waitlist *wl = getter ? &q->getters : &q->putters;
	weft__lock_acquire(&q->lock);
	atomic_store_explicit(flag, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst);
	size_t n = qlen(q);
	if (shut_state(q) || (getter ? n != 0 : n < q->cap)) {
		atomic_store_explicit(flag, 0, memory_order_relaxed);
		weft__lock_release(&q->lock);
		return 0;
	}
	qwaiter w = { .item = NULL, .err = 0 };
	weft__wait_on(self, getter ? WEFT_WAIT_QUEUE_GET : WEFT_WAIT_QUEUE_PUT, q);
	int r = weft__wait_locked(self, &q->lock, wl, &w.w, deadline);
	atomic_store_explicit(flag, 0, memory_order_relaxed);
	return r;
}

static int spsc_put(weft_queue *q, weft_task *self, void *item, bool block, uint64_t deadline)
{
	for (;;) {
		if (shut_state(q))
			return -EPIPE;
		if (spsc_push(q, item)) {
			spsc_wake(q, &q->get_waiting, &q->getters);
			weft__budget_spend(self);
			return 0;
		}
		if (!block)
			return -EAGAIN;
		spin_for(q, false);
		if (qlen(q) < q->cap)
			continue;
		int r = spsc_sleep(q, self, false, deadline);
		if (r < 0)
			return r; /* never enqueued: the caller keeps item */
	}
}

static int spsc_get(weft_queue *q, weft_task *self, void **item, bool block, uint64_t deadline)
{
	for (;;) {
		int shut = shut_state(q);
		if (shut == SHUT_IMMEDIATE) {
			spsc_drop_rest(q);
			return -EPIPE;
		}
		if (spsc_take(q, item)) {
			spsc_wake(q, &q->put_waiting, &q->putters);
			weft__budget_spend(self);
			return 0;
		}
		if (shut)
			return -EPIPE; /* graceful and drained */
		if (!block)
			return -EAGAIN;
		spin_for(q, true);
		if (qlen(q))
			continue;
		int r = spsc_sleep(q, self, true, deadline);
		if (r < 0)
			return r; /* anything that arrived stays in the ring */
	}
}

/* Immediate shutdown: drain the ring (under the lock) into dropbuf. */
static size_t spsc_drain(weft_queue *q)
{
	size_t n = 0;
	void *v;
	/* A put already past its shutdown check may add one more as head
	 * advances: bounded by dropbuf's size, spsc_drop_rest gets the rest. */
	while (n < q->cap &&
	       spsc_take_at(q, atomic_load_explicit(&q->tail, memory_order_acquire), &v))
		q->dropbuf[n++] = v;
	return n;
}

static int put_until(weft_queue *q, void *item, bool block, uint64_t deadline)
{
	if (!q)
		return -EINVAL;
	weft_task *self = weft__task_self();
	int r = enter(self, block);
	if (r < 0)
		return r;
	if (q->spsc)
		return spsc_put(q, self, item, block, deadline);
	if (block && q->cap && qlen(q) >= q->cap)
		spin_for(q, false);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&q->lock);
	if (q->shut) {
		weft__lock_release(&q->lock);
		return -EPIPE; /* "queue shut down": expected, not a misuse */
	}
	if (q->getters.head) { /* empty queue with a getter: hand over */
		count_put(q);
		hand_off(&q->getters, item, 0, &wk);
		r = 0;
	} else if (!q->cap || qlen(q) < q->cap) {
		r = push(q, item);
	} else if (!block) {
		r = -EAGAIN;
	} else {
		qwaiter w = { .item = item, .err = 0 };
		weft__wait_on(self, WEFT_WAIT_QUEUE_PUT, q);
		r = weft__wait_locked(self, &q->lock, &q->putters, &w.w, deadline);
		return r < 0 ? r : w.err; /* fired: a getter enqueued it, or shutdown */
	}
	weft__unlock_wake(&q->lock, &wk);
	if (r == 0)
		weft__budget_spend(self);
	return r;
}

int weft_queue_put(weft_queue *q, void *item)
{
	return put_until(q, item, true, 0);
}

int weft_queue_put_timeout(weft_queue *q, void *item, uint64_t timeout_ns)
{
	return put_until(q, item, true, weft__deadline_after(timeout_ns));
}

int weft_queue_try_put(weft_queue *q, void *item)
{
	return put_until(q, item, false, 0);
}

static int get_until(weft_queue *q, void **item, bool block, uint64_t deadline)
{
	if (!q || !item)
		return -EINVAL;
	weft_task *self = weft__task_self();
	int r = enter(self, block);
	if (r < 0)
		return r;
	if (q->spsc)
		return spsc_get(q, self, item, block, deadline);
	if (block && !qlen(q))
		spin_for(q, true);
	weft__lock_acquire(&q->lock);
	if (qlen(q)) {
		*item = pop(q);
		/* The slot just freed goes to the longest putter: it cannot
		 * fail (bounded queues never grow). */
		weft__wakes wk = WEFT_WAKES_INIT;
		if (q->putters.head) {
			qwaiter *p = (qwaiter *)q->putters.head;
			push(q, p->item);
			hand_off(&q->putters, p->item, 0, &wk);
		}
		weft__unlock_wake(&q->lock, &wk);
		weft__budget_spend(self);
		return 0;
	}
	if (q->shut) {
		weft__lock_release(&q->lock);
		return -EPIPE;
	}
	if (!block) {
		weft__lock_release(&q->lock);
		return -EAGAIN;
	}
	qwaiter w = { .item = NULL, .err = 0 };
	weft__wait_on(self, WEFT_WAIT_QUEUE_GET, q);
	r = weft__wait_locked(self, &q->lock, &q->getters, &w.w, deadline);
	if (r < 0)
		return r; /* gave up before any hand-off: nothing was taken */
	if (w.err == 0)
		*item = w.item;
	return w.err;
}

int weft_queue_get(weft_queue *q, void **item)
{
	return get_until(q, item, true, 0);
}

int weft_queue_get_timeout(weft_queue *q, void **item, uint64_t timeout_ns)
{
	return get_until(q, item, true, weft__deadline_after(timeout_ns));
}

int weft_queue_try_get(weft_queue *q, void **item)
{
	return get_until(q, item, false, 0);
}

int weft_queue_task_done(weft_queue *q)
{
	if (!q)
		return -EINVAL;
	/* A CAS, never a transient over-count: a joiner must not sleep on a
	 * count that an undo later fixes without waking it. */
	uint64_t d = atomic_load_explicit(&q->dones, memory_order_acquire);
	do {
		if (d >= atomic_load_explicit(&q->puts, memory_order_acquire))
			return weft__misuse(-EINVAL, "weft_queue_task_done called too many times");
	} while (!atomic_compare_exchange_weak_explicit(&q->dones, &d, d + 1,
							 memory_order_acq_rel,
							 memory_order_acquire));
	count_done(q, 0, NULL);
	return 0;
}

/* Joiners re-check under the lock after every wake: task_done fires them
 * under the same lock after the count reached zero, so none is missed. */
static int join_until(weft_queue *q, uint64_t deadline)
{
	if (!q)
		return -EINVAL;
	weft_task *self = weft__task_self();
	int r = enter(self, true);
	for (; r == 0;) {
		weft__lock_acquire(&q->lock);
		if (unfinished(q) == 0) {
			weft__lock_release(&q->lock);
			return 0;
		}
		qwaiter w = { .item = NULL, .err = 0 };
		weft__wait_on(self, WEFT_WAIT_OTHER, q); /* its join */
		r = weft__wait_locked(self, &q->lock, &q->joiners, &w.w, deadline);
	}
	return r;
}

int weft_queue_join(weft_queue *q)
{
	return join_until(q, 0);
}

int weft_queue_join_timeout(weft_queue *q, uint64_t timeout_ns)
{
	return join_until(q, weft__deadline_after(timeout_ns));
}

/* Hand every queued item to the drop callback (no lock held: it is user
 * code) and free the old buffer. */
static void drop_items(weft_queue *q, void **buf, size_t bufcap, size_t head, size_t len)
{
	for (size_t i = 0; q->drop && i < len; i++) {
		size_t k = q->kind == WEFT_QUEUE_FIFO && bufcap ? (head + i) & (bufcap - 1) : i;
		q->drop(buf[k], q->drop_arg);
	}
}

/* Immediate shutdown of a locked queue: take every queued item out.
 * Returns how many; buf, cap and head say where they are. */
static size_t take_all(weft_queue *q, void ***buf, size_t *cap, size_t *head)
{
	if (q->spsc) {
		*buf = q->dropbuf;
		*cap = 0;
		*head = 0;
		return spsc_drain(q);
	}
	/* Detach the buffer: no put can succeed any more, so the queue never
	 * needs one again. */
	size_t n = qlen(q);
	*buf = q->buf;
	*cap = q->bufcap;
	*head = q->head;
	q->buf = NULL;
	q->bufcap = q->head = 0;
	set_len(q, 0);
	return n;
}

int weft_queue_shutdown(weft_queue *q, bool immediate)
{
	if (!q)
		return -EINVAL;
	void **old = NULL;
	size_t oldcap = 0, oldhead = 0, n = 0;
	bool drain = false;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&q->lock);
	if (q->shut < SHUT_GRACEFUL)
		q->shut = SHUT_GRACEFUL;
	if (immediate && q->shut != SHUT_IMMEDIATE) {
		q->shut = SHUT_IMMEDIATE;
		drain = true;
	}
	atomic_store_explicit(&q->shut_a, q->shut, memory_order_seq_cst);
	if (drain) {
		n = take_all(q, &old, &oldcap, &oldhead);
		count_done(q, n, &wk); /* dropped items count as done */
	}
	fail_all(&q->putters, -EPIPE, &wk); /* they keep their items */
	/* Getters wait only on an empty queue: nothing left to drain. */
	fail_all(&q->getters, -EPIPE, &wk);
	weft__unlock_wake(&q->lock, &wk);
	if (drain) {
		drop_items(q, old, oldcap, oldhead, n);
		if (!q->spsc)
			free(old);
	}
	return (int)(n > INT32_MAX ? INT32_MAX : n);
}

int weft_queue_destroy(weft_queue *q)
{
	if (!q)
		return -EINVAL;
	weft__lock_acquire(&q->lock);
	bool busy = q->getters.head || q->putters.head || q->joiners.head ||
		    (qlen(q) && !q->drop);
	weft__lock_release(&q->lock);
	if (busy)
		return weft__misuse(-EBUSY, "weft_queue_destroy: waiters or items left");
	if (q->spsc) {
		spsc_drop_rest(q);
		free(q->ring);
		free(q->dropbuf);
	} else {
		drop_items(q, q->buf, q->bufcap, q->head, qlen(q));
		free(q->buf);
	}
	free(q);
	return 0;
}

size_t weft_queue_size(const weft_queue *q)
{
	return q ? qlen(q) : 0;
}

bool weft_queue_empty(const weft_queue *q)
{
	return weft_queue_size(q) == 0;
}

bool weft_queue_full(const weft_queue *q)
{
	return q && q->cap && qlen(q) >= q->cap;
}
