/*
 * Tasks: join, cancel, shield, yield, sleep, pinning, stacks, names, ids.
 *
 * docs/architecture.md rule 7: tasks only record into structs (C11 atomics
 * where several threads touch a field); every assertion runs on the test's
 * stack once weft_run (weft_test_run) or a join has returned.
 */
#include "weft_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define NOT_YET 12345 /* "the call has not returned yet" */

/* In a task: yield until *v >= want (bounded, 5 s). */
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

static void *return_arg(void *arg)
{
	return arg;
}

static void *sleep_ms_then_return(void *arg)
{
	weft_sleep_ms(U(arg) & 0xffff);
	return P(U(arg) >> 16);
}

/* ------------------------------------------------------------------------ */
/* join                                                                      */
/* ------------------------------------------------------------------------ */

struct join_rec {
	int rc_fast, rc_slow, rc_again, rc_null;
	void *res_fast, *res_slow;
	bool done_before, done_after;
};

static void *join_main(void *arg)
{
	struct join_rec *r = arg;
	weft_task *a = NULL, *b = NULL;
	if (weft_task_spawn(&a, return_arg, P(0xa11)) || weft_task_spawn(&b, sleep_ms_then_return,
									  P((0xb22 << 16) | 5)))
		return P(1);
	r->done_before = weft_task_done(b);
	r->rc_slow = weft_task_join(b, &r->res_slow); /* waits */
	r->done_after = weft_task_done(b);
	weft_sleep_ms(1);
	r->rc_fast = weft_task_join(a, &r->res_fast); /* already finished */
	r->rc_again = weft_task_join(a, &r->res_fast);
	r->rc_null = weft_task_join(NULL, NULL);
	weft_task_release(a);
	weft_task_release(b);
	return P(2);
}

static void test_join_returns_result(void **state)
{
	(void)state;
	struct join_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(2, join_main, &r)), 2);
	assert_false(r.done_before);
	assert_int_equal(r.rc_slow, 0);
	assert_int_equal(U(r.res_slow), 0xb22);
	assert_true(r.done_after);
	assert_int_equal(r.rc_fast, 0);
	assert_int_equal(U(r.res_fast), 0xa11);
	assert_int_equal(r.rc_again, -EALREADY);
	assert_int_equal(r.rc_null, -EINVAL);
}

struct twice_rec {
	int rc1, rc2, rc3;
	void *res2;
};

static void *join_twice_main(void *arg)
{
	struct twice_rec *r = arg;
	weft_task *t;
	if (weft_task_spawn(&t, return_arg, P(5)))
		return P(1);
	void *res = NULL;
	r->rc1 = weft_task_join(t, &res);
	r->res2 = P(0x77);
	r->rc2 = weft_task_join(t, &r->res2); /* a result is handed over once */
	r->rc3 = weft_task_join_timeout(t, NULL, 1 * MS);
	weft_task_release(t);
	return res;
}

static void test_join_twice_ealready(void **state)
{
	(void)state;
	struct twice_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(1, join_twice_main, &r)), 5);
	assert_int_equal(r.rc1, 0);
	assert_int_equal(r.rc2, -EALREADY);
	assert_int_equal(U(r.res2), 0x77); /* untouched */
	assert_int_equal(r.rc3, -EALREADY);
}

static void *join_self(void *arg)
{
	(void)arg;
	void *res = P(0x99);
	int r = weft_task_join(weft_task_current(), &res);
	int r2 = weft_task_join_timeout(weft_task_current(), &res, 1 * MS);
	return P((r == -EDEADLK && r2 == -EDEADLK && U(res) == 0x99) ? 1 : 0);
}

static void test_join_yourself_edeadlk(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(2, join_self, NULL)), 1);
}

/* Two tasks join the same task at once: the second gets -EBUSY.  One loop,
 * so "flag set" implies "the first joiner is parked inside join". */
struct busy_rec {
	weft_future *gate;
	weft_task *target;
	_Atomic int joining;
	int first_rc, second_rc, third_rc;
	void *first_res;
};

static void *wait_gate(void *arg)
{
	struct busy_rec *r = arg;
	void *v = NULL;
	weft_future_wait(r->gate, &v);
	return v;
}

static void *first_joiner(void *arg)
{
	struct busy_rec *r = arg;
	atomic_store(&r->joining, 1);
	r->first_rc = weft_task_join(r->target, &r->first_res);
	return NULL;
}

static void *busy_main(void *arg)
{
	struct busy_rec *r = arg;
	weft_task *j;
	if (weft_task_spawn(&r->target, wait_gate, r) || weft_task_spawn(&j, first_joiner, r))
		return P(1);
	task_wait_at_least(&r->joining, 1);
	weft_yield();
	r->second_rc = weft_task_join(r->target, NULL);
	r->third_rc = weft_task_join_timeout(r->target, NULL, 1 * MS);
	weft_future_set_result(r->gate, P(0x6a7e));
	weft_task_join(j, NULL);
	weft_task_release(j);
	weft_task_release(r->target);
	return P(2);
}

static void test_concurrent_join_ebusy(void **state)
{
	(void)state;
	struct busy_rec r = { 0 };
	assert_int_equal(weft_future_create(&r.gate), 0);
	assert_int_equal(U(weft_test_run_loops(1, busy_main, &r)), 2);
	assert_int_equal(r.second_rc, -EBUSY);
	assert_int_equal(r.third_rc, -EBUSY);
	assert_int_equal(r.first_rc, 0); /* the first joiner still gets it */
	assert_int_equal(U(r.first_res), 0x6a7e);
	weft_future_release(r.gate);
}

/* A foreign thread blocked in join makes a task's join -EBUSY too. */
struct fjoin {
	weft_task *t;
	_Atomic int started;
	int rc;
	void *res;
};

static void *foreign_joiner(void *arg)
{
	struct fjoin *f = arg;
	atomic_store(&f->started, 1);
	/* The test's own probes may hold the join for an instant: retry. */
	do
		f->rc = weft_task_join(f->t, &f->res);
	while (f->rc == -EBUSY);
	return NULL;
}

static void test_foreign_join_then_task_join_ebusy(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct busy_rec r = { 0 };
	assert_int_equal(weft_future_create(&r.gate), 0);
	struct fjoin f = { 0 };
	assert_int_equal(weft_runtime_spawn(rt, &f.t, NULL, wait_gate, &r), 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, foreign_joiner, &f), 0);
	while (!atomic_load(&f.started))
		msleep(1);
	/* Poll until the foreign thread is inside join (EBUSY from here). */
	int rc = 0;
	for (int i = 0; i < 5000; i++) {
		rc = weft_task_join_timeout(f.t, NULL, 0);
		if (rc == -EBUSY)
			break;
		msleep(1);
	}
	assert_int_equal(rc, -EBUSY);
	assert_int_equal(weft_future_set_result(r.gate, P(31)), 0);
	pthread_join(th, NULL);
	assert_int_equal(f.rc, 0);
	assert_int_equal(U(f.res), 31);
	weft_task_release(f.t);
	weft_runtime_destroy(rt);
	weft_future_release(r.gate);
}

struct jt_rec {
	int rc_timeout, rc_zero, rc_later;
	void *res_timeout, *res_later;
	uint64_t waited;
};

static void *join_timeout_main(void *arg)
{
	struct jt_rec *r = arg;
	weft_task *t;
	if (weft_task_spawn(&t, sleep_ms_then_return, P((0x71 << 16) | 60)))
		return P(1);
	r->res_timeout = P(0x55);
	r->rc_zero = weft_task_join_timeout(t, NULL, 0);
	uint64_t t0 = weft_now_ns();
	r->rc_timeout = weft_task_join_timeout(t, &r->res_timeout, 5 * MS);
	r->waited = weft_now_ns() - t0;
	r->rc_later = weft_task_join(t, &r->res_later);
	weft_task_release(t);
	return P(2);
}

static void test_join_timeout_then_join_gets_result(void **state)
{
	(void)state;
	struct jt_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(2, join_timeout_main, &r)), 2);
	assert_int_equal(r.rc_zero, -ETIMEDOUT);
	assert_int_equal(r.rc_timeout, -ETIMEDOUT);
	assert_int_equal(U(r.res_timeout), 0x55); /* untouched on timeout */
	assert_true(r.waited >= 5 * MS);
	assert_int_equal(r.rc_later, 0);
	assert_int_equal(U(r.res_later), 0x71);
}

/* A joining task that is cancelled gives up; the result stays. */
struct cj_rec {
	weft_future *gate;
	weft_task *target;
	_Atomic int joining;
	int joiner_rc, later_rc;
	void *later_res;
	bool target_done_when_joiner_quit;
};

