/*
 * Timers: the heap for near deadlines and the wheel for far ones
 * (runtime/timer.c).  White-box tests drive one loop's timers with a
 * synthetic clock (no task is ever woken: they only arm, move, query and
 * disarm); black-box tests check that far sleeps and scopes fire on time
 * and that far timers disarmed by wakes leave nothing behind; the interval
 * tests check periodic timers against their grid under each policy.
 */
#include "weft_test.h"
#include "weft/test.h"
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
	weft_test_run_loops(2, far_main, &x);
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
 * a ping-pong under far scopes, then the loops' wheels are empty.
 *
 * This test and test_interval_scope_deadline use weft/test.h, the helper
 * the project offers its users: the bodies check themselves (a failed
 * check is reported with its values and fails the run), and the run has a
 * time limit. */
struct churn_rec {
	weft_queue *a, *b;
	int rounds;
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
		WEFT_TEST_CHECK_INT(r, ==, 0);
		WEFT_TEST_CHECK_INT(weft_queue_put(x->b, v), ==, 0);
	}
	return NULL;
}

static void *churn_rounds(struct churn_rec *x)
{
	for (int i = 0; i < x->rounds; i++) {
		void *v = NULL;
		weft_scope s;
		weft_scope_enter(&s, 20000 * MS);
		int put = weft_queue_put(x->a, P(i + 1));
		int got = put < 0 ? put : weft_queue_get(x->b, &v);
		weft_scope_exit(&s); /* before any check: a failing one returns */
		WEFT_TEST_CHECK_INT(put, ==, 0);
		WEFT_TEST_CHECK_INT(got, ==, 0);
		WEFT_TEST_CHECK_UINT(U(v), ==, (uintptr_t)i + 1);
	}
	return NULL;
}

static void *churn_main(void *arg)
{
	struct churn_rec *x = arg;
	WEFT_TEST_CHECK_INT(weft_queue_create(&x->a, NULL), ==, 0);
	WEFT_TEST_CHECK_INT(weft_queue_create(&x->b, NULL), ==, 0);
	weft_group *g;
	WEFT_TEST_CHECK_INT(weft_group_create(&g), ==, 0);
	if (weft_test_check(weft_group_spawn(g, NULL, NULL, churn_peer, x) == 0, __FILE__,
			    __LINE__, "peer spawned"))
		churn_rounds(x);
	/* a failed check cancels the body: the group's wait then cancels
	 * the peer and still waits for it, so the queues can go */
	weft_group_wait(g);
	weft_group_destroy(g);
	weft_queue_destroy(x->a);
	weft_queue_destroy(x->b);
	return NULL;
}

static void test_far_scope_churn(void **state)
{
	(void)state;
	struct churn_rec x = { .rounds = WEFT_TEST_SANITIZED ? 5000 : 50000 };
	assert_int_equal(WEFT_TEST_RUN(churn_main, &x, NULL), 0);
}

/* weft_sleep_until: an absolute time, never early; one already past (0
 * included) only yields; -EPERM outside a task. */
static void *sleep_until_body(void *arg)
{
	(void)arg;
	uint64_t t0 = weft_now_ns(), until = t0 + 20 * MS;
	WEFT_TEST_CHECK_INT(weft_sleep_until(until), ==, 0);
	WEFT_TEST_CHECK_UINT(weft_now_ns(), >=, until);
	t0 = weft_now_ns();
	WEFT_TEST_CHECK_INT(weft_sleep_until(0), ==, 0);
	WEFT_TEST_CHECK_INT(weft_sleep_until(t0 - 1), ==, 0);
	WEFT_TEST_CHECK_UINT(weft_now_ns() - t0, <, 1000 * MS); /* no waiting */
	weft_scope s;
	weft_scope_enter(&s, 20 * MS);
	int r = weft_sleep_until(WEFT_FOREVER); /* until the scope ends */
	weft_scope_exit(&s);
	WEFT_TEST_CHECK_INT(r, ==, -ETIMEDOUT);
	return NULL;
}

static void test_sleep_until(void **state)
{
	(void)state;
	assert_int_equal(weft_sleep_until(weft_now_ns() + MS), -EPERM);
	assert_int_equal(WEFT_TEST_RUN(sleep_until_body, NULL, NULL), 0);
}

