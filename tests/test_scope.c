/*
 * Deadline scopes: every suspension point inside an expired scope returns
 * -ETIMEDOUT; scopes nest (the earliest deadline wins, and exit reports
 * which scopes fired); leaving a scope restores the outer deadline.
 * Results are recorded in tasks and asserted on the test's stack.
 */
#include "weft_test.h"

#include <stdatomic.h>

struct rec {
	int r[8];
	int fired[4];
	uint64_t dt;
};

static void *sleep_in_scope(void *arg)
{
	struct rec *x = arg;
	weft_scope s;
	uint64_t t0 = weft_now_ns();
	x->r[0] = weft_scope_enter(&s, 10 * MS);
	x->r[1] = weft_sleep_ms(1000);
	x->dt = weft_now_ns() - t0;
	x->r[2] = weft_sleep_ms(1);  /* sticky inside the scope */
	x->r[3] = weft_yield();
	x->fired[0] = weft_scope_exit(&s);
	x->r[4] = weft_sleep_ms(1);  /* outside again: sleeps normally */
	return NULL;
}

static void test_scope_times_out_sleep_and_is_sticky(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(1, sleep_in_scope, &x);
	assert_int_equal(x.r[0], 0);
	assert_int_equal(x.r[1], -ETIMEDOUT);
	assert_true(x.dt >= 10 * MS && x.dt < 500 * MS);
	assert_int_equal(x.r[2], -ETIMEDOUT);
	assert_int_equal(x.r[3], -ETIMEDOUT);
	assert_int_equal(x.fired[0], 1);
	assert_int_equal(x.r[4], 0);
}

static void *scope_not_reached(void *arg)
{
	struct rec *x = arg;
	weft_scope s;
	x->r[0] = weft_scope_enter(&s, 1000 * MS);
	x->r[1] = weft_sleep_ms(2);
	x->fired[0] = weft_scope_exit(&s);
	return NULL;
}

static void test_scope_not_expired_reports_zero(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(1, scope_not_reached, &x);
	assert_int_equal(x.r[1], 0);
	assert_int_equal(x.fired[0], 0);
}

static void *nested_inner_first(void *arg)
{
	struct rec *x = arg;
	weft_scope outer, inner;
	weft_scope_enter(&outer, 1000 * MS);
	weft_scope_enter(&inner, 5 * MS);
	x->r[0] = weft_sleep_ms(500);
	x->fired[0] = weft_scope_exit(&inner);
	x->r[1] = weft_sleep_ms(1); /* the outer scope still has time */
	x->fired[1] = weft_scope_exit(&outer);
	return NULL;
}

static void *nested_outer_first(void *arg)
{
	struct rec *x = arg;
	weft_scope outer, inner;
	weft_scope_enter(&outer, 5 * MS);
	weft_scope_enter(&inner, 1000 * MS);
	x->r[0] = weft_sleep_ms(500);
	x->fired[0] = weft_scope_exit(&inner);
	x->r[1] = weft_sleep_ms(1); /* still inside the expired outer scope */
	x->fired[1] = weft_scope_exit(&outer);
	return NULL;
}

static void test_nested_scopes_earliest_wins(void **state)
{
	(void)state;
	struct rec a = { 0 }, b = { 0 };
	weft_test_run_loops(2, nested_inner_first, &a);
	assert_int_equal(a.r[0], -ETIMEDOUT);
	assert_int_equal(a.fired[0], 1);
	assert_int_equal(a.r[1], 0);
	assert_int_equal(a.fired[1], 0);

	weft_test_run_loops(2, nested_outer_first, &b);
	assert_int_equal(b.r[0], -ETIMEDOUT);
	assert_int_equal(b.fired[0], 0); /* its own deadline never came */
	assert_int_equal(b.r[1], -ETIMEDOUT);
	assert_int_equal(b.fired[1], 1);
}

static void *never_done(void *arg)
{
	weft_future *f = arg;
	void *v;
	return P(weft_future_wait(f, &v) == 0 ? U(v) : 0);
}