static void *cancelled_joiner(void *arg)
{
	struct cj_rec *r = arg;
	atomic_store(&r->joining, 1);
	r->joiner_rc = weft_task_join(r->target, NULL);
	r->target_done_when_joiner_quit = weft_task_done(r->target);
	return NULL;
}

static void *cancel_joiner_main(void *arg)
{
	struct cj_rec *r = arg;
	weft_task *j;
	if (weft_task_spawn(&r->target, wait_gate, r) || weft_task_spawn(&j, cancelled_joiner, r))
		return P(1);
	task_wait_at_least(&r->joining, 1);
	weft_sleep_ms(1);
	weft_task_cancel(j);
	weft_task_join(j, NULL);
	weft_future_set_result(r->gate, P(0x4e5));
	r->later_rc = weft_task_join(r->target, &r->later_res);
	weft_task_release(j);
	weft_task_release(r->target);
	return P(2);
}

static void test_cancelled_joiner_leaves_result_for_later_join(void **state)
{
	(void)state;
	struct cj_rec r = { 0 };
	assert_int_equal(weft_future_create(&r.gate), 0);
	assert_int_equal(U(weft_test_run_loops(2, cancel_joiner_main, &r)), 2);
	assert_int_equal(r.joiner_rc, -ECANCELED);
	assert_false(r.target_done_when_joiner_quit);
	assert_int_equal(r.later_rc, 0);
	assert_int_equal(U(r.later_res), 0x4e5);
	weft_future_release(r.gate);
}

/* ------------------------------------------------------------------------ */
/* cancellation                                                              */
/* ------------------------------------------------------------------------ */

struct cs_rec {
	_Atomic int started;
	_Atomic int sleep_rc;
	int cancel_rc, join_rc, cancel_again_rc;
	void *res;
	uint64_t elapsed;
};

static void *long_sleeper(void *arg)
{
	struct cs_rec *r = arg;
	atomic_store(&r->started, 1);
	atomic_store(&r->sleep_rc, weft_sleep_ms(60000));
	return P(0x5eef);
}

static void *cancel_sleeper_main(void *arg)
{
	struct cs_rec *r = arg;
	weft_task *t;
	if (weft_task_spawn(&t, long_sleeper, r))
		return P(1);
	task_wait_at_least(&r->started, 1);
	weft_sleep_ms(2); /* let it really go to sleep */
	uint64_t t0 = weft_now_ns();
	r->cancel_rc = weft_task_cancel(t);
	r->join_rc = weft_task_join(t, &r->res);
	r->elapsed = weft_now_ns() - t0;
	r->cancel_again_rc = weft_task_cancel(t);
	weft_task_release(t);
	return P(2);
}

static void test_cancel_sleeping_task(void **state)
{
	(void)state;
	struct cs_rec r = { 0 };
	atomic_init(&r.sleep_rc, NOT_YET);
	assert_int_equal(U(weft_test_run_loops(2, cancel_sleeper_main, &r)), 2);
	assert_int_equal(r.cancel_rc, 0);
	assert_int_equal(atomic_load(&r.sleep_rc), -ECANCELED);
	assert_int_equal(r.join_rc, -ECANCELED);
	assert_int_equal(U(r.res), 0x5eef); /* the task's own return value */
	assert_int_equal(r.cancel_again_rc, -EALREADY);
	assert_true(r.elapsed < 2000 * MS);
}

struct cbs_rec {
	_Atomic int ran;
	int cancel_rc, join_rc;
	void *res;
	bool done;
};

static void *must_not_run(void *arg)
{
	struct cbs_rec *r = arg;
	atomic_fetch_add(&r->ran, 1);
	return P(0xbad);
}

static void *cancel_before_start_main(void *arg)
{
	struct cbs_rec *r = arg;
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = WEFT_PIN_CURRENT; /* cannot start before we suspend */
	weft_task *t;
	if (weft_task_spawn_ex(&t, &tc, must_not_run, r))
		return P(1);
	r->cancel_rc = weft_task_cancel(t);
	r->res = P(0x1);
	r->join_rc = weft_task_join(t, &r->res);
	r->done = weft_task_done(t);
	weft_task_release(t);
	return P(2);
}

static void test_cancel_before_start_never_runs(void **state)
{
	(void)state;
	for (unsigned loops = 1; loops <= 2; loops++) {
		struct cbs_rec r = { 0 };
		assert_int_equal(U(weft_test_run_loops(loops, cancel_before_start_main, &r)), 2);
		assert_int_equal(r.cancel_rc, 0);
		assert_int_equal(atomic_load(&r.ran), 0);
		assert_int_equal(r.join_rc, -ECANCELED);
		assert_null(r.res); /* it returned nothing: it never ran */
		assert_true(r.done);
	}
}

/* Spawned from a foreign thread and cancelled before any loop can run it:
 * the test holds the only loop busy inside a task until the cancel is in. */
struct cbs_foreign {
	_Atomic int hold;
	_Atomic int holding;
};

static void *hold_loop(void *arg)
{
	struct cbs_foreign *h = arg;
	atomic_store(&h->holding, 1);
	uint64_t until = weft_now_ns() + 5000 * MS;
	while (atomic_load(&h->hold) && weft_now_ns() < until)
		; /* busy on purpose: no suspension point, the loop is ours */
	return NULL;
}

static void test_cancel_before_start_from_foreign_thread(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct cbs_foreign h = { 1, 0 };
	weft_task *holder, *t;
	assert_int_equal(weft_runtime_spawn(rt, &holder, NULL, hold_loop, &h), 0);
	while (!atomic_load(&h.holding))
		msleep(1);
	struct cbs_rec r = { 0 };
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, must_not_run, &r), 0);
	assert_int_equal(weft_task_cancel(t), 0);
	atomic_store(&h.hold, 0);
	void *res = P(1);
	assert_int_equal(weft_task_join(t, &res), -ECANCELED);
	assert_null(res);
	assert_int_equal(atomic_load(&r.ran), 0);
	assert_int_equal(weft_task_join(holder, NULL), 0);
	weft_task_release(holder);
	weft_task_release(t);
	weft_runtime_destroy(rt);
}

static void *cancel_after_done_main(void *arg)
{
	(void)arg;
	weft_task *t;
	if (weft_task_spawn(&t, return_arg, P(4)))
		return P(1);
	void *res = NULL;
	int jr = weft_task_join(t, &res);
	int cr = weft_task_cancel(t);
	int nr = weft_task_cancel(NULL);
	weft_task_release(t);
	return P(jr == 0 && U(res) == 4 && cr == -EALREADY && nr == -EINVAL ? 1 : 0);
}

static void test_cancel_after_done_ealready(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(2, cancel_after_done_main, NULL)), 1);
}

/* After cancellation every suspension point returns -ECANCELED. */
enum { ST_FIRST, ST_YIELD, ST_SLEEP, ST_SLEEP0, ST_SLEEP_NS, ST_FWAIT_DONE, ST_FWAIT_PENDING,
       ST_FWAIT_TIMEOUT, ST_JOIN_DONE, ST_JOIN_TIMEOUT, ST_YIELD2, ST_N };

struct sticky_rec {
	weft_future *pending, *done;
	weft_task *finished;
	_Atomic int waiting;
	int rc[ST_N];
	bool cancelled_flag_before, cancelled_flag_after;
	int spawn_rc;
	uint64_t elapsed;
};

static void *sticky_body(void *arg)
{
	struct sticky_rec *r = arg;
	void *v;
	r->cancelled_flag_before = weft_task_cancelled();
	atomic_store(&r->waiting, 1);
	r->rc[ST_FIRST] = weft_future_wait(r->pending, &v); /* cancelled here */
	r->cancelled_flag_after = weft_task_cancelled();
	uint64_t t0 = weft_now_ns();
	r->rc[ST_YIELD] = weft_yield();
	r->rc[ST_SLEEP] = weft_sleep_ms(10000);
	r->rc[ST_SLEEP0] = weft_sleep(0);
	r->rc[ST_SLEEP_NS] = weft_sleep(1000);
	r->rc[ST_FWAIT_DONE] = weft_future_wait(r->done, &v);
	r->rc[ST_FWAIT_PENDING] = weft_future_wait(r->pending, &v);
	r->rc[ST_FWAIT_TIMEOUT] = weft_future_wait_timeout(r->pending, &v, 10000 * MS);
	r->rc[ST_JOIN_DONE] = weft_task_join(r->finished, NULL);
	r->rc[ST_JOIN_TIMEOUT] = weft_task_join_timeout(r->finished, NULL, 10000 * MS);
	r->rc[ST_YIELD2] = weft_yield();
	r->elapsed = weft_now_ns() - t0;
	/* spawning is not a suspension point */
	weft_task *c = NULL;
	r->spawn_rc = weft_task_spawn(&c, return_arg, NULL);
	if (c) {
		weft_task_release(c);
	}
	return P(0x57);
}

