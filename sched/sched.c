/*
 * The scheduler: who runs next, and where.
 *
 * Task state machine (weft_task.state, see docs/architecture.md):
 *   idle --wake--> NOTIFIED (queued) --run--> RUNNING --park--> idle
 *   RUNNING --wake--> RUNNING|NOTIFIED --park--> NOTIFIED (requeued)
 *   RUNNING --yield--> NOTIFIED (queued at the back)
 *   RUNNING --return--> DONE
 *   idle --hold--> RUNNING --unhold--> idle, or NOTIFIED (queued) if woken
 *     meanwhile: a task dump reading a parked task's stack (runtime/dump.c)
 * Only the transition idle -> NOTIFIED queues a task, so a task is in at
 * most one queue.  A task that switches away is published (requeued,
 * parked, freed) by whoever runs next on that loop, after the switch has
 * saved its registers: "switch, then publish" (docs/architecture.md rule 1).
 *
 * A parked task belongs to the loop it parked on (its timer is in that
 * loop's heap).  Waking it queues it on that loop: directly if the waker
 * runs there, else through the loop's `remote` stack plus a wakeup if the
 * loop sleeps.  Once runnable, a stealable task may be taken by any loop.
 */
#include "../runtime/internal.h"

#include <sched.h>
#include <stdlib.h>

/* libweft.a: initial-exec, one %fs-relative load once linked into a
 * program (always part of the initial TLS image).  But a shared object
 * with initial-exec TLS needs room in the static TLS block, which a
 * dlopen may not find: libweft_pic.a (built with WEFT_TLS_DYNAMIC, for
 * linking into shared objects) keeps the compiler's default model for
 * -fPIC, which finds it through __tls_get_addr in a shared object and is
 * relaxed to a couple of loads in a program.  README: "In a shared
 * object". */
#ifdef WEFT_TLS_DYNAMIC
static __thread weft_loop *tls_loop;
#else
static __thread weft_loop *tls_loop __attribute__((tls_model("initial-exec")));
#endif

/* Out of line, with a compiler barrier, so a task that migrated while
 * suspended never uses a stale TLS address (docs/architecture.md rule 2). */
__attribute__((noinline)) weft_loop *weft__loop_self(void)
{
	weft_loop *l = tls_loop;
	__asm__ volatile("" ::: "memory");
	return l;
}

__attribute__((noinline)) void weft__loop_set_self(weft_loop *l)
{
	tls_loop = l;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) weft_task *weft__task_self(void)
{
	weft_loop *l = tls_loop;
	__asm__ volatile("" ::: "memory");
	return l ? l->current : NULL;
}

/* ------------------------------------------------------------------------ */
/* idle coordination (Tokio's Idle): searching count, sleepers, chain wake  */
/* ------------------------------------------------------------------------ */

static void wake_loop(weft_loop *target)
{
	/* Pairs with the seq_cst store of `parked` in park_loop(): either the
	 * sleeper sees our work, or we see it parked and wake it. */
	if (atomic_load_explicit(&target->parked, memory_order_seq_cst) &&
	    atomic_exchange_explicit(&target->parked, 0, memory_order_seq_cst))
		weft__io_wake(target);
}

/* Wake a sleeping loop to look for work, unless one is already searching. */
static void notify_parked(weft_runtime *rt)
{
	/* StoreLoad: the caller just published a task (a release store of a
	 * run queue's tail).  Without a full fence here, this load could be
	 * ordered before that store: we would see a searcher, skip the wake,
	 * while the searcher, last to stop, missed the task and went to sleep
	 * (Tokio makes the same point with a seq_cst read-modify-write). */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&rt->num_searching, memory_order_seq_cst) != 0 ||
	    atomic_load_explicit(&rt->num_unparked, memory_order_seq_cst) >= rt->nloops)
		return;
	weft__lock_acquire(&rt->idle_lock);
	if (atomic_load_explicit(&rt->num_searching, memory_order_relaxed) != 0 ||
	    rt->nsleepers == 0) {
		weft__lock_release(&rt->idle_lock);
		return;
	}
	unsigned idx = rt->sleepers[--rt->nsleepers];
	/* Counted as searching on its behalf: it wakes up searching. */
	atomic_fetch_add_explicit(&rt->num_searching, 1, memory_order_seq_cst);
	atomic_fetch_add_explicit(&rt->num_unparked, 1, memory_order_seq_cst);
	weft__lock_release(&rt->idle_lock);
	wake_loop(rt->loops[idx]);
}

