/*
 * weft/sync.h — synchronization primitives (asyncio.Lock, Event, Condition,
 * Semaphore, BoundedSemaphore, Barrier, plus a reader-writer lock).
 *
 * Included by "weft.h"; include that.  Every primitive works across loops and from
 * foreign (non-weft) threads.
 *
 * Conventions for this header (on top of weft.h's):
 *  - Objects live in caller memory (a global, a struct field, a task's
 *    frame), pthread style: weft_X_init() before any other use,
 *    weft_X_destroy() when done.  destroy returns -EBUSY while the object
 *    is held or waited on and then leaves it usable; after a successful
 *    destroy the memory is the caller's again.  The caller keeps the memory
 *    valid while any call on the object is in progress.
 *  - Every function may be called from any thread.  Functions that wait are
 *    suspension points in a task and block a foreign thread.
 *  - Every wait returns -ECANCELED if the calling task is cancelled (also
 *    when the resource is free at the time of the call, as for every other
 *    suspension point; use weft_shield_begin() around cleanup) and
 *    -ETIMEDOUT when an enclosing deadline scope (weft_scope_enter) expires:
 *    no wait here takes a timeout argument, a scope gives one (weft.h,
 *    "Timeouts and deadlines").
 *    In both cases nothing was acquired and nothing was consumed.  A wait
 *    that is handed the resource at the same moment it is cancelled or
 *    times out returns 0: the caller owns what it waited for, and the
 *    cancellation is delivered at its next suspension point.  So a release
 *    is never lost.
 *  - Locks have no owner (as in asyncio): any task or thread may release.
 *  - Fairness: waiters are served first come, first served; a release hands
 *    the resource directly to the longest waiter, so a newcomer never
 *    overtakes a queued waiter.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Lock (asyncio.Lock)                                                       */
/* ------------------------------------------------------------------------ */

typedef struct weft_lock {
	uint64_t opaque[8];
} weft_lock;

/* Initialize an unlocked lock.  Returns 0, -EINVAL (l NULL). */
WEFT_API int weft_lock_init(weft_lock *l);
/* Returns 0, -EBUSY (locked or waited on), -EINVAL. */
WEFT_API int weft_lock_destroy(weft_lock *l);

/* Acquire, waiting behind earlier waiters.  Returns 0 (the caller holds
 * the lock), -ECANCELED, -ETIMEDOUT, -EINVAL.
 *
 * A suspension point even when the lock is free: a cancelled task (not
 * shielded) gets -ECANCELED and takes nothing, a task in an expired
 * deadline scope -ETIMEDOUT, and an uncontended acquire may yield the
 * task (its budget), after which it may run on another loop.  For a short
 * section with no suspension point inside (a counter, a hash-table shard)
 * a pthread mutex or spinlock is cheaper, never fails, and is fine on a
 * loop thread as long as nothing between lock and unlock suspends; use
 * weft_lock for sections that suspend (I/O inside) or are long
 * (docs/sync.md, "A plain mutex or weft_lock"). */
WEFT_API int weft_lock_acquire(weft_lock *l);
/* Acquire only if free right now.  Never suspends.  Returns 0, -EBUSY. */
WEFT_API int weft_lock_try_acquire(weft_lock *l);
/* Release; hands the lock to the longest waiter if any.  Never suspends.
 * Returns 0, -EPERM (not locked), -EINVAL. */
WEFT_API int weft_lock_release(weft_lock *l);
/* Whether the lock is held (a snapshot). */
WEFT_API bool weft_lock_locked(const weft_lock *l);

/* ------------------------------------------------------------------------ */
/* Event (asyncio.Event)                                                     */
/* ------------------------------------------------------------------------ */

typedef struct weft_event {
	uint64_t opaque[8];
} weft_event;

/* Initialize a cleared event.  Returns 0, -EINVAL. */
WEFT_API int weft_event_init(weft_event *e);
/* Returns 0, -EBUSY (waited on), -EINVAL. */
WEFT_API int weft_event_destroy(weft_event *e);
/* Set the flag and wake every waiter.  Returns 0, -EINVAL. */
WEFT_API int weft_event_set(weft_event *e);
/* Clear the flag.  Waiters already woken by a set still return 0 (as in
 * asyncio).  Returns 0, -EINVAL. */
WEFT_API int weft_event_clear(weft_event *e);
WEFT_API bool weft_event_is_set(const weft_event *e);
/* Wait until the flag is set (returns at once if it is).  Returns 0,
 * -ECANCELED, -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_event_wait(weft_event *e);

/* ------------------------------------------------------------------------ */
/* Condition (asyncio.Condition), bound to a weft_lock                      */
/* ------------------------------------------------------------------------ */

typedef struct weft_cond {
	uint64_t opaque[8];
} weft_cond;

/* Initialize a condition bound to `lock`, which must stay valid until
 * weft_cond_destroy.  (asyncio creates its own lock when given none; here
 * the caller always provides it.)  Returns 0, -EINVAL. */
WEFT_API int weft_cond_init(weft_cond *c, weft_lock *lock);
/* Returns 0, -EBUSY (waited on), -EINVAL. */
WEFT_API int weft_cond_destroy(weft_cond *c);

/*
 * The caller holds the bound lock.  Atomically release it and wait for a
 * notify, then re-acquire the lock before returning, whatever the outcome
 * (also when cancelled or timed out, like asyncio: the re-acquisition
 * ignores cancellation and deadline scopes, which stay pending for the
 * next suspension point).  Returns 0 (notified), -ECANCELED,
 * -ETIMEDOUT, -EPERM (the bound lock is not held: nothing happens),
 * -EINVAL.  A notify that picks a waiter which is cancelled at the same
 * moment is not lost: that waiter returns 0.  As with every condition
 * variable, re-check the predicate in a loop.
 */