static void *sticky_main(void *arg)
{
	struct sticky_rec *r = arg;
	weft_task *t;
	if (weft_task_spawn(&r->finished, return_arg, P(0xf1)))
		return P(1);
	while (!weft_task_done(r->finished))
		weft_yield();
	if (weft_task_spawn(&t, sticky_body, r))
		return P(1);
	task_wait_at_least(&r->waiting, 1);
	weft_sleep_ms(1);
	weft_task_cancel(t);
	void *res = NULL;
	int jr = weft_task_join(t, &res);
	weft_task_release(t);
	/* the cancelled task's failed join left r->finished's result in place */
	void *fres = NULL;
	int fr = weft_task_join(r->finished, &fres);
	weft_task_release(r->finished);
	return P(jr == -ECANCELED && U(res) == 0x57 && fr == 0 && U(fres) == 0xf1 ? 2 : 3);
}

static void test_sticky_cancellation(void **state)
{
	(void)state;
	struct sticky_rec r = { 0 };
	assert_int_equal(weft_future_create(&r.pending), 0);
	assert_int_equal(weft_future_create(&r.done), 0);
	assert_int_equal(weft_future_set_result(r.done, P(1)), 0);
	assert_int_equal(U(weft_test_run_loops(2, sticky_main, &r)), 2);
	assert_false(r.cancelled_flag_before);
	assert_true(r.cancelled_flag_after);
	for (int i = 0; i < ST_N; i++) {
		print_message("suspension point %d -> %d\n", i, r.rc[i]);
		assert_int_equal(r.rc[i], -ECANCELED);
	}
	assert_true(r.elapsed < 2000 * MS); /* none of them actually waited */
	assert_int_equal(r.spawn_rc, 0);
	assert_false(weft_future_done(r.pending)); /* giving up left it pending */
	weft_future_release(r.pending);
	weft_future_release(r.done);
}

static void *self_cancel(void *arg)
{
	int *rc = arg;
	rc[0] = weft_task_cancel(weft_task_current());
	rc[1] = weft_task_cancelled();
	rc[2] = weft_yield();
	rc[3] = weft_sleep_ms(1);
	rc[4] = weft_task_cancel(weft_task_current()); /* still running: 0 */
	return P(0x5e1f);
}

static void *self_cancel_main(void *arg)
{
	weft_task *t;
	if (weft_task_spawn(&t, self_cancel, arg))
		return P(1);
	void *res = NULL;
	int r = weft_task_join(t, &res);
	weft_task_release(t);
	return P(r == -ECANCELED && U(res) == 0x5e1f ? 2 : 3);
}

static void test_self_cancel(void **state)
{
	(void)state;
	int rc[5] = { 9, 9, 9, 9, 9 };
	assert_int_equal(U(weft_test_run_loops(2, self_cancel_main, rc)), 2);
	assert_int_equal(rc[0], 0);
	assert_int_equal(rc[1], 1);
	assert_int_equal(rc[2], -ECANCELED);
	assert_int_equal(rc[3], -ECANCELED);
	assert_int_equal(rc[4], 0);
}

/* A task that is cancelled but never reaches a suspension point finishes
 * normally: join returns 0. */
struct ignore_rec {
	_Atomic int go;
	_Atomic int spinning;
};

static void *ignores_cancel(void *arg)
{
	struct ignore_rec *r = arg;
	atomic_store(&r->spinning, 1);
	uint64_t until = weft_now_ns() + 5000 * MS;
	while (!atomic_load(&r->go) && weft_now_ns() < until)
		;
	return P(weft_task_cancelled() ? 0xc0 : 0xc1);
}

static void test_cancel_ignored_without_suspension_point(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct ignore_rec r = { 0 };
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, ignores_cancel, &r), 0);
	while (!atomic_load(&r.spinning))
		msleep(1);
	assert_int_equal(weft_task_cancel(t), 0);
	atomic_store(&r.go, 1);
	void *res = NULL;
	assert_int_equal(weft_task_join(t, &res), 0);
	assert_int_equal(U(res), 0xc0);
	weft_task_release(t);
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* shield                                                                    */
/* ------------------------------------------------------------------------ */

struct shield_rec {
	_Atomic int started;
	int begin_rc, sleep_rc, end_rc, after_rc, extra_end_rc;
	bool cancelled_inside;
	uint64_t slept;
};

static void *shielded_sleeper(void *arg)
{
	struct shield_rec *r = arg;
	r->begin_rc = weft_shield_begin();
	atomic_store(&r->started, 1);
	uint64_t t0 = weft_now_ns();
	r->sleep_rc = weft_sleep_ms(30); /* cancelled during it: completes anyway */
	r->slept = weft_now_ns() - t0;
	r->cancelled_inside = weft_task_cancelled();
	r->end_rc = weft_shield_end();
	r->after_rc = weft_yield(); /* first suspension point after the end */
	r->extra_end_rc = weft_shield_end();
	return P(0x5d);
}

static void *shield_main(void *arg)
{
	struct shield_rec *r = arg;
	weft_task *t;
	if (weft_task_spawn(&t, shielded_sleeper, r))
		return P(1);
	task_wait_at_least(&r->started, 1);
	weft_sleep_ms(2);
	weft_task_cancel(t);
	void *res = NULL;
	int jr = weft_task_join(t, &res);
	weft_task_release(t);
	return P(jr == -ECANCELED && U(res) == 0x5d ? 2 : 3);
}

static void test_shield_defers_cancellation(void **state)
{
	(void)state;
	struct shield_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(2, shield_main, &r)), 2);
	assert_int_equal(r.begin_rc, 0);
	assert_int_equal(r.sleep_rc, 0);
	assert_true(r.slept >= 30 * MS);
	assert_true(r.cancelled_inside);
	assert_int_equal(r.end_rc, 0);
	assert_int_equal(r.after_rc, -ECANCELED);
	assert_int_equal(r.extra_end_rc, -EINVAL);
}

static void *nested_shield(void *arg)
{
	int *rc = arg;
	rc[0] = weft_task_cancel(weft_task_current());
	rc[1] = weft_shield_begin();
	rc[2] = weft_shield_begin();
	rc[3] = weft_sleep_ms(1); /* pending before begin: still shielded */
	rc[4] = weft_shield_end();
	rc[5] = weft_yield(); /* still inside the outer shield */
	rc[6] = weft_sleep(1000);
	rc[7] = weft_shield_end();
	rc[8] = weft_sleep_ms(1); /* delivered now */
	rc[9] = weft_shield_end(); /* no matching begin */
	return P(0x4e);
}

static void test_shield_nests_and_delivers_after_outermost_end(void **state)
{
	(void)state;
	int rc[10];
	for (int i = 0; i < 10; i++)
		rc[i] = NOT_YET;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	void *res = NULL;
	/* main saw -ECANCELED at a suspension point: weft_run reports it */
	assert_int_equal(weft_run(&cfg, nested_shield, rc, &res), -ECANCELED);
	assert_int_equal(U(res), 0x4e);
	const int want[10] = { 0, 0, 0, 0, 0, 0, 0, 0, -ECANCELED, -EINVAL };
	for (int i = 0; i < 10; i++) {
		print_message("step %d -> %d\n", i, rc[i]);
		assert_int_equal(rc[i], want[i]);
	}
}

static void *shield_end_without_begin(void *arg)
{
	(void)arg;
	int a = weft_shield_end();
	int b = weft_shield_begin();
	int c = weft_shield_end();
	int d = weft_shield_end();
	return P(a == -EINVAL && b == 0 && c == 0 && d == -EINVAL ? 1 : 0);
}

static void test_shield_end_without_begin_einval(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(1, shield_end_without_begin, NULL)), 1);
}

/* ------------------------------------------------------------------------ */
/* outside a task                                                            */
/* ------------------------------------------------------------------------ */

static void test_suspension_points_outside_task_eperm(void **state)
{
	(void)state;
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_yield(), -EPERM);
	assert_int_equal(weft_sleep(1000000), -EPERM);
	assert_int_equal(weft_sleep_ms(50), -EPERM);
	assert_int_equal(weft_sleep(0), -EPERM);
	assert_true(weft_now_ns() - t0 < 40 * MS); /* returned, did not sleep */
	weft_task *t = (weft_task *)P(1);
	assert_int_equal(weft_task_spawn(&t, return_arg, NULL), -EPERM);
	assert_null(t);
	t = (weft_task *)P(1);
	weft_task_config tc;
	weft_task_config_init(&tc);
	assert_int_equal(weft_task_spawn_ex(&t, &tc, return_arg, NULL), -EPERM);
	assert_null(t);
	assert_int_equal(weft_task_spawn(NULL, return_arg, NULL), -EPERM);
	assert_int_equal(weft_shield_begin(), -EPERM);
	assert_int_equal(weft_shield_end(), -EPERM);
	assert_null(weft_task_current());
	assert_false(weft_task_cancelled());

	/* the same while a runtime is running */
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	assert_int_equal(weft_yield(), -EPERM);
	assert_int_equal(weft_sleep_ms(1), -EPERM);
	assert_int_equal(weft_task_spawn(NULL, return_arg, NULL), -EPERM);
	assert_null(weft_task_current());
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* pinning                                                                   */
/* ------------------------------------------------------------------------ */