static bool try_start_searching(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	if (l->searching)
		return true;
	/* At most half the loops search at once. */
	uint32_t s = atomic_load_explicit(&rt->num_searching, memory_order_relaxed);
	if (2 * s >= rt->nloops)
		return false;
	atomic_fetch_add_explicit(&rt->num_searching, 1, memory_order_seq_cst);
	l->searching = true;
	return true;
}

/* Found work: stop searching; the last searcher wakes another (chain). */
static void stop_searching(weft_loop *l)
{
	if (!l->searching)
		return;
	l->searching = false;
	if (atomic_fetch_sub_explicit(&l->rt->num_searching, 1, memory_order_seq_cst) == 1)
		notify_parked(l->rt);
}

/* ------------------------------------------------------------------------ */
/* making tasks runnable                                                     */
/* ------------------------------------------------------------------------ */

/* Queue a runnable task at the back of loop l's own queues (l's thread).
 * A pinned task has its own FIFO only when another loop could steal from
 * the run queue: on a single loop every task shares one FIFO, so tasks
 * run in the order they became ready, pinned or not. */
static inline void queue_back(weft_loop *l, weft_task *t)
{
	if (t->pin >= 0 && l->rt->nloops > 1)
		weft__fifo_push(&l->pinned, t);
	else
		weft__runq_push(l->rq, t);
}

/* Whether nothing is ready on l besides what the LIFO slot holds. */
static inline bool queues_empty(weft_loop *l)
{
	return !l->pinned.len && !weft__runq_len_own(l->rq);
}

/* Queue a NOTIFIED task on its home loop `l`, from l's own thread.  With
 * `lifo`, t runs next if that reorders nothing: the slot is free and no
 * other task is ready (one task waking one other, a ping-pong pair); else
 * it queues behind the tasks that became ready before it.  A task that
 * became stealable may call for an idle loop: now, or (wk) later. */
static void make_runnable_local(weft_loop *l, weft_task *t, bool lifo, weft__wakes *wk)
{
	weft__timer_disarm(l, t);
	if (lifo && !l->lifo && queues_empty(l)) {
		l->lifo = t;
		return;
	}
	/* Read before queueing: once queued, t may be stolen, run and freed. */
	bool stealable = t->pin < 0 && l->rt->nloops > 1;
	queue_back(l, t);
	if (stealable) {
		if (wk)
			wk->notify = l->rt;
		else
			notify_parked(l->rt);
	}
}

static void drain_remote(weft_loop *l)
{
	weft_task *t = weft__mpsc_take_fifo(&l->remote);
	uint64_t n = 0;
	while (t) {
		weft_task *next = t->next;
		make_runnable_local(l, t, false, NULL);
		t = next;
		n++;
	}
	WEFT_OBS_ADD(l, wakes_remote, n);
}

/* Metrics of a wake that queues t (docs/observability.md): counted by
 * where the waker runs, and one wake in 256 timed, so the run can tell
 * how long t waited (prepare_run).  Written before t is queued: whoever
 * runs it reads woken_at after taking it from the queue. */
#ifndef WEFT_NO_OBSERVE
static __thread uint32_t foreign_sample; /* a foreign thread's wakes */

static inline void wake_observe(weft_loop *self, weft_loop *home, weft_task *t)
{
	uint32_t *sample = &foreign_sample;
	if (likely(self)) {
		if (self == home)
			WEFT_OBS_ADD(self, wakes_local, 1);
		else
			WEFT_OBS_ADD(self, wakes_cross, 1);
		sample = &self->obs.wake_sample;
	} else {
		atomic_fetch_add_explicit(&home->rt->wakes_foreign, 1, memory_order_relaxed);
	}
	if (unlikely(++*sample > WEFT_OBS_WAKE_SAMPLE)) {
		*sample = 0;
		t->woken_at = weft_now_ns();
	}
}
#else
#define wake_observe(self, home, t) ((void)0)
#endif

/* Make t runnable; the system calls this may need (waking a sleeping
 * loop) are recorded in wk for weft__wakes_flush, so a caller holding a
 * spinlock makes them after releasing it (docs/architecture.md). */
