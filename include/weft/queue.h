/*
 * weft queues: asyncio.Queue, LifoQueue and PriorityQueue, usable from
 * every loop and from foreign threads at once.  Included by "weft.h".
 *
 * Items are `void *`: the queue stores and hands them over but never
 * dereferences them.  An item belongs to the queue from a successful put
 * until a get returns it (or the drop callback of weft_queue_config
 * receives it); a put that fails leaves it with the caller.
 *
 * Blocking calls (put, get, join and their _timeout forms) are suspension
 * points in a task: they return -ECANCELED when the task is cancelled and
 * -ETIMEDOUT when an enclosing weft_scope expires.  A foreign thread blocks
 * instead (futex).  Every function may be called from any thread.  The
 * _timeout forms take timeout_ns as weft.h's "Timeouts and deadlines"
 * says: WEFT_FOREVER waits as the plain form does; 0 puts, gets or joins if
 * that can be done at once and otherwise returns -ETIMEDOUT without
 * suspending.
 *
 * Guarantees under cancellation and timeouts (stronger than asyncio's):
 *  - get: an item is either returned (0) or stays in the queue for the next
 *    getter.  An item handed to a waiting getter at the moment it is
 *    cancelled or times out is still returned to it with 0 (the hand-off
 *    wins); the -ECANCELED comes at its next suspension point.
 *  - put: 0 means enqueued (the queue owns the item), any error means it
 *    was not (the caller still owns the item).  Never both, never neither.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_queue weft_queue;

enum weft_queue_kind {
	WEFT_QUEUE_FIFO = 0,     /* asyncio.Queue */
	WEFT_QUEUE_LIFO = 1,     /* asyncio.LifoQueue: newest first */
	WEFT_QUEUE_PRIORITY = 2, /* asyncio.PriorityQueue: smallest per cmp first
				    (not stable among equal items) */
};

/* Ordering for WEFT_QUEUE_PRIORITY: < 0 when a comes out before b.  Called
 * with the queue's internal lock held: it must not call into the queue,
 * suspend or block. */
typedef int (*weft_queue_cmp_fn)(const void *a, const void *b, void *arg);

/* Receives items the queue gives up: on weft_queue_shutdown(q, true) and on
 * weft_queue_destroy().  Called without any lock held, on the calling
 * thread; the callee now owns the item. */
typedef void (*weft_queue_drop_fn)(void *item, void *arg);

/*
 * Flags.  WEFT_QUEUE_SPSC: the caller promises that at most one put (of
 * any form) and at most one get run at any moment (one producer, one
 * consumer; each may move between tasks, loops and threads as long as its
 * calls do not overlap).  Requires kind FIFO and capacity > 0.  The ring
 * is then lock-free: the common path touches no cache line shared with
 * the other side.  Same semantics as the default queue, except that an
 * item put concurrently with an immediate shutdown may miss that
 * shutdown's drain: it goes to the drop callback at the consumer's next
 * get or at destroy (its put returned 0; the queue still owns it).
 * Breaking the promise is undefined behaviour.
 */
enum { WEFT_QUEUE_SPSC = 1u };

typedef struct weft_queue_config {
	size_t capacity;          /* max queued items; 0 = unbounded (default) */
	int kind;                 /* enum weft_queue_kind (default FIFO) */
	weft_queue_cmp_fn cmp;    /* required for PRIORITY, else must be NULL */
	void *cmp_arg;
	weft_queue_drop_fn drop;  /* optional; see weft_queue_drop_fn */
	void *drop_arg;
	unsigned flags;           /* WEFT_QUEUE_SPSC or 0 (default) */
	uint64_t reserved[6];     /* must be zero */
} weft_queue_config;

/* Fill *cfg with the defaults: unbounded FIFO, no callbacks. */
WEFT_API void weft_queue_config_init(weft_queue_config *cfg);

/*
 * Create a queue (cfg NULL: defaults).  *out is owned by the caller and
 * freed with weft_queue_destroy().  A bounded queue allocates its whole
 * capacity now.  Returns 0, -EINVAL (out NULL, unknown kind, PRIORITY
 * without cmp or cmp given for another kind, unknown flag, SPSC with a
 * non-FIFO kind or capacity 0, nonzero reserved field),
 * -ENOMEM.
 */