#define PIN_LOOPS 3
#define PIN_ITERS 300

struct pin_rec {
	int expect;
	_Atomic int bad;
	_Atomic int iters;
	_Atomic int first;
};

static void *pinned_body(void *arg)
{
	struct pin_rec *r = arg;
	atomic_store(&r->first, weft_loop_index());
	for (int i = 0; i < PIN_ITERS; i++) {
		if (weft_loop_index() != r->expect)
			atomic_fetch_add(&r->bad, 1);
		int rc = (i % 3 == 2) ? weft_sleep(20000) : weft_yield();
		if (rc != 0)
			atomic_fetch_add(&r->bad, 1000);
		if (weft_loop_index() != r->expect)
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->iters, 1);
	}
	return NULL;
}

static _Atomic int g_churn_stop;

static void *churn(void *arg)
{
	(void)arg;
	uint64_t until = weft_now_ns() + 5000 * MS;
	while (!atomic_load(&g_churn_stop) && weft_now_ns() < until) {
		for (volatile int i = 0; i < 2000; i++)
			;
		weft_yield();
	}
	return NULL;
}

struct pin_main_rec {
	struct pin_rec explicit_[PIN_LOOPS];
	struct pin_rec current[4];
	int spawn_bad;
};

static void *pin_main(void *arg)
{
	struct pin_main_rec *m = arg;
	weft_task *churners[8], *ts[PIN_LOOPS + 4];
	int n = 0;
	atomic_store(&g_churn_stop, 0);
	for (int i = 0; i < 8; i++) /* stealable load to provoke stealing */
		if (weft_task_spawn(&churners[i], churn, NULL))
			m->spawn_bad++;
	weft_task_config tc;
	weft_task_config_init(&tc);
	for (int i = 0; i < PIN_LOOPS; i++) {
		tc.pin = i;
		m->explicit_[i].expect = i;
		if (weft_task_spawn_ex(&ts[n++], &tc, pinned_body, &m->explicit_[i]))
			m->spawn_bad++;
	}
	tc.pin = WEFT_PIN_CURRENT;
	for (int i = 0; i < 4; i++) {
		/* no suspension point between reading the index and spawning */
		m->current[i].expect = weft_loop_index();
		if (weft_task_spawn_ex(&ts[n++], &tc, pinned_body, &m->current[i]))
			m->spawn_bad++;
		weft_yield(); /* main itself may move between spawns */
	}
	for (int i = 0; i < n; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	atomic_store(&g_churn_stop, 1);
	for (int i = 0; i < 8; i++) {
		weft_task_join(churners[i], NULL);
		weft_task_release(churners[i]);
	}
	return P(2);
}

static void test_pinned_tasks_stay_on_their_loop(void **state)
{
	(void)state;
	struct pin_main_rec *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	assert_int_equal(U(weft_test_run_loops(PIN_LOOPS, pin_main, m)), 2);
	assert_int_equal(m->spawn_bad, 0);
	for (int i = 0; i < PIN_LOOPS; i++) {
		assert_int_equal(atomic_load(&m->explicit_[i].first), i);
		assert_int_equal(atomic_load(&m->explicit_[i].iters), PIN_ITERS);
		assert_int_equal(atomic_load(&m->explicit_[i].bad), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(atomic_load(&m->current[i].first), m->current[i].expect);
		assert_int_equal(atomic_load(&m->current[i].iters), PIN_ITERS);
		assert_int_equal(atomic_load(&m->current[i].bad), 0);
	}
	free(m);
}

static void test_pinned_spawn_from_foreign_thread(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct pin_rec r[2] = { 0 };
	weft_task *t[2];
	for (int i = 0; i < 2; i++) {
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = i;
		r[i].expect = i;
		assert_int_equal(weft_runtime_spawn(rt, &t[i], &tc, pinned_body, &r[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(weft_task_join(t[i], NULL), 0);
		weft_task_release(t[i]);
		assert_int_equal(atomic_load(&r[i].first), i);
		assert_int_equal(atomic_load(&r[i].bad), 0);
		assert_int_equal(atomic_load(&r[i].iters), PIN_ITERS);
	}
	weft_runtime_destroy(rt);
}

struct badcfg_rec {
	int rc[8];
	bool out_cleared[8];
};

static void *bad_config_main(void *arg)
{
	struct badcfg_rec *r = arg;
	const int pins[] = { 2, 1024, -3, -100, INT32_MIN };
	int k = 0;
	for (int i = 0; i < 5; i++, k++) {
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = pins[i];
		weft_task *t = (weft_task *)P(1);
		r->rc[k] = weft_task_spawn_ex(&t, &tc, return_arg, NULL);
		r->out_cleared[k] = t == NULL;
	}
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.reserved[6] = 1;
	weft_task *t = (weft_task *)P(1);
	r->rc[k] = weft_task_spawn_ex(&t, &tc, return_arg, NULL);
	r->out_cleared[k++] = t == NULL;
	weft_task_config_init(&tc);
	tc.stack_size = 100; /* nonzero but tiny */
	t = (weft_task *)P(1);
	r->rc[k] = weft_task_spawn_ex(&t, &tc, return_arg, NULL);
	r->out_cleared[k++] = t == NULL;
	t = (weft_task *)P(1);
	r->rc[k] = weft_task_spawn(&t, NULL, NULL);
	r->out_cleared[k++] = t == NULL;
	return P(2);
}

static void test_bad_pin_and_task_config_einval(void **state)
{
	(void)state;
	struct badcfg_rec r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(U(weft_test_run_loops(2, bad_config_main, &r)), 2);
	for (int i = 0; i < 8; i++) {
		print_message("case %d -> %d\n", i, r.rc[i]);
		assert_int_equal(r.rc[i], -EINVAL);
		assert_true(r.out_cleared[i]);
	}

	/* WEFT_PIN_CURRENT means nothing on a foreign thread */
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = WEFT_PIN_CURRENT;
	weft_task *t = (weft_task *)P(1);
	assert_int_equal(weft_runtime_spawn(rt, &t, &tc, return_arg, NULL), -EINVAL);
	assert_null(t);
	tc.pin = 2;
	assert_int_equal(weft_runtime_spawn(rt, &t, &tc, return_arg, NULL), -EINVAL);
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.tasks_spawned, 0);
	assert_int_equal(st.tasks_live, 0);
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* stacks                                                                    */
/* ------------------------------------------------------------------------ */

#define BIG_FRAME (200 * 1024)

__attribute__((noinline)) static unsigned use_big_stack(unsigned seed)
{
	volatile unsigned char buf[BIG_FRAME];
	for (size_t i = 0; i < sizeof(buf); i += 64)
		buf[i] = (unsigned char)(seed + i);
	/* suspend with the big frame live; may resume on another loop */
	if (weft_sleep_ms(1) != 0 || weft_yield() != 0)
		return 0;
	unsigned sum = 0;
	for (size_t i = 0; i < sizeof(buf); i += 64)
		sum += buf[i] == (unsigned char)(seed + i);
	return sum;
}

static void *big_stack_task(void *arg)
{
	return P(use_big_stack((unsigned)U(arg)));
}

static void *big_stack_main(void *arg)
{
	(void)arg;
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.stack_size = 512 * 1024;
	weft_task *ts[4];
	for (int i = 0; i < 4; i++)
		if (weft_task_spawn_ex(&ts[i], &tc, big_stack_task, P(i * 7)))
			return P(1);
	uintptr_t ok = 0;
	for (int i = 0; i < 4; i++) {
		void *res = NULL;
		if (weft_task_join(ts[i], &res) == 0 && U(res) == BIG_FRAME / 64)
			ok++;
		weft_task_release(ts[i]);
	}
	return P(ok);
}

static void test_per_task_stack_size(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(2, big_stack_main, NULL)), 4);
}

static void test_per_runtime_stack_size(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	cfg.stack_size = 512 * 1024;
	void *res = NULL;
	assert_int_equal(weft_run(&cfg, big_stack_task, P(3), &res), 0);
	assert_int_equal(U(res), BIG_FRAME / 64);
}

/* An absurd stack size must fail cleanly: either spawn refuses it, or the
 * task finishes without running and join reports the error.  It must never
 * run on some other (smaller) stack. */
struct huge_rec {
	int spawn_rc[3], join_rc[3];
	_Atomic int ran[3];
};

static struct huge_rec *g_huge;

static void *huge_body(void *arg)
{
	atomic_store(&g_huge->ran[U(arg)], 1);
	return NULL;
}

static void *huge_stack_main(void *arg)
{
	struct huge_rec *r = arg;
	g_huge = r;
	const size_t sizes[3] = { SIZE_MAX, SIZE_MAX - 4095, (size_t)1 << 62 };
	for (int i = 0; i < 3; i++) {
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.stack_size = sizes[i];
		weft_task *t = NULL;
		r->spawn_rc[i] = weft_task_spawn_ex(&t, &tc, huge_body, P(i));
		r->join_rc[i] = t ? weft_task_join(t, NULL) : 1;
		weft_task_release(t);
	}
	return P(2);
}

static void test_absurd_stack_size_fails_cleanly(void **state)
{
	(void)state;
	struct huge_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(1, huge_stack_main, &r)), 2);
	for (int i = 0; i < 3; i++) {
		print_message("size %d: spawn %d join %d ran %d\n", i, r.spawn_rc[i], r.join_rc[i],
			      atomic_load(&r.ran[i]));
		if (r.spawn_rc[i] == 0)
			assert_int_equal(r.join_rc[i], -ENOMEM);
		else
			assert_true(r.spawn_rc[i] == -EINVAL || r.spawn_rc[i] == -ENOMEM);
		assert_int_equal(atomic_load(&r.ran[i]), 0);
	}
}

/* ------------------------------------------------------------------------ */
/* names, ids, current                                                       */
/* ------------------------------------------------------------------------ */

#define NAME_TASKS 100

struct names_rec {
	char dflt[64], expect_dflt[64];
	char truncated[64], cfg_named[64], cfg_truncated[64], renamed[64];
	size_t truncated_len;
	uint64_t ids[NAME_TASKS];
	int set_null_rc, set_on_null_rc;
	bool name_null_ok, id_null_ok;
};

static void *names_main(void *arg)
{
	struct names_rec *r = arg;
	weft_task *t;
	if (weft_task_spawn(&t, return_arg, NULL))
		return P(1);
	snprintf(r->expect_dflt, sizeof(r->expect_dflt), "task-%llu",
		 (unsigned long long)weft_task_id(t));
	snprintf(r->dflt, sizeof(r->dflt), "%s", weft_task_name(t));
	const char *longname = "0123456789abcdefghijklmnopqrstuvwxyz-too-long";
	weft_task_set_name(t, longname);
	snprintf(r->truncated, sizeof(r->truncated), "%s", weft_task_name(t));
	r->truncated_len = strlen(weft_task_name(t));
	r->set_null_rc = weft_task_set_name(t, NULL);
	r->set_on_null_rc = weft_task_set_name(NULL, "x");
	r->name_null_ok = weft_task_name(NULL) == NULL;
	r->id_null_ok = weft_task_id(NULL) == 0;
	weft_task_join(t, NULL);
	/* still readable after the task finished, while the handle is held */
	weft_task_set_name(t, "renamed");
	snprintf(r->renamed, sizeof(r->renamed), "%s", weft_task_name(t));
	weft_task_release(t);

	weft_task_config tc;
	weft_task_config_init(&tc);
	char buf[16];
	snprintf(buf, sizeof(buf), "worker");
	tc.name = buf;
	if (weft_task_spawn_ex(&t, &tc, return_arg, NULL))
		return P(1);
	buf[0] = 'X'; /* the name was copied */
	snprintf(r->cfg_named, sizeof(r->cfg_named), "%s", weft_task_name(t));
	weft_task_join(t, NULL);
	weft_task_release(t);
	tc.name = longname;
	if (weft_task_spawn_ex(&t, &tc, return_arg, NULL))
		return P(1);
	snprintf(r->cfg_truncated, sizeof(r->cfg_truncated), "%s", weft_task_name(t));
	weft_task_join(t, NULL);
	weft_task_release(t);

	weft_task *ts[NAME_TASKS];
	for (int i = 0; i < NAME_TASKS; i++) {
		if (weft_task_spawn(&ts[i], return_arg, NULL))
			return P(1);
		r->ids[i] = weft_task_id(ts[i]);
	}
	for (int i = 0; i < NAME_TASKS; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	return P(2);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_names_and_ids(void **state)
{
	(void)state;
	struct names_rec *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	assert_int_equal(U(weft_test_run_loops(2, names_main, r)), 2);
	assert_string_equal(r->dflt, r->expect_dflt);
	assert_string_equal(r->truncated, "0123456789abcdefghijklmnopqrstu");
	assert_int_equal(r->truncated_len, 31);
	assert_int_equal(r->set_null_rc, -EINVAL);
	assert_int_equal(r->set_on_null_rc, -EINVAL);
	assert_true(r->name_null_ok);
	assert_true(r->id_null_ok);
	assert_string_equal(r->renamed, "renamed");
	assert_string_equal(r->cfg_named, "worker");
	assert_string_equal(r->cfg_truncated, "0123456789abcdefghijklmnopqrstu");
	qsort(r->ids, NAME_TASKS, sizeof(r->ids[0]), cmp_u64);
	assert_true(r->ids[0] >= 1);
	for (int i = 1; i < NAME_TASKS; i++)
		assert_true(r->ids[i] > r->ids[i - 1]);
	free(r);
}

struct cur_rec {
	weft_task *seen[3];
	uint64_t id_seen;
};

static void *record_current(void *arg)
{
	struct cur_rec *r = arg;
	r->seen[0] = weft_task_current();
	weft_yield();
	r->seen[1] = weft_task_current();
	weft_sleep_ms(1);
	r->seen[2] = weft_task_current();
	r->id_seen = weft_task_id(weft_task_current());
	return NULL;
}

struct cur_main_rec {
	struct cur_rec c[8];
	weft_task *handles[8];
	weft_task *main_self;
};

static void *current_main(void *arg)
{
	struct cur_main_rec *m = arg;
	m->main_self = weft_task_current();
	for (int i = 0; i < 8; i++)
		if (weft_task_spawn(&m->handles[i], record_current, &m->c[i]))
			return P(1);
	for (int i = 0; i < 8; i++)
		weft_task_join(m->handles[i], NULL);
	return P(2);
}

static void test_task_current(void **state)
{
	(void)state;
	struct cur_main_rec m;
	memset(&m, 0, sizeof(m));
	assert_int_equal(U(weft_test_run_loops(2, current_main, &m)), 2);
	assert_non_null(m.main_self);
	for (int i = 0; i < 8; i++) {
		for (int k = 0; k < 3; k++)
			assert_ptr_equal(m.c[i].seen[k], m.handles[i]);
		assert_int_equal(m.c[i].id_seen, weft_task_id(m.handles[i]));
		assert_ptr_not_equal(m.handles[i], m.main_self);
		weft_task_release(m.handles[i]);
	}
}

/* A handle passed to a foreign thread with weft_task_ref. */
struct refpass {
	weft_task *t;
	int rc;
	void *res;
};

static void *ref_joiner(void *arg)
{
	struct refpass *p = arg;
	p->rc = weft_task_join(p->t, &p->res);
	weft_task_release(p->t); /* the reference this thread was given */
	return NULL;
}

static void test_handle_ref_across_threads(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, sleep_ms_then_return, P((0x3e << 16) | 3)),
			 0);
	struct refpass p = { weft_task_ref(t), 1, NULL };
	assert_ptr_equal(p.t, t);
	assert_null(weft_task_ref(NULL));
	weft_task_release(NULL);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ref_joiner, &p), 0);
	weft_task_release(t); /* ours first: the thread's reference keeps it */
	pthread_join(th, NULL);
	assert_int_equal(p.rc, 0);
	assert_int_equal(U(p.res), 0x3e);
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* yield and sleep                                                           */
/* ------------------------------------------------------------------------ */

