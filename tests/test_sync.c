/*
 * Synchronization primitives against asyncio's semantics: Lock (FIFO
 * fairness across loops and threads, hand-off to a waiter cancelled at that
 * moment), Event, Condition (re-acquire after cancel and timeout),
 * Semaphore and BoundedSemaphore, Barrier (indices, abort, reset, leaving),
 * RwLock (exclusion, no writer starvation), deadline scopes on every wait,
 * and a randomized stress on 2 loops that cancels and times out waiters
 * while counting mutual exclusion violations.
 *
 * docs/architecture.md rule 7: tasks and helper threads record; the test
 * asserts on its own stack after weft_run / join / pthread_join.
 */
#include "weft_test.h"
#include "weft/sync.h"

#include <pthread.h>
#include <stdatomic.h>

/* Spawn fn(arg) pinned to loop `loop` (WEFT_PIN_NONE: stealable). */
static weft_task *spawn_on(int loop, weft_fn fn, void *arg)
{
	weft_task_config cfg;
	weft_task_config_init(&cfg);
	cfg.pin = loop;
	weft_task *t = NULL;
	if (weft_task_spawn_ex(&t, &cfg, fn, arg) < 0)
		return NULL;
	return t;
}

/* Join and release; the task's result as an int. */
static int join_int(weft_task *t)
{
	void *res = P(0xdead);
	if (!t)
		return -9999;
	int r = weft_task_join(t, &res);
	weft_task_release(t);
	return r < 0 ? r : (int)(intptr_t)res;
}

/* In a task: wait until *v >= want (5 s cap); 1 if reached. */
static int await_count(_Atomic int *v, int want)
{
	uint64_t until = weft_now_ns() + 5000 * MS;
	while (atomic_load(v) < want) {
		if (weft_now_ns() > until)
			return 0;
		weft_sleep_ms(1);
	}
	return 1;
}

/* Let a task that announced itself reach its wait list. */
#define SETTLE_MS 10

/* ------------------------------------------------------------------------ */
/* Lock                                                                     */
/* ------------------------------------------------------------------------ */

static void test_lock_basic_no_runtime(void **state)
{
	(void)state;
	weft_lock l;
	assert_int_equal(weft_lock_init(&l), 0);
	assert_false(weft_lock_locked(&l));
	assert_int_equal(weft_lock_release(&l), -EPERM);
	assert_int_equal(weft_lock_acquire(&l), 0); /* foreign thread, free: no block */
	assert_true(weft_lock_locked(&l));
	assert_int_equal(weft_lock_try_acquire(&l), -EBUSY);
	assert_int_equal(weft_lock_destroy(&l), -EBUSY);
	assert_int_equal(weft_lock_release(&l), 0);
	assert_int_equal(weft_lock_try_acquire(&l), 0);
	assert_int_equal(weft_lock_release(&l), 0);
	assert_int_equal(weft_lock_release(&l), -EPERM);
	assert_int_equal(weft_lock_destroy(&l), 0);
	assert_int_equal(weft_lock_init(NULL), -EINVAL);
	assert_int_equal(weft_lock_acquire(NULL), -EINVAL);
	assert_int_equal(weft_lock_release(NULL), -EINVAL);
	assert_false(weft_lock_locked(NULL));
}

#define FAIR_N 16

struct fair {
	weft_lock l;
	_Atomic int arrived;
	_Atomic int pos;
	int order[FAIR_N + 1];
	int rc[FAIR_N + 1];
	int thread_idx;
};

struct fair_arg {
	struct fair *f;
	int idx;
};

static void *fair_waiter(void *arg)
{
	struct fair_arg *a = arg;
	struct fair *f = a->f;
	atomic_fetch_add(&f->arrived, 1);
	int r = weft_lock_acquire(&f->l);
	f->rc[a->idx] = r;
	if (r == 0) {
		f->order[atomic_fetch_add(&f->pos, 1)] = a->idx;
		weft_lock_release(&f->l);
	}
	return NULL;
}

static void *fair_thread(void *arg)
{
	return fair_waiter(arg);
}

static void *fair_main(void *arg)
{
	struct fair *f = arg;
	static struct fair_arg args[FAIR_N + 1];
	weft_task *t[FAIR_N];
	pthread_t th;
	bool have_thread = false;
	weft_lock_acquire(&f->l);
	for (int i = 0; i <= FAIR_N; i++) {
		args[i] = (struct fair_arg){ f, i };
		if (i == f->thread_idx) {
			/* one waiter in the middle of the queue is a foreign thread */
			have_thread = pthread_create(&th, NULL, fair_thread, &args[i]) == 0;
		} else {
			t[i > f->thread_idx ? i - 1 : i] = spawn_on(i % 2, fair_waiter, &args[i]);
		}
		await_count(&f->arrived, i + 1);
		weft_sleep_ms(SETTLE_MS);
	}
	weft_lock_release(&f->l);
	for (int i = 0; i < FAIR_N; i++)
		join_int(t[i]);
	if (have_thread)
		pthread_join(th, NULL);
	return NULL;
}

/* asyncio.Lock is fair: waiters get the lock in the order they asked for
 * it, here across two loops and a foreign thread. */
static void test_lock_fifo_fairness_across_loops(void **state)
{
	(void)state;
	struct fair f = { .thread_idx = FAIR_N / 2 };
	assert_int_equal(weft_lock_init(&f.l), 0);
	weft_test_run_loops(2, fair_main, &f);
	assert_int_equal(atomic_load(&f.pos), FAIR_N + 1);
	for (int i = 0; i <= FAIR_N; i++) {
		assert_int_equal(f.rc[i], 0);
		assert_int_equal(f.order[i], i);
	}
	assert_false(weft_lock_locked(&f.l));
	assert_int_equal(weft_lock_destroy(&f.l), 0);
}

struct handoff {
	weft_lock l;
	_Atomic int arrived;
	int a_rc, a_released, b_rc, c_rc;
	_Atomic int got;
};

static void *handoff_a(void *arg)
{
	struct handoff *h = arg;
	atomic_fetch_add(&h->arrived, 1);
	h->a_rc = weft_lock_acquire(&h->l);
	if (h->a_rc == 0) {
		atomic_fetch_add(&h->got, 1);
		h->a_released = weft_lock_release(&h->l);
	}
	return NULL;
}

static void *handoff_b(void *arg)
{
	struct handoff *h = arg;
	atomic_fetch_add(&h->arrived, 1);
	h->b_rc = weft_lock_acquire(&h->l);
	if (h->b_rc == 0) {
		atomic_fetch_add(&h->got, 1);
		weft_lock_release(&h->l);
	}
	return NULL;
}

static void *handoff_main(void *arg)
{
	struct handoff *h = arg;
	weft_lock_acquire(&h->l);
	weft_task *a = spawn_on(0, handoff_a, h);
	await_count(&h->arrived, 1);
	weft_sleep_ms(SETTLE_MS);
	weft_task *b = spawn_on(0, handoff_b, h);
	await_count(&h->arrived, 2);
	weft_sleep_ms(SETTLE_MS);
	/* One loop: A cannot run between these two calls, so it is handed the
	 * lock and cancelled "at the same moment".  It must own the lock
	 * (acquire returns 0) and pass it on by releasing it. */
	weft_lock_release(&h->l);
	weft_task_cancel(a);
	join_int(a);
	join_int(b);
	/* A waiter cancelled before the hand-off takes nothing. */
	weft_lock_acquire(&h->l);
	weft_task *c = spawn_on(0, handoff_b, h);
	await_count(&h->arrived, 3);
	weft_sleep_ms(SETTLE_MS);
	weft_task_cancel(c);
	join_int(c);
	h->c_rc = h->b_rc;
	weft_lock_release(&h->l);
	return NULL;
}