/* ---- periodic timers: weft_interval ----
 *
 * The overrun tests run one round of deliberately long work (a spin on
 * weft_now_ns, or a blocking nanosleep that holds the loop's thread) and
 * check each tick against the grid.  Exact checks are on the grid, which
 * no load can move: weft_interval_next() after each tick.  Checks on
 * return times only ever bound them from below (a tick is never early) or
 * by a whole period, so a loaded machine or a sanitizer cannot fail them.
 */
#define PER (100 * MS)

static void spin_until(uint64_t t)
{
	while (weft_now_ns() < t)
		;
}

enum { NT = 6 };

struct iv_rec {
	weft_tick_policy policy;
	int init_rc;
	uint64_t first, end;       /* the first tick's time; end of the overrun */
	int64_t n[NT];             /* what each tick returned */
	uint64_t asked[NT], ret[NT], next[NT]; /* when asked, returned; next after */
};

/* Tick 0 on time, then an overrun of 3.5 periods (2.5 for DELAY), then
 * ticks 1..NT-1 without work between them. */
static void *overrun_main(void *arg)
{
	struct iv_rec *x = arg;
	weft_interval iv;
	x->init_rc = weft_interval_init(&iv, PER, x->policy);
	x->first = weft_interval_next(&iv);
	for (int i = 0; i < NT; i++) {
		if (i == 1) {
			uint64_t until = x->first + (x->policy == WEFT_TICK_DELAY ? 5 : 7) * PER / 2;
			if (x->policy == WEFT_TICK_SKIP)
				msleep((unsigned)((until - weft_now_ns()) / MS) + 1); /* holds the loop */
			else
				spin_until(until);
			x->end = weft_now_ns();
		}
		x->asked[i] = weft_now_ns();
		x->n[i] = weft_interval_tick(&iv);
		x->ret[i] = weft_now_ns();
		x->next[i] = weft_interval_next(&iv);
	}
	return NULL;
}

static void run_overrun(struct iv_rec *x, weft_tick_policy policy)
{
	memset(x, 0, sizeof *x);
	x->policy = policy;
	weft_test_run_loops(2, overrun_main, x);
	assert_int_equal(x->init_rc, 0);
	for (int i = 0; i < NT; i++)
		print_message("tick %d: asked %+.1f ms, returned %+.1f ms (n %lld), next %+.1f ms\n",
			      i, ((double)x->asked[i] - (double)x->first) / 1e6,
			      ((double)x->ret[i] - (double)x->first) / 1e6, (long long)x->n[i],
			      ((double)x->next[i] - (double)x->first) / 1e6);
	/* tick 0 waited for its time, and nothing ever returns early */
	assert_true(x->first > 0 && x->asked[0] < x->first);
	for (int i = 0; i < NT; i++) {
		assert_true(x->n[i] >= 1);
		uint64_t due = i ? x->next[i - 1] : x->first;
		assert_true(x->ret[i] >= due);
	}
}

/* BURST: the three ticks missed during the overrun come back to back, the
 * grid never moves, then ticks wait for their time again. */
static void test_interval_burst_overrun(void **state)
{
	(void)state;
	struct iv_rec x;
	run_overrun(&x, WEFT_TICK_BURST);
	for (int i = 0; i < NT; i++) {
		assert_int_equal(x.n[i], 1);
		assert_int_equal(x.next[i], x.first + (uint64_t)(i + 1) * PER); /* exact */
	}
	/* ticks 1-3 (due at +1, +2, +3 periods) were all due when the
	 * overrun ended (+3.5): they came at once, before tick 4's time */
	assert_true(x.end >= x.first + 7 * PER / 2);
	assert_true(x.ret[3] < x.first + 4 * PER);
	/* tick 4 had to wait for its grid time */
	assert_true(x.ret[4] >= x.first + 4 * PER);
}

/* DELAY: the late tick comes at once and restarts the grid one period
 * after it; no tick is closer than a period to the late one, and on-time
 * ticks keep the new grid exactly. */
