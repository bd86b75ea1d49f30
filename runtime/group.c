/*
 * Task groups: structured concurrency.  A group counts its running
 * children and keeps them on a list (under its lock) so it can cancel them;
 * each child tells the group when its function has returned.  Children hold
 * a reference to the group, so a waiter that sees the count reach zero may
 * destroy it while the last child is still leaving the group's lock.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define WEFT_GROUP_ERRS 16

struct weft_group {
	weft__lock lock;
	_Atomic uint32_t refs;
	unsigned running;
	bool closed;              /* cancelling or waited: no new children */
	weft_task *children;      /* running children, via grp_next/grp_prev */
	weft__waitlist waiters;   /* tasks/threads waiting for running == 0 */
	int nerrs;                /* failures seen */
	int errs[WEFT_GROUP_ERRS];
	uint64_t id;              /* for dumps: children name it (group_id) */
	uint64_t owner;           /* id of the task that created it, 0 none */
};

static _Atomic uint64_t next_group_id;

static void group_unref(weft_group *g)
{
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		free(g);
}

int weft_group_create(weft_group **out)
{
	if (!out)
		return -EINVAL;
	weft_group *g = calloc(1, sizeof(*g));
	if (!g) {
		*out = NULL;
		return -ENOMEM;
	}
	atomic_init(&g->refs, 1);
	g->id = atomic_fetch_add_explicit(&next_group_id, 1, memory_order_relaxed) + 1;
	weft_task *self = weft__task_self();
	g->owner = self ? self->id : 0;
	*out = g;
	return 0;
}

/* With g->lock held: cancel every running child, refuse new ones (the
 * wakes into wk, made once the lock is released). */
static void cancel_children_locked(weft_group *g, weft__wakes *wk)
{
	g->closed = true;
	for (weft_task *c = g->children; c; c = c->grp_next)
		weft__task_cancel_to(c, wk);
}

uint64_t weft__group_id(const weft_group *g, uint64_t *owner)
{
	*owner = g->owner;
	return g->id;
}

/* Called by weft__task_spawn before the child is queued. */
int weft__group_link(weft_group *g, weft_task *t)
{
	weft__lock_acquire(&g->lock);
	if (g->closed) {
		weft__lock_release(&g->lock);
		return weft__misuse(-ECANCELED, "spawn into a group that is cancelling or done");
	}
	t->group = g;
	t->group_id = g->id; /* copies: a dump never touches g (it may be gone) */
	t->group_owner = g->owner;
	t->grp_prev = NULL;
	t->grp_next = g->children;
	if (g->children)
		g->children->grp_prev = t;
	g->children = t;
	g->running++;
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	weft__lock_release(&g->lock);
	return 0;
}

/* A child's function returned (or it could not start): leave the group;
 * the first failure cancels the siblings. */
void weft__group_child_exit(weft_task *t)
{
	weft_group *g = t->group;
	weft__lock_acquire(&g->lock);
	if (t->grp_prev)
		t->grp_prev->grp_next = t->grp_next;
	else
		g->children = t->grp_next;
	if (t->grp_next)
		t->grp_next->grp_prev = t->grp_prev;
	t->grp_next = t->grp_prev = NULL;
	weft__wakes wk = WEFT_WAKES_INIT;
	if (t->error) {
		if (g->nerrs < WEFT_GROUP_ERRS)
			g->errs[g->nerrs] = t->error;
		if (g->nerrs++ == 0)
			cancel_children_locked(g, &wk);
	}
	if (--g->running == 0)
		weft__waitlist_fire_all(&g->waiters, &wk);
	weft__unlock_wake(&g->lock, &wk);
	t->group = NULL;
	group_unref(g);
}

int weft_group_spawn(weft_group *g, weft_task **out, const weft_task_config *cfg, weft_fn fn,
		     void *arg)
{
	if (out)
		*out = NULL;
	if (!g)
		return -EINVAL;
	weft_loop *l = weft__loop_self();
	if (!l)
		return weft__misuse(-EPERM, "weft_group_spawn outside a task");
	return weft__task_spawn(l->rt, l, out, cfg, fn, arg, g);
}

/* Wait for running == 0, ignoring the caller's cancellation and deadline
 * (the children are cancelled; they must be awaited). */
static void wait_all_uninterruptible(weft_group *g, weft_task *t)
{
	uint64_t saved = weft__uninterruptible_begin(t);
	weft__lock_acquire(&g->lock);
	while (g->running) {
		weft__waiter w;
		weft__wait_on(t, WEFT_WAIT_GROUP, g);
		weft__wait_locked(t, &g->lock, &g->waiters, &w, 0);
		weft__lock_acquire(&g->lock);
	}
	weft__lock_release(&g->lock);
	weft__uninterruptible_end(t, saved);
}

int weft_group_wait(weft_group *g)
{
	if (!g)
		return -EINVAL;
	weft_task *t = weft__task_self();
	int r = t ? weft__checkpoint(t) : 0;
	weft__lock_acquire(&g->lock);
	while (r == 0 && g->running) {
		weft__waiter w;
		weft__wait_on(t, WEFT_WAIT_GROUP, g);
		r = weft__wait_locked(t, &g->lock, &g->waiters, &w, 0);
		weft__lock_acquire(&g->lock);
	}
	g->closed = true;
	if (r < 0) {
		/* The waiter is cancelled or out of time: so are the children,
		 * and they are still awaited. */
		weft__wakes wk = WEFT_WAKES_INIT;
		cancel_children_locked(g, &wk);
		weft__unlock_wake(&g->lock, &wk);
		wait_all_uninterruptible(g, t);
		return r;
	}
	int err = g->nerrs ? g->errs[0] : 0;
	weft__lock_release(&g->lock);
	return err;
}

int weft_group_cancel(weft_group *g)
{
	if (!g)
		return -EINVAL;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&g->lock);
	cancel_children_locked(g, &wk);
	weft__unlock_wake(&g->lock, &wk);
	return 0;
}

int weft_group_errors(weft_group *g, int *errs, size_t n)
{
	if (!g || (n && !errs))
		return -EINVAL;
	weft__lock_acquire(&g->lock);
	int total = g->nerrs;
	for (size_t i = 0; i < n && i < (size_t)total && i < WEFT_GROUP_ERRS; i++)
		errs[i] = g->errs[i];
	weft__lock_release(&g->lock);
	return total;
}

void weft_group_destroy(weft_group *g)
{
	if (!g)
		return;
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&g->lock);
	bool busy = g->running != 0;
	if (busy)
		cancel_children_locked(g, &wk);
	weft__unlock_wake(&g->lock, &wk);
	if (busy)
		wait_all_uninterruptible(g, weft__task_self());
	group_unref(g);
}
