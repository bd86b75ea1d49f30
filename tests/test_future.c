/*
 * Futures: completion (value, error, cancel), waiting from tasks on any loop
 * and from foreign threads, timeouts, many waiters, cancellation of a
 * waiter, argument checks and reference counting.
 *
 * docs/architecture.md rule 7: tasks and helper threads record; the test
 * asserts on its own stack after weft_run / join / pthread_join.
 */
#include "weft_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define NOT_YET 12345

static int task_wait_at_least(_Atomic int *v, int want)
{
	uint64_t until = weft_now_ns() + 5000 * MS;
	while (atomic_load(v) < want) {
		if (weft_now_ns() > until)
			return 0;
		weft_yield();
	}
	return 1;
}

/* ------------------------------------------------------------------------ */
/* completion outcomes (no runtime needed)                                  */
/* ------------------------------------------------------------------------ */

static void test_set_result_then_wait(void **state)
{
	(void)state;
	weft_future *f = NULL;
	assert_int_equal(weft_future_create(&f), 0);
	assert_non_null(f);
	assert_false(weft_future_done(f));
	void *v = P(1);
	assert_int_equal(weft_future_result(f, &v), -EAGAIN);
	assert_int_equal(U(v), 1); /* untouched while pending */
	assert_int_equal(weft_future_set_result(f, P(0xabc)), 0);
	assert_true(weft_future_done(f));
	assert_int_equal(weft_future_result(f, &v), 0);
	assert_int_equal(U(v), 0xabc);
	v = NULL;
	assert_int_equal(weft_future_wait(f, &v), 0); /* foreign thread, done: no block */
	assert_int_equal(U(v), 0xabc);
	v = NULL;
	assert_int_equal(weft_future_wait_timeout(f, &v, 0), 0);
	assert_int_equal(U(v), 0xabc);
	assert_int_equal(weft_future_wait(f, NULL), 0); /* value pointer optional */
	assert_int_equal(weft_future_result(f, NULL), 0);
	weft_future_release(f);
}

static void test_set_null_value(void **state)
{
	(void)state;
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	assert_int_equal(weft_future_set_result(f, NULL), 0);
	void *v = P(7);
	assert_int_equal(weft_future_wait(f, &v), 0);
	assert_null(v);
	weft_future_release(f);
}

static void test_set_twice_ealready_value_unchanged(void **state)
{
	(void)state;
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	assert_int_equal(weft_future_set_result(f, P(1)), 0);
	assert_int_equal(weft_future_set_result(f, P(2)), -EALREADY);
	assert_int_equal(weft_future_set_error(f, -EIO), -EALREADY);
	assert_int_equal(weft_future_cancel(f), -EALREADY);
	void *v = NULL;
	assert_int_equal(weft_future_result(f, &v), 0);
	assert_int_equal(U(v), 1);
	assert_int_equal(weft_future_wait(f, &v), 0);
	assert_int_equal(U(v), 1);
	weft_future_release(f);
}

static void test_set_error(void **state)
{
	(void)state;
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	assert_int_equal(weft_future_set_error(f, 5), -EINVAL);
	assert_int_equal(weft_future_set_error(f, 0), -EINVAL);
	assert_false(weft_future_done(f)); /* a rejected completion changes nothing */
	assert_int_equal(weft_future_set_error(f, -EIO), 0);
	assert_true(weft_future_done(f));
	void *v = P(0x33);
	assert_int_equal(weft_future_wait(f, &v), -EIO);
	assert_int_equal(weft_future_result(f, &v), -EIO);
	assert_int_equal(U(v), 0x33); /* no value on error */
	assert_int_equal(weft_future_set_result(f, P(1)), -EALREADY);
	assert_int_equal(weft_future_wait(f, &v), -EIO);
	weft_future_release(f);
}

static void test_cancel_future(void **state)
{
	(void)state;
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	assert_int_equal(weft_future_cancel(f), 0);
	assert_true(weft_future_done(f));
	void *v = P(0x44);
	assert_int_equal(weft_future_wait(f, &v), -ECANCELED);
	assert_int_equal(weft_future_result(f, &v), -ECANCELED);
	assert_int_equal(U(v), 0x44);
	assert_int_equal(weft_future_cancel(f), -EALREADY);
	assert_int_equal(weft_future_set_result(f, P(1)), -EALREADY);
	weft_future_release(f);
}

