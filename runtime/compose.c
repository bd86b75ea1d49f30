/*
 * Waiting on several tasks: gather, wait, as_completed.  All three rest on
 * wait_any(): one waiter record on the wait list of every task still
 * running, a park, then every record not fired is taken back under its
 * task's lock (a fired one was already unlinked by the finishing task,
 * whose store of `fired` is its last touch of the record).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

/* Park `self` until one of the tasks not marked in `skip` finishes.
 * Returns 0, -ECANCELED, -ETIMEDOUT (deadline scope), -ENOMEM. */
static int wait_any(weft_task *self, weft_task **ts, size_t n, const uint8_t *skip)
{
	weft__waiter *ws = calloc(n, sizeof(*ws));
	uint8_t *linked = calloc(n, 1);
	int r = 0;
	bool any = false;
	if (!ws || !linked) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && !any; i++) {
		if (skip[i])
			continue;
		weft__lock_acquire(&ts[i]->lock);
		if (weft_task_done(ts[i])) {
			any = true;
		} else {
			ws[i].task = self;
			atomic_store_explicit(&ws[i].fired, 0, memory_order_relaxed);
			weft__waitlist_append(&ts[i]->waiters, &ws[i]);
			linked[i] = 1;
		}
		weft__lock_release(&ts[i]->lock);
	}
	weft__wait_on(self, WEFT_WAIT_JOIN, NULL); /* several tasks: no one object */
	while (!any) {
		r = weft__park_task(self, 0);
		/* `fired` is the finisher's last store, made after it woke us: we
		 * may run before it.  DONE is published before the wake, so it is
		 * what tells a real wake from a spurious one. */
		for (size_t i = 0; i < n; i++)
			if (linked[i] && (atomic_load_explicit(&ws[i].fired, memory_order_acquire) ||
					  weft_task_done(ts[i])))
				any = true;
		if (r < 0)
			break;
	}
	for (size_t i = 0; i < n; i++) {
		if (!linked[i] || atomic_load_explicit(&ws[i].fired, memory_order_acquire))
			continue;
		weft__lock_acquire(&ts[i]->lock);
		if (!atomic_load_explicit(&ws[i].fired, memory_order_acquire))
			weft__waitlist_remove(&ts[i]->waiters, &ws[i]);
		weft__lock_release(&ts[i]->lock);
	}
	if (any)
		r = 0;
	else if (r == -ECANCELED)
		self->cancel_seen = true;
out:
	free(ws);
	free(linked);
	return r;
}

static int check_args(weft_task **ts, size_t n, weft_task **self)
{
	*self = weft__task_self();
	if (!*self)
		return weft__misuse(-EPERM, "waiting on tasks outside a task");
	if (n && !ts)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!ts[i] || ts[i] == *self)
			return -EINVAL;
	return weft__checkpoint(*self);
}

static bool mode_holds(int mode, size_t done, size_t failed, size_t n)
{
	switch (mode) {
	case WEFT_FIRST_COMPLETED:
		return done > 0 || n == 0;
	case WEFT_FIRST_EXCEPTION:
		return failed > 0 || done == n;
	default:
		return done == n;
	}
}

int weft_wait(weft_task **ts, size_t n, int mode)
{
	if (mode < WEFT_FIRST_COMPLETED || mode > WEFT_ALL_COMPLETED)
		return -EINVAL;
	weft_task *self;
	int r = check_args(ts, n, &self);
	if (r < 0)
		return r;
	uint8_t *done = calloc(n ? n : 1, 1);
	if (!done)
		return -ENOMEM;
	for (;;) {
		size_t ndone = 0, nfailed = 0;
		for (size_t i = 0; i < n; i++) {
			done[i] = weft_task_done(ts[i]);
			ndone += done[i];
			nfailed += done[i] && weft__task_failed(ts[i]);
		}
		if (mode_holds(mode, ndone, nfailed, n)) {
			r = (int)ndone;
			break;
		}
		if ((r = wait_any(self, ts, n, done)) < 0)
			break;
	}
	free(done);
	return r;
}

int weft_gather(weft_task **ts, size_t n, void **results, int *errs)
{
	int r = weft_wait(ts, n, errs ? WEFT_ALL_COMPLETED : WEFT_FIRST_EXCEPTION);
	if (r == -ECANCELED || r == -ETIMEDOUT) {
		/* asyncio: cancelling a gather cancels what it gathers. */
		for (size_t i = 0; i < n; i++)
			weft_task_cancel(ts[i]);
		return r;
	}
	if (r < 0)
		return r;
	if (!errs) {
		/* The first failure found (lowest index) is reported now; the
		 * others keep running and stay joinable. */
		for (size_t i = 0; i < n; i++) {
			if (weft__task_failed(ts[i])) {
				void *v = NULL;
				r = weft__task_take_result(ts[i], &v);
				if (results)
					results[i] = v;
				return r;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		void *v = NULL;
		int e = weft__task_take_result(ts[i], &v);
		if (results)
			results[i] = v;
		if (errs)
			errs[i] = e;
	}
	return 0;
}

int weft_as_completed_init(weft_as_completed *it, weft_task **ts, size_t n)
{
	if (!it || (n && !ts))
		return -EINVAL;
	it->returned = calloc(n ? n : 1, 1);
	if (!it->returned)
		return -ENOMEM;
	it->tasks = ts;
	it->n = it->left = n;
	return 0;
}

int weft_as_completed_next(weft_as_completed *it)
{
	if (!it || !it->returned)
		return -EINVAL;
	if (it->left == 0)
		return -ENOENT;
	weft_task *self;
	int r = check_args(it->tasks, it->n, &self);
	if (r < 0)
		return r;
	for (;;) {
		for (size_t i = 0; i < it->n; i++) {
			if (!it->returned[i] && weft_task_done(it->tasks[i])) {
				it->returned[i] = 1;
				it->left--;
				return (int)i;
			}
		}
		if ((r = wait_any(self, it->tasks, it->n, it->returned)) < 0)
			return r;
	}
}

void weft_as_completed_done(weft_as_completed *it)
{
	if (it) {
		free(it->returned);
		it->returned = NULL;
	}
}

int weft_wait_for(weft_task *t, void **result, uint64_t timeout_ns)
{
	if (!t)
		return -EINVAL;
	int r = weft_task_join_timeout(t, result, timeout_ns);
	weft_task *self = weft__task_self();
	bool caller_cancelled = r == -ECANCELED && self && !weft_task_done(t);
	if (r != -ETIMEDOUT && !caller_cancelled)
		return r;
	/* asyncio: the awaited task is cancelled and awaited; its outcome is
	 * still handed over. */
	weft_task_cancel(t);
	uint64_t saved = weft__uninterruptible_begin(self);
	int jr = weft_task_join(t, result);
	weft__uninterruptible_end(self, saved);
	if (caller_cancelled)
		return -ECANCELED;
	return jr == -ECANCELED ? -ETIMEDOUT : jr;
}