static void test_interval_delay_overrun(void **state)
{
	(void)state;
	struct iv_rec x;
	run_overrun(&x, WEFT_TICK_DELAY);
	for (int i = 0; i < NT; i++)
		assert_int_equal(x.n[i], 1);
	if (x.ret[0] - x.first < PER) /* on time (not held up a period) */
		assert_int_equal(x.next[0], x.first + PER);
	/* tick 1 (due +1) asked for at +2.5: late, at once, grid restarted
	 * from when it returned */
	assert_true(x.asked[1] >= x.first + 5 * PER / 2);
	assert_true(x.ret[1] < x.asked[1] + PER); /* did not wait for a tick */
	assert_true(x.next[1] >= x.asked[1] + PER && x.next[1] <= x.ret[1] + PER);
	/* not on the old grid: a burst would have ticked at once again */
	assert_true(x.ret[2] >= x.end + PER);
	for (int i = 2; i < NT; i++)
		if (x.asked[i] <= x.next[i - 1] && x.ret[i] - x.next[i - 1] < PER) /* on time */
			assert_int_equal(x.next[i], x.next[i - 1] + PER);
}

/* SKIP (the overrun blocks the loop's thread in nanosleep): the ticks
 * missed are counted in one return, and the grid stays where it was. */
static void test_interval_skip_overrun(void **state)
{
	(void)state;
	struct iv_rec x;
	run_overrun(&x, WEFT_TICK_SKIP);
	/* the grid holds: after each call, next = first + (ticks so far) * PER */
	int64_t sum = 0;
	for (int i = 0; i < NT; i++) {
		sum += x.n[i];
		assert_int_equal(x.next[i], x.first + (uint64_t)sum * PER);
	}
	/* tick 1 (due +1) returned at +3.5 or later: it accounts for itself
	 * and the ticks due at +2 and +3 (more only if the loop was held up
	 * past +4), counted from the times around the call */
	uint64_t due = x.first + PER;
	assert_true(x.end >= x.first + 7 * PER / 2);
	assert_true(x.n[1] >= 1 + (int64_t)((x.asked[1] - due) / PER));
	assert_true(x.n[1] <= 1 + (int64_t)((x.ret[1] - due) / PER));
	assert_true(x.n[1] >= 3);
	/* the next tick is the first grid time after the late one: waited for */
	assert_true(x.next[1] > x.asked[1]);
	assert_true(x.ret[2] >= x.next[1]);
}

/* A tick waiting for a far time is cancelled: -ECANCELED once the cancel
 * comes (not before, not at the tick), the tick is not consumed, and the
 * cancellation is sticky. */
struct iv_wait_rec {
	uint64_t next_before, next_after, t0, t1;
	int64_t rc, rc2;
};

static void *tick_waiter(void *arg)
{
	struct iv_wait_rec *x = arg;
	weft_interval iv;
	weft_interval_init(&iv, 10000 * MS, WEFT_TICK_BURST);
	x->next_before = weft_interval_next(&iv);
	x->t0 = weft_now_ns();
	x->rc = weft_interval_tick(&iv);
	x->t1 = weft_now_ns();
	x->rc2 = weft_interval_tick(&iv);
	x->next_after = weft_interval_next(&iv);
	return NULL;
}

static void *cancel_main(void *arg)
{
	weft_task *t;
	if (weft_task_spawn(&t, tick_waiter, arg) != 0)
		return NULL;
	weft_sleep(30 * MS);
	weft_task_cancel(t);
	weft_task_join(t, NULL);
	weft_task_release(t);
	return NULL;
}

static void test_interval_cancel(void **state)
{
	(void)state;
	struct iv_wait_rec x;
	memset(&x, 0, sizeof x);
	uint64_t t0 = weft_now_ns();
	weft_test_run_loops(2, cancel_main, &x);
	assert_int_equal(x.rc, -ECANCELED);
	assert_int_equal(x.rc2, -ECANCELED);
	assert_true(x.t1 - x.t0 >= 20 * MS);       /* it was waiting */
	assert_true(weft_now_ns() - t0 < 5000 * MS); /* not for the tick */
	assert_int_equal(x.next_after, x.next_before); /* not consumed */
}

/* A deadline scope around a tick: -ETIMEDOUT at the scope's end, the tick
 * kept for the next call; a scope ending after the tick lets it come.
 * (weft/test.h style: the body checks itself.) */