void weft__task_wake_to(weft_task *t, weft__wakes *wk)
{
	uint32_t s = atomic_fetch_or_explicit(&t->state, WEFT_TS_NOTIFIED, memory_order_acq_rel);
	if (s & (WEFT_TS_RUNNING | WEFT_TS_NOTIFIED | WEFT_TS_DONE))
		return; /* running: requeued when it switches away; or queued */
	weft_loop *home = t->loop, *self = weft__loop_self();
	wake_observe(self, home, t);
	if (self == home) {
		WEFT_TRACE(self, WEFT_TEV_WAKE, 0, home->index, t->id, 0, weft__trace_cur(self));
		make_runnable_local(home, t, true, wk);
		return;
	}
	/* A loop of another runtime wakes as a foreign thread does: home's
	 * runtime must not end (and free its loops) under the wake. */
	bool foreign = !self || self->rt != home->rt;
	if (!foreign)
		WEFT_TRACE(self, WEFT_TEV_WAKE, 0, home->index, t->id, 0, weft__trace_cur(self));
	else
		weft__trace_foreign(home->rt);
	if (foreign && !wk->held) { /* before t can run, finish, end the runtime */
		wk->held = home->rt;
		atomic_fetch_add_explicit(&home->rt->foreign_wakes, 1, memory_order_seq_cst);
	}
	weft__mpsc_push(&home->remote, t);
	for (unsigned i = 0; i < wk->n; i++)
		if (wk->loop[i] == home)
			return;
	if (wk->n < WEFT_WAKES_MAX)
		wk->loop[wk->n++] = home;
	else
		wk->all = home->rt;
}

void weft__wakes_flush_slow(weft__wakes *wk)
{
	if (unlikely(wk->all)) {
		weft__wake_all_loops(wk->all);
	} else {
		for (unsigned i = 0; i < wk->n; i++)
			wake_loop(wk->loop[i]);
	}
	if (wk->notify)
		notify_parked(wk->notify);
	if (wk->held)
		atomic_fetch_sub_explicit(&wk->held->foreign_wakes, 1, memory_order_release);
}

void weft__task_wake(weft_task *t)
{
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__task_wake_to(t, &wk);
	weft__wakes_flush(&wk);
}

/* Whether a task other than the running one is ready on loop l (l's own
 * thread): its LIFO slot, pinned FIFO, remote wakes or run queue. */
bool weft__loop_has_ready(const weft_loop *l)
{
	return l->lifo || l->pinned.len ||
	       atomic_load_explicit(&((weft_loop *)l)->remote.head, memory_order_relaxed) ||
	       weft__runq_len_own(l->rq);
}

/* A new task: queue it where it should start. */
void weft__schedule_new(weft_runtime *rt, weft_loop *from, weft_task *t)
{
	if (t->pin >= 0) {
		weft_loop *home = rt->loops[t->pin];
		t->loop = home;
		if (from == home) {
			queue_back(home, t);
		} else {
			weft__mpsc_push(&home->remote, t);
			wake_loop(home);
		}
		return;
	}
	if (from) {
		t->loop = from;
		weft__runq_push(from->rq, t);
	} else {
		weft__inject_push(rt, t);
	}
	if (rt->nloops > 1 || !from)
		notify_parked(rt);
}

/* ------------------------------------------------------------------------ */
/* choosing and running                                                      */
/* ------------------------------------------------------------------------ */

static inline weft_task *pick_local(weft_loop *l)
{
	if (atomic_load_explicit(&l->remote.head, memory_order_relaxed))
		drain_remote(l);
	weft_task *t = l->lifo;
	if (t) {
		l->lifo = NULL;
		if (l->lifo_streak < WEFT_LIFO_MAX_STREAK) {
			l->lifo_streak++;
			return t;
		}
		/* A ping-pong pair must not starve the queue: back it goes. */
		queue_back(l, t);
	}
	l->lifo_streak = 0;
	/* Alternate between pinned and stealable work so neither starves. */
	if (l->tick & 1) {
		if ((t = weft__fifo_pop(&l->pinned)))
			return t;
		return weft__runq_pop(l->rq);
	}
	if ((t = weft__runq_pop(l->rq)))
		return t;
	return weft__fifo_pop(&l->pinned);
}

static void registry_add(weft_loop *l, weft_task *t)
{
	t->owner = l;
	t->reg_prev = NULL;
	t->reg_next = l->reg_head;
	if (l->reg_head)
		l->reg_head->reg_prev = t;
	l->reg_head = t;
}

void weft__registry_remove(weft_loop *l, weft_task *t)
{
	if (t->reg_prev)
		t->reg_prev->reg_next = t->reg_next;
	else
		l->reg_head = t->reg_next;
	if (t->reg_next)
		t->reg_next->reg_prev = t->reg_prev;
	t->reg_next = t->reg_prev = NULL;
}

/* A task that cannot get a stack finishes with -ENOMEM without running
 * (only a task spawned without always_run: always_run took its stack at
 * spawn). */