#define FAIR_ITERS 200

struct fair_rec {
	_Atomic int idx;
	char log[2 * FAIR_ITERS + 8];
	int bad_rc;
};

struct fair_arg {
	struct fair_rec *r;
	char who;
};

static void *fair_yielder(void *arg)
{
	struct fair_arg *a = arg;
	for (int i = 0; i < FAIR_ITERS; i++) {
		int k = atomic_fetch_add(&a->r->idx, 1);
		if (k < (int)sizeof(a->r->log))
			a->r->log[k] = a->who;
		if (weft_yield() != 0)
			a->r->bad_rc++;
	}
	return NULL;
}

static void *fair_main(void *arg)
{
	struct fair_rec *r = arg;
	struct fair_arg a = { r, 'A' }, b = { r, 'B' };
	weft_task *ta, *tb;
	if (weft_task_spawn(&ta, fair_yielder, &a) || weft_task_spawn(&tb, fair_yielder, &b))
		return P(1);
	weft_task_join(ta, NULL);
	weft_task_join(tb, NULL);
	weft_task_release(ta);
	weft_task_release(tb);
	return P(2);
}

static void test_yield_alternates_two_tasks(void **state)
{
	(void)state;
	struct fair_rec r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(U(weft_test_run_loops(1, fair_main, &r)), 2);
	assert_int_equal(atomic_load(&r.idx), 2 * FAIR_ITERS);
	assert_int_equal(r.bad_rc, 0);
	int same = 0;
	for (int i = 1; i < 2 * FAIR_ITERS; i++)
		same += r.log[i] == r.log[i - 1];
	if (same)
		print_message("log: %.*s\n", 2 * FAIR_ITERS, r.log);
	assert_int_equal(same, 0);
}