WEFT_API int weft_queue_create(weft_queue **out, const weft_queue_config *cfg);

/*
 * Free the queue.  Items still queued go to the drop callback (in no
 * particular order).  Returns 0, -EINVAL (q NULL), or -EBUSY with nothing
 * changed when a task or thread still waits on q, or when items are left
 * and no drop callback was configured (drain or shut down first).  The
 * caller must know that no other thread is about to call into q.
 */
WEFT_API int weft_queue_destroy(weft_queue *q);

/*
 * Put `item` at the tail (LIFO: top; PRIORITY: by cmp), waiting while a
 * bounded queue is full.  A waiting getter is handed the item directly.
 * Returns 0 (enqueued: the queue owns item), -EPIPE (queue shut down),
 * -ECANCELED, -ETIMEDOUT (_timeout form or a weft_scope), -ENOMEM (an
 * unbounded queue could not grow), -EINVAL (q NULL).  On every error the
 * caller still owns item.  A cancelled task gets -ECANCELED even when room
 * is available (nothing is enqueued).
 */
WEFT_API int weft_queue_put(weft_queue *q, void *item);
WEFT_API int weft_queue_put_timeout(weft_queue *q, void *item, uint64_t timeout_ns);
/* As put, but never waits: -EAGAIN when full.  Not a cancellation point. */
WEFT_API int weft_queue_try_put(weft_queue *q, void *item);

/*
 * Take the head item into *item, waiting while the queue is empty.
 * Returns 0 (*item set; the caller owns it and should call
 * weft_queue_task_done() once it has processed it if anyone joins),
 * -EPIPE ("queue shut down": shut down and nothing left to drain),
 * -ECANCELED, -ETIMEDOUT, -EINVAL (q or item NULL).  On error *item is
 * untouched.
 */
WEFT_API int weft_queue_get(weft_queue *q, void **item);
WEFT_API int weft_queue_get_timeout(weft_queue *q, void **item, uint64_t timeout_ns);
/* As get, but never waits: -EAGAIN when empty.  Not a cancellation point. */
WEFT_API int weft_queue_try_get(weft_queue *q, void **item);

/*
 * Mark one item as processed (asyncio's task_done).  Every successful put
 * counts one unfinished item; when the count drops to zero every joiner
 * wakes.  Returns 0, -EINVAL (called more times than items were put, or q
 * NULL).  Never suspends.
 */
WEFT_API int weft_queue_task_done(weft_queue *q);

/* Wait until every item put has been marked done.  Returns 0, -ECANCELED,
 * -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_queue_join(weft_queue *q);
WEFT_API int weft_queue_join_timeout(weft_queue *q, uint64_t timeout_ns);

/*
 * Shut the queue down (asyncio 3.13 Queue.shutdown).  From now on every
 * put returns -EPIPE, and so does every waiting putter (which keeps its
 * item).
 *  - graceful (immediate false): getters drain what is queued, then get
 *    -EPIPE; getters waiting on an empty queue wake with -EPIPE now.
 *  - immediate: the queued items are removed and passed to the drop
 *    callback (if none is configured they are only counted: the caller
 *    must own them some other way, e.g. integers), each counts as
 *    task_done (so join can return), and every waiting getter and putter
 *    wakes at once with -EPIPE.
 * Calling it again is allowed (graceful then immediate drops what is left).
 * Returns the number of items dropped (>= 0; always 0 when graceful), or
 * -EINVAL (q NULL).  Never suspends.
 */
WEFT_API int weft_queue_shutdown(weft_queue *q, bool immediate);

/* Snapshots (another thread may change them at once).  size of NULL is 0. */
WEFT_API size_t weft_queue_size(const weft_queue *q);
WEFT_API bool weft_queue_empty(const weft_queue *q);
/* Always false for an unbounded queue. */
WEFT_API bool weft_queue_full(const weft_queue *q);

#ifdef __cplusplus
}
#endif

#endif