static void finish_unstarted(weft_loop *l, weft_task *t, int err)
{
	t->error = err;
	if (t->group)
		weft__group_child_exit(t);
	weft__wakes wk = WEFT_WAKES_INIT;
	weft__lock_acquire(&t->lock);
	atomic_store_explicit(&t->state, WEFT_TS_DONE, memory_order_release);
	weft__waitlist_fire_all(&t->waiters, &wk);
	weft__unlock_wake(&t->lock, &wk);
	weft__live_dec(l->rt, l);
	weft__task_unref(t);
}

/* First run: a stack (unless it got one at spawn), a context, a registry
 * entry.  False if no stack (the task is finished with -ENOMEM). */
static __attribute__((noinline)) bool first_run(weft_loop *l, weft_task *t)
{
	if (!t->stack_base) {
		size_t size = t->stack_size ? t->stack_size : l->rt->cfg.stack_size;
		int r = weft__stack_get(l->rt, l, t, size);
		if (r < 0) {
			finish_unstarted(l, t, r);
			return false;
		}
	}
	weft__fiber_init_task(&t->fib, t->stack_base, t->stack_size, weft__task_entry, t,
			      &t->fpenv);
	registry_add(l, t);
	return true;
}

/* Prepare `t` to run on `l`; false if it could not (and was finished). */
static inline __attribute__((always_inline)) bool prepare_run(weft_loop *l, weft_task *t)
{
	if (unlikely(!t->owner) && !first_run(l, t)) /* registered at first run */
		return false;
	/* Relaxed atomic stores (plain moves): the watchdog (runtime/observe.c)
	 * and a dump (runtime/dump.c) read them from other threads. */
	__atomic_store_n(&l->current, t, __ATOMIC_RELAXED);
	__atomic_store_n(&t->loop, l, __ATOMIC_RELAXED);
	__atomic_store_n(&l->started_id, t->id, __ATOMIC_RELAXED);
	t->budget = WEFT_TASK_BUDGET;
#ifndef WEFT_NO_OBSERVE
	if (unlikely(t->woken_at)) { /* a sampled wake */
		weft__obs_wake_delay(l, weft_now_ns() - t->woken_at);
		t->woken_at = 0;
	}
#endif
	/* An exchange, not a store: a wake that lands just before (its
	 * fetch_or saw NOTIFIED and queued nothing) must synchronize with this
	 * run, or a condition that no lock guards, like a cancellation request,
	 * could be read stale and the task park with the wake lost. */
	atomic_exchange_explicit(&t->state, WEFT_TS_RUNNING, memory_order_acq_rel);
	WEFT_STAT_ADD(l, tasks_run, 1);
	if (unlikely(l->trace_on))
		weft__trace_run(l, t);
	return true;
}

/* One more task run: a relaxed store, as plain as `l->tick++`, that the
 * stall watchdog reads (runtime/observe.c). */
static inline void tick_next(weft_loop *l)
{
	__atomic_store_n(&l->tick, l->tick + 1, __ATOMIC_RELAXED);
}

/* True once every WEFT_MAINT_INTERVAL ticks: time for a scheduler pass. */
static inline bool tick_maint_due(weft_loop *l)
{
	if (likely(--l->maint_countdown))
		return false;
	l->maint_countdown = WEFT_MAINT_INTERVAL;
	return true;
}

/* Next task for a task that is switching away; NULL means "go to the
 * scheduler" (nothing local, or periodic maintenance is due). */
static inline weft_task *pick_next(weft_loop *l)
{
	for (;;) {
		tick_next(l);
		if (tick_maint_due(l)) {
			l->maint_due = true;
			return NULL;
		}
		weft_task *t = pick_local(l);
		if (!t || prepare_run(l, t))
			return t;
	}
}

static void task_exited(weft_loop *l, weft_task *t)
{
	WEFT_OBS_ADD(l, tasks_finished, 1);
	weft__stack_put(l, t);
	weft__fiber_destroy(&t->fib);
	weft_runtime *rt = l->rt;
	if (t->owner == l) {
		weft__registry_remove(l, t);
		weft__task_unref(t);
	} else {
		/* Its registry belongs to another loop, which unlinks it. */
		weft__mpsc_push(&t->owner->reaped, t);
	}
	weft__live_dec(rt, l);
}

void weft__after_switch(weft_loop *l)
{
	weft_task *p = l->prev;
	if (!p)
		return;
	l->prev = NULL;
	switch (l->prev_action) {
	case WEFT_SW_PARK: {
		uint32_t s = atomic_fetch_and_explicit(&p->state, ~WEFT_TS_RUNNING,
						       memory_order_acq_rel);
		if (s & WEFT_TS_NOTIFIED) /* woken before it got off the CPU */
			make_runnable_local(l, p, false, NULL);
		break;
	}
	case WEFT_SW_YIELD:
		atomic_store_explicit(&p->state, WEFT_TS_NOTIFIED, memory_order_release);
		queue_back(l, p);
		break;
	case WEFT_SW_EXIT:
		task_exited(l, p);
		break;
	}
}