struct starve_rec {
	_Atomic int flag;
	_Atomic int started;
	bool saw_flag;
	uint64_t waited;
	int sleep_rc;
};

static void *sleep_then_flag(void *arg)
{
	struct starve_rec *r = arg;
	r->sleep_rc = weft_sleep_ms(5);
	atomic_store(&r->flag, 1);
	return NULL;
}

static void *yield_until_flag(void *arg)
{
	struct starve_rec *r = arg;
	atomic_store(&r->started, 1);
	uint64_t t0 = weft_now_ns();
	while (!atomic_load(&r->flag) && weft_now_ns() - t0 < 3000 * MS)
		weft_yield();
	r->waited = weft_now_ns() - t0;
	r->saw_flag = atomic_load(&r->flag);
	return NULL;
}

static void *starve_main(void *arg)
{
	weft_task *s, *y;
	if (weft_task_spawn(&s, sleep_then_flag, arg) || weft_task_spawn(&y, yield_until_flag, arg))
		return P(1);
	weft_task_join(y, NULL);
	weft_task_join(s, NULL);
	weft_task_release(y);
	weft_task_release(s);
	return P(2);
}

static void test_yielding_task_does_not_starve_sleeper(void **state)
{
	(void)state;
	struct starve_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(1, starve_main, &r)), 2);
	assert_int_equal(r.sleep_rc, 0);
	assert_true(r.saw_flag);
	assert_true(r.waited < 1000 * MS);
}

/* A task spawned from a foreign thread must run while the only loop is busy
 * with a task that keeps yielding (the global queue is checked every 61
 * ticks). */
static void *set_flag(void *arg)
{
	struct starve_rec *r = arg;
	atomic_store(&r->flag, 1);
	return NULL;
}

static void test_yielding_task_does_not_starve_foreign_spawn(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct starve_rec r = { 0 };
	weft_task *y, *s;
	assert_int_equal(weft_runtime_spawn(rt, &y, NULL, yield_until_flag, &r), 0);
	while (!atomic_load(&r.started))
		msleep(1);
	assert_int_equal(weft_runtime_spawn(rt, &s, NULL, set_flag, &r), 0);
	assert_int_equal(weft_task_join(y, NULL), 0);
	assert_int_equal(weft_task_join(s, NULL), 0);
	weft_task_release(y);
	weft_task_release(s);
	weft_runtime_destroy(rt);
	print_message("yielder waited %llu ms for the foreign-spawned task\n",
		      (unsigned long long)(r.waited / MS));
	assert_true(r.saw_flag);
	assert_true(r.waited < 1000 * MS);
}

/* Same, with the work arriving through a future set by a foreign thread:
 * the woken task goes through the loop's remote queue. */
struct remote_rec {
	weft_future *f;
	_Atomic int started;
	_Atomic int got;
	struct starve_rec s;
};

static void *wait_then_flag(void *arg)
{
	struct remote_rec *r = arg;
	void *v;
	atomic_store(&r->started, 1);
	if (weft_future_wait(r->f, &v) == 0)
		atomic_store(&r->s.flag, 1);
	return NULL;
}

static void test_yielding_task_does_not_starve_foreign_wake(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	weft_runtime *rt;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct remote_rec r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(weft_future_create(&r.f), 0);
	weft_task *w, *y;
	assert_int_equal(weft_runtime_spawn(rt, &w, NULL, wait_then_flag, &r), 0);
	while (!atomic_load(&r.started))
		msleep(1);
	msleep(2);
	assert_int_equal(weft_runtime_spawn(rt, &y, NULL, yield_until_flag, &r.s), 0);
	while (!atomic_load(&r.s.started))
		msleep(1);
	assert_int_equal(weft_future_set_result(r.f, P(1)), 0);
	assert_int_equal(weft_task_join(y, NULL), 0);
	assert_int_equal(weft_task_join(w, NULL), 0);
	weft_task_release(y);
	weft_task_release(w);
	weft_runtime_destroy(rt);
	weft_future_release(r.f);
	assert_true(r.s.saw_flag);
	assert_true(r.s.waited < 1000 * MS);
}

/* More runnable tasks than the local run queue holds (256): the overflow
 * goes to the global queue and must still get to run while the others keep
 * yielding, on a single loop. */
#define OVERFLOW_TASKS 400

struct overflow_rec {
	_Atomic int started;
	_Atomic uint64_t all_started_at;
	uint64_t t0;
};

static void *overflow_yielder(void *arg)
{
	struct overflow_rec *r = arg;
	if (atomic_fetch_add(&r->started, 1) + 1 == OVERFLOW_TASKS)
		atomic_store(&r->all_started_at, weft_now_ns());
	uint64_t until = r->t0 + 3000 * MS;
	while (atomic_load(&r->started) < OVERFLOW_TASKS && weft_now_ns() < until)
		weft_yield();
	return NULL;
}

