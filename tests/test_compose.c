/*
 * gather / wait / as_completed against asyncio's semantics: gather order,
 * first error vs return_exceptions, cancelling a gather cancels its
 * children, wait modes, as_completed order.  Asserted on the test's stack.
 */
#include "weft_test.h"

#include <stdatomic.h>

static void *sleep_then_value(void *arg)
{
	uintptr_t ms = U(arg);
	int r = weft_sleep_ms(ms);
	return r == 0 ? P(ms * 10) : P(r == -ECANCELED ? 1 : 2);
}

static void *sleep_then_fail(void *arg)
{
	weft_sleep_ms(U(arg));
	weft_task_fail(-EIO);
	return P(99);
}

struct rec {
	int rc, rc2, errs[4];
	void *res[4];
	bool done[4];
	int order[4];
};

static void spawn3(weft_task **t, weft_fn a, uintptr_t ma, weft_fn b, uintptr_t mb, weft_fn c,
		   uintptr_t mc)
{
	weft_task_spawn(&t[0], a, P(ma));
	weft_task_spawn(&t[1], b, P(mb));
	weft_task_spawn(&t[2], c, P(mc));
}

static void release3(weft_task **t)
{
	for (int i = 0; i < 3; i++)
		weft_task_release(t[i]);
}

static void *gather_in_order(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 30, sleep_then_value, 10, sleep_then_value, 20);
	x->rc = weft_gather(t, 3, x->res, NULL);
	release3(t);
	return NULL;
}

static void test_gather_results_in_input_order(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, gather_in_order, &x);
	assert_int_equal(x.rc, 0);
	assert_int_equal(U(x.res[0]), 300);
	assert_int_equal(U(x.res[1]), 100);
	assert_int_equal(U(x.res[2]), 200);
}

static void *gather_first_error(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 200, sleep_then_fail, 5, sleep_then_value, 200);
	x->rc = weft_gather(t, 3, x->res, NULL);
	for (int i = 0; i < 3; i++)
		x->done[i] = weft_task_done(t[i]);
	x->rc2 = weft_task_join(t[0], &x->res[3]); /* siblings kept running */
	weft_task_join(t[2], NULL);
	release3(t);
	return NULL;
}

static void test_gather_reports_first_error_siblings_keep_running(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, gather_first_error, &x);
	assert_int_equal(x.rc, -EIO);
	assert_int_equal(U(x.res[1]), 99); /* the failed task's result */
	assert_false(x.done[0]);
	assert_false(x.done[2]);
	assert_int_equal(x.rc2, 0);
	assert_int_equal(U(x.res[3]), 2000);
}

static void *gather_return_exceptions(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 10, sleep_then_fail, 5, sleep_then_value, 1);
	x->rc = weft_gather(t, 3, x->res, x->errs);
	release3(t);
	return NULL;
}

static void test_gather_return_exceptions_mode(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, gather_return_exceptions, &x);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.errs[0], 0);
	assert_int_equal(x.errs[1], -EIO);
	assert_int_equal(x.errs[2], 0);
	assert_int_equal(U(x.res[0]), 100);
	assert_int_equal(U(x.res[1]), 99);
	assert_int_equal(U(x.res[2]), 10);
}

static weft_task *gather_kids[3];
/* Set once the waiting task has spawned what it waits on: a task cancelled
 * before it starts never runs, so the tests cancel only after this. */
static _Atomic int waiter_ready;

static void await_waiter_ready(void)
{
	for (int i = 0; i < 2000 && !atomic_load(&waiter_ready); i++)
		weft_sleep_ms(1);
	weft_sleep_ms(5); /* and is parked in its wait */
}

static void *gatherer(void *arg)
{
	struct rec *x = arg;
	spawn3(gather_kids, sleep_then_value, 1000, sleep_then_value, 1000, sleep_then_value, 2);
	atomic_store(&waiter_ready, 1);
	x->rc = weft_gather(gather_kids, 3, NULL, NULL);
	return NULL;
}

static void *cancel_a_gather(void *arg)
{
	struct rec *x = arg;
	weft_task *g;
	atomic_store(&waiter_ready, 0);
	weft_task_spawn(&g, gatherer, x);
	await_waiter_ready();
	/* The short child must have finished (a fixed 5 ms was not enough
	 * for a loaded TSan run). */
	for (int i = 0; i < 5000 && !weft_task_done(gather_kids[2]); i++)
		weft_sleep_ms(1);
	weft_task_cancel(g);
	weft_task_join(g, NULL);
	weft_task_release(g);
	for (int i = 0; i < 3; i++) {
		weft_task_join(gather_kids[i], &x->res[i]);
		weft_task_release(gather_kids[i]);
	}
	return NULL;
}