void weft__switch_out(int action)
{
	weft_loop *l = weft__loop_self();
	weft__switch_out_from(l, l->current, action);
}

/* The running task t leaves the CPU: parks (with what it waits on),
 * yields or exits. */
static void trace_switch_out(weft_loop *l, weft_task *t, int action)
{
	if (action == WEFT_SW_PARK)
		weft__trace_put(l, WEFT_TEV_PARK, t->wait_kind, 0, t->id, (uint32_t)t->wait_fd,
				t->wait_op);
	else
		weft__trace_put(l, action == WEFT_SW_YIELD ? WEFT_TEV_YIELD : WEFT_TEV_EXIT, 0, 0,
				t->id, 0, 0);
}

void weft__switch_out_from(weft_loop *l, weft_task *t, int action)
{
	if (t->stack_kind == WEFT_STACK_SLAB)
		weft__stack_check(t);
	l->maint_due = false;
	if (unlikely(l->trace_on)) /* before the next task's RUN */
		trace_switch_out(l, t, action);
	weft_task *next = pick_next(l);
	if (!next && action == WEFT_SW_YIELD && !l->maint_due) {
		t->budget = WEFT_TASK_BUDGET;
		if (unlikely(l->trace_on))
			weft__trace_run(l, t); /* it goes on */
		return; /* nothing else to run: yielding is a no-op */
	}
	l->prev = t;
	l->prev_action = action;
	weft__fiber *to;
	if (next) {
		to = &next->fib;
	} else {
		__atomic_store_n(&l->current, NULL, __ATOMIC_RELAXED);
		to = &l->sched;
	}
	weft__fiber_switch(&t->fib, to, action == WEFT_SW_EXIT);
	/* Resumed, perhaps on another thread: re-read the loop. */
	weft__fiber_after(&t->fib);
	weft__after_switch(weft__loop_self());
}

/* Claim parked task t as if it ran (RUNNING, with no loop running it), so
 * nothing runs it while a dump reads its stack: a wake meanwhile only
 * sets NOTIFIED, and weft__task_unhold queues it as its switch-out would
 * have.  False if t is not parked (running, queued or done). */
bool weft__task_hold(weft_task *t)
{
	uint32_t s = 0;
	return atomic_compare_exchange_strong_explicit(&t->state, &s, WEFT_TS_RUNNING,
						       memory_order_acq_rel, memory_order_relaxed);
}

void weft__task_unhold(weft_task *t)
{
	uint32_t s = atomic_fetch_and_explicit(&t->state, ~WEFT_TS_RUNNING, memory_order_acq_rel);
	if (!(s & WEFT_TS_NOTIFIED))
		return;
	weft_loop *home = t->loop, *self = weft__loop_self();
	if (home == self) {
		make_runnable_local(home, t, false, NULL);
	} else { /* its timer lives on its home loop: queue it there */
		weft__mpsc_push(&home->remote, t);
		wake_loop(home);
	}
}

/* ------------------------------------------------------------------------ */
/* the scheduler loop                                                        */
/* ------------------------------------------------------------------------ */

static void cancel_registry(weft_loop *l)
{
	for (weft_task *t = l->reg_head; t; t = t->reg_next)
		weft_task_cancel(t);
}

static void reap_finished(weft_loop *l)
{
	weft_task *t = weft__mpsc_take_fifo(&l->reaped);
	while (t) {
		weft_task *n = t->next;
		weft__registry_remove(l, t);
		weft__task_unref(t);
		t = n;
	}
}

static void maintenance_poll(weft_loop *l, bool ring)
{
	weft_runtime *rt = l->rt;
	weft__trace_poll(l);
#if WEFT_TSAN
	weft__signal_route();
#endif
	if (unlikely(!l->shutdown_seen &&
		     atomic_load_explicit(&rt->state, memory_order_acquire) >= 2)) {
		l->shutdown_seen = true;
		weft__live_drain(rt, l);
		cancel_registry(l);
	}
	if (atomic_load_explicit(&l->reaped.head, memory_order_relaxed))
		reap_finished(l);
	if (l->rq->stage_len) /* staged pushes become stealable */
		weft__runq_flush(l->rq);
	if (ring)
		weft__io_poll(l, false, 0);
	uint64_t now = weft_now_ns();
	l->now_hint = now;
	if (weft__timer_any(l))
		weft__timer_fire(l, now);
	drain_remote(l);
	if (unlikely(atomic_load_explicit(&l->dumps, memory_order_acquire)))
		weft__dump_serve(l);
}