static void test_lock_handoff_to_cancelled_waiter(void **state)
{
	(void)state;
	struct handoff h = { .a_rc = 1, .b_rc = 1 };
	assert_int_equal(weft_lock_init(&h.l), 0);
	weft_test_run_loops(1, handoff_main, &h);
	assert_int_equal(h.a_rc, 0);
	assert_int_equal(h.a_released, 0);
	assert_int_equal(h.c_rc, -ECANCELED);
	assert_int_equal(atomic_load(&h.got), 2);
	assert_false(weft_lock_locked(&h.l));
	assert_int_equal(weft_lock_destroy(&h.l), 0);
}

/*
 * weft_lock_acquire is a suspension point even when the lock is free
 * (docs/sync.md, "A plain mutex or weft_lock"):
 *  - a cancelled task gets -ECANCELED and takes nothing, again at every
 *    later acquire; weft_lock_try_acquire, which never suspends, takes the
 *    free lock; inside a shield the acquire takes it too; the task's join
 *    reports the cancellation;
 *  - uncontended acquires spend the task's budget: after enough of them
 *    in a row the task yields, so other tasks of its loop run in between.
 */
struct lfree {
	weft_lock l;
	int acq_rc, acq_again_rc, locked_after, try_rc, try_rel_rc, shield_rc;
	int yields_ok, other_ran_before, other_ran_after;
	_Atomic int other_ran;
};

static void *lfree_other(void *arg)
{
	struct lfree *x = arg;
	atomic_store(&x->other_ran, 1);
	return NULL;
}

static void *lfree_cancelled(void *arg)
{
	struct lfree *x = arg;
	weft_task_cancel(weft_task_current()); /* pending from now on */
	x->acq_rc = weft_lock_acquire(&x->l);
	x->locked_after = weft_lock_locked(&x->l);
	x->acq_again_rc = weft_lock_acquire(&x->l);
	x->try_rc = weft_lock_try_acquire(&x->l);
	x->try_rel_rc = weft_lock_release(&x->l);
	weft_shield_begin();
	x->shield_rc = weft_lock_acquire(&x->l);
	if (x->shield_rc == 0)
		weft_lock_release(&x->l);
	weft_shield_end();
	return P(7);
}

static void *lfree_main(void *arg)
{
	struct lfree *x = arg;
	/* one loop: `other` can run only when this task suspends or yields */
	weft_task *o = NULL;
	if (weft_task_spawn(&o, lfree_other, x) < 0)
		return NULL;
	x->other_ran_before = atomic_load(&x->other_ran);
	x->yields_ok = 1;
	for (int i = 0; i < 1000; i++) {
		if (weft_lock_acquire(&x->l) != 0 || weft_lock_release(&x->l) != 0)
			x->yields_ok = 0;
	}
	x->other_ran_after = atomic_load(&x->other_ran);
	join_int(o);

	weft_task *t = NULL;
	if (weft_task_spawn(&t, lfree_cancelled, x) < 0)
		return NULL;
	void *res = NULL;
	int r = weft_task_join(t, &res);
	weft_task_release(t);
	return (void *)(intptr_t)(r == -ECANCELED && res == P(7));
}

static void test_lock_acquire_is_a_suspension_point_when_free(void **state)
{
	(void)state;
	struct lfree x;
	memset(&x, 0, sizeof x);
	x.acq_rc = x.acq_again_rc = x.try_rc = x.shield_rc = 1;
	assert_int_equal(weft_lock_init(&x.l), 0);
	void *joined = weft_test_run_loops(1, lfree_main, &x);
	assert_int_equal(x.acq_rc, -ECANCELED);
	assert_false(x.locked_after);
	assert_int_equal(x.acq_again_rc, -ECANCELED);
	assert_int_equal(x.try_rc, 0);
	assert_int_equal(x.try_rel_rc, 0);
	assert_int_equal(x.shield_rc, 0);
	assert_ptr_equal(joined, P(1)); /* join: -ECANCELED, result kept */
	assert_true(x.yields_ok);
	assert_false(x.other_ran_before);
	assert_true(x.other_ran_after);
	assert_false(weft_lock_locked(&x.l));
	assert_int_equal(weft_lock_destroy(&x.l), 0);
}

struct xthread {
	weft_lock l;
	_Atomic int thread_has, thread_done, task_got;
	int thread_rc;
};

static void *xthread_fn(void *arg)
{
	struct xthread *x = arg;
	x->thread_rc = weft_lock_acquire(&x->l); /* blocks: a task holds it */
	atomic_store(&x->thread_has, 1);
	msleep(10);
	/* done before the release: the woken task may check at once, before
	 * this thread runs again (it did, beside another test on two CPUs) */
	atomic_store(&x->thread_done, 1);
	weft_lock_release(&x->l); /* wakes the task waiting on a loop */
	return NULL;
}

static void *xthread_main(void *arg)
{
	struct xthread *x = arg;
	weft_lock_acquire(&x->l);
	pthread_t th;
	if (pthread_create(&th, NULL, xthread_fn, x) != 0)
		return NULL;
	weft_sleep_ms(10);
	int early = atomic_load(&x->thread_has);
	weft_lock_release(&x->l);
	await_count(&x->thread_has, 1);
	if (weft_lock_acquire(&x->l) == 0 && atomic_load(&x->thread_done) == 1 && !early)
		atomic_store(&x->task_got, 1);
	weft_lock_release(&x->l);
	pthread_join(th, NULL);
	return NULL;
}

static void test_lock_foreign_thread_wakes(void **state)
{
	(void)state;
	struct xthread x = { .thread_rc = 1 };
	assert_int_equal(weft_lock_init(&x.l), 0);
	weft_test_run_loops(2, xthread_main, &x);
	assert_int_equal(x.thread_rc, 0);
	assert_int_equal(atomic_load(&x.task_got), 1);
	assert_int_equal(weft_lock_destroy(&x.l), 0);
}

/* ------------------------------------------------------------------------ */
/* Event                                                                    */
/* ------------------------------------------------------------------------ */

#define EV_N 12

struct ev {
	weft_event e;
	_Atomic int arrived, woken;
	int rc[EV_N + 1];
	int was_set, after_clear_rc, set_wait_rc;
};

struct ev_arg {
	struct ev *e;
	int i;
};

static void *ev_waiter(void *arg)
{
	struct ev_arg *a = arg;
	atomic_fetch_add(&a->e->arrived, 1);
	a->e->rc[a->i] = weft_event_wait(&a->e->e);
	atomic_fetch_add(&a->e->woken, 1);
	return NULL;
}

