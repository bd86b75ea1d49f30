/*
 * Timers: the heap for near deadlines and the wheel for far ones
 * (runtime/timer.c).  White-box tests drive one loop's timers with a
 * synthetic clock (no task is ever woken: they only arm, move, query and
 * disarm); black-box tests check that far sleeps and scopes fire on time
 * and that far timers disarmed by wakes leave nothing behind.
 */
#include "weft_test.h"
#include "runtime/internal.h"

#define SLOT (1ull << WEFT_WHEEL_SHIFT)
#define T0 (1000 * SLOT) /* a synthetic "now", slot-aligned */

static weft_loop *fake_loop(void)
{
	weft_loop *l = calloc(1, sizeof(*l));
	assert_non_null(l);
	return l;
}

static weft_task *fake_task(void)
{
	weft_task *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->timer.idx = WEFT_TIMER_IDLE;
	return t;
}

static void free_loop(weft_loop *l)
{
	free(l->heap);
	free(l);
}

/* Near deadlines go to the heap, far ones to the wheel; next() is the
 * heap's earliest or the wheel's first slot, whichever comes first. */
static void test_near_heap_far_wheel(void **state)
{
	(void)state;
	weft_loop *l = fake_loop();
	weft_task *near = fake_task(), *far = fake_task();
	assert_int_equal(weft__timer_arm(l, near, T0 + SLOT / 2, T0), 0);
	assert_int_equal(l->heap_len, 1);
	assert_int_equal(weft__timer_arm(l, far, T0 + 10 * SLOT + 5, T0), 0);
	assert_int_equal(l->wheel_len, 1);
	assert_int_equal(far->timer.idx, WEFT_TIMER_WHEEL);
	assert_int_equal(weft__timer_next(l), T0 + SLOT / 2);
	weft__timer_disarm(l, near);
	assert_int_equal(l->heap_len, 0);
	/* only the wheel: wake when the far timer's slot comes up */
	assert_int_equal(weft__timer_next(l), T0 + 10 * SLOT);
	/* the clock reaches that slot: the timer moves to the heap, not due */
	assert_int_equal(weft__timer_fire(l, T0 + 10 * SLOT), 0);
	assert_int_equal(l->wheel_len, 0);
	assert_int_equal(l->heap_len, 1);
	assert_int_equal(weft__timer_next(l), T0 + 10 * SLOT + 5); /* exact */
	weft__timer_disarm(l, far);
	assert_int_equal(l->heap_len, 0);
	assert_int_equal(weft__timer_next(l), 0);
	free(near);
	free(far);
	free_loop(l);
}

/* A deadline more than one turn away shares its slot with nearer ones:
 * it stays there until its own turn. */
static void test_beyond_one_turn(void **state)
{
	(void)state;
	weft_loop *l = fake_loop();
	weft_task *a = fake_task(), *b = fake_task();
	uint64_t da = T0 + 5 * SLOT + 1;
	uint64_t db = da + WEFT_WHEEL_SLOTS * SLOT; /* same slot, next turn */
	assert_int_equal(weft__timer_arm(l, a, da, T0), 0);
	assert_int_equal(weft__timer_arm(l, b, db, T0), 0);
	assert_int_equal(l->wheel_len, 2);
	assert_int_equal(weft__timer_fire(l, T0 + 5 * SLOT), 0);
	assert_int_equal(l->heap_len, 1); /* a moved, b stayed */
	assert_int_equal(a->timer.idx, 0);
	assert_int_equal(b->timer.idx, WEFT_TIMER_WHEEL);
	weft__timer_disarm(l, a);
	/* next: b's slot a turn later (the wheel may wake early, never late) */
	uint64_t next = weft__timer_next(l);
	assert_true(next <= db);
	assert_true(next >= T0 + 6 * SLOT);
	/* nothing moves before b's turn, however often the clock is read */
	for (uint64_t t = T0 + 6 * SLOT; t < db - SLOT; t += 37 * SLOT)
		assert_int_equal(weft__timer_fire(l, t), 0);
	assert_int_equal(l->wheel_len, 1);
	assert_int_equal(weft__timer_fire(l, db - 1), 0);
	assert_int_equal(l->heap_len, 1);
	assert_int_equal(weft__timer_next(l), db);
	weft__timer_disarm(l, b);
	free(a);
	free(b);
	free_loop(l);
}

/* Many far timers linked and unlinked in any order leave the wheel empty
 * and its bitmap clear (as a server's idle timeouts do at every receive). */
static void test_wheel_link_unlink_churn(void **state)
{
	(void)state;
	enum { N = 3000 };
	weft_loop *l = fake_loop();
	static weft_task *ts[N];
	uint32_t rng = 7;
	for (int i = 0; i < N; i++) {
		ts[i] = fake_task();
		rng = rng * 1103515245u + 12345u;
		uint64_t d = T0 + 2 * SLOT + (rng >> 8) % (300 * SLOT);
		assert_int_equal(weft__timer_arm(l, ts[i], d, T0), 0);
	}
	assert_int_equal(l->wheel_len + l->heap_len, N);
	for (int i = 0; i < N; i += 2)
		weft__timer_disarm(l, ts[i]);
	for (int i = N - 1; i >= 0; i -= 2)
		weft__timer_disarm(l, ts[i]);
	assert_int_equal(l->wheel_len, 0);
	assert_int_equal(l->heap_len, 0);
	for (unsigned i = 0; i < WEFT_WHEEL_SLOTS / 64; i++)
		assert_int_equal(l->wheel_bits[i], 0);
	for (unsigned i = 0; i < WEFT_WHEEL_SLOTS; i++)
		assert_null(l->wheel[i]);
	for (int i = 0; i < N; i++)
		free(ts[i]);
	free_loop(l);
}