static void *overflow_main(void *arg)
{
	struct overflow_rec *r = arg;
	weft_task **ts = malloc(OVERFLOW_TASKS * sizeof(*ts));
	if (!ts)
		return P(1);
	r->t0 = weft_now_ns();
	for (int i = 0; i < OVERFLOW_TASKS; i++)
		if (weft_task_spawn(&ts[i], overflow_yielder, r))
			return P(1);
	for (int i = 0; i < OVERFLOW_TASKS; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	free(ts);
	return P(2);
}

static void test_yielding_tasks_do_not_starve_overflowed_tasks(void **state)
{
	(void)state;
	struct overflow_rec r;
	memset(&r, 0, sizeof(r));
	assert_int_equal(U(weft_test_run_loops(1, overflow_main, &r)), 2);
	assert_int_equal(atomic_load(&r.started), OVERFLOW_TASKS);
	uint64_t took = atomic_load(&r.all_started_at) - r.t0;
	print_message("all %d tasks started after %llu ms\n", OVERFLOW_TASKS,
		      (unsigned long long)(took / MS));
	/* Starvation means "never" (3 s here); plain builds take ~3 ms, TSan
	 * ~0.5 s because every yield is a TSan fiber switch. */
	assert_true(took < (WEFT_TEST_SANITIZED ? 2500 : 1000) * MS);
}

struct sleep_rec {
	int rc20, rc_ns, rc_ms0;
	uint64_t dt20, dt_ns;
};

static void *sleep_accuracy_main(void *arg)
{
	struct sleep_rec *r = arg;
	uint64_t t0 = weft_now_ns();
	r->rc20 = weft_sleep_ms(20);
	r->dt20 = weft_now_ns() - t0;
	t0 = weft_now_ns();
	r->rc_ns = weft_sleep(5 * MS + 123);
	r->dt_ns = weft_now_ns() - t0;
	r->rc_ms0 = weft_sleep_ms(0);
	return P(2);
}

static void test_sleep_accuracy(void **state)
{
	(void)state;
	struct sleep_rec r = { 0 };
	assert_int_equal(U(weft_test_run_loops(2, sleep_accuracy_main, &r)), 2);
	assert_int_equal(r.rc20, 0);
	assert_true(r.dt20 >= 20 * MS);
	assert_true(r.dt20 < 200 * MS);
	assert_int_equal(r.rc_ns, 0);
	assert_true(r.dt_ns >= 5 * MS + 123);
	assert_true(r.dt_ns < 200 * MS);
	assert_int_equal(r.rc_ms0, 0);
}

#define SLEEPERS 20

struct many_sleep {
	uint64_t want, got;
	int rc;
};

static void *timed_sleeper(void *arg)
{
	struct many_sleep *s = arg;
	uint64_t t0 = weft_now_ns();
	s->rc = weft_sleep(s->want);
	s->got = weft_now_ns() - t0;
	return NULL;
}

static void *many_sleepers_main(void *arg)
{
	struct many_sleep *s = arg;
	weft_task *ts[SLEEPERS];
	for (int i = 0; i < SLEEPERS; i++) {
		s[i].want = (uint64_t)((i * 7) % SLEEPERS + 1) * MS; /* shuffled */
		if (weft_task_spawn(&ts[i], timed_sleeper, &s[i]))
			return P(1);
	}
	for (int i = 0; i < SLEEPERS; i++) {
		weft_task_join(ts[i], NULL);
		weft_task_release(ts[i]);
	}
	return P(2);
}

static void test_many_sleepers_each_sleep_at_least_their_time(void **state)
{
	(void)state;
	struct many_sleep s[SLEEPERS];
	memset(s, 0, sizeof(s));
	assert_int_equal(U(weft_test_run_loops(2, many_sleepers_main, s)), 2);
	for (int i = 0; i < SLEEPERS; i++) {
		assert_int_equal(s[i].rc, 0);
		assert_true(s[i].got >= s[i].want);
		assert_true(s[i].got < s[i].want + 500 * MS);
	}
}

struct detached_rec {
	weft_future *f;
	_Atomic int ran;
};

static void *detached_body(void *arg)
{
	struct detached_rec *r = arg;
	weft_sleep_ms(1);
	weft_yield();
	atomic_store(&r->ran, 1);
	weft_future_set_result(r->f, P(0xde7));
	return NULL;
}

static void *detached_main(void *arg)
{
	struct detached_rec *r = arg;
	if (weft_task_spawn(NULL, detached_body, r))
		return P(1);
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = "detached";
	if (weft_task_spawn_ex(NULL, &tc, return_arg, NULL))
		return P(1);
	void *v = NULL;
	int rc = weft_future_wait(r->f, &v);
	return P(rc == 0 && U(v) == 0xde7 ? 2 : 3);
}

static void test_detached_spawn_runs_to_completion(void **state)
{
	(void)state;
	struct detached_rec r = { 0 };
	assert_int_equal(weft_future_create(&r.f), 0);
	assert_int_equal(U(weft_test_run_loops(2, detached_main, &r)), 2);
	assert_int_equal(atomic_load(&r.ran), 1);
	weft_future_release(r.f);
}

/* Many short tasks spawned in a burst, from a task, joined in reverse. */
#define BURST 2000

static void *burst_child(void *arg)
{
	if (U(arg) % 3 == 0)
		weft_yield();
	return P(U(arg) + 1);
}

static void *burst_main(void *arg)
{
	(void)arg;
	weft_task **ts = malloc(BURST * sizeof(*ts));
	if (!ts)
		return P(0);
	uintptr_t ok = 0;
	for (int i = 0; i < BURST; i++)
		if (weft_task_spawn(&ts[i], burst_child, P(i)))
			ts[i] = NULL;
	for (int i = BURST - 1; i >= 0; i--) {
		void *res = NULL;
		if (ts[i] && weft_task_join(ts[i], &res) == 0 && U(res) == (uintptr_t)i + 1)
			ok++;
		weft_task_release(ts[i]);
	}
	free(ts);
	return P(ok);
}

static void test_spawn_burst_all_joined(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(2, burst_main, NULL)), BURST);
}

struct always_rec {
	_Atomic int ran;
	int first_suspension;
};

static void *always_body(void *arg)
{
	struct always_rec *x = arg;
	atomic_fetch_add(&x->ran, 1);
	x->first_suspension = weft_sleep_ms(1000);
	return NULL;
}

