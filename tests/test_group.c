/*
 * Task groups: structured concurrency.  Leaving a group waits for every
 * child; the first failure cancels the rest and is reported with the
 * others; cancelling (or timing out) the waiter cancels and still awaits
 * the children; groups nest.  Asserted on the test's stack.
 */
#include "weft_test.h"

#include <stdatomic.h>

struct gr {
	_Atomic int done, cancelled, started;
	int expect_started; /* the failer waits for this many sleepers */
	int wait_rc, nerrs, errs[4], spawn_after;
	uint64_t dt;
	bool children_done_at_return;
	weft_task *kids[8];
};

static void *sleeper(void *arg)
{
	struct gr *x = arg;
	atomic_fetch_add(&x->started, 1);
	int r = weft_sleep_ms(1000);
	if (r == -ECANCELED)
		atomic_fetch_add(&x->cancelled, 1);
	atomic_fetch_add(&x->done, 1);
	return NULL;
}

static void *quick(void *arg)
{
	struct gr *x = arg;
	weft_sleep_ms(2);
	atomic_fetch_add(&x->done, 1);
	return NULL;
}

static void *failer(void *arg)
{
	struct gr *x = arg;
	/* A sibling cancelled before it starts never runs (and so counts
	 * nothing): fail only once they are all sleeping. */
	for (int i = 0; i < 2000 && atomic_load(&x->started) < x->expect_started; i++)
		weft_sleep_ms(1);
	weft_sleep_ms(5);
	weft_task_fail(-EIO);
	atomic_fetch_add(&x->done, 1);
	return P(7);
}

/* A child cancelled before it starts never runs (and so counts nothing):
 * tests that count cancelled children let them all start first. */
static void await_started(struct gr *x, int n)
{
	for (int i = 0; i < 2000 && atomic_load(&x->started) < n; i++)
		if (weft_sleep_ms(1) < 0)
			return;
}

static bool kids_done(struct gr *x, int n)
{
	for (int i = 0; i < n; i++)
		if (!weft_task_done(x->kids[i]))
			return false;
	return true;
}

static void release_kids(struct gr *x, int n)
{
	for (int i = 0; i < n; i++)
		weft_task_release(x->kids[i]);
}

static void *all_succeed(void *arg)
{
	struct gr *x = arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	for (int i = 0; i < 8; i++)
		weft_group_spawn(g, &x->kids[i], NULL, quick, x);
	x->wait_rc = weft_group_wait(g);
	x->children_done_at_return = atomic_load(&x->done) == 8;
	x->spawn_after = weft_group_spawn(g, NULL, NULL, quick, x);
	x->nerrs = weft_group_errors(g, x->errs, 4);
	weft_group_destroy(g);
	release_kids(x, 8);
	return NULL;
}

static void test_wait_returns_when_all_children_done(void **state)
{
	(void)state;
	struct gr x = { 0 };
	weft_test_run_loops(2, all_succeed, &x);
	assert_int_equal(x.wait_rc, 0);
	assert_true(x.children_done_at_return);
	assert_int_equal(x.spawn_after, -ECANCELED);
	assert_int_equal(x.nerrs, 0);
}

static void *first_failure_cancels(void *arg)
{
	struct gr *x = arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	uint64_t t0 = weft_now_ns();
	for (int i = 0; i < 6; i++)
		weft_group_spawn(g, &x->kids[i], NULL, sleeper, x);
	weft_group_spawn(g, &x->kids[6], NULL, failer, x);
	x->wait_rc = weft_group_wait(g);
	x->dt = weft_now_ns() - t0;
	x->nerrs = weft_group_errors(g, x->errs, 4);
	void *r = NULL;
	x->errs[3] = weft_task_join(x->kids[6], &r); /* the failer's own join */
	x->spawn_after = (int)U(r);
	weft_group_destroy(g);
	release_kids(x, 7);
	return NULL;
}