static void *waits_in_scope(void *arg)
{
	struct rec *x = arg;
	weft_future *f;
	weft_task *t;
	if (weft_future_create(&f) || weft_task_spawn(&t, never_done, weft_future_ref(f)))
		return P(1);
	weft_scope s;
	weft_scope_enter(&s, 5 * MS);
	void *v;
	x->r[0] = weft_future_wait(f, &v);   /* times out, future untouched */
	x->fired[0] = weft_scope_exit(&s);
	weft_scope_enter(&s, 5 * MS);
	x->r[1] = weft_task_join(t, NULL);   /* a join times out too */
	x->fired[1] = weft_scope_exit(&s);
	x->r[2] = weft_future_set_result(f, P(77)); /* still pending: sets */
	void *res = NULL;
	x->r[3] = weft_task_join(t, &res);   /* the result stayed for us */
	x->r[4] = (int)U(res);
	weft_task_release(t);
	weft_future_release(f);
	weft_future_release(f);
	return NULL;
}

static void test_scope_bounds_future_wait_and_join(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, waits_in_scope, &x);
	assert_int_equal(x.r[0], -ETIMEDOUT);
	assert_int_equal(x.fired[0], 1);
	assert_int_equal(x.r[1], -ETIMEDOUT);
	assert_int_equal(x.fired[1], 1);
	assert_int_equal(x.r[2], 0);
	assert_int_equal(x.r[3], 0);
	assert_int_equal(x.r[4], 77);
}

static void *misuse(void *arg)
{
	struct rec *x = arg;
	weft_scope a, b;
	weft_scope_enter(&a, 1000 * MS);
	weft_scope_enter(&b, 1000 * MS);
	x->r[0] = weft_scope_exit(&a);      /* not the innermost */
	x->r[1] = weft_scope_exit(&b);
	x->r[2] = weft_scope_exit(&a);
	x->r[3] = weft_scope_exit(&a);      /* already left */
	x->r[4] = weft_scope_enter(NULL, 1);
	return NULL;
}

static void test_scope_misuse(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(1, misuse, &x);
	assert_int_equal(x.r[0], -EINVAL);
	assert_int_equal(x.r[1], 0);
	assert_int_equal(x.r[2], 0);
	assert_int_equal(x.r[3], -EINVAL);
	assert_int_equal(x.r[4], -EINVAL);
	weft_scope s;
	assert_int_equal(weft_scope_enter(&s, 1), -EPERM); /* not a task */
}

static void *cancel_beats_scope(void *arg)
{
	struct rec *x = arg;
	weft_scope s;
	weft_scope_enter(&s, 1 * MS);
	weft_task_cancel(weft_task_current());
	x->r[0] = weft_sleep_ms(100);
	x->fired[0] = weft_scope_exit(&s);
	return NULL;
}

static void test_cancellation_takes_precedence(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	weft_run(&cfg, cancel_beats_scope, &x, NULL);
	assert_int_equal(x.r[0], -ECANCELED);
	assert_int_equal(x.fired[0], 0);
}

/* A scope follows its task across loops: many stealable tasks, each with
 * its own deadline, all time out close to it wherever they run. */
#define MIGRANTS 64
static _Atomic int migrant_ok;

static void *migrant(void *arg)
{
	uint64_t ms = 2 + U(arg) % 8;
	weft_scope s;
	uint64_t t0 = weft_now_ns();
	weft_scope_enter(&s, ms * MS);
	int r = 0;
	while (r == 0) {
		for (volatile int i = 0; i < 2000; i++)
			;
		r = weft_yield();
	}
	uint64_t dt = weft_now_ns() - t0;
	if (r == -ETIMEDOUT && weft_scope_exit(&s) == 1 && dt >= ms * MS)
		atomic_fetch_add(&migrant_ok, 1);
	return NULL;
}

static void *spawn_migrants(void *arg)
{
	(void)arg;
	weft_task *t[MIGRANTS];
	for (int i = 0; i < MIGRANTS; i++)
		if (weft_task_spawn(&t[i], migrant, P(i)))
			return P(1);
	for (int i = 0; i < MIGRANTS; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	return NULL;
}

static void test_scopes_on_migrating_tasks(void **state)
{
	(void)state;
	atomic_store(&migrant_ok, 0);
	weft_test_run_loops(2, spawn_migrants, NULL);
	assert_int_equal(atomic_load(&migrant_ok), MIGRANTS);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_scope_times_out_sleep_and_is_sticky),
	cmocka_unit_test(test_scope_not_expired_reports_zero),
	cmocka_unit_test(test_nested_scopes_earliest_wins),
	cmocka_unit_test(test_scope_bounds_future_wait_and_join),
	cmocka_unit_test(test_scope_misuse),
	cmocka_unit_test(test_cancellation_takes_precedence),
	cmocka_unit_test(test_scopes_on_migrating_tasks),
};

WEFT_TEST_MAIN(tests)