static void *always_main(void *arg)
{
	struct always_rec *x = arg; /* x[0]: default, x[1]: always_run */
	weft_task *t[2];
	for (int i = 0; i < 2; i++) {
		weft_task_config c;
		weft_task_config_init(&c);
		c.pin = WEFT_PIN_CURRENT; /* queued behind us: cannot start yet */
		c.always_run = (unsigned)i;
		if (weft_task_spawn_ex(&t[i], &c, always_body, &x[i]) < 0)
			return P(1);
		weft_task_cancel(t[i]);
	}
	for (int i = 0; i < 2; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	return NULL;
}

static void *always_body_count(void *arg)
{
	atomic_fetch_add((_Atomic int *)arg, 1);
	return NULL;
}

/* A task cancelled before it starts never runs, unless always_run: then
 * its body runs (to release what it was handed) and its first suspension
 * point reports the cancellation. */
static void test_always_run(void **state)
{
	(void)state;
	struct always_rec x[2] = { { 0 }, { 0 } };
	assert_null(weft_test_run_loops(1, always_main, x));
	assert_int_equal(atomic_load(&x[0].ran), 0);
	assert_int_equal(atomic_load(&x[1].ran), 1);
	assert_int_equal(x[1].first_suspension, -ECANCELED);
}

/* ------------------------------------------------------------------------ */
/* tasks that cannot get a stack                                             */
/* ------------------------------------------------------------------------ */

struct nostack_rec {
	int capped;
	int spawn_always, join_always;
	int spawn_plain, join_plain;
	_Atomic int ran_always, ran_plain;
};

static void *nostack_always_body(void *arg)
{
	atomic_fetch_add(&((struct nostack_rec *)arg)->ran_always, 1);
	return NULL;
}

static void *nostack_plain_body(void *arg)
{
	atomic_fetch_add(&((struct nostack_rec *)arg)->ran_plain, 1);
	return NULL;
}

static weft_task_config always_cfg(void)
{
	weft_task_config c;
	weft_task_config_init(&c);
	c.always_run = 1;
	return c;
}

static void *nostack_main(void *arg)
{
	struct nostack_rec *x = arg;
	weft_task_config c = always_cfg();
	rlim_t old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	x->capped = old != 0;
	weft_task *t = NULL;
	x->spawn_always = weft_task_spawn_ex(&t, &c, nostack_always_body, x);
	x->join_always = t ? weft_task_join(t, NULL) : 1;
	weft_task_release(t);
	t = NULL;
	x->spawn_plain = weft_task_spawn(&t, nostack_plain_body, x);
	x->join_plain = t ? weft_task_join(t, NULL) : 1;
	weft_task_release(t);
	weft_test_uncap_as(old);
	return NULL;
}

/* A task spawned with always_run must run: when no stack can be had, its
 * spawn fails with -ENOMEM (the caller still holds what it meant to hand
 * over) instead of a task that finishes without running.  A plain task
 * gets its stack when it starts: its join reports -ENOMEM, its body never
 * ran. */
static void test_always_run_without_stack_fails_at_spawn(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_test_stackless_config(&cfg, 2);
	struct nostack_rec x = { 0 };
	weft_test_run_stackless(2, nostack_main, &x);
	WEFT_TEST_SKIP_UNCAPPED(x.capped);
	assert_int_equal(x.spawn_always, -ENOMEM);
	assert_int_equal(x.join_always, 1); /* no handle */
	assert_int_equal(atomic_load(&x.ran_always), 0);
	assert_int_equal(x.spawn_plain, 0);
	assert_int_equal(x.join_plain, -ENOMEM);
	assert_int_equal(atomic_load(&x.ran_plain), 0);

	/* From a foreign thread (no loop, so no stack pool) the same. */
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	weft_task_config c = always_cfg();
	weft_task *t = NULL;
	rlim_t old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	assert_true(old != 0); /* it worked in the run above */
	int r = weft_runtime_spawn(rt, &t, &c, nostack_always_body, &x);
	weft_test_uncap_as(old);
	assert_int_equal(r, -ENOMEM);
	assert_null(t);
	/* With room again it runs, on the stack it got at spawn. */
	assert_int_equal(weft_runtime_spawn(rt, &t, &c, nostack_always_body, &x), 0);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
	assert_int_equal(atomic_load(&x.ran_always), 1);
	weft_runtime_destroy(rt);
}

enum { ALWAYS_MANY = 2048 };

static void *always_many_main(void *arg)
{
	_Atomic int *ran = arg;
	weft_task_config c = always_cfg();
	weft_task *t[64];
	for (int i = 0; i < ALWAYS_MANY; i += 64) {
		for (int j = 0; j < 64; j++) {
			c.pin = j % 3 == 0 ? WEFT_PIN_CURRENT : WEFT_PIN_NONE;
			if (weft_task_spawn_ex(&t[j], &c, always_body_count, ran) < 0)
				return P(1);
		}
		for (int j = 0; j < 64; j++) {
			weft_task_join(t[j], NULL);
			weft_task_release(t[j]);
		}
	}
	return NULL;
}

/* always_run tasks take their stacks at spawn, from the spawning loop's
 * pool or (foreign spawns) straight from the runtime, and give them back
 * wherever they exit: none is lost or left live. */
static void test_always_run_stacks_balance(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	_Atomic int ran = 0;
	weft_task_config c = always_cfg();
	weft_task *f[16];
	for (int i = 0; i < 16; i++)
		assert_int_equal(weft_runtime_spawn(rt, &f[i], &c, always_body_count, &ran), 0);
	void *res = NULL;
	assert_int_equal(weft_runtime_call(rt, always_many_main, &ran, &res), 0);
	assert_null(res);
	for (int i = 0; i < 16; i++) {
		assert_int_equal(weft_task_join(f[i], NULL), 0);
		weft_task_release(f[i]);
	}
	assert_int_equal(atomic_load(&ran), ALWAYS_MANY + 16);
	weft_runtime_shutdown(rt);
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.stacks_guarded, 0);
	assert_int_equal(st.stacks_slab, 0);
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* floating-point control state                                              */
/* ------------------------------------------------------------------------ */

/* The control state a program sets with -ffast-math (flush-to-zero,
 * denormals-are-zero) plus a rounding mode (and on x86_64 an x87
 * precision), as one comparable value; and its status flags. */
#if defined(__x86_64__)
#define FP_STATUS 0x3full /* MXCSR exception flags */
static uint64_t fp_get(void)
{
	uint32_t csr;
	uint16_t cw;
	__asm__ volatile("stmxcsr %0" : "=m"(csr));
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return (uint64_t)cw << 32 | csr;
}
static void fp_set(uint64_t v)
{
	uint32_t csr = (uint32_t)v;
	uint16_t cw = (uint16_t)(v >> 32);
	__asm__ volatile("ldmxcsr %0" ::"m"(csr));
	__asm__ volatile("fldcw %0" ::"m"(cw));
}
/* FTZ | DAZ | round toward zero; x87: 53-bit precision */
static uint64_t fp_fast(uint64_t v)
{
	return ((v & ~0xffff00000000ull) | 0x027full << 32) | 0x8040 | 0x6000;
}
#elif defined(__aarch64__)
#define FP_STATUS 0ull /* FPSR holds them, not FPCR */
static uint64_t fp_get(void)
{
	uint64_t v;
	__asm__ volatile("mrs %0, fpcr" : "=r"(v));
	return v;
}
static void fp_set(uint64_t v)
{
	__asm__ volatile("msr fpcr, %0" ::"r"(v));
}
/* FZ | round toward zero */
static uint64_t fp_fast(uint64_t v)
{
	return v | 1ull << 24 | 3ull << 22;
}
#endif

struct fp_rec {
	uint64_t seen;
	float product;
};

static volatile float fp_tiny = 1e-20f;

static void *fp_child(void *arg)
{
	struct fp_rec *r = arg;
	r->seen = fp_get();
	r->product = fp_tiny * fp_tiny; /* 1e-40: a denormal, or 0 when flushed */
	return NULL;
}

/* Spawn fn(arg) with `pin` and join it. */
static void finish_one(weft_fn fn, void *arg, int pin)
{
	weft_task_config c;
	weft_task_config_init(&c);
	c.pin = pin;
	weft_task *t = NULL;
	if (weft_task_spawn_ex(&t, &c, fn, arg) == 0) {
		weft_task_join(t, NULL);
		weft_task_release(t);
	}
}

enum { FP_PLAIN, FP_FAST, FP_FAST_OTHER_LOOP, FP_AFTER_RESTORE, FP_N };

struct fp_main_rec {
	uint64_t base, fast;
	struct fp_rec r[FP_N];
};

static void *fp_main(void *arg)
{
	struct fp_main_rec *x = arg;
	uint64_t saved = fp_get();
	x->base = saved & ~FP_STATUS;
	finish_one(fp_child, &x->r[FP_PLAIN], WEFT_PIN_NONE);
	x->fast = fp_fast(x->base);
	fp_set(x->fast);
	volatile float third = 1.0f / (fp_tiny + 2.0f); /* sets status flags */
	(void)third;
	finish_one(fp_child, &x->r[FP_FAST], WEFT_PIN_CURRENT);
	finish_one(fp_child, &x->r[FP_FAST_OTHER_LOOP], 1 - weft_loop_index());
	fp_set(saved);
	finish_one(fp_child, &x->r[FP_AFTER_RESTORE], WEFT_PIN_NONE);
	return NULL;
}

/* A new task starts with its spawner's floating-point control state
 * (flush-to-zero, denormals-are-zero, rounding, x87 precision; FPCR on
 * aarch64), on whichever loop it runs, with status flags clear; a foreign
 * thread's spawn passes on that thread's state. */
static void test_spawn_inherits_fp_control_state(void **state)
{
	(void)state;
	struct fp_main_rec x;
	memset(&x, 0, sizeof(x));
	weft_test_run_loops(2, fp_main, &x);
	assert_true(x.fast != x.base);
	assert_int_equal(x.r[FP_PLAIN].seen, x.base);
	assert_true(x.r[FP_PLAIN].product != 0.0f);
	for (int i = FP_FAST; i <= FP_FAST_OTHER_LOOP; i++) {
		print_message("child %d: fp state %#llx (spawner %#llx)\n", i,
			      (unsigned long long)x.r[i].seen, (unsigned long long)x.fast);
		assert_int_equal(x.r[i].seen, x.fast);
		assert_true(x.r[i].product == 0.0f);
	}
	assert_int_equal(x.r[FP_AFTER_RESTORE].seen, x.base);
	assert_true(x.r[FP_AFTER_RESTORE].product != 0.0f);

	/* From a foreign thread: that thread's state. */
	weft_runtime *rt = start_rt(2);
	uint64_t saved = fp_get();
	fp_set(fp_fast(saved & ~FP_STATUS));
	struct fp_rec r = { 0 };
	weft_task *t = NULL;
	int sr = weft_runtime_spawn(rt, &t, NULL, fp_child, &r);
	fp_set(saved);
	assert_int_equal(sr, 0);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
	weft_runtime_destroy(rt);
	assert_int_equal(r.seen, fp_fast(saved & ~FP_STATUS));
	assert_true(r.product == 0.0f);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_spawn_inherits_fp_control_state),
	cmocka_unit_test(test_always_run),
	cmocka_unit_test(test_always_run_without_stack_fails_at_spawn),
	cmocka_unit_test(test_always_run_stacks_balance),
	cmocka_unit_test(test_join_returns_result),
	cmocka_unit_test(test_join_twice_ealready),
	cmocka_unit_test(test_join_yourself_edeadlk),
	cmocka_unit_test(test_concurrent_join_ebusy),
	cmocka_unit_test(test_foreign_join_then_task_join_ebusy),
	cmocka_unit_test(test_join_timeout_then_join_gets_result),
	cmocka_unit_test(test_cancelled_joiner_leaves_result_for_later_join),
	cmocka_unit_test(test_cancel_sleeping_task),
	cmocka_unit_test(test_cancel_before_start_never_runs),
	cmocka_unit_test(test_cancel_before_start_from_foreign_thread),
	cmocka_unit_test(test_cancel_after_done_ealready),
	cmocka_unit_test(test_sticky_cancellation),
	cmocka_unit_test(test_self_cancel),
	cmocka_unit_test(test_cancel_ignored_without_suspension_point),
	cmocka_unit_test(test_shield_defers_cancellation),
	cmocka_unit_test(test_shield_nests_and_delivers_after_outermost_end),
	cmocka_unit_test(test_shield_end_without_begin_einval),
	cmocka_unit_test(test_suspension_points_outside_task_eperm),
	cmocka_unit_test(test_pinned_tasks_stay_on_their_loop),
	cmocka_unit_test(test_pinned_spawn_from_foreign_thread),
	cmocka_unit_test(test_bad_pin_and_task_config_einval),
	cmocka_unit_test(test_per_task_stack_size),
	cmocka_unit_test(test_per_runtime_stack_size),
	cmocka_unit_test(test_absurd_stack_size_fails_cleanly),
	cmocka_unit_test(test_names_and_ids),
	cmocka_unit_test(test_task_current),
	cmocka_unit_test(test_handle_ref_across_threads),
	cmocka_unit_test(test_yield_alternates_two_tasks),
	cmocka_unit_test(test_yielding_task_does_not_starve_sleeper),
	cmocka_unit_test(test_yielding_task_does_not_starve_foreign_spawn),
	cmocka_unit_test(test_yielding_task_does_not_starve_foreign_wake),
	cmocka_unit_test(test_yielding_tasks_do_not_starve_overflowed_tasks),
	cmocka_unit_test(test_sleep_accuracy),
	cmocka_unit_test(test_many_sleepers_each_sleep_at_least_their_time),
	cmocka_unit_test(test_detached_spawn_runs_to_completion),
	cmocka_unit_test(test_spawn_burst_all_joined),
};

WEFT_TEST_MAIN(tests)
