/*
 * Blocking offload (asyncio.to_thread): results, pool bounds, idle exit,
 * and what cancellation and deadlines mean for queued and running calls.
 * Recorded in tasks and pool threads, asserted on the test's stack.
 */
#include "weft_test.h"

#include <pthread.h>
#include <stdatomic.h>

static _Atomic int ran, cleaned;
static _Atomic uintptr_t cleaned_value;

static void *slow(void *arg)
{
	atomic_fetch_add(&ran, 1);
	msleep((unsigned)U(arg)); /* really blocks its thread */
	return P(42);
}

static void cleanup(void *result, void *arg)
{
	(void)arg;
	atomic_store(&cleaned_value, U(result));
	atomic_fetch_add(&cleaned, 1);
}

static void reset(void)
{
	atomic_store(&ran, 0);
	atomic_store(&cleaned, 0);
	atomic_store(&cleaned_value, 0);
}

static void *run_cfg(unsigned threads, unsigned idle_ms, weft_fn fn, void *arg)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	if (threads)
		cfg.offload_threads = threads;
	if (idle_ms)
		cfg.offload_idle_ms = idle_ms;
	void *res = NULL;
	assert_int_equal(weft_run(&cfg, fn, arg, &res), 0);
	return res;
}

static void *square(void *arg)
{
	uintptr_t x = U(arg);
	return P(x * x);
}

static void *offload_square(void *arg)
{
	void *r = NULL;
	int rc = weft_offload(square, arg, &r);
	return rc == 0 ? r : P(-1);
}

static void *many_offloads(void *arg)
{
	(void)arg;
	enum { N = 200 };
	weft_task *t[N];
	for (uintptr_t i = 0; i < N; i++)
		if (weft_task_spawn(&t[i], offload_square, P(i)))
			return P(1);
	uintptr_t bad = 0;
	for (uintptr_t i = 0; i < N; i++) {
		void *r;
		if (weft_task_join(t[i], &r) || U(r) != i * i)
			bad++;
		weft_task_release(t[i]);
	}
	return P(bad);
}

static void test_results_come_back(void **state)
{
	(void)state;
	assert_int_equal(U(run_cfg(4, 0, many_offloads, NULL)), 0);
}

static void *offload_slow_task(void *arg)
{
	void *r = NULL;
	int rc = weft_offload(slow, arg, &r);
	return rc == 0 ? r : P(rc);
}

struct timing {
	uint64_t dt;
	int rc[4];
};

static void *four_slow_calls(void *arg)
{
	struct timing *x = arg;
	weft_task *t[4];
	uint64_t t0 = weft_now_ns();
	for (int i = 0; i < 4; i++)
		weft_task_spawn(&t[i], offload_slow_task, P(50));
	for (int i = 0; i < 4; i++) {
		void *r;
		weft_task_join(t[i], &r);
		x->rc[i] = (int)(intptr_t)r;
		weft_task_release(t[i]);
	}
	x->dt = weft_now_ns() - t0;
	return NULL;
}

static void test_pool_runs_calls_in_parallel_up_to_its_bound(void **state)
{
	(void)state;
	struct timing wide = { 0 }, narrow = { 0 };
	run_cfg(4, 0, four_slow_calls, &wide);
	run_cfg(2, 0, four_slow_calls, &narrow);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(wide.rc[i], 42);
		assert_int_equal(narrow.rc[i], 42);
	}
	print_message("4 x 50 ms: 4 threads %llu ms, 2 threads %llu ms\n",
		      (unsigned long long)(wide.dt / MS), (unsigned long long)(narrow.dt / MS));
	assert_true(wide.dt < 150 * MS);   /* overlapped */
	assert_true(narrow.dt >= 100 * MS); /* two rounds */
}

struct cancel_rec {
	int rc_running, rc_queued, rc_scope;
	int scope_fired;
};

static void *wait_running(void *arg)
{
	struct cancel_rec *x = arg;
	x->rc_running = weft_offload_ex(slow, P(60), cleanup, NULL);
	return NULL;
}

static void *cancel_running_call(void *arg)
{
	weft_task *t;
	if (weft_task_spawn(&t, wait_running, arg))
		return P(1);
	weft_sleep_ms(15); /* the call is running on its thread */
	weft_task_cancel(t);
	weft_task_join(t, NULL);
	weft_task_release(t);
	return NULL;
}

static void test_cancel_while_running_hands_result_to_cleanup(void **state)
{
	(void)state;
	reset();
	struct cancel_rec x = { 0 };
	run_cfg(2, 0, cancel_running_call, &x);
	/* weft_run returned: shutdown waited for the running call. */
	assert_int_equal(x.rc_running, -ECANCELED);
	assert_int_equal(atomic_load(&ran), 1);
	assert_int_equal(atomic_load(&cleaned), 1);
	assert_int_equal(atomic_load(&cleaned_value), 42);
}