static void *ev_main(void *arg)
{
	struct ev *e = arg;
	static struct ev_arg args[EV_N + 1];
	weft_task *t[EV_N];
	for (int i = 0; i < EV_N; i++) {
		args[i] = (struct ev_arg){ e, i };
		t[i] = spawn_on(i % 2, ev_waiter, &args[i]);
	}
	args[EV_N] = (struct ev_arg){ e, EV_N };
	pthread_t th;
	int th_ok = pthread_create(&th, NULL, ev_waiter, &args[EV_N]) == 0;
	await_count(&e->arrived, EV_N + 1);
	weft_sleep_ms(SETTLE_MS);
	e->was_set = atomic_load(&e->woken); /* nobody passes before set */
	weft_event_set(&e->e);
	for (int i = 0; i < EV_N; i++)
		join_int(t[i]);
	if (th_ok)
		pthread_join(th, NULL);
	e->set_wait_rc = weft_event_wait(&e->e); /* set: returns at once */
	weft_event_clear(&e->e);
	weft_scope sc;
	weft_scope_enter(&sc, 10 * MS);
	e->after_clear_rc = weft_event_wait(&e->e);
	weft_scope_exit(&sc);
	return NULL;
}

/* asyncio.Event: set wakes every waiter (tasks on both loops and a foreign
 * thread); wait on a set event returns at once; clear makes it wait. */
static void test_event_wakes_every_waiter(void **state)
{
	(void)state;
	struct ev e = { 0 };
	assert_int_equal(weft_event_init(&e.e), 0);
	assert_false(weft_event_is_set(&e.e));
	weft_test_run_loops(2, ev_main, &e);
	assert_int_equal(e.was_set, 0);
	assert_int_equal(atomic_load(&e.woken), EV_N + 1);
	for (int i = 0; i <= EV_N; i++)
		assert_int_equal(e.rc[i], 0);
	assert_int_equal(e.set_wait_rc, 0);
	assert_int_equal(e.after_clear_rc, -ETIMEDOUT);
	assert_false(weft_event_is_set(&e.e));
	assert_int_equal(weft_event_destroy(&e.e), 0);
}

/* ------------------------------------------------------------------------ */
/* Condition                                                                */
/* ------------------------------------------------------------------------ */

#define CV_ITEMS 2000

struct cv {
	weft_lock l;
	weft_cond c;
	int items; /* guarded by l */
	int consumed[2];
	int bad;
};

struct cv_arg {
	struct cv *cv;
	int id;
};

static void *cv_consumer(void *arg)
{
	struct cv_arg *a = arg;
	struct cv *cv = a->cv;
	for (;;) {
		if (weft_lock_acquire(&cv->l) < 0) {
			cv->bad++;
			return NULL;
		}
		while (cv->items == 0) {
			if (weft_cond_wait(&cv->c) < 0 || !weft_lock_locked(&cv->l)) {
				cv->bad++;
				weft_lock_release(&cv->l);
				return NULL;
			}
		}
		int v = cv->items < 0 ? -1 : cv->items--;
		weft_lock_release(&cv->l);
		if (v < 0)
			return NULL;
		cv->consumed[a->id]++;
	}
}

static void *cv_main(void *arg)
{
	struct cv *cv = arg;
	static struct cv_arg args[2];
	weft_task *t[2];
	for (int i = 0; i < 2; i++) {
		args[i] = (struct cv_arg){ cv, i };
		t[i] = spawn_on(i, cv_consumer, &args[i]);
	}
	for (int i = 0; i < CV_ITEMS; i++) {
		weft_lock_acquire(&cv->l);
		cv->items++;
		weft_cond_notify(&cv->c, 1);
		weft_lock_release(&cv->l);
		if (i % 16 == 0)
			weft_yield();
	}
	/* drain, then tell both to stop */
	for (;;) {
		weft_lock_acquire(&cv->l);
		int left = cv->items;
		if (left == 0) {
			cv->items = -1;
			weft_cond_notify_all(&cv->c);
		}
		weft_lock_release(&cv->l);
		if (left == 0)
			break;
		weft_sleep_ms(1);
	}
	join_int(t[0]);
	join_int(t[1]);
	return NULL;
}

/* Producer/consumer over a Condition across two loops: every item is
 * consumed once; waiters always return holding the lock. */
static void test_cond_producer_consumer(void **state)
{
	(void)state;
	struct cv cv = { 0 };
	assert_int_equal(weft_lock_init(&cv.l), 0);
	assert_int_equal(weft_cond_init(&cv.c, &cv.l), 0);
	weft_test_run_loops(2, cv_main, &cv);
	assert_int_equal(cv.bad, 0);
	assert_int_equal(cv.consumed[0] + cv.consumed[1], CV_ITEMS);
	assert_int_equal(weft_cond_destroy(&cv.c), 0);
	assert_int_equal(weft_lock_destroy(&cv.l), 0);
}

struct cvc {
	weft_lock l;
	weft_cond c;
	_Atomic int arrived, main_released;
	int rc, held_after, released_first, release_rc;
	int to_rc, to_held, scope_fired;
	int eperm_rc, notify_none, notified[3], notify_rc, notify_all_rc;
	_Atomic int n_notified;
};

static void *cvc_cancelled(void *arg)
{
	struct cvc *x = arg;
	weft_lock_acquire(&x->l);
	atomic_fetch_add(&x->arrived, 1);
	x->rc = weft_cond_wait(&x->c);
	x->held_after = weft_lock_locked(&x->l);
	x->released_first = atomic_load(&x->main_released);
	x->release_rc = weft_lock_release(&x->l);
	return NULL;
}

static void *cvc_notified(void *arg)
{
	struct cvc *x = arg;
	weft_lock_acquire(&x->l);
	atomic_fetch_add(&x->arrived, 1);
	if (weft_cond_wait(&x->c) == 0)
		atomic_fetch_add(&x->n_notified, 1);
	weft_lock_release(&x->l);
	return NULL;
}

static void *cvc_main(void *arg)
{
	struct cvc *x = arg;
	x->eperm_rc = weft_cond_wait(&x->c); /* lock not held */
	x->notify_none = weft_cond_notify(&x->c, 3);

	/* Cancelled while waiting, with the lock held by someone else at
	 * that time: it returns -ECANCELED only once it holds the lock. */
	weft_task *t = spawn_on(1, cvc_cancelled, x);
	await_count(&x->arrived, 1);
	weft_sleep_ms(SETTLE_MS);
	weft_lock_acquire(&x->l);
	weft_task_cancel(t);
	weft_sleep_ms(10);
	atomic_store(&x->main_released, 1);
	weft_lock_release(&x->l);
	join_int(t);

	/* Timed out by a scope: -ETIMEDOUT, lock held again. */
	weft_lock_acquire(&x->l);
	weft_scope sc;
	weft_scope_enter(&sc, 10 * MS);
	x->to_rc = weft_cond_wait(&x->c);
	x->to_held = weft_lock_locked(&x->l);
	x->scope_fired = weft_scope_exit(&sc);
	weft_lock_release(&x->l);

	/* notify(n) wakes n, notify_all the rest. */
	weft_task *w[3];
	for (int i = 0; i < 3; i++)
		w[i] = spawn_on(i % 2, cvc_notified, x);
	await_count(&x->arrived, 4);
	weft_sleep_ms(SETTLE_MS);
	weft_lock_acquire(&x->l);
	x->notify_rc = weft_cond_notify(&x->c, 2);
	weft_lock_release(&x->l);
	weft_sleep_ms(SETTLE_MS);
	x->notified[0] = atomic_load(&x->n_notified);
	x->notify_all_rc = weft_cond_notify_all(&x->c);
	for (int i = 0; i < 3; i++)
		join_int(w[i]);
	x->notified[1] = atomic_load(&x->n_notified);
	return NULL;
}

