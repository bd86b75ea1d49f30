/* Tasks: spawn, run, join, cancel, yield, sleep, shield, names. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void weft_task_config_init(weft_task_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->pin = WEFT_PIN_NONE;
}

static bool reserved_zero(const unsigned *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i])
			return false;
	return true;
}

static weft_task *task_alloc(weft_loop *l)
{
	weft_task *t = l ? weft__objcache_get(&l->task_cache) : NULL;
	return t ? t : malloc(sizeof(weft_task));
}

/* Field by field: a memset of the whole struct (rep stos) costs more than
 * the rest of a spawn.  The context is written at first run. */
static void task_init(weft_task *t, weft_runtime *rt, int pin, size_t stack, weft_fn fn,
		      void *arg, unsigned refs)
{
	t->fib.stack_lo = NULL;
#if WEFT_ASAN
	t->fib.asan_fake = NULL;
#endif
#if WEFT_TSAN
	t->fib.tsan_fiber = NULL;
#endif
	atomic_init(&t->state, WEFT_TS_NOTIFIED);
	atomic_init(&t->refs, refs);
	atomic_init(&t->cancel_req, 0);
	t->cancel_seen = t->timed_out = t->cancelled_result = false;
	t->stack_kind = 0;
	t->shield = 0;
	t->pin = (int16_t)pin;
	t->budget = 0;
	t->next = NULL;
	t->loop = t->owner = NULL;
	t->reg_prev = t->reg_next = NULL;
	t->rt = rt;
	t->fn = fn;
	t->arg = arg;
	t->result = NULL;
	t->woken_at = 0;
	t->stack_base = NULL;
	t->stack_size = stack; /* 0: runtime default, resolved at first run */
	t->timer.idx = WEFT_TIMER_IDLE;
	t->scope = NULL;
	t->scope_deadline = 0;
	t->group = NULL;
	t->grp_prev = t->grp_next = NULL;
	t->group_id = t->group_owner = 0;
	t->wait_kind = WEFT_WAIT_NONE;
	atomic_init(&t->lock.v, 0);
	t->joined = 0;
	t->error = 0;
	t->waiters.head = t->waiters.tail = NULL;
	t->trace_named = 0; /* never a recording generation (those are odd) */
	t->name[0] = 0;
}

int weft__task_spawn(weft_runtime *rt, weft_loop *from, weft_task **out,
		     const weft_task_config *cfg, weft_fn fn, void *arg, weft_group *group)
{
	if (out)
		*out = NULL;
	if (!fn)
		return weft__misuse(-EINVAL, "spawn with a NULL function");
	int pin = WEFT_PIN_NONE;
	size_t stack = 0;
	if (cfg) {
		if (!reserved_zero(cfg->reserved, sizeof(cfg->reserved) / sizeof(cfg->reserved[0])))
			return -EINVAL;
		pin = cfg->pin;
		stack = cfg->stack_size;
		if (pin == WEFT_PIN_CURRENT) {
			if (!from)
				return weft__misuse(-EINVAL, "WEFT_PIN_CURRENT outside a loop");
			pin = (int)from->index;
		}
		if (pin < WEFT_PIN_NONE || pin >= (int)rt->nloops)
			return -EINVAL;
		if (stack && (stack < 16384 || stack > (1ul << 30)))
			return -EINVAL;
	}
	if (stack) /* whole pages */
		stack = (stack + rt->page - 1) & ~(rt->page - 1);
	if (stack == rt->cfg.stack_size)
		stack = 0;

	int err = weft__live_inc(rt, from);
	if (err < 0)
		return weft__misuse(err, "spawn on a runtime that is shut down");
	weft_task *t = task_alloc(from);
	if (!t) {
		weft__live_dec(rt, from);
		return -ENOMEM;
	}
	task_init(t, rt, pin, stack, fn, arg, out ? 2 : 1);
	weft__fpenv_save(&t->fpenv); /* it starts as its spawner is now */
	t->always_run = cfg && cfg->always_run;
	/* A task that must run gets its stack now: if there is none, the
	 * caller hears it and still holds what it meant to hand over.  Other
	 * tasks get theirs when they start, from the pool of the loop that
	 * runs them. */
	if (t->always_run && (err = weft__stack_get(rt, from, t, stack ? stack
									: rt->cfg.stack_size)) < 0) {
		weft__task_free(t);
		weft__live_dec(rt, from);
		return err;
	}
	t->id = weft__task_id_next(rt, from);
	if (cfg && cfg->name)
		weft_task_set_name(t, cfg->name);
	if (group && (err = weft__group_link(group, t)) < 0) {
		if (t->stack_base)
			weft__stack_put(from, t);
		weft__task_free(t);
		weft__live_dec(rt, from);
		return err;
	}
	if (from)
		WEFT_STAT_ADD(from, tasks_spawned, 1);
	else
		atomic_fetch_add_explicit(&rt->spawned, 1, memory_order_relaxed);
	if (out)
		*out = t;
	if (from)
		WEFT_TRACE(from, WEFT_TEV_SPAWN, 0, 0, t->id, 0, weft__trace_cur(from));
	else
		weft__trace_foreign(rt);
	weft__schedule_new(rt, from, t);
	return 0;
}