static void *scope_body(void *arg)
{
	(void)arg;
	weft_interval iv;
	WEFT_TEST_CHECK_INT(weft_interval_init(&iv, 10000 * MS, WEFT_TICK_SKIP), ==, 0);
	uint64_t next = weft_interval_next(&iv);
	weft_scope s;
	uint64_t t0 = weft_now_ns();
	weft_scope_enter(&s, 30 * MS);
	int64_t rc = weft_interval_tick(&iv);
	weft_scope_exit(&s);
	uint64_t waited = weft_now_ns() - t0;
	WEFT_TEST_CHECK_INT(rc, ==, -ETIMEDOUT);
	WEFT_TEST_CHECK_UINT(waited, >=, 30 * MS);
	WEFT_TEST_CHECK_UINT(waited, <, 5000 * MS);
	WEFT_TEST_CHECK_UINT(weft_interval_next(&iv), ==, next); /* not consumed */

	WEFT_TEST_CHECK_INT(weft_interval_init(&iv, 20 * MS, WEFT_TICK_SKIP), ==, 0);
	uint64_t first = weft_interval_next(&iv);
	weft_scope_enter(&s, 2000 * MS);
	rc = weft_interval_tick(&iv);
	uint64_t ret = weft_now_ns();
	weft_scope_exit(&s);
	WEFT_TEST_CHECK_INT(rc, ==, 1);
	WEFT_TEST_CHECK_UINT(ret, >=, first);
	return NULL;
}

static void test_interval_scope_deadline(void **state)
{
	(void)state;
	weft_test_options o;
	weft_test_options_init(&o);
	o.runtime.loops = 1;
	o.timeout_ns = 10000 * MS;
	assert_int_equal(WEFT_TEST_RUN(scope_body, NULL, &o), 0);
}

/* Bad arguments: -EINVAL and *iv untouched; a tick outside a task is
 * -EPERM; a zeroed (never initialized) interval is -EINVAL. */
static void *einval_main(void *arg)
{
	int64_t *rc = arg;
	weft_interval zero;
	memset(&zero, 0, sizeof zero);
	*rc = weft_interval_tick(&zero);
	return NULL;
}

static void test_interval_einval(void **state)
{
	(void)state;
	weft_interval iv;
	memset(&iv, 0xa5, sizeof iv);
	weft_interval keep = iv;
	assert_int_equal(weft_interval_init(NULL, MS, WEFT_TICK_BURST), -EINVAL);
	assert_int_equal(weft_interval_init(&iv, 0, WEFT_TICK_BURST), -EINVAL);
	assert_int_equal(weft_interval_init(&iv, MS, (weft_tick_policy)3), -EINVAL);
	assert_int_equal(weft_interval_init(&iv, MS, (weft_tick_policy)-1), -EINVAL);
	assert_int_equal(weft_interval_init_at(&iv, 1, 0, WEFT_TICK_SKIP), -EINVAL);
	assert_memory_equal(&iv, &keep, sizeof iv);
	assert_int_equal(weft_interval_tick(NULL), -EPERM); /* not a task */
	assert_int_equal(weft_interval_init(&iv, MS, WEFT_TICK_DELAY), 0);
	assert_int_equal(weft_interval_tick(&iv), -EPERM);
	assert_int_equal(weft_interval_next(NULL), 0);
	weft_interval_reset(NULL); /* nothing to do */
	/* a period beyond the clock's range: the tick never comes */
	assert_int_equal(weft_interval_init(&iv, WEFT_FOREVER - 1, WEFT_TICK_BURST), 0);
	assert_int_equal(weft_interval_next(&iv), WEFT_FOREVER);
	int64_t rc = 0;
	weft_test_run_loops(1, einval_main, &rc);
	assert_int_equal(rc, -EINVAL);
}

/* Reset forgets the ticks missed and restarts the grid from now; init_at
 * with a time already past ticks at once. */
struct iv_reset_rec {
	int64_t rc_at, rc;
	uint64_t at_wait, reset_at, next_after_reset, ret, first, next_at;
};

static void *reset_main(void *arg)
{
	struct iv_reset_rec *x = arg;
	weft_interval iv;
	uint64_t t0 = weft_now_ns();
	weft_interval_init_at(&iv, t0 - PER, PER, WEFT_TICK_BURST);
	x->rc_at = weft_interval_tick(&iv); /* due a period ago: at once */
	x->at_wait = weft_now_ns() - t0;
	x->next_at = weft_interval_next(&iv);
	x->first = t0 - PER;
	spin_until(weft_now_ns() + 3 * PER); /* behind by three ticks */
	x->reset_at = weft_now_ns();
	weft_interval_reset(&iv);
	x->next_after_reset = weft_interval_next(&iv);
	x->rc = weft_interval_tick(&iv); /* waits a period: nothing owed */
	x->ret = weft_now_ns();
	return NULL;
}