_Atomic uint64_t weft__trim_ns = WEFT_TRIM_NS;

/* About once a second (WEFT_TRIM_NS), the loop's caches give back what
 * they did not need since the last time (runtime/objcache.h). */
static void trim_caches(weft_loop *l)
{
	l->trim_passes = 0;
	uint64_t now = weft_now_ns();
	if (now < l->trim_at)
		return;
	l->trim_at = now + atomic_load_explicit(&weft__trim_ns, memory_order_relaxed);
	weft__objcache_trim(&l->task_cache);
	weft__objcache_trim(&l->future_cache);
	weft__objcache_trim(&l->wbuf_cache);
	weft__objcache_trim(&l->wsend_cache);
	weft__objcache_trim(&l->wresv_cache);
	weft__objcache_trim(&l->rxbuf_cache);
	weft__stackpool_trim(l->rt, &l->stacks);
	weft__io_trim(l);
}

/* Whether the loop holds more than a loop at work keeps between its
 * requests: then it must not sleep past its next trim (park_loop), or an
 * idle server's loop would keep its last burst's tasks, stacks and buffers
 * (and their pages) until its next task, however long that is.  What is
 * under these marks (a few stacks and buffers, some 100 KiB at most) may
 * stay while it sleeps: bounding every sleep would put a kernel timer on
 * each park of a busy request/response loop, which parks between most of
 * its requests. */
static bool trim_due(weft_loop *l)
{
	return l->stacks.len > 4 || l->task_cache.len > 32 || l->future_cache.len > 32 ||
	       l->wbuf_cache.len > 8 || l->wsend_cache.len > 32 || l->wresv_cache.len > 32 ||
	       l->rxbuf_cache.len > 8 || weft__io_trim_due(l);
}

static void maintenance(weft_loop *l)
{
	maintenance_poll(l, true);
	if (++l->trim_passes >= WEFT_TRIM_PASSES)
		trim_caches(l);
}

static weft_task *steal_work(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	weft_task *t = weft__inject_pop_batch(rt, l->rq);
	if (t)
		return t;
	if (rt->nloops < 2 || !try_start_searching(l))
		return NULL;
	l->rng = l->rng * 1103515245u + 12345u;
	unsigned start = (l->rng >> 16) % rt->nloops;
	for (unsigned i = 0; i < rt->nloops; i++) {
		weft_loop *v = rt->loops[(start + i) % rt->nloops];
		if (v == l)
			continue;
		unsigned n;
		t = weft__runq_steal(v->rq, l->rq, &n);
		if (t) {
			WEFT_TRACE(l, WEFT_TEV_STEAL, 0, v->index, t->id, n, 0);
			WEFT_STAT_ADD(l, steals, 1);
			WEFT_STAT_ADD(l, tasks_stolen, n);
			return t;
		}
	}
	return weft__inject_pop(rt);
}

static bool work_visible(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	if (atomic_load_explicit(&l->remote.head, memory_order_seq_cst) ||
	    atomic_load_explicit(&l->dumps, memory_order_seq_cst) ||
	    atomic_load_explicit(&rt->inject_len, memory_order_seq_cst) ||
	    atomic_load_explicit(&rt->stop, memory_order_seq_cst) ||
	    (!l->shutdown_seen && atomic_load_explicit(&rt->state, memory_order_seq_cst) >= 2))
		return true;
	for (unsigned i = 0; i < rt->nloops; i++)
		if (rt->loops[i] != l && weft__runq_len(rt->loops[i]->rq) > 0)
			return true;
	return false;
}