/* asyncio.Condition.wait re-acquires the lock before it propagates the
 * cancellation (or the timeout). */
static void test_cond_reacquires_after_cancel_and_timeout(void **state)
{
	(void)state;
	struct cvc x = { .rc = 1, .to_rc = 1 };
	assert_int_equal(weft_lock_init(&x.l), 0);
	assert_int_equal(weft_cond_init(&x.c, &x.l), 0);
	assert_int_equal(weft_cond_init(&x.c, NULL), -EINVAL);
	assert_int_equal(weft_cond_init(&x.c, &x.l), 0);
	weft_test_run_loops(2, cvc_main, &x);
	assert_int_equal(x.eperm_rc, -EPERM);
	assert_int_equal(x.notify_none, 0);
	assert_int_equal(x.rc, -ECANCELED);
	assert_true(x.held_after);
	assert_int_equal(x.released_first, 1);
	assert_int_equal(x.release_rc, 0);
	assert_int_equal(x.to_rc, -ETIMEDOUT);
	assert_true(x.to_held);
	assert_int_equal(x.scope_fired, 1);
	assert_int_equal(x.notify_rc, 2);
	assert_int_equal(x.notified[0], 2);
	assert_int_equal(x.notify_all_rc, 1);
	assert_int_equal(x.notified[1], 3);
	assert_false(weft_lock_locked(&x.l));
	assert_int_equal(weft_cond_destroy(&x.c), 0);
	assert_int_equal(weft_lock_destroy(&x.l), 0);
}

/* ------------------------------------------------------------------------ */
/* Semaphore, BoundedSemaphore                                              */
/* ------------------------------------------------------------------------ */

#define SEM_TASKS 200
#define SEM_LIMIT 5

struct semt {
	weft_sem s;
	_Atomic int inside, max_inside, done;
	int errors;
};

static void *sem_worker(void *arg)
{
	struct semt *x = arg;
	if (weft_sem_acquire(&x->s) < 0) {
		x->errors++;
		return NULL;
	}
	int in = atomic_fetch_add(&x->inside, 1) + 1;
	int m = atomic_load(&x->max_inside);
	while (in > m && !atomic_compare_exchange_weak(&x->max_inside, &m, in))
		;
	weft_sleep_ms(1);
	atomic_fetch_sub(&x->inside, 1);
	if (weft_sem_release(&x->s) < 0)
		x->errors++;
	atomic_fetch_add(&x->done, 1);
	return NULL;
}

static void *sem_main(void *arg)
{
	struct semt *x = arg;
	weft_task *t[SEM_TASKS];
	for (int i = 0; i < SEM_TASKS; i++)
		t[i] = spawn_on(WEFT_PIN_NONE, sem_worker, x);
	for (int i = 0; i < SEM_TASKS; i++)
		join_int(t[i]);
	return NULL;
}

/* asyncio.Semaphore(5) lets at most 5 in at once (and here, exactly 5). */
static void test_sem_limits_concurrency(void **state)
{
	(void)state;
	struct semt x = { 0 };
	assert_int_equal(weft_sem_init(&x.s, SEM_LIMIT), 0);
	weft_test_run_loops(2, sem_main, &x);
	assert_int_equal(x.errors, 0);
	assert_int_equal(atomic_load(&x.done), SEM_TASKS);
	assert_int_equal(atomic_load(&x.max_inside), SEM_LIMIT);
	assert_int_equal(weft_sem_value(&x.s), SEM_LIMIT);
	assert_int_equal(weft_sem_destroy(&x.s), 0);
}

static void test_sem_basic_and_bounded_misuse(void **state)
{
	(void)state;
	weft_sem s;
	assert_int_equal(weft_sem_init(&s, 2), 0);
	assert_int_equal(weft_sem_try_acquire(&s), 0);
	assert_int_equal(weft_sem_acquire(&s), 0); /* foreign thread, free */
	assert_int_equal(weft_sem_value(&s), 0);
	assert_int_equal(weft_sem_try_acquire(&s), -EBUSY);
	assert_int_equal(weft_sem_release(&s), 0);
	assert_int_equal(weft_sem_release(&s), 0);
	assert_int_equal(weft_sem_release(&s), 0); /* unbounded: may exceed */
	assert_int_equal(weft_sem_value(&s), 3);
	assert_int_equal(weft_sem_destroy(&s), 0);
	assert_int_equal(weft_sem_init(&s, 0x80000000u), -EINVAL);
	assert_int_equal(weft_sem_init(&s, INT32_MAX), 0);
	assert_int_equal(weft_sem_release(&s), -EOVERFLOW);
	assert_int_equal(weft_sem_value(&s), INT32_MAX);

	/* asyncio.BoundedSemaphore: release past the initial value raises;
	 * here -EOVERFLOW and nothing changes. */
	weft_sem b;
	assert_int_equal(weft_sem_init_bounded(&b, 2), 0);
	assert_int_equal(weft_sem_release(&b), -EOVERFLOW);
	assert_int_equal(weft_sem_value(&b), 2);
	assert_int_equal(weft_sem_acquire(&b), 0);
	assert_int_equal(weft_sem_value(&b), 1);
	assert_int_equal(weft_sem_release(&b), 0);
	assert_int_equal(weft_sem_release(&b), -EOVERFLOW);
	assert_int_equal(weft_sem_value(&b), 2);
	assert_int_equal(weft_sem_destroy(&b), 0);
	/* A bound of 0 is a bound too (it once meant "unbounded"). */
	weft_sem z;
	assert_int_equal(weft_sem_init_bounded(&z, 0), 0);
	assert_int_equal(weft_sem_release(&z), -EOVERFLOW);
	assert_int_equal(weft_sem_value(&z), 0);
	assert_int_equal(weft_sem_destroy(&z), 0);
	assert_int_equal(weft_sem_value(NULL), -EINVAL);
	assert_int_equal(weft_sem_acquire(NULL), -EINVAL);
}

struct semc {
	weft_sem s;
	_Atomic int arrived;
	int rc[3];
	int value_after;
};

struct semc_arg {
	struct semc *x;
	int i;
};

static void *semc_waiter(void *arg)
{
	struct semc_arg *a = arg;
	atomic_fetch_add(&a->x->arrived, 1);
	a->x->rc[a->i] = weft_sem_acquire(&a->x->s);
	return NULL;
}

static void *semc_main(void *arg)
{
	struct semc *x = arg;
	static struct semc_arg args[3];
	weft_task *t[3];
	for (int i = 0; i < 3; i++) {
		args[i] = (struct semc_arg){ x, i };
		t[i] = spawn_on(0, semc_waiter, &args[i]);
		await_count(&x->arrived, i + 1);
		weft_sleep_ms(SETTLE_MS);
	}
	weft_task_cancel(t[0]);   /* cancelled before a release: takes nothing */
	join_int(t[0]);
	weft_sem_release(&x->s);  /* goes to waiter 1 ... */
	weft_task_cancel(t[1]);   /* ... cancelled at that moment: keeps it */
	join_int(t[1]);
	weft_task_cancel(t[2]);   /* still waiting, nothing released */
	join_int(t[2]);
	x->value_after = weft_sem_value(&x->s);
	return NULL;
}