static void test_first_failure_cancels_siblings(void **state)
{
	(void)state;
	struct gr x = { .expect_started = 6 };
	weft_test_run_loops(2, first_failure_cancels, &x);
	assert_int_equal(x.wait_rc, -EIO);
	assert_int_equal(x.nerrs, 1);
	assert_int_equal(x.errs[0], -EIO);
	assert_int_equal(atomic_load(&x.cancelled), 6);
	assert_int_equal(atomic_load(&x.done), 7);
	assert_true(x.dt < 500 * MS);
	assert_int_equal(x.errs[3], -EIO);  /* join reports the failure... */
	assert_int_equal(x.spawn_after, 7); /* ...and still hands over the result */
}

static void *waiter_with_scope(void *arg)
{
	struct gr *x = arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	for (int i = 0; i < 4; i++)
		weft_group_spawn(g, &x->kids[i], NULL, sleeper, x);
	await_started(x, 4);
	weft_scope s;
	weft_scope_enter(&s, 10 * MS);
	x->wait_rc = weft_group_wait(g);
	x->nerrs = weft_scope_exit(&s);
	x->children_done_at_return = atomic_load(&x->done) == 4;
	weft_group_destroy(g);
	release_kids(x, 4);
	return NULL;
}

static void test_waiter_timeout_cancels_and_awaits_children(void **state)
{
	(void)state;
	struct gr x = { 0 };
	weft_test_run_loops(2, waiter_with_scope, &x);
	assert_int_equal(x.wait_rc, -ETIMEDOUT);
	assert_int_equal(x.nerrs, 1); /* the scope fired */
	assert_true(x.children_done_at_return);
	assert_int_equal(atomic_load(&x.cancelled), 4);
}

static void *group_owner(void *arg)
{
	struct gr *x = arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	for (int i = 0; i < 4; i++)
		weft_group_spawn(g, &x->kids[i], NULL, sleeper, x);
	x->wait_rc = weft_group_wait(g);
	x->children_done_at_return = kids_done(x, 4) || atomic_load(&x->done) == 4;
	weft_group_destroy(g);
	release_kids(x, 4);
	return NULL;
}

static void *cancel_the_owner(void *arg)
{
	weft_task *owner;
	if (weft_task_spawn(&owner, group_owner, arg))
		return P(1);
	await_started(arg, 4); /* the owner is waiting on its children now */
	weft_sleep_ms(2);
	weft_task_cancel(owner);
	int r = weft_task_join(owner, NULL);
	weft_task_release(owner);
	return P(r == -ECANCELED);
}

static void test_cancelled_waiter_cancels_and_awaits_children(void **state)
{
	(void)state;
	struct gr x = { 0 };
	assert_int_equal(U(weft_test_run_loops(2, cancel_the_owner, &x)), 1);
	assert_int_equal(x.wait_rc, -ECANCELED);
	assert_true(x.children_done_at_return);
	assert_int_equal(atomic_load(&x.cancelled), 4);
}

/* Nesting: an outer failure cancels a child that owns an inner group; the
 * inner group's wait cancels and awaits the grandchildren. */
static struct gr inner_rec;

static void *inner_owner(void *arg)
{
	(void)arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	for (int i = 0; i < 3; i++)
		weft_group_spawn(g, NULL, NULL, sleeper, &inner_rec);
	inner_rec.wait_rc = weft_group_wait(g);
	inner_rec.children_done_at_return = atomic_load(&inner_rec.done) == 3;
	weft_group_destroy(g);
	return NULL;
}

static void *nested(void *arg)
{
	struct gr *x = arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	weft_group_spawn(g, NULL, NULL, inner_owner, NULL);
	weft_group_spawn(g, NULL, NULL, failer, x);
	x->wait_rc = weft_group_wait(g);
	weft_group_destroy(g);
	return NULL;
}

static void test_nested_groups(void **state)
{
	(void)state;
	struct gr x = { 0 };
	memset(&inner_rec, 0, sizeof(inner_rec));
	weft_test_run_loops(2, nested, &x);
	assert_int_equal(x.wait_rc, -EIO);
	assert_int_equal(inner_rec.wait_rc, -ECANCELED);
	assert_true(inner_rec.children_done_at_return);
	assert_int_equal(atomic_load(&inner_rec.cancelled), 3);
}

