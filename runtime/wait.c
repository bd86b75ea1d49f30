/*
 * Waiting: the one mechanism behind every suspension point.
 *
 * A task parks with an optional deadline and is resumed by a wake, by its
 * timer or by cancellation.  Wakes can be stale (a waker that lost a race
 * with a timeout), so every wait loops on its own condition; a waiter's
 * `fired` flag, set under the waited object's lock, is that condition.
 * Waiters always conclude under that lock, so a waker holding it may touch
 * the waiter and wake its task without taking a reference.
 * Foreign threads wait the same way on a futex instead of parking.
 */
#include "internal.h"

#include <errno.h>

/* Deliver a pending cancellation to task t (not shielded): -ECANCELED,
 * recorded as seen; else 0.  t NULL (not a task): -EPERM. */
int weft__cancel_check(weft_task *t)
{
	if (!t)
		return -EPERM;
	if (t->shield == 0 &&
	    (atomic_load_explicit(&t->cancel_req, memory_order_acquire) & WEFT_CANCEL_REQ)) {
		t->cancel_seen = true;
		return -ECANCELED;
	}
	return 0;
}

/* A cancellation (-ECANCELED) or an interruption (-EINTR) to deliver to
 * t, not shielded; else 0.  One load for both. */
static int cancel_pending(const weft_task *t)
{
	uint8_t c = atomic_load_explicit(&t->cancel_req, memory_order_acquire);
	if (likely(!c) || t->shield)
		return 0;
	return c & WEFT_CANCEL_REQ ? -ECANCELED : -EINTR;
}

/* A scope deadline `dl` expired: every scope whose deadline is at or before
 * it fired (s->deadline is public: WEFT_FOREVER none, never <= dl; 0
 * expired).  Returns -ETIMEDOUT for the suspension point to return. */
static int scope_expired(weft_task *t, uint64_t dl)
{
	for (weft_scope *s = t->scope; s; s = s->outer)
		if (s->deadline <= dl)
			s->fired = true;
	return -ETIMEDOUT;
}

/* Entry of every suspension point: a pending cancellation, then an expired
 * deadline scope (sticky: both keep failing every later suspension point).
 * t NULL (not a task): -EPERM. */
int weft__checkpoint(weft_task *t)
{
	int r = weft__cancel_check(t);
	if (r < 0)
		return r;
	uint64_t sd = t->scope_deadline;
	if (unlikely(sd) && weft_now_ns() >= sd)
		return scope_expired(t, sd);
	return 0;
}

/* Park task t (the caller) until woken, its own deadline passes (absolute
 * ns, 0 = none), its deadline scope expires, or it is cancelled.  Returns
 * 0 (woken: re-check the condition), -ETIME (its own deadline), -ETIMEDOUT
 * (a scope's), -ECANCELED (not yet recorded as seen), -EINTR (interrupted:
 * weft__task_interrupt_to). */
int weft__park_task(weft_task *t, uint64_t deadline)
{
	int c = cancel_pending(t);
	if (unlikely(c))
		return c;
	weft_loop *l = weft__loop_self(); /* fresh: t may have moved */
	uint64_t sd = t->scope_deadline, dl = deadline;
	bool by_scope = sd && (!deadline || sd < deadline); /* a tie: its own */
	if (by_scope)
		dl = sd;
	t->timed_out = false;
	/* "Since when", for dumps: the clock of the loop's last scheduler
	 * pass (a load, no clock read on the hot path), unless a deadline
	 * makes us read the clock anyway. */
	t->wait_since = l->now_hint;
	if (dl) {
		uint64_t now = weft_now_ns();
		if (now >= dl)
			return by_scope ? scope_expired(t, dl) : -ETIME;
		t->wait_since = now;
		int r = weft__timer_arm(l, t, dl, now);
		if (r < 0)
			return r;
	}
	weft__switch_out_from(l, t, WEFT_SW_PARK);
	if (unlikely(c = cancel_pending(t)))
		return c;
	if (t->timed_out)
		return by_scope ? scope_expired(t, dl) : -ETIME;
	return 0;
}

void weft__waitlist_append(weft__waitlist *wl, weft__waiter *w)
{
	w->next = NULL;
	w->prev = wl->tail;
	if (wl->tail)
		wl->tail->next = w;
	else
		wl->head = w;
	wl->tail = w;
}

void weft__waitlist_remove(weft__waitlist *wl, weft__waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		wl->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		wl->tail = w->prev;
	w->next = w->prev = NULL;
}

/*
 * With `lk` held, wait on `wl` until fired, the deadline passes or the
 * calling task t (NULL: a foreign thread) is cancelled.  Returns with `lk` RELEASED: 0 (fired),
 * -ETIMEDOUT (the deadline or the task's deadline scope), -ECANCELED.  A
 * foreign thread blocks on a futex.
 */
int weft__wait_locked(weft_task *t, weft__lock *lk, weft__waitlist *wl, weft__waiter *w,
		      uint64_t deadline)
{
	return weft__wait_locked_wake(t, lk, wl, w, deadline, NULL);
}

/* weft__wait_locked, for a caller that recorded wakes in wk (or NULL)
 * under lk: they are made once lk is released, before parking. */