/* Cancelling semaphore waiters loses no permit and invents none. */
static void test_sem_cancelled_waiters(void **state)
{
	(void)state;
	struct semc x = { .rc = { 1, 1, 1 } };
	assert_int_equal(weft_sem_init(&x.s, 0), 0);
	weft_test_run_loops(1, semc_main, &x);
	assert_int_equal(x.rc[0], -ECANCELED);
	assert_int_equal(x.rc[1], 0);
	assert_int_equal(x.rc[2], -ECANCELED);
	assert_int_equal(x.value_after, 0); /* the one permit went to waiter 1 */
	assert_int_equal(weft_sem_destroy(&x.s), 0);
}

/* ------------------------------------------------------------------------ */
/* Barrier                                                                  */
/* ------------------------------------------------------------------------ */

#define BAR_PARTIES 4
#define BAR_CYCLES 3

struct bar {
	weft_barrier b;
	int idx[BAR_PARTIES][BAR_CYCLES];
	_Atomic int arrived;
	int abort_rc[3], later_rc, reset_idx[2];
	int left_rc, after_leave[2];
};

struct bar_arg {
	struct bar *x;
	int i;
};

static void *bar_worker(void *arg)
{
	struct bar_arg *a = arg;
	for (int c = 0; c < BAR_CYCLES; c++)
		a->x->idx[a->i][c] = weft_barrier_wait(&a->x->b);
	return NULL;
}

static void *bar_main(void *arg)
{
	struct bar *x = arg;
	static struct bar_arg args[BAR_PARTIES];
	weft_task *t[BAR_PARTIES];
	for (int i = 0; i < BAR_PARTIES; i++) {
		args[i] = (struct bar_arg){ x, i };
		t[i] = spawn_on(i % 2, bar_worker, &args[i]);
	}
	for (int i = 0; i < BAR_PARTIES; i++)
		join_int(t[i]);
	return NULL;
}

/* asyncio.Barrier: every cycle hands out each index 0..parties-1 once. */
static void test_barrier_indices(void **state)
{
	(void)state;
	struct bar x;
	memset(&x, 0, sizeof x);
	assert_int_equal(weft_barrier_init(&x.b, 0), -EINVAL);
	assert_int_equal(weft_barrier_init(&x.b, BAR_PARTIES), 0);
	weft_test_run_loops(2, bar_main, &x);
	for (int c = 0; c < BAR_CYCLES; c++) {
		int seen = 0;
		for (int i = 0; i < BAR_PARTIES; i++) {
			int v = x.idx[i][c];
			assert_true(v >= 0 && v < BAR_PARTIES);
			seen |= 1 << v;
		}
		assert_int_equal(seen, (1 << BAR_PARTIES) - 1);
	}
	assert_int_equal(weft_barrier_n_waiting(&x.b), 0);
	assert_int_equal(weft_barrier_destroy(&x.b), 0);

	weft_barrier one;
	assert_int_equal(weft_barrier_init(&one, 1), 0);
	assert_int_equal(weft_barrier_wait(&one), 0); /* foreign thread, no block */
	assert_int_equal(weft_barrier_wait(&one), 0);
	assert_int_equal(weft_barrier_destroy(&one), 0);
}

struct bar_one {
	struct bar *x;
	int *rc;
};

static void *bar_waiter(void *arg)
{
	struct bar_one *a = arg;
	atomic_fetch_add(&a->x->arrived, 1);
	*a->rc = weft_barrier_wait(&a->x->b);
	return NULL;
}

static void *bar_abort_main(void *arg)
{
	struct bar *x = arg;
	static struct bar_one a[8];
	weft_task *t[3];
	/* abort breaks it for the waiters and for later waits */
	for (int i = 0; i < 2; i++) {
		a[i] = (struct bar_one){ x, &x->abort_rc[i] };
		t[i] = spawn_on(i % 2, bar_waiter, &a[i]);
	}
	await_count(&x->arrived, 2);
	weft_sleep_ms(SETTLE_MS);
	weft_barrier_abort(&x->b);
	join_int(t[0]);
	join_int(t[1]);
	x->later_rc = weft_barrier_wait(&x->b);
	/* reset: usable again */
	weft_barrier_reset(&x->b);
	a[2] = (struct bar_one){ x, &x->reset_idx[0] };
	t[0] = spawn_on(1, bar_waiter, &a[2]);
	await_count(&x->arrived, 3);
	weft_sleep_ms(SETTLE_MS);
	/* a waiter that leaves (cancelled) no longer counts as arrived */
	a[3] = (struct bar_one){ x, &x->left_rc };
	t[1] = spawn_on(0, bar_waiter, &a[3]);
	await_count(&x->arrived, 4);
	weft_sleep_ms(SETTLE_MS);
	weft_task_cancel(t[1]);
	join_int(t[1]);
	a[4] = (struct bar_one){ x, &x->after_leave[0] };
	t[1] = spawn_on(1, bar_waiter, &a[4]);
	await_count(&x->arrived, 5);
	weft_sleep_ms(SETTLE_MS);
	x->after_leave[1] = weft_barrier_n_waiting(&x->b); /* 2 of 3: not released */
	x->reset_idx[1] = weft_barrier_wait(&x->b);      /* third: releases */
	join_int(t[0]);
	join_int(t[1]);
	return NULL;
}

static void test_barrier_abort_reset_leave(void **state)
{
	(void)state;
	struct bar x;
	memset(&x, 0, sizeof x);
	assert_int_equal(weft_barrier_init(&x.b, 3), 0);
	weft_test_run_loops(2, bar_abort_main, &x);
	assert_int_equal(x.abort_rc[0], -EPIPE);
	assert_int_equal(x.abort_rc[1], -EPIPE);
	assert_int_equal(x.later_rc, -EPIPE);
	assert_false(weft_barrier_broken(&x.b));
	assert_int_equal(x.left_rc, -ECANCELED);
	assert_int_equal(x.after_leave[1], 2);
	assert_int_equal(x.reset_idx[0], 0);
	assert_int_equal(x.after_leave[0], 1);
	assert_int_equal(x.reset_idx[1], 2);
	assert_int_equal(weft_barrier_destroy(&x.b), 0);
}

/* ------------------------------------------------------------------------ */
/* RwLock                                                                   */
/* ------------------------------------------------------------------------ */

struct rw {
	weft_rwlock l;
	_Atomic int readers, writers, bad, max_readers;
	_Atomic int stop, writes;
	_Atomic int arrived;
	int order[4], pos;
	int try_rc[4];
	int cancel_rc, granted_after_cancel;
};

static void *rw_reader_loop(void *arg)
{
	struct rw *x = arg;
	while (!atomic_load(&x->stop)) {
		if (weft_rwlock_read_acquire(&x->l) < 0)
			break;
		int r = atomic_fetch_add(&x->readers, 1) + 1;
		if (atomic_load(&x->writers))
			atomic_fetch_add(&x->bad, 1);
		int m = atomic_load(&x->max_readers);
		while (r > m && !atomic_compare_exchange_weak(&x->max_readers, &m, r))
			;
		weft_yield();
		atomic_fetch_sub(&x->readers, 1);
		weft_rwlock_read_release(&x->l);
	}
	return NULL;
}