int weft_task_spawn_ex(weft_task **out, const weft_task_config *cfg, weft_fn fn, void *arg)
{
	weft_loop *l = weft__loop_self();
	if (!l) {
		if (out)
			*out = NULL;
		return weft__misuse(-EPERM, "weft_task_spawn outside a task "
					    "(use weft_runtime_spawn from foreign threads)");
	}
	return weft__task_spawn(l->rt, l, out, cfg, fn, arg, NULL);
}

int weft_task_spawn(weft_task **out, weft_fn fn, void *arg)
{
	return weft_task_spawn_ex(out, NULL, fn, arg);
}

/* First frame of every task, on its own stack. */
void weft__task_entry(void *arg)
{
	weft_task *t = arg;
	weft__fiber_after(&t->fib);
	weft__after_switch(weft__loop_self());

	void *r = NULL;
	if (t->always_run || (!(atomic_load_explicit(&t->cancel_req, memory_order_acquire) &
				WEFT_CANCEL_REQ) &&
			      atomic_load_explicit(&t->rt->state, memory_order_acquire) == 1)) {
		r = t->fn(t->arg);
	} else {
		t->cancel_seen = true; /* cancelled before it started: never runs */
	}

	if (t->group)
		weft__group_child_exit(t);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&t->lock);
	t->result = r;
	t->cancelled_result = t->cancel_seen;
	/* A store, not an RMW: a concurrent waker's fetch_or either lands
	 * before (and is overwritten: moot now) or sees DONE and backs off. */
	atomic_store_explicit(&t->state, WEFT_TS_RUNNING | WEFT_TS_DONE, memory_order_release);
	weft__waitlist_fire_all(&t->waiters, &wk);
	weft__unlock_wake(&t->lock, &wk);
	weft__switch_out(WEFT_SW_EXIT);
	__builtin_unreachable();
}

/* Task structs are recycled through the freeing loop's cache. */
void weft__task_free(weft_task *t)
{
	weft_loop *l = weft__loop_self();
	if (!l || !weft__objcache_put(&l->task_cache, t))
		free(t);
}

void weft__task_unref(weft_task *t)
{
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		weft__task_free(t);
}

