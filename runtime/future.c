/* Futures: one-shot results shared by any loops and threads. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

enum { F_PENDING, F_VALUE, F_ERROR, F_CANCELLED };

struct weft_future {
	weft__lock lock;
	_Atomic int state;
	_Atomic uint32_t refs;
	int err;
	void *value;
	weft__waitlist waiters;
};

int weft_future_create(weft_future **out)
{
	if (!out)
		return -EINVAL;
	weft_loop *l = weft__loop_self();
	weft_future *f = l ? weft__objcache_get(&l->future_cache) : NULL;
	if (!f && !(f = malloc(sizeof(*f)))) {
		*out = NULL;
		return -ENOMEM;
	}
	atomic_init(&f->lock.v, 0);
	atomic_init(&f->state, F_PENDING);
	atomic_init(&f->refs, 1);
	f->err = 0;
	f->value = NULL;
	f->waiters.head = f->waiters.tail = NULL;
	*out = f;
	return 0;
}

weft_future *weft_future_ref(weft_future *f)
{
	if (f)
		atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
	return f;
}

void weft_future_release(weft_future *f)
{
	if (f && atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
		weft_loop *l = weft__loop_self();
		if (!l || !weft__objcache_put(&l->future_cache, f))
			free(f);
	}
}

static int complete(weft_future *f, int state, void *value, int err)
{
	if (!f)
		return -EINVAL;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&f->lock);
	if (atomic_load_explicit(&f->state, memory_order_relaxed) != F_PENDING) {
		weft__lock_release(&f->lock);
		return -EALREADY;
	}
	f->value = value;
	f->err = err;
	atomic_store_explicit(&f->state, state, memory_order_release);
	weft__waitlist_fire_all(&f->waiters, &wk);
	weft__unlock_wake(&f->lock, &wk);
	return 0;
}

int weft_future_set_result(weft_future *f, void *value)
{
	return complete(f, F_VALUE, value, 0);
}

int weft_future_set_error(weft_future *f, int err)
{
	if (err >= 0)
		return -EINVAL;
	return complete(f, F_ERROR, NULL, err);
}

int weft_future_cancel(weft_future *f)
{
	return complete(f, F_CANCELLED, NULL, -ECANCELED);
}

bool weft_future_done(const weft_future *f)
{
	return f && atomic_load_explicit(&((weft_future *)f)->state, memory_order_acquire) !=
			    F_PENDING;
}

/* Outcome of a completed future (state loaded with acquire first). */
static int outcome(const weft_future *f, int state, void **value)
{
	switch (state) {
	case F_VALUE:
		if (value)
			*value = f->value;
		return 0;
	case F_ERROR:
		return f->err;
	default:
		return -ECANCELED;
	}
}

int weft_future_result(const weft_future *f, void **value)
{
	if (!f)
		return -EINVAL;
	int s = atomic_load_explicit(&((weft_future *)f)->state, memory_order_acquire);
	return s == F_PENDING ? -EAGAIN : outcome(f, s, value);
}

static int wait_deadline(weft_future *f, uint64_t deadline, void **value, unsigned kind)
{
	if (!f)
		return -EINVAL;
	weft_task *self = weft__task_self();
	if (self) {
		int r = weft__checkpoint(self);
		if (r < 0)
			return r;
	}
	int s = atomic_load_explicit(&f->state, memory_order_acquire);
	if (s != F_PENDING) {
		weft__budget_spend(self);
		return outcome(f, s, value);
	}
	weft__lock_acquire(&f->lock);
	s = atomic_load_explicit(&f->state, memory_order_acquire);
	if (s != F_PENDING) {
		weft__lock_release(&f->lock);
		return outcome(f, s, value);
	}
	weft__waiter w;
	weft__wait_on(self, kind, f);
	int r = weft__wait_locked(self, &f->lock, &f->waiters, &w, deadline);
	if (r < 0)
		return r;
	/* Fired: value and err were written before the release of state. */
	return outcome(f, atomic_load_explicit(&f->state, memory_order_acquire), value);
}

int weft_future_wait(weft_future *f, void **value)
{
	return wait_deadline(f, 0, value, WEFT_WAIT_FUTURE);
}

int weft__future_wait_as(weft_future *f, void **value, unsigned kind)
{
	return wait_deadline(f, 0, value, kind);
}

int weft_future_wait_timeout(weft_future *f, void **value, uint64_t timeout_ns)
{
	return wait_deadline(f, weft__deadline_after(timeout_ns), value, WEFT_WAIT_FUTURE);
}