static void test_cancelling_a_gather_cancels_its_children(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, cancel_a_gather, &x);
	assert_int_equal(x.rc, -ECANCELED);
	assert_int_equal(U(x.res[0]), 1); /* saw -ECANCELED */
	assert_int_equal(U(x.res[1]), 1);
	assert_int_equal(U(x.res[2]), 20); /* had finished */
}

static void *wait_modes(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 40, sleep_then_value, 5, sleep_then_fail, 15);
	x->errs[0] = weft_wait(t, 3, WEFT_FIRST_COMPLETED);
	x->done[0] = weft_task_done(t[1]);
	x->errs[1] = weft_wait(t, 3, WEFT_FIRST_EXCEPTION);
	x->done[1] = weft_task_done(t[2]) && !weft_task_done(t[0]);
	x->errs[2] = weft_wait(t, 3, WEFT_ALL_COMPLETED);
	x->errs[3] = weft_wait(t, 3, 0);
	for (int i = 0; i < 3; i++)
		weft_task_join(t[i], NULL);
	release3(t);
	return NULL;
}

static void test_wait_modes(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, wait_modes, &x);
	assert_int_equal(x.errs[0], 1);
	assert_true(x.done[0]);
	assert_int_equal(x.errs[1], 2);
	assert_true(x.done[1]);
	assert_int_equal(x.errs[2], 3);
	assert_int_equal(x.errs[3], -EINVAL);
}

static void *wait_with_scope(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 100, sleep_then_value, 100, sleep_then_value, 100);
	weft_scope s;
	weft_scope_enter(&s, 5 * MS);
	x->rc = weft_wait(t, 3, WEFT_ALL_COMPLETED);
	x->rc2 = weft_scope_exit(&s);
	for (int i = 0; i < 3; i++) {
		x->errs[i] = weft_task_join(t[i], &x->res[i]); /* still running */
	}
	release3(t);
	return NULL;
}

static void test_wait_timeout_is_a_scope_tasks_keep_running(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, wait_with_scope, &x);
	assert_int_equal(x.rc, -ETIMEDOUT);
	assert_int_equal(x.rc2, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(x.errs[i], 0);
		assert_int_equal(U(x.res[i]), 1000);
	}
}

static void *completion_order(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 45, sleep_then_value, 5, sleep_then_value, 25);
	weft_as_completed it;
	if (weft_as_completed_init(&it, t, 3))
		return P(1);
	for (int i = 0; i < 3; i++)
		x->order[i] = weft_as_completed_next(&it);
	x->order[3] = weft_as_completed_next(&it);
	weft_as_completed_done(&it);
	for (int i = 0; i < 3; i++)
		weft_task_join(t[i], NULL);
	release3(t);
	return NULL;
}

static void test_as_completed_order(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, completion_order, &x);
	assert_int_equal(x.order[0], 1);
	assert_int_equal(x.order[1], 2);
	assert_int_equal(x.order[2], 0);
	assert_int_equal(x.order[3], -ENOENT);
}

static void *misuse(void *arg)
{
	struct rec *x = arg;
	weft_task *self = weft_task_current();
	x->errs[0] = weft_wait(&self, 1, WEFT_ALL_COMPLETED);
	x->errs[1] = weft_gather(NULL, 2, NULL, NULL);
	x->errs[2] = weft_as_completed_init(NULL, NULL, 0);
	return NULL;
}

static void test_misuse(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(1, misuse, &x);
	assert_int_equal(x.errs[0], -EINVAL); /* waiting on yourself */
	assert_int_equal(x.errs[1], -EINVAL);
	assert_int_equal(x.errs[2], -EINVAL);
	weft_task *none = NULL;
	assert_int_equal(weft_wait(&none, 0, WEFT_ALL_COMPLETED), -EPERM);
}

/* 200 tasks on 2 loops finishing in scrambled order: as_completed returns
 * each exactly once; gather of the same shape returns every result. */
#define MANY 200
static void *scrambled(void *arg)
{
	weft_sleep(((U(arg) * 2654435761u) % 3000) * 1000);
	return arg;
}