static void park_loop(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	trim_caches(l); /* a loop that sleeps often may never pass 64 times */
	weft__lock_acquire(&rt->idle_lock);
	if (l->searching) {
		l->searching = false;
		atomic_fetch_sub_explicit(&rt->num_searching, 1, memory_order_seq_cst);
	}
	rt->sleepers[rt->nsleepers++] = l->index;
	atomic_fetch_sub_explicit(&rt->num_unparked, 1, memory_order_seq_cst);
	weft__lock_release(&rt->idle_lock);

	atomic_store_explicit(&l->parked, 1, memory_order_seq_cst);
	/* A notifier may have popped us from the sleepers before that store,
	 * found parked == 0 and sent no wakeup: it counted us as searching, so
	 * we must not sleep.  It pops under idle_lock and then reads parked,
	 * so checking under the same lock after the store closes the window. */
	weft__lock_acquire(&rt->idle_lock);
	bool still_listed = false;
	for (unsigned i = 0; i < rt->nsleepers; i++)
		still_listed |= rt->sleepers[i] == l->index;
	weft__lock_release(&rt->idle_lock);
	if (still_listed && !work_visible(l)) {
		WEFT_STAT_ADD(l, parks, 1);
		WEFT_TRACE(l, WEFT_TEV_SLEEP, 0, 0, 0, 0, 0);
		uint64_t until = weft__timer_next(l); /* 0: none */
		if ((!until || until > l->trim_at) && trim_due(l))
			until = l->trim_at; /* set by trim_caches: after now */
		weft__io_poll(l, true, until);
		WEFT_TRACE(l, WEFT_TEV_WAKEUP, 0, 0, 0, 0, 0);
	}
	atomic_store_explicit(&l->parked, 0, memory_order_seq_cst);

	weft__lock_acquire(&rt->idle_lock);
	bool listed = false;
	for (unsigned i = 0; i < rt->nsleepers; i++) {
		if (rt->sleepers[i] == l->index) {
			rt->sleepers[i] = rt->sleepers[--rt->nsleepers];
			listed = true;
			break;
		}
	}
	if (listed)
		atomic_fetch_add_explicit(&rt->num_unparked, 1, memory_order_seq_cst);
	else
		l->searching = true; /* notify_parked counted us as searching */
	weft__lock_release(&rt->idle_lock);
}

static weft_task *find_work(weft_loop *l)
{
	weft_task *t = pick_local(l);
	if (!t)
		t = steal_work(l);
	return t;
}

/* Nothing to run: spin a little (a sleeping vCPU takes 40-100 us to wake),
 * then sleep in io_uring_enter until a completion, a wake or a timer. */
static weft_task *idle(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	/* Spinning waits for wakes from other threads.  A lone loop with I/O
	 * in flight gets its news from the ring: it sleeps in it at once, and
	 * a spinning loop enters the ring only every 8th round (~5 us), not
	 * once per round, so waiting costs neither CPU nor syscalls. */
	bool lone_io = rt->nloops == 1 && l->inflight;
	uint64_t spin = lone_io ? 0 : rt->cfg.spin_us;
	uint64_t spin_ns = spin > UINT64_MAX / 1000 ? UINT64_MAX : spin * 1000u;
	uint64_t start = weft_now_ns(), now = start;
	uint64_t until = weft__deadline_add(start, spin_ns); /* saturating */
	unsigned round = 0;
	WEFT_OBS_ADD(l, spins, 1);
	WEFT_OBS_SET(l, idle_since, start);
	do {
		for (int i = 0; i < 32; i++)
			weft__cpu_relax();
		/* A lone loop's ring is entered by its sleep, which submits too. */
		maintenance_poll(l, !lone_io && (round++ & 7) == 0);
		weft_task *t = find_work(l);
		/* Idle time as of the last clock read: no read of its own. */
		if (t || atomic_load_explicit(&rt->stop, memory_order_acquire)) {
			WEFT_OBS_ADD(l, idle_ns, now - start);
			WEFT_OBS_SET(l, idle_since, 0);
			return t;
		}
	} while ((now = weft_now_ns()) < until);
	park_loop(l);
#ifndef WEFT_NO_OBSERVE
	WEFT_OBS_ADD(l, idle_ns, weft_now_ns() - start); /* after a sleep: one read */
#endif
	WEFT_OBS_SET(l, idle_since, 0);
	maintenance(l);
	return find_work(l);
}

/* The loop's own context.  Tasks switch to it only when nothing local is
 * runnable or maintenance is due, so every pass does maintenance. */
static void sched_run(weft_loop *l)
{
	weft_runtime *rt = l->rt;
	for (;;) {
		weft__after_switch(l);
		WEFT_OBS_ADD(l, passes, 1);
		maintenance(l);
		/* The inject queue goes first on every scheduler pass (every 61
		 * ticks at most), so tasks spawned from foreign threads or
		 * overflowed from a full ring are not starved by local work. */
		weft_task *t = weft__inject_pop_batch(rt, l->rq);
		if (!t)
			t = find_work(l);
		if (!t) {
			if (atomic_load_explicit(&rt->stop, memory_order_acquire))
				break;
			t = idle(l);
			if (!t)
				continue;
		}
		stop_searching(l);
		tick_next(l);
		if (!prepare_run(l, t))
			continue;
		weft__fiber_switch(&l->sched, &t->fib, false);
		weft__fiber_after(&l->sched);
	}
}