int weft__wait_locked_wake(weft_task *t, weft__lock *lk, weft__waitlist *wl, weft__waiter *w,
			   uint64_t deadline, weft__wakes *wk)
{
	w->task = t;
	atomic_store_explicit(&w->fired, 0, memory_order_relaxed);
	weft__waitlist_append(wl, w);
	for (;;) {
		weft__lock_release(lk);
		if (wk) {
			weft__wakes_flush(wk);
			wk = NULL;
		}
		int r = t ? weft__park_task(t, deadline) : weft__futex_wait(&w->fired, 0, deadline);
		/* Fast path for tasks: the firer's store of `fired` is its last
		 * touch of w and of the task, so seeing it set we are done
		 * without the lock.  Threads recheck under the lock, because
		 * their firer still futex-wakes w after setting it. */
		if (t && atomic_load_explicit(&w->fired, memory_order_acquire))
			return 0;
		weft__lock_acquire(lk);
		if (atomic_load_explicit(&w->fired, memory_order_acquire)) {
			weft__lock_release(lk);
			return 0; /* a result wins over a simultaneous timeout/cancel */
		}
		if (r < 0) {
			weft__waitlist_remove(wl, w);
			weft__lock_release(lk);
			if (r == -ECANCELED)
				t->cancel_seen = true;
			return r == -ETIME ? -ETIMEDOUT : r;
		}
	}
}

/* Fire one waiter already unlinked from its list.  A task waiter is woken
 * before `fired` is set: that store is the firer's last touch (see
 * weft__wait_locked's fast path).  The system calls a task's wake needs
 * go into wk, made after the lock is released; a foreign thread's futex
 * wake is made here (not a hot path, and w may be gone once unlocked). */
static void fire(weft__waiter *w, weft__wakes *wk)
{
	weft_task *t = w->task;
	if (t) {
		weft__task_wake_to(t, wk);
		atomic_store_explicit(&w->fired, 1, memory_order_release);
	} else {
		atomic_store_explicit(&w->fired, 1, memory_order_release);
		weft__futex_wake(&w->fired, 1);
	}
}

/* With the owner's lock held: fire and wake every waiter, in the order
 * they waited. */
void weft__waitlist_fire_all(weft__waitlist *wl, weft__wakes *wk)
{
	weft__waiter *w = wl->head;
	wl->head = wl->tail = NULL;
	while (w) {
		weft__waiter *n = w->next;
		fire(w, wk);
		w = n;
	}
}

/* With the owner's lock held: fire the longest waiter, if any (FIFO
 * hand-off: a fired waiter owns what it waited for even if it also timed
 * out or was cancelled, so nothing handed over is lost).  Returns whether
 * one was fired. */
bool weft__waitlist_fire_one(weft__waitlist *wl, weft__wakes *wk)
{
	weft__waiter *w = wl->head;
	if (!w)
		return false;
	weft__waitlist_remove(wl, w);
	fire(w, wk);
	return true;
}

/* A ready-without-suspending operation costs budget; when it runs out the
 * task yields so one hot task cannot starve the loop. */
void weft__budget_spend(weft_task *t)
{
	if (t && --t->budget <= 0) {
		t->budget = WEFT_TASK_BUDGET;
		weft__switch_out_from(weft__loop_self(), t, WEFT_SW_YIELD);
	}
}

/* The internal deadline (0: none) timeout_ns from now: see weft__deadline_in. */
uint64_t weft__deadline_after(uint64_t timeout_ns)
{
	if (timeout_ns == WEFT_FOREVER)
		return 0;
	return weft__deadline_in(weft__deadline_add(weft_now_ns(), timeout_ns));
}

/* Suspend the calling task's cancellation and deadline scopes, for waits
 * that must complete (awaiting children already cancelled, a result
 * already on its way).  t may be NULL (a foreign thread: nothing to do). */
uint64_t weft__uninterruptible_begin(weft_task *t)
{
	if (!t)
		return 0;
	uint64_t sd = t->scope_deadline;
	t->scope_deadline = 0;
	t->shield++;
	return sd;
}

bool weft__scope_expired(weft_task *t)
{
	return t && t->scope_deadline && weft_now_ns() >= t->scope_deadline;
}

void weft__uninterruptible_end(weft_task *t, uint64_t saved)
{
	if (!t)
		return;
	t->shield--;
	t->scope_deadline = saved;
}

/* ---- deadline scopes ---- */

int weft_scope_enter_at(weft_scope *s, uint64_t deadline_ns)
{
	if (!s)
		return -EINVAL;
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_scope_enter outside a task");
	uint64_t dl = weft__deadline_in(deadline_ns);
	s->deadline = deadline_ns;
	s->outer = t->scope;
	s->task = t;
	s->fired = false;
	s->outer_deadline = t->scope_deadline;
	t->scope = s;
	if (dl && (!t->scope_deadline || dl < t->scope_deadline))
		t->scope_deadline = dl;
	return 0;
}

int weft_scope_enter(weft_scope *s, uint64_t timeout_ns)
{
	return weft_scope_enter_at(s, timeout_ns == WEFT_FOREVER
					      ? WEFT_FOREVER
					      : weft__deadline_add(weft_now_ns(), timeout_ns));
}

int weft_scope_exit(weft_scope *s)
{
	weft_task *t = weft__task_self();
	if (!s || !t || t->scope != s)
		return weft__misuse(-EINVAL, "weft_scope_exit of a scope that is not the "
					     "calling task's innermost");
	t->scope = s->outer;
	t->scope_deadline = s->outer_deadline;
	return s->fired ? 1 : 0;
}
