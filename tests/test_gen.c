/*
 * Generators (async generators / async for): lazy start, values in order,
 * -ENOENT at the end, early close cancels the body cleanly, a value is
 * never lost when the consumer gives up.  Asserted on the test's stack.
 */
#include "weft_test.h"

#include <stdatomic.h>

struct gx {
	_Atomic int started, cleaned, yield_rc;
	int rc[16];
	uintptr_t v[16];
};

static void *powers(weft_gen *g, void *arg)
{
	struct gx *x = arg;
	atomic_store(&x->started, 1);
	for (uintptr_t p = 1; p <= 16; p *= 2)
		if (weft_gen_yield(g, P(p)) < 0)
			break;
	return NULL;
}

static void *consume_all(void *arg)
{
	struct gx *x = arg;
	weft_gen *g;
	if (weft_gen_create(&g, powers, x))
		return P(1);
	weft_sleep_ms(5);
	x->rc[15] = atomic_load(&x->started); /* lazy: not started yet */
	for (int i = 0; i < 6; i++) {
		void *v = NULL;
		x->rc[i] = weft_gen_next(g, &v);
		x->v[i] = U(v);
	}
	x->rc[6] = weft_gen_next(g, NULL); /* still the end */
	weft_gen_close(g);
	return NULL;
}

static void test_values_in_order_then_enoent(void **state)
{
	(void)state;
	struct gx x = { 0 };
	weft_test_run_loops(2, consume_all, &x);
	assert_int_equal(x.rc[15], 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(x.rc[i], 0);
		assert_int_equal(x.v[i], 1u << i);
	}
	assert_int_equal(x.rc[5], -ENOENT);
	assert_int_equal(x.rc[6], -ENOENT);
}

static void *endless(weft_gen *g, void *arg)
{
	struct gx *x = arg;
	int r = 0;
	for (uintptr_t i = 0; r == 0; i++)
		r = weft_gen_yield(g, P(i));
	atomic_store(&x->yield_rc, r);
	weft_sleep_ms(2); /* cleanup that suspends: shielded by nothing, but */
	atomic_store(&x->cleaned, 1); /* the body is awaited regardless */
	return NULL;
}

static void *close_early(void *arg)
{
	struct gx *x = arg;
	weft_gen *g;
	if (weft_gen_create(&g, endless, x))
		return P(1);
	for (int i = 0; i < 3; i++) {
		void *v;
		x->rc[i] = weft_gen_next(g, &v);
		x->v[i] = U(v);
	}
	weft_gen_close(g);
	x->rc[3] = atomic_load(&x->cleaned); /* body finished before close returned */
	return NULL;
}

static void test_early_close_cancels_body_and_waits(void **state)
{
	(void)state;
	struct gx x = { 0 };
	weft_test_run_loops(2, close_early, &x);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(x.rc[i], 0);
		assert_int_equal(x.v[i], (uintptr_t)i);
	}
	assert_int_equal(atomic_load(&x.yield_rc), -ECANCELED);
	assert_int_equal(x.rc[3], 1);
}

static void *close_unstarted(void *arg)
{
	struct gx *x = arg;
	weft_gen *g;
	if (weft_gen_create(&g, powers, x))
		return P(1);
	weft_gen_close(g);
	x->rc[0] = atomic_load(&x->started);
	return NULL;
}

static void test_close_before_first_value_never_runs_body(void **state)
{
	(void)state;
	struct gx x = { 0 };
	weft_test_run_loops(1, close_unstarted, &x);
	assert_int_equal(x.rc[0], 0);
}

static void *slow_values(weft_gen *g, void *arg)
{
	(void)arg;
	for (uintptr_t i = 1; i <= 2; i++) {
		weft_sleep_ms(20);
		if (weft_gen_yield(g, P(i * 100)) < 0)
			break;
	}
	return NULL;
}

static void *consumer_gives_up(void *arg)
{
	struct gx *x = arg;
	weft_gen *g;
	if (weft_gen_create(&g, slow_values, x))
		return P(1);
	weft_scope s;
	weft_scope_enter(&s, 5 * MS);
	void *v = NULL;
	x->rc[0] = weft_gen_next(g, &v);   /* gives up before the value */
	weft_scope_exit(&s);
	x->rc[1] = weft_gen_next(g, &v);   /* the value was kept */
	x->v[1] = U(v);
	x->rc[2] = weft_gen_next(g, &v);
	x->v[2] = U(v);
	x->rc[3] = weft_gen_next(g, &v);
	weft_gen_close(g);
	return NULL;
}

static void test_value_kept_when_consumer_gives_up(void **state)
{
	(void)state;
	struct gx x = { 0 };
	weft_test_run_loops(2, consumer_gives_up, &x);
	assert_int_equal(x.rc[0], -ETIMEDOUT);
	assert_int_equal(x.rc[1], 0);
	assert_int_equal(x.v[1], 100);
	assert_int_equal(x.rc[2], 0);
	assert_int_equal(x.v[2], 200);
	assert_int_equal(x.rc[3], -ENOENT);
}