static void *many(void *arg)
{
	int *bad = arg;
	weft_task *t[MANY];
	for (uintptr_t i = 0; i < MANY; i++)
		weft_task_spawn(&t[i], scrambled, P(i));
	weft_as_completed it;
	weft_as_completed_init(&it, t, MANY);
	int seen[MANY] = { 0 }, k;
	while ((k = weft_as_completed_next(&it)) >= 0)
		seen[k]++;
	weft_as_completed_done(&it);
	for (int i = 0; i < MANY; i++)
		*bad += seen[i] != 1;
	void *res[MANY];
	if (weft_gather(t, MANY, res, NULL) != 0)
		(*bad)++;
	for (uintptr_t i = 0; i < MANY; i++) {
		*bad += U(res[i]) != i;
		weft_task_release(t[i]);
	}
	return NULL;
}

static void test_many_tasks_across_loops(void **state)
{
	(void)state;
	int bad = 0;
	weft_test_run_loops(2, many, &bad);
	assert_int_equal(bad, 0);
}

static void *stubborn(void *arg)
{
	(void)arg;
	weft_shield_begin();
	weft_sleep_ms(20); /* ignores the cancellation */
	weft_shield_end();
	return P(55);
}

static void *wait_for_cases(void *arg)
{
	struct rec *x = arg;
	weft_task *t[3];
	spawn3(t, sleep_then_value, 1000, sleep_then_value, 2, stubborn, 0);
	x->errs[0] = weft_wait_for(t[0], &x->res[0], 5 * MS);    /* cancelled */
	x->done[0] = weft_task_done(t[0]);
	x->errs[1] = weft_wait_for(t[1], &x->res[1], 500 * MS);  /* in time */
	x->errs[2] = weft_wait_for(t[2], &x->res[2], 5 * MS);    /* finishes anyway */
	x->errs[3] = weft_task_join(t[0], NULL);                 /* already handed over */
	release3(t);
	return NULL;
}

static void test_wait_for_cancels_on_timeout(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, wait_for_cases, &x);
	assert_int_equal(x.errs[0], -ETIMEDOUT);
	assert_true(x.done[0]);
	assert_int_equal(U(x.res[0]), 1); /* it saw -ECANCELED */
	assert_int_equal(x.errs[1], 0);
	assert_int_equal(U(x.res[1]), 20);
	assert_int_equal(x.errs[2], 0);
	assert_int_equal(U(x.res[2]), 55);
	assert_int_equal(x.errs[3], -EALREADY);
}

static weft_task *wf_inner;

static void *wait_for_caller(void *arg)
{
	struct rec *x = arg;
	weft_task_spawn(&wf_inner, sleep_then_value, P(1000));
	atomic_store(&waiter_ready, 1);
	x->rc = weft_wait_for(wf_inner, &x->res[0], 5000 * MS);
	x->done[0] = weft_task_done(wf_inner);
	return NULL;
}

static void *cancel_wait_for_caller(void *arg)
{
	weft_task *c;
	atomic_store(&waiter_ready, 0);
	weft_task_spawn(&c, wait_for_caller, arg);
	await_waiter_ready();
	weft_task_cancel(c);
	weft_task_join(c, NULL);
	weft_task_release(c);
	weft_task_release(wf_inner);
	return NULL;
}

static void test_cancelling_wait_for_cancels_the_task(void **state)
{
	(void)state;
	struct rec x = { 0 };
	weft_test_run_loops(2, cancel_wait_for_caller, &x);
	assert_int_equal(x.rc, -ECANCELED);
	assert_true(x.done[0]);             /* awaited before returning */
	assert_int_equal(U(x.res[0]), 1);   /* it saw -ECANCELED; result handed over */
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_gather_results_in_input_order),
	cmocka_unit_test(test_gather_reports_first_error_siblings_keep_running),
	cmocka_unit_test(test_gather_return_exceptions_mode),
	cmocka_unit_test(test_cancelling_a_gather_cancels_its_children),
	cmocka_unit_test(test_wait_modes),
	cmocka_unit_test(test_wait_timeout_is_a_scope_tasks_keep_running),
	cmocka_unit_test(test_as_completed_order),
	cmocka_unit_test(test_misuse),
	cmocka_unit_test(test_wait_for_cancels_on_timeout),
	cmocka_unit_test(test_cancelling_wait_for_cancels_the_task),
	cmocka_unit_test(test_many_tasks_across_loops),
};

WEFT_TEST_MAIN(tests)