static void *rw_writer_loop(void *arg)
{
	struct rw *x = arg;
	for (int i = 0; i < 50; i++) {
		if (weft_rwlock_write_acquire(&x->l) < 0)
			break;
		if (atomic_fetch_add(&x->writers, 1) != 0 || atomic_load(&x->readers))
			atomic_fetch_add(&x->bad, 1);
		weft_yield();
		atomic_fetch_sub(&x->writers, 1);
		weft_rwlock_write_release(&x->l);
		atomic_fetch_add(&x->writes, 1);
		weft_yield();
	}
	return NULL;
}

static void *rw_stress_main(void *arg)
{
	struct rw *x = arg;
	weft_task *r[6], *w;
	for (int i = 0; i < 6; i++)
		r[i] = spawn_on(i % 2, rw_reader_loop, x);
	w = spawn_on(1, rw_writer_loop, x);
	/* Readers overlap all the time; the writer must still finish. */
	join_int(w);
	atomic_store(&x->stop, 1);
	for (int i = 0; i < 6; i++)
		join_int(r[i]);
	return NULL;
}

/* Readers share, a writer excludes everyone, and a stream of overlapping
 * readers on two loops does not starve the writer. */
static void test_rwlock_exclusion_no_writer_starvation(void **state)
{
	(void)state;
	struct rw x;
	memset(&x, 0, sizeof x);
	assert_int_equal(weft_rwlock_init(&x.l), 0);
	weft_test_run_loops(2, rw_stress_main, &x);
	assert_int_equal(atomic_load(&x.bad), 0);
	assert_int_equal(atomic_load(&x.writes), 50);
	assert_true(atomic_load(&x.max_readers) >= 2);
	assert_int_equal(weft_rwlock_destroy(&x.l), 0);
}

struct rwo_arg {
	struct rw *x;
	int id;
	bool write;
};

static void *rw_ordered(void *arg)
{
	struct rwo_arg *a = arg;
	struct rw *x = a->x;
	atomic_fetch_add(&x->arrived, 1);
	int r = a->write ? weft_rwlock_write_acquire(&x->l) : weft_rwlock_read_acquire(&x->l);
	if (a->id == 9) {
		x->cancel_rc = r;
		return NULL;
	}
	x->order[x->pos++] = a->id; /* one loop: no race */
	weft_sleep_ms(2);
	if (a->write)
		weft_rwlock_write_release(&x->l);
	else
		weft_rwlock_read_release(&x->l);
	return NULL;
}

static void *rw_order_main(void *arg)
{
	struct rw *x = arg;
	static struct rwo_arg a[4];
	weft_task *t[4];
	weft_rwlock_read_acquire(&x->l);
	/* queue: W1, R2, R3 behind a held read lock */
	a[0] = (struct rwo_arg){ x, 1, true };
	a[1] = (struct rwo_arg){ x, 2, false };
	a[2] = (struct rwo_arg){ x, 3, false };
	for (int i = 0; i < 3; i++) {
		t[i] = spawn_on(0, rw_ordered, &a[i]);
		await_count(&x->arrived, i + 1);
		weft_sleep_ms(SETTLE_MS);
	}
	x->try_rc[0] = weft_rwlock_try_read_acquire(&x->l);  /* no overtaking W1 */
	x->try_rc[1] = weft_rwlock_try_write_acquire(&x->l);
	weft_rwlock_read_release(&x->l);
	for (int i = 0; i < 3; i++)
		join_int(t[i]);

	/* A writer that gives up lets the readers queued behind it in. */
	weft_rwlock_read_acquire(&x->l);
	a[3] = (struct rwo_arg){ x, 9, true };
	t[3] = spawn_on(0, rw_ordered, &a[3]);
	await_count(&x->arrived, 4);
	weft_sleep_ms(SETTLE_MS);
	a[1].id = 4;
	t[1] = spawn_on(0, rw_ordered, &a[1]);
	await_count(&x->arrived, 5);
	weft_sleep_ms(SETTLE_MS);
	weft_task_cancel(t[3]);
	join_int(t[3]);
	join_int(t[1]); /* the reader got in while we still hold a read lock */
	x->granted_after_cancel = x->pos == 4 && x->order[3] == 4;
	x->try_rc[2] = weft_rwlock_write_release(&x->l);
	x->try_rc[3] = weft_rwlock_read_release(&x->l);
	return NULL;
}

/* FIFO order: a writer queued behind a reader blocks later readers (no
 * starvation), and readers queued together enter together. */
static void test_rwlock_fifo_order_and_cancel(void **state)
{
	(void)state;
	struct rw x;
	memset(&x, 0, sizeof x);
	x.cancel_rc = 1;
	assert_int_equal(weft_rwlock_init(&x.l), 0);
	weft_test_run_loops(1, rw_order_main, &x);
	assert_int_equal(x.try_rc[0], -EBUSY);
	assert_int_equal(x.try_rc[1], -EBUSY);
	assert_int_equal(x.order[0], 1);
	assert_true((x.order[1] == 2 && x.order[2] == 3) || (x.order[1] == 3 && x.order[2] == 2));
	assert_int_equal(x.cancel_rc, -ECANCELED);
	assert_true(x.granted_after_cancel);
	assert_int_equal(x.try_rc[2], -EPERM);
	assert_int_equal(x.try_rc[3], 0);
	assert_int_equal(weft_rwlock_read_release(&x.l), -EPERM);
	assert_int_equal(weft_rwlock_destroy(&x.l), 0);
	assert_int_equal(weft_rwlock_try_write_acquire(&x.l), 0);
	assert_int_equal(weft_rwlock_destroy(&x.l), -EBUSY);
	assert_int_equal(weft_rwlock_write_release(&x.l), 0);
}

/* ------------------------------------------------------------------------ */
/* Deadline scopes on every wait                                            */
/* ------------------------------------------------------------------------ */

struct tmo {
	weft_lock l;
	weft_sem s;
	weft_event e;
	weft_barrier b;
	weft_rwlock rw;
	int rc[6], fired[6];
	int lock_ok_after, sem_after, bar_after;
};

typedef int (*wait_fn)(struct tmo *);
static int w_lock(struct tmo *x) { return weft_lock_acquire(&x->l); }
static int w_sem(struct tmo *x) { return weft_sem_acquire(&x->s); }
static int w_event(struct tmo *x) { return weft_event_wait(&x->e); }
static int w_barrier(struct tmo *x) { return weft_barrier_wait(&x->b); }
static int w_read(struct tmo *x) { return weft_rwlock_read_acquire(&x->rw); }
static int w_write(struct tmo *x) { return weft_rwlock_write_acquire(&x->rw); }

static void *tmo_main(void *arg)
{
	struct tmo *x = arg;
	static const wait_fn fns[6] = { w_lock, w_sem, w_event, w_barrier, w_read, w_write };
	weft_lock_acquire(&x->l);      /* held: acquire must wait */
	weft_rwlock_write_acquire(&x->rw);
	for (int i = 0; i < 6; i++) {
		weft_scope sc;
		weft_scope_enter(&sc, 5 * MS);
		x->rc[i] = fns[i](x);
		x->fired[i] = weft_scope_exit(&sc);
	}
	/* nothing taken: the objects are exactly as before */
	x->lock_ok_after = weft_lock_release(&x->l) == 0 && !weft_lock_locked(&x->l);
	x->sem_after = weft_sem_value(&x->s);
	x->bar_after = weft_barrier_n_waiting(&x->b);
	weft_rwlock_write_release(&x->rw);
	return NULL;
}