/* ---- black box: far sleeps and scopes on a real runtime ---- */

struct far_rec {
	int64_t late_ns[4];
	int rc[4];
	int scope_rc;
	int64_t scope_late_ns;
};

static void *sleeper(void *arg)
{
	uint64_t ns = U(arg);
	uint64_t t0 = weft_now_ns();
	int r = weft_sleep(ns);
	int64_t late = (int64_t)(weft_now_ns() - t0) - (int64_t)ns;
	return P(((uint64_t)(uint32_t)r << 32) | (uint32_t)(late / 1000)); /* us */
}

static void *far_main(void *arg)
{
	struct far_rec *x = arg;
	const uint64_t ns[4] = { 150 * MS, 700 * MS, 1100 * MS, 1300 * MS };
	weft_task *t[4];
	for (int i = 0; i < 4; i++)
		weft_task_spawn(&t[i], sleeper, P(ns[i]));
	/* a far scope around a wait that never ends by itself */
	weft_scope s;
	weft_event ev;
	weft_event_init(&ev);
	uint64_t t0 = weft_now_ns();
	weft_scope_enter(&s, 900 * MS);
	x->scope_rc = weft_event_wait(&ev);
	weft_scope_exit(&s);
	x->scope_late_ns = (int64_t)(weft_now_ns() - t0) - (int64_t)(900 * MS);
	weft_event_destroy(&ev);
	for (int i = 0; i < 4; i++) {
		void *r;
		weft_task_join(t[i], &r);
		weft_task_release(t[i]);
		x->rc[i] = (int)(int32_t)(U(r) >> 32);
		x->late_ns[i] = (int64_t)(int32_t)(uint32_t)U(r) * 1000;
	}
	return NULL;
}

static void test_far_deadlines_fire_on_time(void **state)
{
	(void)state;
	struct far_rec x;
	memset(&x, 0, sizeof x);
	weft_test_run(2, far_main, &x);
	int64_t slack = (WEFT_TEST_SANITIZED ? 200 : 60) * (int64_t)MS;
	for (int i = 0; i < 4; i++) {
		print_message("sleep %d: rc %d, late %lld us\n", i, x.rc[i],
			      (long long)(x.late_ns[i] / 1000));
		assert_int_equal(x.rc[i], 0);
		assert_true(x.late_ns[i] >= 0);    /* never early */
		assert_true(x.late_ns[i] < slack); /* the wheel only moves it */
	}
	assert_int_equal(x.scope_rc, -ETIMEDOUT);
	assert_true(x.scope_late_ns >= 0 && x.scope_late_ns < slack);
}

/* Far timers armed and disarmed by wakes, on many tasks and both loops:
 * a ping-pong under far scopes, then the loops' wheels are empty. */
struct churn_rec {
	weft_queue *a, *b;
	int rounds, bad;
};

static void *churn_peer(void *arg)
{
	struct churn_rec *x = arg;
	for (int i = 0; i < x->rounds; i++) {
		void *v;
		weft_scope s;
		weft_scope_enter(&s, 30000 * MS); /* far: the wheel */
		int r = weft_queue_get(x->a, &v);
		weft_scope_exit(&s);
		if (r < 0 || weft_queue_put(x->b, v) < 0)
			x->bad++;
	}
	return NULL;
}

static void *churn_main(void *arg)
{
	struct churn_rec *x = arg;
	weft_queue_create(&x->a, NULL);
	weft_queue_create(&x->b, NULL);
	weft_task *t;
	weft_task_spawn(&t, churn_peer, x);
	for (int i = 0; i < x->rounds; i++) {
		void *v;
		weft_scope s;
		weft_scope_enter(&s, 20000 * MS);
		if (weft_queue_put(x->a, P(i + 1)) < 0 || weft_queue_get(x->b, &v) < 0 ||
		    U(v) != (uintptr_t)i + 1)
			x->bad++;
		weft_scope_exit(&s);
	}
	weft_task_join(t, NULL);
	weft_task_release(t);
	weft_queue_destroy(x->a);
	weft_queue_destroy(x->b);
	return NULL;
}

static void test_far_scope_churn(void **state)
{
	(void)state;
	struct churn_rec x = { .rounds = WEFT_TEST_SANITIZED ? 5000 : 50000 };
	weft_test_run(2, churn_main, &x);
	assert_int_equal(x.bad, 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_near_heap_far_wheel),
	cmocka_unit_test(test_beyond_one_turn),
	cmocka_unit_test(test_wheel_link_unlink_churn),
	cmocka_unit_test(test_far_deadlines_fire_on_time),
	cmocka_unit_test(test_far_scope_churn),
};

WEFT_TEST_MAIN(tests)