weft_task *weft_task_ref(weft_task *t)
{
	if (t)
		atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void weft_task_release(weft_task *t)
{
	if (t)
		weft__task_unref(t);
}

int weft_task_fail(int err)
{
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_task_fail outside a task");
	if (err >= 0)
		return -EINVAL;
	t->error = err;
	return 0;
}

bool weft_task_done(const weft_task *t)
{
	return t && (atomic_load_explicit(&((weft_task *)t)->state, memory_order_acquire) &
		     WEFT_TS_DONE);
}

/* The status a join of finished task t reports (t->lock held). */
static int outcome_locked(const weft_task *t)
{
	return t->error ? t->error : t->cancelled_result ? -ECANCELED : 0;
}

/* With t->lock held on a finished task: hand its result over (once) and
 * release the lock; returns its join status. */
static int hand_over_locked(weft_task *t, void **result)
{
	t->joined = 2;
	void *res = t->result;
	int err = outcome_locked(t);
	weft__lock_release(&t->lock);
	if (result)
		*result = res;
	return err;
}

/* Joining an unfinished task while others are ready here: go behind them
 * once.  The joined task is probably among them (spawned just before), and
 * a burst of joins then finds its tasks done instead of parking for each. */
static void join_let_others_run(weft_task *t)
{
	if (atomic_load_explicit(&t->state, memory_order_acquire) & WEFT_TS_DONE)
		return;
	weft_loop *l = weft__loop_self();
	if (weft__loop_has_ready(l))
		weft__switch_out_from(l, l->current, WEFT_SW_YIELD);
}

int weft_task_join_timeout(weft_task *t, void **result, uint64_t timeout_ns)
{
	if (!t)
		return -EINVAL;
	weft_task *self = weft__task_self();
	if (self == t)
		return weft__misuse(-EDEADLK, "a task joining itself");
	if (self) {
		int r = weft__checkpoint(self);
		if (r < 0)
			return r;
		if (timeout_ns) /* 0: no suspending, not even to let t finish */
			join_let_others_run(t);
	}
	weft__lock_acquire(&t->lock);
	if (t->joined) {
		int r = t->joined == 2 ? -EALREADY : -EBUSY;
		weft__lock_release(&t->lock);
		return weft__misuse(r, "task %llu joined twice", (unsigned long long)t->id);
	}
	t->joined = 1;
	if (!(atomic_load_explicit(&t->state, memory_order_acquire) & WEFT_TS_DONE)) {
		weft__waiter w;
		weft__wait_on(self, WEFT_WAIT_JOIN, t);
		int r = weft__wait_locked(self, &t->lock, &t->waiters, &w,
					  weft__deadline_after(timeout_ns));
		weft__lock_acquire(&t->lock);
		if (r < 0) {
			t->joined = 0; /* the result stays for a later join */
			weft__lock_release(&t->lock);
			return r;
		}
	} else if (self) {
		weft__lock_release(&t->lock);
		weft__budget_spend(self);
		weft__lock_acquire(&t->lock);
	}
	return hand_over_locked(t, result);
}

/* Hand over the result of a finished task without a suspension point
 * (its join status: 0 or its error), or -EALREADY / -EBUSY. */
int weft__task_take_result(weft_task *t, void **result)
{
	weft__lock_acquire(&t->lock);
	if (t->joined) {
		int r = t->joined == 2 ? -EALREADY : -EBUSY;
		weft__lock_release(&t->lock);
		return r;
	}
	return hand_over_locked(t, result);
}

/* A finished task whose join would report an error.  Read under the
 * lock: the outcome fields share a word with it. */
bool weft__task_failed(const weft_task *t)
{
	if (!weft_task_done(t))
		return false;
	weft_task *m = (weft_task *)t;
	weft__lock_acquire(&m->lock);
	bool failed = outcome_locked(m) != 0;
	weft__lock_release(&m->lock);
	return failed;
}

int weft_task_join(weft_task *t, void **result)
{
	return weft_task_join_timeout(t, result, WEFT_FOREVER);
}

/* weft_task_cancel, with the wake's system calls recorded in wk (a
 * caller holding a spinlock). */
int weft__task_cancel_to(weft_task *t, weft__wakes *wk)
{
	if (!t)
		return -EINVAL;
	if (atomic_load_explicit(&t->state, memory_order_acquire) & WEFT_TS_DONE)
		return -EALREADY;
	atomic_fetch_or_explicit(&t->cancel_req, WEFT_CANCEL_REQ, memory_order_release);
	weft__task_wake_to(t, wk);
	return 0;
}

void weft__task_interrupt_to(weft_task *t, weft__wakes *wk)
{
	atomic_fetch_or_explicit(&t->cancel_req, WEFT_CANCEL_INTR, memory_order_release);
	weft__task_wake_to(t, wk);
}

int weft_task_cancel(weft_task *t)
{
	weft__wakes wk = WEFT_WAKES_INIT;
	int r = weft__task_cancel_to(t, &wk);
	weft__wakes_flush(&wk);
	return r;
}

bool weft_task_cancelled(void)
{
	weft_task *t = weft__task_self();
	return t && (atomic_load_explicit(&t->cancel_req, memory_order_acquire) & WEFT_CANCEL_REQ);
}

int weft_shield_begin(void)
{
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_shield_begin outside a task");
	t->shield++;
	return 0;
}

int weft_shield_end(void)
{
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_shield_end outside a task");
	if (t->shield == 0)
		return weft__misuse(-EINVAL, "weft_shield_end without weft_shield_begin");
	t->shield--;
	return 0;
}

weft_task *weft_task_current(void)
{
	return weft__task_self();
}

const char *weft_task_name(const weft_task *t)
{
	if (!t)
		return NULL;
	weft_task *m = (weft_task *)t;
	weft__lock_acquire(&m->lock);
	if (!m->name[0]) /* named lazily: spawning stays cheap */
		snprintf(m->name, sizeof(m->name), "task-%llu", (unsigned long long)m->id);
	weft__lock_release(&m->lock);
	return m->name;
}

int weft_task_set_name(weft_task *t, const char *name)
{
	if (!t || !name)
		return -EINVAL;
	size_t n = strnlen(name, sizeof(t->name) - 1);
	weft__lock_acquire(&t->lock);
	memcpy(t->name, name, n);
	t->name[n] = 0;
	weft__lock_release(&t->lock);
	return 0;
}

uint64_t weft_task_id(const weft_task *t)
{
	return t ? t->id : 0;
}

int weft_yield(void)
{
	weft_loop *l = weft__loop_self();
	weft_task *t = l ? l->current : NULL;
	if (!t)
		return weft__misuse(-EPERM, "weft_yield outside a task");
	if (unlikely(atomic_load_explicit(&t->cancel_req, memory_order_relaxed) ||
		     t->scope_deadline)) {
		int r = weft__checkpoint(t); /* 0 when shielded: still yield */
		if (r < 0)
			return r;
	}
	t->budget = WEFT_TASK_BUDGET;
	t->wait_kind = WEFT_WAIT_YIELD;
	weft__switch_out_from(l, t, WEFT_SW_YIELD);
	if (unlikely(atomic_load_explicit(&t->cancel_req, memory_order_relaxed) ||
		     t->scope_deadline))
		return weft__checkpoint(t);
	return 0;
}

/* Park t until the internal deadline `deadline` (0: none) passes, it is
 * cancelled or a scope ends. */
static int sleep_parked(weft_task *t, uint64_t deadline)
{
	weft__wait_on(t, WEFT_WAIT_SLEEP, NULL);
	t->wait_until = deadline;
	for (;;) {
		int r = weft__park_task(t, deadline);
		if (r == -ETIME)
			return 0; /* slept its time; -ETIMEDOUT is a scope's */
		if (r == -ECANCELED)
			t->cancel_seen = true;
		if (r < 0)
			return r;
	}
}

int weft_sleep(uint64_t ns)
{
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_sleep outside a task");
	if (ns == 0)
		return weft_yield();
	return sleep_parked(t, weft__deadline_after(ns));
}

int weft__sleep_until(weft_task *t, uint64_t deadline_ns)
{
	if (deadline_ns != WEFT_FOREVER && deadline_ns <= weft_now_ns())
		return weft_yield(); /* due already: as weft_sleep(0) */
	return sleep_parked(t, weft__deadline_in(deadline_ns));
}

int weft_sleep_until(uint64_t deadline_ns)
{
	weft_task *t = weft__task_self();
	if (!t)
		return weft__misuse(-EPERM, "weft_sleep_until outside a task");
	return weft__sleep_until(t, deadline_ns);
}

int weft_sleep_ms(uint64_t ms)
{
	return weft_sleep(ms > WEFT_FOREVER / 1000000u ? WEFT_FOREVER : ms * 1000000u);
}