static void test_null_arguments_einval(void **state)
{
	(void)state;
	void *v = NULL;
	assert_int_equal(weft_future_create(NULL), -EINVAL);
	assert_int_equal(weft_future_set_result(NULL, P(1)), -EINVAL);
	assert_int_equal(weft_future_set_error(NULL, -EIO), -EINVAL);
	assert_int_equal(weft_future_cancel(NULL), -EINVAL);
	assert_int_equal(weft_future_wait(NULL, &v), -EINVAL);
	assert_int_equal(weft_future_wait_timeout(NULL, &v, 1000), -EINVAL);
	assert_int_equal(weft_future_result(NULL, &v), -EINVAL);
	assert_false(weft_future_done(NULL));
	assert_null(weft_future_ref(NULL));
	weft_future_release(NULL);
}

static void *null_args_in_task(void *arg)
{
	(void)arg;
	void *v;
	int a = weft_future_wait(NULL, &v);
	int b = weft_future_wait_timeout(NULL, &v, 1000);
	return P(a == -EINVAL && b == -EINVAL ? 1 : 0);
}

static void test_null_arguments_einval_in_task(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(1, null_args_in_task, NULL)), 1);
}

/* ------------------------------------------------------------------------ */
/* waiting across loops and threads                                          */
/* ------------------------------------------------------------------------ */

struct xloop {
	weft_future *f;
	_Atomic int waiting;
	int rc;
	void *v;
	int waiter_loop, setter_loop;
};

static void *xloop_waiter(void *arg)
{
	struct xloop *x = arg;
	x->waiter_loop = weft_loop_index();
	atomic_store(&x->waiting, 1);
	x->rc = weft_future_wait(x->f, &x->v);
	return NULL;
}

static void *xloop_setter(void *arg)
{
	struct xloop *x = arg;
	task_wait_at_least(&x->waiting, 1);
	weft_sleep_ms(2); /* the waiter is parked by now */
	x->setter_loop = weft_loop_index();
	return P(weft_future_set_result(x->f, P(0x10095)));
}

static void *xloop_main(void *arg)
{
	struct xloop *x = arg;
	weft_task_config tc;
	weft_task_config_init(&tc);
	weft_task *w, *s;
	tc.pin = 0;
	if (weft_task_spawn_ex(&w, &tc, xloop_waiter, x))
		return P(1);
	tc.pin = 1;
	if (weft_task_spawn_ex(&s, &tc, xloop_setter, x))
		return P(1);
	void *sr = P(1);
	weft_task_join(w, NULL);
	weft_task_join(s, &sr);
	weft_task_release(w);
	weft_task_release(s);
	return P(U(sr) == 0 ? 2 : 3);
}

static void test_wait_then_set_from_task_on_another_loop(void **state)
{
	(void)state;
	struct xloop x = { 0 };
	x.rc = NOT_YET;
	assert_int_equal(weft_future_create(&x.f), 0);
	assert_int_equal(U(weft_test_run_loops(2, xloop_main, &x)), 2);
	assert_int_equal(x.waiter_loop, 0);
	assert_int_equal(x.setter_loop, 1);
	assert_int_equal(x.rc, 0);
	assert_int_equal(U(x.v), 0x10095);
	weft_future_release(x.f);
}

/* A foreign thread completes the future a task is waiting on. */
static void *waiting_task(void *arg)
{
	struct xloop *x = arg;
	x->waiter_loop = weft_loop_index();
	atomic_store(&x->waiting, 1);
	x->rc = weft_future_wait(x->f, &x->v);
	return P(0x77);
}

