/*
 * Generators: a producer task and its consumer meet at a one-value slot.
 * The consumer raises `want` and waits for a value; the producer fills the
 * slot and waits for the next `want`.  Both waits are plain wait lists
 * under the generator's lock, so a value is never dropped: a consumer that
 * gives up leaves it in the slot for its next call.  Closing cancels the
 * producer task and joins it.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

struct weft_gen {
	weft__lock lock;
	weft__waitlist consumer; /* waiting for a value or the end */
	weft__waitlist producer; /* waiting for `want` or close */
	bool want, has_value, finished, closed;
	void *value;
	weft_gen_fn fn;
	void *arg;
	weft_task *task;
};

/* With g->lock held, wait on `wl` until cond(g) holds; returns with the
 * lock held: 0, or the interruption (-ECANCELED / -ETIMEDOUT).  wk (or
 * NULL): wakes recorded under the lock, made once it is released. */
static int wait_until(weft_gen *g, weft__waitlist *wl, bool (*cond)(const weft_gen *),
		      weft__wakes *wk)
{
	weft_task *t = weft__task_self();
	bool seen = t && t->cancel_seen;
	if (cond(g) && wk) {
		weft__unlock_wake(&g->lock, wk);
		weft__lock_acquire(&g->lock);
	}
	while (!cond(g)) {
		weft__waiter w;
		weft__wait_on(t, WEFT_WAIT_OTHER, g); /* a generator */
		int r = weft__wait_locked_wake(t, &g->lock, wl, &w, 0, wk);
		wk = NULL;
		weft__lock_acquire(&g->lock);
		if (r < 0 && !cond(g))
			return r;
		if (r < 0 && t) /* the condition won: not delivered after all */
			t->cancel_seen = seen;
	}
	return 0;
}

static bool asked(const weft_gen *g) { return g->want || g->closed; }

static void *body(void *arg)
{
	weft_gen *g = arg;
	weft__lock_acquire(&g->lock);
	int r = wait_until(g, &g->producer, asked, NULL); /* lazy: first request */
	bool run = r == 0 && !g->closed;
	weft__lock_release(&g->lock);
	if (run)
		g->fn(g, g->arg);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&g->lock);
	g->finished = true;
	weft__waitlist_fire_all(&g->consumer, &wk);
	weft__unlock_wake(&g->lock, &wk);
	return NULL;
}

int weft_gen_create(weft_gen **out, weft_gen_fn fn, void *arg)
{
	if (!out || !fn)
		return -EINVAL;
	*out = NULL;
	weft_gen *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->fn = fn;
	g->arg = arg;
	/* always_run: the body must run to mark the generator finished, even
	 * when it is cancelled or closed before it starts; and so its stack
	 * is had now or the creation fails. */
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.always_run = 1;
	int r = weft_task_spawn_ex(&g->task, &tc, body, g);
	if (r < 0) {
		free(g);
		return r;
	}
	*out = g;
	return 0;
}

int weft_gen_next(weft_gen *g, void **value)
{
	if (!g)
		return -EINVAL;
	weft_task *t = weft__task_self();
	int r = t ? weft__checkpoint(t) : -EPERM;
	if (r < 0)
		return r;
	weft__lock_acquire(&g->lock);
	/* Ask again after every wake: with several consumers, another may
	 * have taken the value this request produced. */
	while (r == 0 && !g->has_value && !g->finished) {
		g->want = true;
		weft__wakes wk = WEFT_WAKES_INIT;
		weft__waitlist_fire_all(&g->producer, &wk);
		weft__waiter w;
		weft__wait_on(t, WEFT_WAIT_OTHER, g); /* a generator */
		r = weft__wait_locked_wake(t, &g->lock, &g->consumer, &w, 0, &wk);
		weft__lock_acquire(&g->lock);
	}
	if (r == 0 && g->has_value) {
		if (value)
			*value = g->value;
		g->has_value = false;
	} else if (r == 0) {
		r = -ENOENT;
	}
	weft__lock_release(&g->lock);
	return r;
}

int weft_gen_yield(weft_gen *g, void *value)
{
	if (!g)
		return -EINVAL;
	weft__lock_acquire(&g->lock);
	if (g->closed) {
		weft__lock_release(&g->lock);
		return -ECANCELED;
	}
	g->value = value;
	g->has_value = true;
	g->want = false;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__waitlist_fire_all(&g->consumer, &wk);
	int r = wait_until(g, &g->producer, asked, &wk);
	if (r == 0 && g->closed)
		r = -ECANCELED;
	weft__lock_release(&g->lock);
	return r;
}

void weft_gen_close(weft_gen *g)
{
	if (!g)
		return;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&g->lock);
	g->closed = true;
	weft__waitlist_fire_all(&g->producer, &wk);
	weft__unlock_wake(&g->lock, &wk);
	weft_task_cancel(g->task);
	/* The body must finish before g goes: join ignoring our own
	 * cancellation and deadline. */
	weft_task *t = weft__task_self();
	uint64_t saved = weft__uninterruptible_begin(t);
	weft_task_join(g->task, NULL);
	weft__uninterruptible_end(t, saved);
	weft_task_release(g->task);
	free(g);
}