static void *counter(weft_gen *g, void *arg)
{
	uintptr_t n = U(arg);
	for (uintptr_t i = 0; i < n; i++) {
		if ((i & 63) == 0)
			weft_yield(); /* let it wander between loops */
		if (weft_gen_yield(g, P(i)) < 0)
			break;
	}
	return NULL;
}

static void *long_stream(void *arg)
{
	int *bad = arg;
	enum { N = 20000 };
	weft_gen *g;
	if (weft_gen_create(&g, counter, P(N)))
		return P(1);
	void *v;
	uintptr_t expect = 0;
	int r;
	while ((r = weft_gen_next(g, &v)) == 0)
		*bad += U(v) != expect++;
	*bad += r != -ENOENT || expect != N;
	weft_gen_close(g);
	return NULL;
}

static void test_long_stream_across_loops(void **state)
{
	(void)state;
	int bad = 0;
	weft_test_run_loops(2, long_stream, &bad);
	assert_int_equal(bad, 0);
}

/* Several consumers: every value goes to exactly one, and none of them
 * hangs while the body still has values (each asks again after a wake). */
static void *three_slowly(weft_gen *g, void *arg)
{
	(void)arg;
	for (uintptr_t i = 1; i <= 3; i++) {
		weft_sleep_ms(5);
		if (weft_gen_yield(g, P(i)) < 0)
			break;
	}
	return NULL;
}

struct multi {
	weft_gen *g;
	_Atomic int got, sum, bad;
};

static void *multi_consumer(void *arg)
{
	struct multi *m = arg;
	weft_scope s;
	weft_scope_enter(&s, 2000 * MS); /* a hang fails, it does not block */
	void *v;
	int r;
	while ((r = weft_gen_next(m->g, &v)) == 0) {
		atomic_fetch_add(&m->got, 1);
		atomic_fetch_add(&m->sum, (int)U(v));
	}
	if (r != -ENOENT)
		atomic_fetch_add(&m->bad, 1);
	weft_scope_exit(&s);
	return NULL;
}

static void *two_consumers(void *arg)
{
	struct multi *m = arg;
	if (weft_gen_create(&m->g, three_slowly, NULL))
		return P(1);
	weft_task *a, *b;
	weft_task_spawn(&a, multi_consumer, m);
	weft_task_spawn(&b, multi_consumer, m);
	weft_task_join(a, NULL);
	weft_task_join(b, NULL);
	weft_task_release(a);
	weft_task_release(b);
	weft_gen_close(m->g);
	return NULL;
}

static void test_several_consumers(void **state)
{
	(void)state;
	struct multi m = { 0 };
	weft_test_run_loops(2, two_consumers, &m);
	assert_int_equal(atomic_load(&m.bad), 0);
	assert_int_equal(atomic_load(&m.got), 3);
	assert_int_equal(atomic_load(&m.sum), 6);
}

static void test_misuse(void **state)
{
	(void)state;
	weft_gen *g;
	assert_int_equal(weft_gen_create(&g, NULL, NULL), -EINVAL);
	assert_int_equal(weft_gen_create(&g, powers, NULL), -EPERM); /* not a task */
	assert_int_equal(weft_gen_next(NULL, NULL), -EINVAL);
	assert_int_equal(weft_gen_yield(NULL, NULL), -EINVAL);
}

struct nostack_gen {
	int capped, create_rc, next_rc;
	struct gx x;
};

static void *nostack_gen_main(void *arg)
{
	struct nostack_gen *n = arg;
	rlim_t old = weft_test_cap_as(WEFT_TEST_AS_ROOM);
	n->capped = old != 0;
	weft_gen *g = NULL;
	n->create_rc = weft_gen_create(&g, powers, &n->x);
	if (n->create_rc == 0) {
		weft_scope sc;
		weft_scope_enter(&sc, 2000 * MS); /* the producer may never run */
		n->next_rc = weft_gen_next(g, NULL);
		weft_scope_exit(&sc);
		weft_gen_close(g);
	}
	weft_test_uncap_as(old);
	return NULL;
}

/* A generator whose producer task cannot get a stack is not created
 * (-ENOMEM), rather than created with a producer that never runs, which
 * left weft_gen_next waiting forever. */
static void test_create_without_stack_enomem(void **state)
{
	(void)state;
	struct nostack_gen n = { 0 };
	weft_test_run_stackless(2, nostack_gen_main, &n);
	WEFT_TEST_SKIP_UNCAPPED(n.capped);
	assert_int_equal(n.create_rc, -ENOMEM);
	assert_int_equal(atomic_load(&n.x.started), 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_create_without_stack_enomem),
	cmocka_unit_test(test_values_in_order_then_enoent),
	cmocka_unit_test(test_early_close_cancels_body_and_waits),
	cmocka_unit_test(test_close_before_first_value_never_runs_body),
	cmocka_unit_test(test_value_kept_when_consumer_gives_up),
	cmocka_unit_test(test_long_stream_across_loops),
	cmocka_unit_test(test_several_consumers),
	cmocka_unit_test(test_misuse),
};

WEFT_TEST_MAIN(tests)