static void test_set_from_foreign_thread_wakes_task(void **state)
{
	(void)state;
	for (unsigned loops = 1; loops <= 2; loops++) {
		weft_runtime *rt = start_rt(loops);
		struct xloop x = { 0 };
		x.rc = NOT_YET;
		assert_int_equal(weft_future_create(&x.f), 0);
		weft_task *t;
		assert_int_equal(weft_runtime_spawn(rt, &t, NULL, waiting_task, &x), 0);
		while (!atomic_load(&x.waiting))
			msleep(1);
		msleep(5); /* parked, and its loop probably asleep: an eventfd wake */
		assert_false(weft_task_done(t));
		assert_int_equal(weft_future_set_result(x.f, P(0xf0f0)), 0);
		void *res = NULL;
		assert_int_equal(weft_task_join(t, &res), 0);
		assert_int_equal(U(res), 0x77);
		assert_int_equal(x.rc, 0);
		assert_int_equal(U(x.v), 0xf0f0);
		weft_task_release(t);
		weft_runtime_destroy(rt);
		weft_future_release(x.f);
	}
}

/* A foreign thread blocks in weft_future_wait until a task sets it. */
static void *set_after_sleep(void *arg)
{
	weft_future *f = arg;
	weft_sleep_ms(5);
	return P(weft_future_set_result(f, P(0x5e7)));
}

static void test_foreign_thread_waits_for_task(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, set_after_sleep, f), 0);
	void *v = NULL;
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_future_wait(f, &v), 0); /* blocks this thread */
	assert_true(weft_now_ns() - t0 >= 4 * MS);
	assert_int_equal(U(v), 0x5e7);
	void *sr = P(1);
	assert_int_equal(weft_task_join(t, &sr), 0);
	assert_int_equal(U(sr), 0);
	weft_task_release(t);
	weft_runtime_destroy(rt);
	weft_future_release(f);
}

static void test_foreign_thread_wait_timeout(void **state)
{
	(void)state;
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	void *v = P(3);
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_future_wait_timeout(f, &v, 20 * MS), -ETIMEDOUT);
	uint64_t dt = weft_now_ns() - t0;
	assert_true(dt >= 20 * MS);
	assert_true(dt < 1000 * MS);
	assert_int_equal(weft_future_wait_timeout(f, &v, 0), -ETIMEDOUT);
	assert_int_equal(U(v), 3);
	assert_false(weft_future_done(f)); /* giving up does not touch it */
	assert_int_equal(weft_future_set_result(f, P(4)), 0);
	assert_int_equal(weft_future_wait_timeout(f, &v, 0), 0);
	assert_int_equal(U(v), 4);
	weft_future_release(f);
}

/* Several foreign threads and tasks wait on one future together. */
#define MIXED_THREADS 4
#define MIXED_TASKS 16

struct mixed {
	weft_future *f;
	_Atomic int ready;
	_Atomic int ok;
};

static void *mixed_thread(void *arg)
{
	struct mixed *m = arg;
	atomic_fetch_add(&m->ready, 1);
	void *v = NULL;
	if (weft_future_wait(m->f, &v) == 0 && U(v) == 0x1111)
		atomic_fetch_add(&m->ok, 1);
	return NULL;
}

static void *mixed_task(void *arg)
{
	struct mixed *m = arg;
	atomic_fetch_add(&m->ready, 1);
	void *v = NULL;
	if (weft_future_wait(m->f, &v) == 0 && U(v) == 0x1111)
		atomic_fetch_add(&m->ok, 1);
	return NULL;
}

static void test_foreign_threads_and_tasks_wait_together(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	struct mixed m = { 0 };
	assert_int_equal(weft_future_create(&m.f), 0);
	pthread_t th[MIXED_THREADS];
	weft_task *ts[MIXED_TASKS];
	for (int i = 0; i < MIXED_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, mixed_thread, &m), 0);
	for (int i = 0; i < MIXED_TASKS; i++)
		assert_int_equal(weft_runtime_spawn(rt, &ts[i], NULL, mixed_task, &m), 0);
	for (int i = 0; i < 5000 && atomic_load(&m.ready) < MIXED_THREADS + MIXED_TASKS; i++)
		msleep(1);
	msleep(2);
	assert_int_equal(weft_future_set_result(m.f, P(0x1111)), 0);
	for (int i = 0; i < MIXED_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < MIXED_TASKS; i++) {
		assert_int_equal(weft_task_join(ts[i], NULL), 0);
		weft_task_release(ts[i]);
	}
	assert_int_equal(atomic_load(&m.ok), MIXED_THREADS + MIXED_TASKS);
	weft_runtime_destroy(rt);
	weft_future_release(m.f);
}