static void *destroy_running(void *arg)
{
	struct gr *x = arg;
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	for (int i = 0; i < 5; i++)
		weft_group_spawn(g, &x->kids[i], NULL, sleeper, x);
	await_started(x, 5);
	weft_group_destroy(g); /* cancels and awaits */
	x->children_done_at_return = atomic_load(&x->done) == 5;
	release_kids(x, 5);
	return NULL;
}

static void test_destroy_cancels_and_awaits(void **state)
{
	(void)state;
	struct gr x = { 0 };
	weft_test_run_loops(2, destroy_running, &x);
	assert_true(x.children_done_at_return);
	assert_int_equal(atomic_load(&x.cancelled), 5);
}

static void *misuse(void *arg)
{
	struct gr *x = arg;
	x->errs[0] = weft_task_fail(5);
	x->errs[1] = weft_group_spawn(NULL, NULL, NULL, quick, x);
	x->errs[2] = weft_group_wait(NULL);
	return NULL;
}

static void test_misuse(void **state)
{
	(void)state;
	struct gr x = { 0 };
	weft_test_run_loops(1, misuse, &x);
	assert_int_equal(x.errs[0], -EINVAL);
	assert_int_equal(x.errs[1], -EINVAL);
	assert_int_equal(x.errs[2], -EINVAL);
	assert_int_equal(weft_task_fail(-EIO), -EPERM);
	assert_int_equal(weft_group_create(NULL), -EINVAL);
}

/* Many groups at once across loops, one child of each failing: every wait
 * returns the failure, and no child is still running when it does
 * (children cancelled before they started never run at all). */
#define STORM 64
static _Atomic int storm_ran, storm_bad;

struct storm_g {
	_Atomic int alive;
	uintptr_t base;
};

struct storm_c {
	struct storm_g *g;
	uintptr_t i;
};

static void *storm_child(void *arg)
{
	struct storm_c *c = arg;
	atomic_fetch_add(&c->g->alive, 1);
	atomic_fetch_add(&storm_ran, 1);
	if (c->i % 7 == 3) {
		weft_yield();
		weft_task_fail(-EAGAIN);
	} else {
		weft_sleep(((c->i * 2654435761u) % 300) * 1000);
	}
	atomic_fetch_sub(&c->g->alive, 1);
	return NULL;
}

static void *storm_group(void *arg)
{
	struct storm_g gs = { .base = U(arg) };
	struct storm_c cs[8];
	weft_group *g;
	if (weft_group_create(&g))
		return P(1);
	for (uintptr_t i = 0; i < 8; i++) {
		cs[i] = (struct storm_c){ &gs, gs.base + i };
		weft_group_spawn(g, NULL, NULL, storm_child, &cs[i]);
	}
	int r = weft_group_wait(g);
	if (r != -EAGAIN || atomic_load(&gs.alive) != 0)
		atomic_fetch_add(&storm_bad, 1);
	weft_group_destroy(g);
	return NULL;
}

static void *storm(void *arg)
{
	(void)arg;
	weft_task *t[STORM];
	for (uintptr_t i = 0; i < STORM; i++)
		weft_task_spawn(&t[i], storm_group, P(i * 8));
	for (int i = 0; i < STORM; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	return NULL;
}

static void test_group_storm(void **state)
{
	(void)state;
	atomic_store(&storm_ran, 0);
	atomic_store(&storm_bad, 0);
	weft_test_run_loops(2, storm, NULL);
	print_message("%d of %d children ran before their group cancelled them\n",
		      atomic_load(&storm_ran), STORM * 8);
	assert_int_equal(atomic_load(&storm_bad), 0);
	assert_true(atomic_load(&storm_ran) >= STORM); /* each group's failer ran */
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_wait_returns_when_all_children_done),
	cmocka_unit_test(test_first_failure_cancels_siblings),
	cmocka_unit_test(test_waiter_timeout_cancels_and_awaits_children),
	cmocka_unit_test(test_cancelled_waiter_cancels_and_awaits_children),
	cmocka_unit_test(test_nested_groups),
	cmocka_unit_test(test_destroy_cancels_and_awaits),
	cmocka_unit_test(test_misuse),
	cmocka_unit_test(test_group_storm),
};

WEFT_TEST_MAIN(tests)