static void test_every_wait_times_out_in_scope(void **state)
{
	(void)state;
	struct tmo x;
	memset(&x, 0, sizeof x);
	assert_int_equal(weft_lock_init(&x.l), 0);
	assert_int_equal(weft_sem_init(&x.s, 0), 0);
	assert_int_equal(weft_event_init(&x.e), 0);
	assert_int_equal(weft_barrier_init(&x.b, 2), 0);
	assert_int_equal(weft_rwlock_init(&x.rw), 0);
	weft_test_run_loops(2, tmo_main, &x);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(x.rc[i], -ETIMEDOUT);
		assert_int_equal(x.fired[i], 1);
	}
	assert_true(x.lock_ok_after);
	assert_int_equal(x.sem_after, 0);
	assert_int_equal(x.bar_after, 0);
	assert_int_equal(weft_lock_destroy(&x.l), 0);
	assert_int_equal(weft_sem_destroy(&x.s), 0);
	assert_int_equal(weft_event_destroy(&x.e), 0);
	assert_int_equal(weft_barrier_destroy(&x.b), 0);
	assert_int_equal(weft_rwlock_destroy(&x.rw), 0);
}

/* ------------------------------------------------------------------------ */
/* Cancellation at every wait                                               */
/* ------------------------------------------------------------------------ */

#define NKINDS 7

struct cxl {
	weft_lock l, cl;
	weft_cond c;
	weft_sem s;
	weft_event e;
	weft_barrier b;
	weft_rwlock rw;
	_Atomic int arrived;
	int rc[NKINDS];
	int cond_held;
};

struct cxl_arg {
	struct cxl *x;
	int kind;
};

static void *cxl_waiter(void *arg)
{
	struct cxl_arg *a = arg;
	struct cxl *x = a->x;
	int r;
	if (a->kind == 6)
		weft_lock_acquire(&x->cl);
	atomic_fetch_add(&x->arrived, 1);
	switch (a->kind) {
	case 0: r = weft_lock_acquire(&x->l); break;
	case 1: r = weft_sem_acquire(&x->s); break;
	case 2: r = weft_event_wait(&x->e); break;
	case 3: r = weft_barrier_wait(&x->b); break;
	case 4: r = weft_rwlock_read_acquire(&x->rw); break;
	case 5: r = weft_rwlock_write_acquire(&x->rw); break;
	default:
		r = weft_cond_wait(&x->c);
		x->cond_held = weft_lock_locked(&x->cl);
		weft_lock_release(&x->cl);
		break;
	}
	x->rc[a->kind] = r;
	return NULL;
}

static void *cxl_main(void *arg)
{
	struct cxl *x = arg;
	static struct cxl_arg a[NKINDS];
	weft_task *t[NKINDS];
	weft_lock_acquire(&x->l);
	weft_rwlock_write_acquire(&x->rw);
	for (int k = 0; k < NKINDS; k++) {
		a[k] = (struct cxl_arg){ x, k };
		t[k] = spawn_on(k % 2, cxl_waiter, &a[k]);
	}
	await_count(&x->arrived, NKINDS);
	weft_sleep_ms(SETTLE_MS);
	for (int k = 0; k < NKINDS; k++)
		weft_task_cancel(t[k]);
	for (int k = 0; k < NKINDS; k++)
		join_int(t[k]);
	weft_lock_release(&x->l);
	weft_rwlock_write_release(&x->rw);
	return NULL;
}

/* Every wait returns -ECANCELED when its task is cancelled, and the object
 * is left exactly as if the waiter had never come. */
static void test_every_wait_cancellable(void **state)
{
	(void)state;
	struct cxl x;
	memset(&x, 0, sizeof x);
	assert_int_equal(weft_lock_init(&x.l), 0);
	assert_int_equal(weft_lock_init(&x.cl), 0);
	assert_int_equal(weft_cond_init(&x.c, &x.cl), 0);
	assert_int_equal(weft_sem_init(&x.s, 0), 0);
	assert_int_equal(weft_event_init(&x.e), 0);
	assert_int_equal(weft_barrier_init(&x.b, 2), 0);
	assert_int_equal(weft_rwlock_init(&x.rw), 0);
	weft_test_run_loops(2, cxl_main, &x);
	for (int k = 0; k < NKINDS; k++)
		assert_int_equal(x.rc[k], -ECANCELED);
	assert_true(x.cond_held);
	assert_false(weft_lock_locked(&x.l));
	assert_false(weft_lock_locked(&x.cl));
	assert_int_equal(weft_sem_value(&x.s), 0);
	assert_int_equal(weft_barrier_n_waiting(&x.b), 0);
	assert_int_equal(weft_lock_destroy(&x.l), 0);
	assert_int_equal(weft_cond_destroy(&x.c), 0);
	assert_int_equal(weft_lock_destroy(&x.cl), 0);
	assert_int_equal(weft_sem_destroy(&x.s), 0);
	assert_int_equal(weft_event_destroy(&x.e), 0);
	assert_int_equal(weft_barrier_destroy(&x.b), 0);
	assert_int_equal(weft_rwlock_try_write_acquire(&x.rw), 0);
	assert_int_equal(weft_rwlock_write_release(&x.rw), 0);
	assert_int_equal(weft_rwlock_destroy(&x.rw), 0);
}

/* ------------------------------------------------------------------------ */
/* Foreign threads and tasks waking each other                              */
/* ------------------------------------------------------------------------ */

struct fx {
	weft_sem s;
	weft_lock l;
	weft_cond c;
	weft_barrier b;
	int ready;               /* guarded by l */
	int th_sem, th_cond, th_bar, th_ready;
	int task_sem, task_bar;
};

static void *fx_thread(void *arg)
{
	struct fx *x = arg;
	x->th_sem = weft_sem_acquire(&x->s);   /* a task releases it */
	msleep(10);                            /* the task queues meanwhile */
	weft_sem_release(&x->s);               /* and this wakes it */
	weft_lock_acquire(&x->l);
	while (!x->ready && x->th_cond == 0)
		x->th_cond = weft_cond_wait(&x->c);
	x->th_ready = x->ready;
	weft_lock_release(&x->l);
	x->th_bar = weft_barrier_wait(&x->b);
	return NULL;
}

static void *fx_main(void *arg)
{
	struct fx *x = arg;
	pthread_t th;
	if (pthread_create(&th, NULL, fx_thread, x) != 0)
		return NULL;
	weft_sleep_ms(SETTLE_MS);
	weft_sem_release(&x->s);               /* handed to the thread */
	x->task_sem = weft_sem_acquire(&x->s); /* released by the thread */
	weft_sleep_ms(SETTLE_MS);
	weft_lock_acquire(&x->l);
	x->ready = 1;
	weft_cond_notify_all(&x->c);
	weft_lock_release(&x->l);
	x->task_bar = weft_barrier_wait(&x->b);
	pthread_join(th, NULL);
	return NULL;
}