WEFT_API int weft_cond_wait(weft_cond *c);
/* Wake up to `n` waiters, longest first.  asyncio requires the lock to be
 * held; weft does not (a notify without it is still safe, just racy for
 * the caller's predicate).  Returns the number woken, -EINVAL. */
WEFT_API int weft_cond_notify(weft_cond *c, unsigned n);
/* Wake every waiter.  Returns the number woken, -EINVAL. */
WEFT_API int weft_cond_notify_all(weft_cond *c);

/* ------------------------------------------------------------------------ */
/* Semaphore and BoundedSemaphore (asyncio.Semaphore, BoundedSemaphore)      */
/* ------------------------------------------------------------------------ */

typedef struct weft_sem {
	uint64_t opaque[8];
} weft_sem;

/* Initialize a semaphore with `value` permits (weft_sem_init) or a bounded
 * one (weft_sem_init_bounded: releasing past `value` is an error).
 * Returns 0, -EINVAL (s NULL, or value > INT32_MAX). */
WEFT_API int weft_sem_init(weft_sem *s, unsigned value);
WEFT_API int weft_sem_init_bounded(weft_sem *s, unsigned value);
/* Returns 0, -EBUSY (waited on), -EINVAL. */
WEFT_API int weft_sem_destroy(weft_sem *s);
/* Take a permit, waiting (FIFO) while none is free.  Returns 0, -ECANCELED,
 * -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_sem_acquire(weft_sem *s);
/* Take a permit only if one is free now.  Returns 0, -EBUSY, -EINVAL. */
WEFT_API int weft_sem_try_acquire(weft_sem *s);
/* Give a permit back (to the longest waiter if any).  Returns 0,
 * -EOVERFLOW (bounded: already at the initial value; or INT32_MAX
 * permits), and then nothing changes; -EINVAL. */
WEFT_API int weft_sem_release(weft_sem *s);
/* Free permits now (a snapshot), -EINVAL. */
WEFT_API int weft_sem_value(const weft_sem *s);

/* ------------------------------------------------------------------------ */
/* Barrier (asyncio.Barrier)                                                 */
/* ------------------------------------------------------------------------ */

typedef struct weft_barrier {
	uint64_t opaque[8];
} weft_barrier;

/* Initialize a barrier for `parties` (>= 1) waiters.  Returns 0, -EINVAL. */
WEFT_API int weft_barrier_init(weft_barrier *b, unsigned parties);
/* Returns 0, -EBUSY (waited on), -EINVAL. */
WEFT_API int weft_barrier_destroy(weft_barrier *b);
/*
 * Wait until `parties` callers are waiting, then all of them pass and the
 * barrier starts over.  Returns the caller's arrival index 0..parties-1
 * (unique within a cycle, in arrival order; the last to arrive gets
 * parties-1 and does not suspend), -EPIPE if the barrier is or becomes
 * broken (weft_barrier_abort) or is reset while waiting, -ECANCELED,
 * -ETIMEDOUT (the caller leaves: it no longer counts as arrived), -EINVAL.
 */
WEFT_API int weft_barrier_wait(weft_barrier *b);
/* Break the barrier: every waiter and every later wait gets -EPIPE until
 * weft_barrier_reset.  Returns 0, -EINVAL. */
WEFT_API int weft_barrier_abort(weft_barrier *b);
/* Return to the empty state (and un-break it); current waiters get -EPIPE.
 * Returns 0, -EINVAL. */
WEFT_API int weft_barrier_reset(weft_barrier *b);
/* Callers currently waiting (a snapshot), -EINVAL. */
WEFT_API int weft_barrier_n_waiting(const weft_barrier *b);
/* Whether the barrier is broken. */
WEFT_API bool weft_barrier_broken(const weft_barrier *b);

/* ------------------------------------------------------------------------ */
/* Reader-writer lock (no asyncio counterpart)                               */
/* ------------------------------------------------------------------------ */

/* Many readers or one writer.  FIFO-fair: a request waits behind every
 * earlier waiting request, so a steady stream of readers cannot starve a
 * writer (and a writer lets the readers queued before it go first). */
typedef struct weft_rwlock {
	uint64_t opaque[8];
} weft_rwlock;

/* Returns 0, -EINVAL. */
WEFT_API int weft_rwlock_init(weft_rwlock *rw);
/* Returns 0, -EBUSY (held or waited on), -EINVAL. */
WEFT_API int weft_rwlock_destroy(weft_rwlock *rw);
/* Acquire shared / exclusive.  Returns 0, -ECANCELED, -ETIMEDOUT, -EINVAL. */
WEFT_API int weft_rwlock_read_acquire(weft_rwlock *rw);
WEFT_API int weft_rwlock_write_acquire(weft_rwlock *rw);
/* Acquire only if possible now without overtaking a waiter.  Returns 0,
 * -EBUSY, -EINVAL. */
WEFT_API int weft_rwlock_try_read_acquire(weft_rwlock *rw);
WEFT_API int weft_rwlock_try_write_acquire(weft_rwlock *rw);
/* Release shared / exclusive.  Returns 0, -EPERM (not held that way),
 * -EINVAL. */
WEFT_API int weft_rwlock_read_release(weft_rwlock *rw);
WEFT_API int weft_rwlock_write_release(weft_rwlock *rw);

#ifdef __cplusplus
}
#endif

#endif