static void *wait_queued(void *arg)
{
	struct cancel_rec *x = arg;
	x->rc_queued = weft_offload_ex(slow, P(1), cleanup, NULL);
	return NULL;
}

static void *busy_caller(void *arg)
{
	(void)arg;
	weft_offload(slow, P(60), NULL);
	return NULL;
}

static void *cancel_queued_call(void *arg)
{
	weft_task *busy, *t;
	if (weft_task_spawn(&busy, busy_caller, NULL))
		return P(1);
	weft_sleep_ms(10); /* the only pool thread is busy */
	if (weft_task_spawn(&t, wait_queued, arg))
		return P(1);
	weft_sleep_ms(10);
	weft_task_cancel(t);
	weft_task_join(t, NULL);
	weft_task_join(busy, NULL);
	weft_task_release(t);
	weft_task_release(busy);
	return NULL;
}

static void test_cancel_while_queued_never_runs(void **state)
{
	(void)state;
	reset();
	struct cancel_rec x = { 0 };
	run_cfg(1, 0, cancel_queued_call, &x);
	assert_int_equal(x.rc_queued, -ECANCELED);
	assert_int_equal(atomic_load(&ran), 1); /* only the busy call */
	assert_int_equal(atomic_load(&cleaned), 1); /* cleanup still owns arg */
	assert_int_equal(atomic_load(&cleaned_value), 0);
}

static void *scoped_call(void *arg)
{
	struct cancel_rec *x = arg;
	weft_scope s;
	weft_scope_enter(&s, 10 * MS);
	x->rc_scope = weft_offload_ex(slow, P(50), cleanup, NULL);
	x->scope_fired = weft_scope_exit(&s);
	return NULL;
}

static void test_deadline_scope_bounds_the_wait(void **state)
{
	(void)state;
	reset();
	struct cancel_rec x = { 0 };
	run_cfg(2, 0, scoped_call, &x);
	assert_int_equal(x.rc_scope, -ETIMEDOUT);
	assert_int_equal(x.scope_fired, 1);
	assert_int_equal(atomic_load(&cleaned), 1);
	assert_int_equal(atomic_load(&cleaned_value), 42);
}

struct idle_rec {
	uint64_t before, during, after;
};

static void *idle_threads_exit(void *arg)
{
	struct idle_rec *x = arg;
	weft_runtime_stats *st = calloc(1, sizeof(*st));
	if (!st)
		return P(1);
	weft_runtime *rt = weft_runtime_current();
	weft_runtime_stats_get(rt, st);
	x->before = st->offload_threads;
	weft_offload(square, P(3), NULL);
	weft_runtime_stats_get(rt, st);
	x->during = st->offload_threads;
	for (int i = 0; i < 100 && st->offload_threads; i++) {
		weft_sleep_ms(10);
		weft_runtime_stats_get(rt, st);
	}
	x->after = st->offload_threads;
	free(st);
	return NULL;
}

static void test_idle_threads_exit(void **state)
{
	(void)state;
	struct idle_rec x = { 0 };
	run_cfg(4, 20, idle_threads_exit, &x);
	assert_int_equal(x.before, 0); /* threads start on demand */
	assert_int_equal(x.during, 1);
	assert_int_equal(x.after, 0);
}

static void *misuse_in_task(void *arg)
{
	(void)arg;
	return P(weft_offload(NULL, NULL, NULL) == -EINVAL);
}

static void test_misuse(void **state)
{
	(void)state;
	void *r;
	assert_int_equal(weft_offload(square, P(2), &r), -EPERM); /* not a task */
	assert_int_equal(U(run_cfg(1, 0, misuse_in_task, NULL)), 1);
}

static void *detached_offloader(void *arg)
{
	(void)arg;
	weft_offload_ex(slow, P(80), cleanup, NULL);
	return NULL;
}

static void *leave_running_call(void *arg)
{
	(void)arg;
	weft_task_spawn(NULL, detached_offloader, NULL);
	weft_sleep_ms(10);
	return NULL; /* shutdown cancels the waiter; the call keeps running */
}

static void test_shutdown_waits_for_running_calls(void **state)
{
	(void)state;
	reset();
	run_cfg(2, 0, leave_running_call, NULL);
	assert_int_equal(atomic_load(&ran), 1);
	assert_int_equal(atomic_load(&cleaned), 1); /* finished before weft_run returned */
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_results_come_back),
	cmocka_unit_test(test_pool_runs_calls_in_parallel_up_to_its_bound),
	cmocka_unit_test(test_cancel_while_running_hands_result_to_cleanup),
	cmocka_unit_test(test_cancel_while_queued_never_runs),
	cmocka_unit_test(test_deadline_scope_bounds_the_wait),
	cmocka_unit_test(test_idle_threads_exit),
	cmocka_unit_test(test_misuse),
	cmocka_unit_test(test_shutdown_waits_for_running_calls),
};

WEFT_TEST_MAIN(tests)