static void test_interval_reset(void **state)
{
	(void)state;
	struct iv_reset_rec x;
	memset(&x, 0, sizeof x);
	weft_test_run_loops(1, reset_main, &x);
	assert_int_equal(x.rc_at, 1);
	assert_true(x.at_wait < PER); /* did not wait for a grid time */
	assert_int_equal(x.next_at, x.first + PER); /* on init_at's grid */
	assert_int_equal(x.rc, 1);
	assert_true(x.next_after_reset >= x.reset_at + PER);
	assert_true(x.next_after_reset < x.reset_at + 2 * PER);
	assert_true(x.ret >= x.next_after_reset); /* waited, not a burst */
}

/* Pacing: many ticks at 1 ms on the grid.  Sleeping a period after each
 * round would add every wake-up latency to the total; ticks on the grid
 * are each late by their own latency only, so the average period holds
 * and the last ticks are as close to their times as the first. */
enum { PACE_N = 200 };

struct pace_rec {
	uint64_t first, ret[PACE_N];
	int64_t n[PACE_N];
};

static void *pace_main(void *arg)
{
	struct pace_rec *x = arg;
	weft_interval iv;
	weft_interval_init(&iv, MS, WEFT_TICK_BURST);
	x->first = weft_interval_next(&iv);
	for (int i = 0; i < PACE_N; i++) {
		x->n[i] = weft_interval_tick(&iv);
		x->ret[i] = weft_now_ns();
	}
	return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Median lateness (ns) of ticks from..from+PACE_W-1 against the grid:
 * robust to the few ticks a loaded machine delays. */
enum { PACE_W = 50 };

static int64_t pace_median_late(const struct pace_rec *x, int from)
{
	int64_t v[PACE_W];
	for (int i = 0; i < PACE_W; i++)
		v[i] = (int64_t)(x->ret[from + i] - x->first - (uint64_t)(from + i) * MS);
	qsort(v, PACE_W, sizeof(v[0]), cmp_i64);
	return v[PACE_W / 2];
}

static void test_interval_pacing(void **state)
{
	(void)state;
	struct pace_rec x;
	memset(&x, 0, sizeof x);
	weft_test_run_loops(1, pace_main, &x);
	for (int i = 0; i < PACE_N; i++) {
		assert_int_equal(x.n[i], 1);
		assert_true(x.ret[i] >= x.first + (uint64_t)i * MS); /* never early */
	}
	/* the average period, as the slope between the median lateness of
	 * the first and of the last 50 ticks (150 periods apart).  A loop
	 * of weft_sleep(1 ms) measured here: 1.064 ms on io_uring, 1.116 on
	 * epoll (each round adds a wake-up); the grid: 1.000 */
	int64_t early = pace_median_late(&x, 0), late = pace_median_late(&x, PACE_N - PACE_W);
	double avg = 1 + (double)(late - early) / 1e6 / (PACE_N - PACE_W);
	print_message("median lateness %.3f ms, then %.3f ms: average period %.4f ms "
		      "(first to last tick: %.4f ms)\n",
		      (double)early / 1e6, (double)late / 1e6, avg,
		      (double)(x.ret[PACE_N - 1] - x.ret[0]) / (PACE_N - 1) / 1e6);
	double tol = WEFT_TEST_SANITIZED ? 0.03 : 0.02;
	assert_true(avg > 1 - tol && avg < 1 + tol);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_near_heap_far_wheel),
	cmocka_unit_test(test_beyond_one_turn),
	cmocka_unit_test(test_wheel_link_unlink_churn),
	cmocka_unit_test(test_far_deadlines_fire_on_time),
	cmocka_unit_test(test_far_scope_churn),
	cmocka_unit_test(test_sleep_until),
	cmocka_unit_test(test_interval_burst_overrun),
	cmocka_unit_test(test_interval_delay_overrun),
	cmocka_unit_test(test_interval_skip_overrun),
	cmocka_unit_test(test_interval_cancel),
	cmocka_unit_test(test_interval_scope_deadline),
	cmocka_unit_test(test_interval_einval),
	cmocka_unit_test(test_interval_reset),
	cmocka_unit_test(test_interval_pacing),
};

WEFT_TEST_MAIN(tests)