void *weft__loop_main(void *arg)
{
	weft_loop *l = arg;
	weft_runtime *rt = l->rt;
	weft__loop_set_self(l);
	weft__observe_loop_init(l);
	weft__fiber_init_thread(&l->sched);
	if (rt->cfg.pin_cpus)
		weft__cpu_pin(l);
	int err = weft__io_init(l);

	pthread_mutex_lock(&rt->start_mu);
	l->init_err = err;
	rt->started++;
	pthread_cond_broadcast(&rt->start_cv);
	while (atomic_load(&rt->state) == 0)
		pthread_cond_wait(&rt->start_cv, &rt->start_mu);
	pthread_mutex_unlock(&rt->start_mu);

	if (atomic_load(&rt->state) == 1 || atomic_load(&rt->state) == 2)
		sched_run(l);
	weft__trace_loop_exit(l);
	reap_finished(l);
	weft__dump_close(l); /* requests from now on: answered empty */
	/* The ring and eventfd are closed by weft_runtime_shutdown after every
	 * loop has been joined: other threads may still be waking this one. */
	weft__observe_loop_exit(l);
	weft__stackpool_drain(rt, &l->stacks);
	weft__objcache_drain(&l->task_cache);
	weft__objcache_drain(&l->future_cache);
	weft__objcache_drain(&l->wbuf_cache);
	weft__objcache_drain(&l->wsend_cache);
	weft__objcache_drain(&l->wresv_cache);
	weft__objcache_drain(&l->rxbuf_cache);
	weft__loop_set_self(NULL);
	return NULL;
}

/* ---- the live-task count (what shutdown waits for) ---- */

#define WEFT_CREDIT_BATCH 64u

static void live_sub(weft_runtime *rt, uint64_t n)
{
	if (atomic_fetch_sub_explicit(&rt->live, n, memory_order_seq_cst) == n &&
	    atomic_load_explicit(&rt->state, memory_order_seq_cst) >= 2) {
		atomic_store_explicit(&rt->stop, 1, memory_order_seq_cst);
		weft__wake_all_loops(rt);
	}
}

/* Owner-written, read by weft_runtime_stats_get: relaxed atomics (plain
 * moves) keep that read race-free. */
static inline uint32_t credits_get(const weft_loop *l)
{
	return __atomic_load_n(&l->credits, __ATOMIC_RELAXED);
}
static inline void credits_set(weft_loop *l, uint32_t v)
{
	__atomic_store_n(&l->credits, v, __ATOMIC_RELAXED);
}

/* Count a new task: from a loop, out of its batch of credits; once the
 * loop has seen shutdown (or from a foreign thread), one unit at a time.
 * Returns 0, or -ESHUTDOWN (and uncounts it). */
int weft__live_inc(weft_runtime *rt, weft_loop *l)
{
	if (l && !l->shutdown_seen) {
		uint32_t c = credits_get(l);
		if (c == 0) {
			atomic_fetch_add_explicit(&rt->live, WEFT_CREDIT_BATCH,
						  memory_order_seq_cst);
			c = WEFT_CREDIT_BATCH;
		}
		credits_set(l, c - 1);
	} else {
		atomic_fetch_add_explicit(&rt->live, 1, memory_order_seq_cst);
	}
	if (atomic_load_explicit(&rt->state, memory_order_seq_cst) != 1) {
		weft__live_dec(rt, l);
		return -ESHUTDOWN;
	}
	return 0;
}

void weft__live_dec(weft_runtime *rt, weft_loop *l)
{
	if (l && !l->shutdown_seen) {
		uint32_t c = credits_get(l) + 1;
		if (c < 2 * WEFT_CREDIT_BATCH) {
			credits_set(l, c);
			return;
		}
		credits_set(l, c - WEFT_CREDIT_BATCH);
		live_sub(rt, WEFT_CREDIT_BATCH);
		return;
	}
	live_sub(rt, 1);
}

/* On noticing shutdown: give back every credit, count exactly from now. */
void weft__live_drain(weft_runtime *rt, weft_loop *l)
{
	uint32_t n = credits_get(l);
	credits_set(l, 0);
	if (n)
		live_sub(rt, n);
}

uint64_t weft__task_id_next(weft_runtime *rt, weft_loop *l)
{
	if (!l)
		return atomic_fetch_add_explicit(&rt->next_id, 1, memory_order_relaxed) + 1;
	if (l->id_next == l->id_end) {
		l->id_next = atomic_fetch_add_explicit(&rt->next_id, 1024, memory_order_relaxed) + 1;
		l->id_end = l->id_next + 1024;
	}
	return l->id_next++;
}

void weft__wake_all_loops(weft_runtime *rt)
{
	for (unsigned i = 0; i < rt->nloops; i++)
		wake_loop(rt->loops[i]);
}