static void test_foreign_thread_and_tasks_wake_each_other(void **state)
{
	(void)state;
	struct fx x;
	memset(&x, 0, sizeof x);
	x.th_sem = x.task_sem = 1;
	assert_int_equal(weft_sem_init(&x.s, 0), 0);
	assert_int_equal(weft_lock_init(&x.l), 0);
	assert_int_equal(weft_cond_init(&x.c, &x.l), 0);
	assert_int_equal(weft_barrier_init(&x.b, 2), 0);
	weft_test_run_loops(2, fx_main, &x);
	assert_int_equal(x.th_sem, 0);
	assert_int_equal(x.task_sem, 0);
	assert_int_equal(x.th_cond, 0);
	assert_int_equal(x.th_ready, 1);
	assert_true((x.th_bar == 0 && x.task_bar == 1) || (x.th_bar == 1 && x.task_bar == 0));
	assert_int_equal(weft_sem_value(&x.s), 0);
	assert_int_equal(weft_barrier_destroy(&x.b), 0);
	assert_int_equal(weft_cond_destroy(&x.c), 0);
	assert_int_equal(weft_lock_destroy(&x.l), 0);
	assert_int_equal(weft_sem_destroy(&x.s), 0);
}

/* ------------------------------------------------------------------------ */
/* Randomized stress: 2 loops, cancellation and timeouts at every wait      */
/* ------------------------------------------------------------------------ */

#define ST_SEM 3

struct stress {
	weft_lock l;
	weft_sem s;
	_Atomic int in_lock, in_sem, violations;
	_Atomic long ops, cancels, timeouts;
	_Atomic int stop;
	int iters;
};

static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

static void *stress_worker(void *arg)
{
	struct stress *x = arg;
	uint32_t seed = (uint32_t)weft_task_id(weft_task_current()) * 2654435761u | 1;
	for (int i = 0; i < x->iters; i++) {
		bool use_lock = rnd(&seed) & 1;
		weft_scope sc;
		bool scoped = (rnd(&seed) & 7) == 0;
		if (scoped)
			weft_scope_enter(&sc, (rnd(&seed) % 50) * 1000);
		int r = use_lock ? weft_lock_acquire(&x->l) : weft_sem_acquire(&x->s);
		if (scoped)
			weft_scope_exit(&sc);
		if (r == -ECANCELED) {
			atomic_fetch_add(&x->cancels, 1);
			return NULL;
		}
		if (r == -ETIMEDOUT) {
			atomic_fetch_add(&x->timeouts, 1);
			continue;
		}
		if (r < 0) {
			atomic_fetch_add(&x->violations, 1000);
			return NULL;
		}
		_Atomic int *in = use_lock ? &x->in_lock : &x->in_sem;
		int limit = use_lock ? 1 : ST_SEM;
		if (atomic_fetch_add(in, 1) + 1 > limit)
			atomic_fetch_add(&x->violations, 1);
		if (rnd(&seed) & 1)
			weft_yield();
		atomic_fetch_sub(in, 1);
		/* release even when cancelled meanwhile: we own it */
		if ((use_lock ? weft_lock_release(&x->l) : weft_sem_release(&x->s)) < 0)
			atomic_fetch_add(&x->violations, 1000);
		atomic_fetch_add(&x->ops, 1);
	}
	return NULL;
}

/* A foreign thread contends for the lock too (the futex path). */
static void *stress_thread(void *arg)
{
	struct stress *x = arg;
	while (!atomic_load(&x->stop)) {
		if (weft_lock_acquire(&x->l) < 0) {
			atomic_fetch_add(&x->violations, 1000);
			return NULL;
		}
		if (atomic_fetch_add(&x->in_lock, 1) != 0)
			atomic_fetch_add(&x->violations, 1);
		atomic_fetch_sub(&x->in_lock, 1);
		if (weft_lock_release(&x->l) < 0)
			atomic_fetch_add(&x->violations, 1000);
		atomic_fetch_add(&x->ops, 1);
	}
	return NULL;
}

#define ST_TASKS 48

static void *stress_main(void *arg)
{
	struct stress *x = arg;
	uint32_t seed = 12345;
	pthread_t th;
	int th_ok = pthread_create(&th, NULL, stress_thread, x) == 0;
	for (int wave = 0; wave < 4; wave++) {
		weft_task *t[ST_TASKS];
		for (int i = 0; i < ST_TASKS; i++)
			t[i] = spawn_on(i % 3 == 2 ? WEFT_PIN_NONE : i % 2, stress_worker, x);
		/* cancel a random third of them at random moments */
		for (int i = 0; i < ST_TASKS / 3; i++) {
			weft_yield();
			weft_task_cancel(t[rnd(&seed) % ST_TASKS]);
		}
		for (int i = 0; i < ST_TASKS; i++)
			join_int(t[i]);
	}
	atomic_store(&x->stop, 1);
	if (th_ok)
		pthread_join(th, NULL);
	return NULL;
}

static void test_stress_lock_sem_cancel_timeout(void **state)
{
	(void)state;
	struct stress x;
	memset(&x, 0, sizeof x);
	x.iters = WEFT_TEST_SANITIZED ? 100 : 400;
	assert_int_equal(weft_lock_init(&x.l), 0);
	assert_int_equal(weft_sem_init_bounded(&x.s, ST_SEM), 0);
	weft_test_run_loops(2, stress_main, &x);
	fprintf(stderr, "stress: %ld ops, %ld cancels, %ld timeouts\n", atomic_load(&x.ops),
		atomic_load(&x.cancels), atomic_load(&x.timeouts));
	assert_int_equal(atomic_load(&x.violations), 0);
	assert_true(atomic_load(&x.ops) > 0);
	/* nothing lost, nothing invented */
	assert_false(weft_lock_locked(&x.l));
	assert_int_equal(weft_sem_value(&x.s), ST_SEM);
	assert_int_equal(weft_lock_destroy(&x.l), 0);
	assert_int_equal(weft_sem_destroy(&x.s), 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_lock_basic_no_runtime),
	cmocka_unit_test(test_lock_fifo_fairness_across_loops),
	cmocka_unit_test(test_lock_handoff_to_cancelled_waiter),
	cmocka_unit_test(test_lock_acquire_is_a_suspension_point_when_free),
	cmocka_unit_test(test_lock_foreign_thread_wakes),
	cmocka_unit_test(test_event_wakes_every_waiter),
	cmocka_unit_test(test_cond_producer_consumer),
	cmocka_unit_test(test_cond_reacquires_after_cancel_and_timeout),
	cmocka_unit_test(test_sem_limits_concurrency),
	cmocka_unit_test(test_sem_basic_and_bounded_misuse),
	cmocka_unit_test(test_sem_cancelled_waiters),
	cmocka_unit_test(test_barrier_indices),
	cmocka_unit_test(test_barrier_abort_reset_leave),
	cmocka_unit_test(test_rwlock_exclusion_no_writer_starvation),
	cmocka_unit_test(test_rwlock_fifo_order_and_cancel),
	cmocka_unit_test(test_every_wait_times_out_in_scope),
	cmocka_unit_test(test_every_wait_cancellable),
	cmocka_unit_test(test_foreign_thread_and_tasks_wake_each_other),
	cmocka_unit_test(test_stress_lock_sem_cancel_timeout),
};

WEFT_TEST_MAIN(tests)