/* 100 waiting tasks, spread over the loops, all get the value. */
#define WAITERS 100

struct many {
	weft_future *f;
	_Atomic int waiting;
	_Atomic int got;
	_Atomic int wrong;
	_Atomic int loops_seen[4];
};

static void *many_waiter(void *arg)
{
	struct many *m = arg;
	int idx = weft_loop_index();
	if (idx >= 0 && idx < 4)
		atomic_store(&m->loops_seen[idx], 1);
	atomic_fetch_add(&m->waiting, 1);
	void *v = NULL;
	int r = weft_future_wait(m->f, &v);
	if (r == 0 && U(v) == 0x100)
		atomic_fetch_add(&m->got, 1);
	else
		atomic_fetch_add(&m->wrong, 1);
	return NULL;
}

static void *many_main(void *arg)
{
	struct many *m = arg;
	weft_task *ts[WAITERS];
	weft_task_config tc;
	weft_task_config_init(&tc);
	for (int i = 0; i < WAITERS; i++) {
		tc.pin = i % 4 == 3 ? WEFT_PIN_NONE : i % 3; /* most pinned, some stealable */
		if (weft_task_spawn_ex(&ts[i], &tc, many_waiter, m))
			return P(1);
	}
	task_wait_at_least(&m->waiting, WAITERS);
	weft_sleep_ms(1);
	int sr = weft_future_set_result(m->f, P(0x100));
	for (int i = 0; i < WAITERS; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	return P(sr == 0 ? 2 : 3);
}

static void test_many_waiters_all_get_value(void **state)
{
	(void)state;
	struct many m;
	memset(&m, 0, sizeof(m));
	assert_int_equal(weft_future_create(&m.f), 0);
	assert_int_equal(U(weft_test_run_loops(3, many_main, &m)), 2);
	assert_int_equal(atomic_load(&m.got), WAITERS);
	assert_int_equal(atomic_load(&m.wrong), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(atomic_load(&m.loops_seen[i]), 1);
	weft_future_release(m.f);
}

/* Every waiter gets the error / the cancellation too. */
struct outcome_rec {
	weft_future *f;
	_Atomic int waiting;
	_Atomic int rcs[8];
	int mode; /* 0 error, 1 cancel */
};

struct outcome_arg {
	struct outcome_rec *r;
	int i;
};

static void *outcome_waiter(void *arg)
{
	struct outcome_arg *a = arg;
	struct outcome_rec *r = a->r;
	int i = a->i;
	atomic_fetch_add(&r->waiting, 1);
	void *v = P(0xee);
	int rc = weft_future_wait(r->f, &v);
	atomic_store(&r->rcs[i], U(v) == 0xee ? rc : 999);
	return NULL;
}

static void *outcome_main(void *arg)
{
	struct outcome_rec *r = arg;
	struct outcome_arg a[8];
	weft_task *ts[8];
	for (int i = 0; i < 8; i++) {
		a[i].r = r;
		a[i].i = i;
		if (weft_task_spawn(&ts[i], outcome_waiter, &a[i]))
			return P(1);
	}
	task_wait_at_least(&r->waiting, 8);
	weft_sleep_ms(1);
	int sr = r->mode == 0 ? weft_future_set_error(r->f, -ECONNRESET) : weft_future_cancel(r->f);
	for (int i = 0; i < 8; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	return P(sr == 0 ? 2 : 3);
}

static void test_error_and_cancel_reach_every_waiter(void **state)
{
	(void)state;
	for (int mode = 0; mode < 2; mode++) {
		struct outcome_rec r;
		memset(&r, 0, sizeof(r));
		r.mode = mode;
		assert_int_equal(weft_future_create(&r.f), 0);
		assert_int_equal(U(weft_test_run_loops(2, outcome_main, &r)), 2);
		for (int i = 0; i < 8; i++)
			assert_int_equal(atomic_load(&r.rcs[i]), mode == 0 ? -ECONNRESET : -ECANCELED);
		weft_future_release(r.f);
	}
}

/* ------------------------------------------------------------------------ */
/* timeouts and giving up                                                    */
/* ------------------------------------------------------------------------ */

struct late {
	weft_future *f;
	_Atomic int patient_waiting;
	int timeout_rc, zero_rc, patient_rc, retry_rc, result_rc;
	void *timeout_v, *patient_v, *retry_v;
	uint64_t waited;
	bool done_after_timeout;
};

static void *patient_waiter(void *arg)
{
	struct late *l = arg;
	atomic_store(&l->patient_waiting, 1);
	l->patient_rc = weft_future_wait(l->f, &l->patient_v);
	return NULL;
}

static void *late_main(void *arg)
{
	struct late *l = arg;
	weft_task *p;
	if (weft_task_spawn(&p, patient_waiter, l))
		return P(1);
	task_wait_at_least(&l->patient_waiting, 1);
	l->timeout_v = P(0x71);
	l->zero_rc = weft_future_wait_timeout(l->f, &l->timeout_v, 0);
	uint64_t t0 = weft_now_ns();
	l->timeout_rc = weft_future_wait_timeout(l->f, &l->timeout_v, 10 * MS);
	l->waited = weft_now_ns() - t0;
	l->done_after_timeout = weft_future_done(l->f);
	l->result_rc = weft_future_result(l->f, NULL);
	weft_future_set_result(l->f, P(0x1a7e)); /* late: still completes it */
	l->retry_rc = weft_future_wait_timeout(l->f, &l->retry_v, 10 * MS);
	weft_task_join(p, NULL);
	weft_task_release(p);
	return P(2);
}

static void test_wait_timeout_then_late_set_completes_for_others(void **state)
{
	(void)state;
	struct late l;
	memset(&l, 0, sizeof(l));
	assert_int_equal(weft_future_create(&l.f), 0);
	assert_int_equal(U(weft_test_run_loops(2, late_main, &l)), 2);
	assert_int_equal(l.zero_rc, -ETIMEDOUT);
	assert_int_equal(l.timeout_rc, -ETIMEDOUT);
	assert_int_equal(U(l.timeout_v), 0x71);
	assert_true(l.waited >= 10 * MS);
	assert_true(l.waited < 1000 * MS);
	assert_false(l.done_after_timeout);
	assert_int_equal(l.result_rc, -EAGAIN);
	assert_int_equal(l.patient_rc, 0);
	assert_int_equal(U(l.patient_v), 0x1a7e);
	assert_int_equal(l.retry_rc, 0);
	assert_int_equal(U(l.retry_v), 0x1a7e);
	weft_future_release(l.f);
}

/* Timed waiters whose timer fires at the moment the value arrives: either
 * outcome is allowed, but a 0 must carry the value and nothing may hang. */
#define RACERS 32

struct racer_rec {
	weft_future *f;
	_Atomic int ready;
	_Atomic int ok, timed_out, bad;
};

static void *timed_racer(void *arg)
{
	struct racer_rec *r = arg;
	atomic_fetch_add(&r->ready, 1);
	void *v = NULL;
	int rc = weft_future_wait_timeout(r->f, &v, 3 * MS);
	if (rc == 0 && U(v) == 0x4ace)
		atomic_fetch_add(&r->ok, 1);
	else if (rc == -ETIMEDOUT)
		atomic_fetch_add(&r->timed_out, 1);
	else
		atomic_fetch_add(&r->bad, 1);
	return NULL;
}

static void *racer_main(void *arg)
{
	(void)arg;
	int rounds = WEFT_TEST_SANITIZED ? 10 : 40;
	uintptr_t bad = 0;
	for (int k = 0; k < rounds; k++) {
		struct racer_rec r;
		memset(&r, 0, sizeof(r));
		if (weft_future_create(&r.f))
			return P(1000);
		weft_task *ts[RACERS];
		for (int i = 0; i < RACERS; i++)
			if (weft_task_spawn(&ts[i], timed_racer, &r))
				return P(1000);
		task_wait_at_least(&r.ready, RACERS);
		weft_sleep(2 * MS + (uint64_t)(k % 8) * 250000); /* around the deadline */
		weft_future_set_result(r.f, P(0x4ace));
		for (int i = 0; i < RACERS; i++) {
			weft_task_join(ts[i], NULL);
			weft_task_release(ts[i]);
		}
		if (atomic_load(&r.bad) ||
		    atomic_load(&r.ok) + atomic_load(&r.timed_out) != RACERS)
			bad++;
		weft_future_release(r.f);
	}
	return P(bad);
}

static void test_timeout_racing_completion(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(2, racer_main, NULL)), 0);
}

struct cw {
	weft_future *f;
	_Atomic int waiting;
	int wait_rc, other_rc;
	void *other_v;
	bool done_after_cancel;
	int result_after_cancel;
};

static void *cancellable_waiter(void *arg)
{
	struct cw *c = arg;
	atomic_store(&c->waiting, 1);
	void *v;
	c->wait_rc = weft_future_wait(c->f, &v);
	return P(0xcc);
}

static void *other_waiter(void *arg)
{
	struct cw *c = arg;
	c->other_rc = weft_future_wait(c->f, &c->other_v);
	return NULL;
}

static void *cancel_waiter_main(void *arg)
{
	struct cw *c = arg;
	weft_task *w, *o;
	if (weft_task_spawn(&w, cancellable_waiter, c) || weft_task_spawn(&o, other_waiter, c))
		return P(1);
	task_wait_at_least(&c->waiting, 1);
	weft_sleep_ms(2);
	weft_task_cancel(w);
	void *res = NULL;
	int jr = weft_task_join(w, &res);
	c->done_after_cancel = weft_future_done(c->f);
	c->result_after_cancel = weft_future_result(c->f, NULL);
	weft_future_set_result(c->f, P(0x07e));
	weft_task_join(o, NULL);
	weft_task_release(w);
	weft_task_release(o);
	return P(jr == -ECANCELED && U(res) == 0xcc ? 2 : 3);
}

static void test_cancel_waiting_task_leaves_future_pending(void **state)
{
	(void)state;
	struct cw c;
	memset(&c, 0, sizeof(c));
	c.wait_rc = NOT_YET;
	assert_int_equal(weft_future_create(&c.f), 0);
	assert_int_equal(U(weft_test_run_loops(2, cancel_waiter_main, &c)), 2);
	assert_int_equal(c.wait_rc, -ECANCELED);
	assert_false(c.done_after_cancel);
	assert_int_equal(c.result_after_cancel, -EAGAIN);
	assert_int_equal(c.other_rc, 0);
	assert_int_equal(U(c.other_v), 0x07e);
	weft_future_release(c.f);
}

/* ------------------------------------------------------------------------ */
/* ping-pong across loops: no lost wakeups                                   */
/* ------------------------------------------------------------------------ */

struct pp {
	weft_future **ping, **pong;
	int rounds;
	_Atomic int bad;
};

static void *pp_a(void *arg)
{
	struct pp *p = arg;
	for (int i = 0; i < p->rounds; i++) {
		weft_future_set_result(p->ping[i], P(i));
		void *v = NULL;
		if (weft_future_wait(p->pong[i], &v) != 0 || U(v) != (uintptr_t)i + 1)
			atomic_fetch_add(&p->bad, 1);
	}
	return NULL;
}

static void *pp_b(void *arg)
{
	struct pp *p = arg;
	for (int i = 0; i < p->rounds; i++) {
		void *v = NULL;
		if (weft_future_wait(p->ping[i], &v) != 0 || U(v) != (uintptr_t)i)
			atomic_fetch_add(&p->bad, 1);
		weft_future_set_result(p->pong[i], P(i + 1));
	}
	return NULL;
}

static void *pp_main(void *arg)
{
	struct pp *p = arg;
	weft_task_config tc;
	weft_task_config_init(&tc);
	weft_task *a, *b;
	tc.pin = 0;
	if (weft_task_spawn_ex(&a, &tc, pp_a, p))
		return P(1);
	tc.pin = 1;
	if (weft_task_spawn_ex(&b, &tc, pp_b, p))
		return P(1);
	weft_task_join(a, NULL);
	weft_task_join(b, NULL);
	weft_task_release(a);
	weft_task_release(b);
	return P(2);
}

static void test_cross_loop_ping_pong(void **state)
{
	(void)state;
	struct pp p = { 0 };
	p.rounds = WEFT_TEST_SANITIZED ? 500 : 3000;
	p.ping = calloc((size_t)p.rounds, sizeof(*p.ping));
	p.pong = calloc((size_t)p.rounds, sizeof(*p.pong));
	assert_non_null(p.ping);
	assert_non_null(p.pong);
	for (int i = 0; i < p.rounds; i++) {
		assert_int_equal(weft_future_create(&p.ping[i]), 0);
		assert_int_equal(weft_future_create(&p.pong[i]), 0);
	}
	assert_int_equal(U(weft_test_run_loops(2, pp_main, &p)), 2);
	assert_int_equal(atomic_load(&p.bad), 0);
	for (int i = 0; i < p.rounds; i++) {
		weft_future_release(p.ping[i]);
		weft_future_release(p.pong[i]);
	}
	free(p.ping);
	free(p.pong);
}

/* ------------------------------------------------------------------------ */
/* reference counting                                                        */
/* ------------------------------------------------------------------------ */

static void test_refcount_two_holders(void **state)
{
	(void)state;
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	weft_future *g = weft_future_ref(f);
	assert_ptr_equal(f, g);
	weft_future_release(f); /* first holder */
	/* still alive for the second holder (ASan would flag a use after free) */
	assert_int_equal(weft_future_set_result(g, P(9)), 0);
	void *v = NULL;
	assert_int_equal(weft_future_wait(g, &v), 0);
	assert_int_equal(U(v), 9);
	weft_future_release(g); /* freed exactly once */
}

/* A task owns a reference and drops it after setting: the test's
 * reference keeps the future (and its value) alive. */
static void *set_and_release(void *arg)
{
	weft_future *f = arg;
	weft_sleep_ms(1);
	weft_future_set_result(f, P(0x2e));
	weft_future_release(f);
	return NULL;
}

struct rc_thread {
	weft_future *f;
	int rc;
	void *v;
};

static void *thread_wait_release(void *arg)
{
	struct rc_thread *t = arg;
	t->rc = weft_future_wait(t->f, &t->v);
	weft_future_release(t->f);
	return NULL;
}

static void test_refcount_across_task_and_threads(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	for (int round = 0; round < 20; round++) {
		weft_future *f;
		assert_int_equal(weft_future_create(&f), 0);
		struct rc_thread th = { weft_future_ref(f), NOT_YET, NULL };
		pthread_t tid;
		assert_int_equal(pthread_create(&tid, NULL, thread_wait_release, &th), 0);
		weft_task *t;
		assert_int_equal(weft_runtime_spawn(rt, &t, NULL, set_and_release, weft_future_ref(f)),
				 0);
		void *v = NULL;
		assert_int_equal(weft_future_wait(f, &v), 0);
		assert_int_equal(U(v), 0x2e);
		weft_future_release(f); /* whichever release is last frees it */
		pthread_join(tid, NULL);
		assert_int_equal(th.rc, 0);
		assert_int_equal(U(th.v), 0x2e);
		assert_int_equal(weft_task_join(t, NULL), 0);
		weft_task_release(t);
	}
	weft_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_set_result_then_wait),
	cmocka_unit_test(test_set_null_value),
	cmocka_unit_test(test_set_twice_ealready_value_unchanged),
	cmocka_unit_test(test_set_error),
	cmocka_unit_test(test_cancel_future),
	cmocka_unit_test(test_null_arguments_einval),
	cmocka_unit_test(test_null_arguments_einval_in_task),
	cmocka_unit_test(test_wait_then_set_from_task_on_another_loop),
	cmocka_unit_test(test_set_from_foreign_thread_wakes_task),
	cmocka_unit_test(test_foreign_thread_waits_for_task),
	cmocka_unit_test(test_foreign_thread_wait_timeout),
	cmocka_unit_test(test_foreign_threads_and_tasks_wait_together),
	cmocka_unit_test(test_many_waiters_all_get_value),
	cmocka_unit_test(test_error_and_cancel_reach_every_waiter),
	cmocka_unit_test(test_wait_timeout_then_late_set_completes_for_others),
	cmocka_unit_test(test_timeout_racing_completion),
	cmocka_unit_test(test_cancel_waiting_task_leaves_future_pending),
	cmocka_unit_test(test_cross_loop_ping_pong),
	cmocka_unit_test(test_refcount_two_holders),
	cmocka_unit_test(test_refcount_across_task_and_threads),
};

WEFT_TEST_MAIN(tests)
