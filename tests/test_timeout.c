/*
 * Timeouts and deadlines (weft.h's section of that name): the one rule,
 * call family by call family.  For each: a timeout of 0 returns -ETIMEDOUT
 * without suspending when nothing is ready, and succeeds when something
 * is; WEFT_FOREVER waits and is woken; a huge value (WEFT_FOREVER - 1)
 * does not wrap round into the past.  Absolute deadlines: WEFT_FOREVER is
 * none, 0 (or any past time) has expired.  Connects, streams and servers
 * run on both backends (io_uring, where the kernel allows it, and epoll).
 *
 * "Without suspending": the tests run on one loop, and a marker task is
 * made ready just before the call; it can only have run if the caller
 * suspended.
 *
 * docs/architecture.md rule 7: tasks record into structs; the test asserts
 * after weft_run returns.
 */
#include "weft_test.h"
#include "weft_test_io.h"
#include "runtime/internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define HUGE_NS (WEFT_FOREVER - 1)

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

/* A task made ready on the caller's loop (one loop: it runs only once the
 * caller suspends). */
struct marker {
	_Atomic int ran;
	weft_task *t;
};

static void *mark(void *arg)
{
	atomic_store(&((struct marker *)arg)->ran, 1);
	return NULL;
}

static void marker_arm(struct marker *m)
{
	atomic_store(&m->ran, 0);
	m->t = go_pinned(mark, m, WEFT_PIN_CURRENT);
}

/* Whether the caller suspended since marker_arm (1), or not (0); -1 if
 * the marker could not be spawned.  Then reaps the marker. */
static int marker_ran(struct marker *m)
{
	int ran = m->t ? atomic_load(&m->ran) : -1;
	finish(m->t);
	return ran;
}

/* Returns arg >> 16 after sleeping (arg & 0xffff) ms. */
static void *ret_after(void *arg)
{
	uintptr_t v = U(arg);
	weft_sleep_ms(v & 0xffff);
	return P(v >> 16);
}

#define RET_AFTER(val, ms) P(((uintptr_t)(val) << 16) | (ms))

static void *sleep_long(void *arg)
{
	(void)arg;
	int r = weft_sleep_ms(10000);
	return P(r == -ECANCELED ? 0x44 : 0x45);
}

/* Wait (up to 2 s) until t has finished, without joining it. */
static void until_done(weft_task *t)
{
	for (int i = 0; i < 2000 && !weft_task_done(t); i++)
		weft_sleep_ms(1);
}

static const unsigned backends[] = { WEFT_BACKEND_IO_URING, WEFT_BACKEND_EPOLL };

/* Run fn(arg) as main of a runtime of `loops` loops on `backend`; false
 * if that backend cannot start here (io_uring refused: said once). */
static bool run_on(unsigned backend, unsigned loops, weft_fn fn, void *arg)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = loops;
	cfg.backend = backend;
	cfg.backend_quiet = true;
	int r = weft_run(&cfg, fn, arg, NULL);
	if (r < 0 && backend == WEFT_BACKEND_IO_URING) {
		print_message("io_uring unavailable (%s): epoll only\n", weft_strerror(r));
		return false;
	}
	assert_int_equal(r, 0);
	return true;
}

/* The backend the calling task's runtime runs on. */
static unsigned current_backend(void)
{
	static weft_runtime_stats st; /* large: not on a task's stack */
	weft_runtime_stats_get(weft_runtime_current(), &st);
	return st.backend;
}

/* ---------------------------------------------------------------------- */
/* the helper: now + timeout saturates                                     */
/* ---------------------------------------------------------------------- */

static void test_deadline_arithmetic_saturates(void **state)
{
	(void)state;
	assert_true(WEFT_FOREVER == UINT64_MAX);
	assert_true(weft__deadline_add(100, 5) == 105);
	assert_true(weft__deadline_add(100, 0) == 100);
	assert_true(weft__deadline_add(100, WEFT_FOREVER) == WEFT_FOREVER);
	assert_true(weft__deadline_add(100, HUGE_NS) == WEFT_FOREVER);
	assert_true(weft__deadline_add(WEFT_FOREVER - 10, 10) == WEFT_FOREVER);
	assert_true(weft__deadline_add(WEFT_FOREVER - 10, 9) == WEFT_FOREVER - 1);
	uint64_t now = weft_now_ns();
	assert_true(weft__deadline_add(now, HUGE_NS) == WEFT_FOREVER);
	assert_true(weft__deadline_add(now, WEFT_FOREVER - now) == WEFT_FOREVER);
	assert_true(weft__deadline_add(now, WEFT_FOREVER - now - 1) == WEFT_FOREVER - 1);
	/* Public deadlines into the internal waits (0 there is "none"). */
	assert_true(weft__deadline_in(WEFT_FOREVER) == 0);
	assert_true(weft__deadline_in(0) == 1); /* expired, never "none" */
	assert_true(weft__deadline_in(12345) == 12345);
	assert_true(weft__deadline_in(HUGE_NS) == HUGE_NS);
	/* The internal deadline of a timeout. */
	assert_true(weft__deadline_after(WEFT_FOREVER) == 0);
	assert_true(weft__deadline_after(HUGE_NS) == 0);
	uint64_t d = weft__deadline_after(0);
	assert_true(d >= now && d <= weft_now_ns());
	d = weft__deadline_after(1000 * MS);
	assert_true(d >= now + 1000 * MS);
}

/* ---------------------------------------------------------------------- */
/* task joins                                                              */
/* ---------------------------------------------------------------------- */

struct join_rec {
	int zero_rc, zero_ran, later_rc, done_rc, forever_rc, huge_rc;
	void *zero_res, *later_res, *done_res, *forever_res, *huge_res;
	uint64_t forever_ns, huge_ns;
};

static void *join_main(void *arg)
{
	struct join_rec *x = arg;
	struct marker m;
	/* 0, unfinished: -ETIMEDOUT now, without even letting it run. */
	weft_task *t = go_pinned(ret_after, RET_AFTER(0x11, 0), WEFT_PIN_NONE);
	x->zero_res = P(0x55);
	marker_arm(&m);
	x->zero_rc = weft_task_join_timeout(t, &x->zero_res, 0);
	x->zero_ran = marker_ran(&m);
	x->later_rc = weft_task_join(t, &x->later_res); /* the result stayed */
	weft_task_release(t);
	/* 0, finished: its result, at once. */
	t = go_pinned(ret_after, RET_AFTER(0x22, 0), WEFT_PIN_NONE);
	until_done(t);
	x->done_rc = weft_task_join_timeout(t, &x->done_res, 0);
	weft_task_release(t);
	/* WEFT_FOREVER and a huge timeout: wait until it finishes. */
	t = go_pinned(ret_after, RET_AFTER(0x33, 50), WEFT_PIN_NONE);
	uint64_t t0 = weft_now_ns();
	x->forever_rc = weft_task_join_timeout(t, &x->forever_res, WEFT_FOREVER);
	x->forever_ns = weft_now_ns() - t0;
	weft_task_release(t);
	t = go_pinned(ret_after, RET_AFTER(0x44, 50), WEFT_PIN_NONE);
	t0 = weft_now_ns();
	x->huge_rc = weft_task_join_timeout(t, &x->huge_res, HUGE_NS);
	x->huge_ns = weft_now_ns() - t0;
	weft_task_release(t);
	return NULL;
}

static void test_task_join_timeout(void **state)
{
	(void)state;
	struct join_rec x = { 0 };
	weft_test_run_loops(1, join_main, &x);
	assert_int_equal(x.zero_rc, -ETIMEDOUT);
	assert_int_equal(x.zero_ran, 0);
	assert_int_equal(U(x.zero_res), 0x55); /* untouched */
	assert_int_equal(x.later_rc, 0);
	assert_int_equal(U(x.later_res), 0x11);
	assert_int_equal(x.done_rc, 0);
	assert_int_equal(U(x.done_res), 0x22);
	assert_int_equal(x.forever_rc, 0);
	assert_int_equal(U(x.forever_res), 0x33);
	assert_true(x.forever_ns >= 45 * MS);
	assert_int_equal(x.huge_rc, 0);
	assert_int_equal(U(x.huge_res), 0x44);
	assert_true(x.huge_ns >= 45 * MS);
}

/* ---------------------------------------------------------------------- */
/* wait_for                                                                */
/* ---------------------------------------------------------------------- */

struct wait_for_rec {
	int done_rc, zero_rc, zero_finished, forever_rc, huge_rc;
	void *done_res, *zero_res, *forever_res, *huge_res;
	uint64_t zero_ns, forever_ns, huge_ns;
};

static void *wait_for_main(void *arg)
{
	struct wait_for_rec *x = arg;
	/* 0, finished: joined at once. */
	weft_task *t = go_pinned(ret_after, RET_AFTER(0x21, 0), WEFT_PIN_NONE);
	until_done(t);
	x->done_rc = weft_wait_for(t, &x->done_res, 0);
	weft_task_release(t);
	/* 0, unfinished: cancelled and awaited (asyncio), -ETIMEDOUT, and its
	 * return value is still handed over. */
	t = go_pinned(sleep_long, NULL, WEFT_PIN_NONE);
	weft_sleep_ms(5); /* it is asleep (cancelled before it ran, it would not run) */
	uint64_t t0 = weft_now_ns();
	x->zero_rc = weft_wait_for(t, &x->zero_res, 0);
	x->zero_ns = weft_now_ns() - t0;
	x->zero_finished = weft_task_done(t);
	weft_task_release(t);
	/* WEFT_FOREVER and huge: wait for it to finish. */
	t = go_pinned(ret_after, RET_AFTER(0x23, 50), WEFT_PIN_NONE);
	t0 = weft_now_ns();
	x->forever_rc = weft_wait_for(t, &x->forever_res, WEFT_FOREVER);
	x->forever_ns = weft_now_ns() - t0;
	weft_task_release(t);
	t = go_pinned(ret_after, RET_AFTER(0x24, 50), WEFT_PIN_NONE);
	t0 = weft_now_ns();
	x->huge_rc = weft_wait_for(t, &x->huge_res, HUGE_NS);
	x->huge_ns = weft_now_ns() - t0;
	weft_task_release(t);
	return NULL;
}

static void test_wait_for_timeout(void **state)
{
	(void)state;
	struct wait_for_rec x = { 0 };
	weft_test_run_loops(1, wait_for_main, &x);
	assert_int_equal(x.done_rc, 0);
	assert_int_equal(U(x.done_res), 0x21);
	assert_int_equal(x.zero_rc, -ETIMEDOUT);
	assert_int_equal(U(x.zero_res), 0x44); /* its sleep was cancelled */
	assert_true(x.zero_finished);
	assert_true(x.zero_ns < 5000 * MS);
	assert_int_equal(x.forever_rc, 0);
	assert_int_equal(U(x.forever_res), 0x23);
	assert_true(x.forever_ns >= 45 * MS);
	assert_int_equal(x.huge_rc, 0);
	assert_int_equal(U(x.huge_res), 0x24);
	assert_true(x.huge_ns >= 45 * MS);
}

/* ---------------------------------------------------------------------- */
/* futures                                                                 */
/* ---------------------------------------------------------------------- */

struct set_later {
	weft_future *f;
	unsigned ms;
	void *value;
};

static void *set_after(void *arg)
{
	struct set_later *s = arg;
	weft_sleep_ms(s->ms);
	weft_future_set_result(s->f, s->value);
	return NULL;
}

struct future_rec {
	int zero_rc, zero_ran, done_rc, forever_rc, huge_rc;
	void *zero_v, *done_v, *forever_v, *huge_v;
	uint64_t forever_ns, huge_ns;
};

/* Wait on a fresh future that another task completes after 50 ms. */
static int wait_woken(uint64_t timeout_ns, void **v, uint64_t *ns, void *value)
{
	weft_future *f;
	if (weft_future_create(&f) < 0)
		return -ENOMEM;
	struct set_later s = { .f = f, .ms = 50, .value = value };
	weft_task *t = go_pinned(set_after, &s, WEFT_PIN_NONE);
	uint64_t t0 = weft_now_ns();
	int r = weft_future_wait_timeout(f, v, timeout_ns);
	*ns = weft_now_ns() - t0;
	finish(t);
	weft_future_release(f);
	return r;
}

static void *future_main(void *arg)
{
	struct future_rec *x = arg;
	weft_future *f;
	if (weft_future_create(&f) < 0)
		return NULL;
	struct marker m;
	x->zero_v = P(0x55);
	marker_arm(&m);
	x->zero_rc = weft_future_wait_timeout(f, &x->zero_v, 0);
	x->zero_ran = marker_ran(&m);
	weft_future_set_result(f, P(0x31));
	x->done_rc = weft_future_wait_timeout(f, &x->done_v, 0);
	weft_future_release(f);
	x->forever_rc = wait_woken(WEFT_FOREVER, &x->forever_v, &x->forever_ns, P(0x32));
	x->huge_rc = wait_woken(HUGE_NS, &x->huge_v, &x->huge_ns, P(0x33));
	return NULL;
}

static void test_future_wait_timeout(void **state)
{
	(void)state;
	struct future_rec x = { 0 };
	weft_test_run_loops(1, future_main, &x);
	assert_int_equal(x.zero_rc, -ETIMEDOUT);
	assert_int_equal(x.zero_ran, 0);
	assert_int_equal(U(x.zero_v), 0x55);
	assert_int_equal(x.done_rc, 0);
	assert_int_equal(U(x.done_v), 0x31);
	assert_int_equal(x.forever_rc, 0);
	assert_int_equal(U(x.forever_v), 0x32);
	assert_true(x.forever_ns >= 45 * MS);
	assert_int_equal(x.huge_rc, 0);
	assert_int_equal(U(x.huge_v), 0x33);
	assert_true(x.huge_ns >= 45 * MS);
}

/* Foreign threads block on a futex: the same rule there. */
static void test_foreign_thread_timeouts(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(1);
	weft_future *f;
	assert_int_equal(weft_future_create(&f), 0);
	void *v = P(0x55);
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_future_wait_timeout(f, &v, 0), -ETIMEDOUT);
	assert_true(weft_now_ns() - t0 < 1000 * MS);
	assert_int_equal(U(v), 0x55);
	struct set_later s = { .f = f, .ms = 50, .value = P(0x61) };
	weft_task *t;
	t0 = weft_now_ns();
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, set_after, &s), 0);
	assert_int_equal(weft_future_wait_timeout(f, &v, HUGE_NS), 0);
	assert_true(weft_now_ns() - t0 >= 45 * MS);
	assert_int_equal(U(v), 0x61);
	assert_int_equal(weft_task_join(t, NULL), 0); /* done with f */
	weft_task_release(t);
	weft_future_release(f);

	t0 = weft_now_ns();
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, ret_after, RET_AFTER(0x62, 50)), 0);
	v = P(0x55);
	assert_int_equal(weft_task_join_timeout(t, &v, 0), -ETIMEDOUT);
	assert_int_equal(U(v), 0x55);
	assert_int_equal(weft_task_join_timeout(t, &v, HUGE_NS), 0);
	assert_true(weft_now_ns() - t0 >= 45 * MS);
	assert_int_equal(U(v), 0x62);
	weft_task_release(t);
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, ret_after, RET_AFTER(0x63, 50)), 0);
	assert_int_equal(weft_task_join_timeout(t, &v, WEFT_FOREVER), 0);
	assert_int_equal(U(v), 0x63);
	weft_task_release(t);
	weft_runtime_destroy(rt);
}

/* ---------------------------------------------------------------------- */
/* deadline scopes and sleep                                               */
/* ---------------------------------------------------------------------- */

struct scope_rec {
	int zero_rc, zero_ran, zero_exit;
	int at0_rc, at0_exit, past_rc, past_exit;
	int forever_rc, forever_exit, huge_rc, huge_exit;
	int at_forever_rc, at_forever_exit, at_huge_rc, at_huge_exit;
	uint64_t forever_dl, huge_dl;
	int nested_rc, inner_exit, outer_exit;
	int woken_rc;
	void *woken_v;
	int sleep_forever_rc, sleep_huge_rc;
	uint64_t sleep_forever_ns, sleep_huge_ns;
};

static void *cancel_after(void *arg)
{
	weft_sleep_ms(30);
	weft_task_cancel(arg);
	return NULL;
}

static void *sleep_forever(void *arg)
{
	(void)arg;
	return P(weft_sleep(WEFT_FOREVER) == -ECANCELED ? 1 : 2);
}

static void *scope_main(void *arg)
{
	struct scope_rec *x = arg;
	weft_scope s, inner;
	struct marker m;
	/* 0: already expired, the first suspension point fails at once. */
	weft_scope_enter(&s, 0);
	marker_arm(&m);
	x->zero_rc = weft_sleep_ms(1000);
	x->zero_ran = atomic_load(&m.ran);
	x->zero_exit = weft_scope_exit(&s);
	marker_ran(&m);
	weft_scope_enter_at(&s, 0);
	x->at0_rc = weft_sleep_ms(1000);
	x->at0_exit = weft_scope_exit(&s);
	weft_scope_enter_at(&s, weft_now_ns() - 1);
	x->past_rc = weft_sleep_ms(1000);
	x->past_exit = weft_scope_exit(&s);
	/* WEFT_FOREVER and huge: no deadline (and no wrap). */
	weft_scope_enter(&s, WEFT_FOREVER);
	x->forever_dl = s.deadline;
	x->forever_rc = weft_sleep_ms(20);
	x->forever_exit = weft_scope_exit(&s);
	weft_scope_enter(&s, HUGE_NS);
	x->huge_dl = s.deadline;
	x->huge_rc = weft_sleep_ms(20);
	x->huge_exit = weft_scope_exit(&s);
	weft_scope_enter_at(&s, WEFT_FOREVER);
	x->at_forever_rc = weft_sleep_ms(20);
	x->at_forever_exit = weft_scope_exit(&s);
	weft_scope_enter_at(&s, HUGE_NS);
	x->at_huge_rc = weft_sleep_ms(20);
	x->at_huge_exit = weft_scope_exit(&s);
	/* A WEFT_FOREVER scope inside a short one: the outer one fires. */
	weft_scope_enter(&s, 20 * MS);
	weft_scope_enter(&inner, WEFT_FOREVER);
	x->nested_rc = weft_sleep_ms(1000);
	x->inner_exit = weft_scope_exit(&inner);
	x->outer_exit = weft_scope_exit(&s);
	/* A wait inside a WEFT_FOREVER scope is woken. */
	weft_future *f;
	if (weft_future_create(&f) == 0) {
		struct set_later sl = { .f = f, .ms = 30, .value = P(0x71) };
		weft_task *t = go_pinned(set_after, &sl, WEFT_PIN_NONE);
		weft_scope_enter(&s, WEFT_FOREVER);
		x->woken_rc = weft_future_wait(f, &x->woken_v);
		weft_scope_exit(&s);
		finish(t);
		weft_future_release(f);
	}
	/* weft_sleep(WEFT_FOREVER) sleeps until cancelled; a huge sleep is
	 * ended by a scope, not returned from at once. */
	weft_task *sl = go_pinned(sleep_forever, NULL, WEFT_PIN_NONE);
	weft_task *c = go_pinned(cancel_after, sl, WEFT_PIN_NONE);
	uint64_t t0 = weft_now_ns();
	x->sleep_forever_rc = (int)U(finish(sl));
	x->sleep_forever_ns = weft_now_ns() - t0;
	finish(c);
	t0 = weft_now_ns();
	weft_scope_enter(&s, 30 * MS);
	x->sleep_huge_rc = weft_sleep(HUGE_NS);
	x->sleep_huge_ns = weft_now_ns() - t0;
	weft_scope_exit(&s);
	return NULL;
}

static void test_scope_timeouts(void **state)
{
	(void)state;
	struct scope_rec x = { 0 };
	weft_test_run_loops(1, scope_main, &x);
	assert_int_equal(x.zero_rc, -ETIMEDOUT);
	assert_int_equal(x.zero_ran, 0);
	assert_int_equal(x.zero_exit, 1);
	assert_int_equal(x.at0_rc, -ETIMEDOUT);
	assert_int_equal(x.at0_exit, 1);
	assert_int_equal(x.past_rc, -ETIMEDOUT);
	assert_int_equal(x.past_exit, 1);
	assert_int_equal(x.forever_rc, 0);
	assert_int_equal(x.forever_exit, 0);
	assert_true(x.forever_dl == WEFT_FOREVER);
	assert_int_equal(x.huge_rc, 0);
	assert_int_equal(x.huge_exit, 0);
	assert_true(x.huge_dl == WEFT_FOREVER); /* saturated */
	assert_int_equal(x.at_forever_rc, 0);
	assert_int_equal(x.at_forever_exit, 0);
	assert_int_equal(x.at_huge_rc, 0);
	assert_int_equal(x.at_huge_exit, 0);
	assert_int_equal(x.nested_rc, -ETIMEDOUT);
	assert_int_equal(x.inner_exit, 0);
	assert_int_equal(x.outer_exit, 1);
	assert_int_equal(x.woken_rc, 0);
	assert_int_equal(U(x.woken_v), 0x71);
	assert_int_equal(x.sleep_forever_rc, 1);
	assert_true(x.sleep_forever_ns >= 25 * MS);
	assert_int_equal(x.sleep_huge_rc, -ETIMEDOUT);
	assert_true(x.sleep_huge_ns >= 25 * MS);
}

/* ---------------------------------------------------------------------- */
/* queues: put, get, join                                                  */
/* ---------------------------------------------------------------------- */

struct qop {
	weft_queue *q;
	unsigned ms;
	int what; /* 0 put, 1 get, 2 task_done */
};

static void *q_after(void *arg)
{
	struct qop *o = arg;
	weft_sleep_ms(o->ms);
	void *v;
	if (o->what == 0)
		weft_queue_put(o->q, P(0x99));
	else if (o->what == 1)
		weft_queue_get(o->q, &v);
	else
		weft_queue_task_done(o->q);
	return NULL;
}

enum { Q_FOREVER, Q_HUGE, Q_NT };

struct queue_rec {
	int create_rc;
	int get0_rc, get0_ran, get0_ready_rc;
	void *get0_v, *get0_ready_v;
	int put0_rc, put0_ran, put0_ready_rc;
	size_t put0_size;
	int join0_rc, join0_ran, join0_ready_rc;
	int get_rc[Q_NT], put_rc[Q_NT], join_rc[Q_NT];
	void *get_v[Q_NT];
	uint64_t get_ns[Q_NT], put_ns[Q_NT], join_ns[Q_NT];
	unsigned flags;
};

static void *queue_main(void *arg)
{
	struct queue_rec *x = arg;
	weft_queue_config cfg;
	weft_queue_config_init(&cfg);
	cfg.capacity = 1;
	cfg.flags = x->flags;
	weft_queue *q;
	if ((x->create_rc = weft_queue_create(&q, &cfg)) < 0)
		return NULL;
	struct marker m;
	void *v;
	/* get: 0 on an empty queue, then with an item there. */
	x->get0_v = P(0x55);
	marker_arm(&m);
	x->get0_rc = weft_queue_get_timeout(q, &x->get0_v, 0);
	x->get0_ran = marker_ran(&m);
	weft_queue_put(q, P(0x41));
	x->get0_ready_rc = weft_queue_get_timeout(q, &x->get0_ready_v, 0);
	weft_queue_task_done(q);
	/* put: 0 on a full queue, then with room. */
	weft_queue_put(q, P(0x42));
	marker_arm(&m);
	x->put0_rc = weft_queue_put_timeout(q, P(0x43), 0);
	x->put0_ran = marker_ran(&m);
	x->put0_size = weft_queue_size(q);
	weft_queue_get(q, &v);
	weft_queue_task_done(q);
	x->put0_ready_rc = weft_queue_put_timeout(q, P(0x44), 0);
	/* join: 0 with an unfinished item, then with none. */
	marker_arm(&m);
	x->join0_rc = weft_queue_join_timeout(q, 0);
	x->join0_ran = marker_ran(&m);
	weft_queue_get(q, &v);
	weft_queue_task_done(q);
	x->join0_ready_rc = weft_queue_join_timeout(q, 0);
	/* WEFT_FOREVER and huge: each waits until the other side acts. */
	const uint64_t to[Q_NT] = { WEFT_FOREVER, HUGE_NS };
	for (int i = 0; i < Q_NT; i++) {
		struct qop o = { .q = q, .ms = 50, .what = 0 };
		weft_task *t = go_pinned(q_after, &o, WEFT_PIN_NONE);
		uint64_t t0 = weft_now_ns();
		x->get_rc[i] = weft_queue_get_timeout(q, &x->get_v[i], to[i]);
		x->get_ns[i] = weft_now_ns() - t0;
		finish(t);

		weft_queue_put(q, P(0x45)); /* full again */
		o.what = 1;
		t = go_pinned(q_after, &o, WEFT_PIN_NONE);
		t0 = weft_now_ns();
		x->put_rc[i] = weft_queue_put_timeout(q, P(0x46), to[i]);
		x->put_ns[i] = weft_now_ns() - t0;
		finish(t);

		/* unfinished: the get of 0x99 above, 0x45 (taken by q_after)
		 * and 0x46 (still queued) */
		weft_queue_task_done(q);
		weft_queue_get(q, &v);
		weft_queue_task_done(q);
		o.what = 2;
		t = go_pinned(q_after, &o, WEFT_PIN_NONE);
		t0 = weft_now_ns();
		x->join_rc[i] = weft_queue_join_timeout(q, to[i]);
		x->join_ns[i] = weft_now_ns() - t0;
		finish(t);
	}
	weft_queue_destroy(q);
	return NULL;
}

static void queue_timeouts(unsigned flags)
{
	struct queue_rec x = { .flags = flags };
	weft_test_run_loops(1, queue_main, &x);
	assert_int_equal(x.create_rc, 0);
	assert_int_equal(x.get0_rc, -ETIMEDOUT);
	assert_int_equal(x.get0_ran, 0);
	assert_int_equal(U(x.get0_v), 0x55);
	assert_int_equal(x.get0_ready_rc, 0);
	assert_int_equal(U(x.get0_ready_v), 0x41);
	assert_int_equal(x.put0_rc, -ETIMEDOUT);
	assert_int_equal(x.put0_ran, 0);
	assert_int_equal(x.put0_size, 1);
	assert_int_equal(x.put0_ready_rc, 0);
	assert_int_equal(x.join0_rc, -ETIMEDOUT);
	assert_int_equal(x.join0_ran, 0);
	assert_int_equal(x.join0_ready_rc, 0);
	for (int i = 0; i < Q_NT; i++) {
		assert_int_equal(x.get_rc[i], 0);
		assert_int_equal(U(x.get_v[i]), 0x99);
		assert_true(x.get_ns[i] >= 45 * MS);
		assert_int_equal(x.put_rc[i], 0);
		assert_true(x.put_ns[i] >= 45 * MS);
		assert_int_equal(x.join_rc[i], 0);
		assert_true(x.join_ns[i] >= 45 * MS);
	}
}

static void test_queue_timeouts(void **state)
{
	(void)state;
	queue_timeouts(0);
}

static void test_queue_timeouts_spsc(void **state)
{
	(void)state;
	queue_timeouts(WEFT_QUEUE_SPSC);
}

/* ---------------------------------------------------------------------- */
/* connect                                                                 */
/* ---------------------------------------------------------------------- */

enum { C_FOREVER, C_HUGE, C_NT };

struct connect_rec {
	unsigned backend;
	int listen_fd;
	int zero_rc, zero_ran, host_zero_rc, host_zero_ran;
	int fd[C_NT], host_fd[C_NT];
};

static void *connect_main(void *arg)
{
	struct connect_rec *x = arg;
	x->backend = current_backend();
	weft_sockaddr a;
	weft_addr_ip(&a, "127.0.0.1", 0);
	if ((x->listen_fd = weft_tcp_listen(&a, 16, 0)) < 0)
		return NULL;
	weft_sock_local(x->listen_fd, &a);
	uint16_t port = weft_addr_port(&a);
	struct marker m;
	/* 0: a connect always has to wait, so -ETIMEDOUT at once. */
	marker_arm(&m);
	x->zero_rc = weft_tcp_connect(&a, 0);
	x->zero_ran = marker_ran(&m);
	marker_arm(&m);
	x->host_zero_rc = weft_tcp_connect_host("127.0.0.1", port, 0);
	x->host_zero_ran = marker_ran(&m);
	/* WEFT_FOREVER and huge: connected (the kernel completes the
	 * handshake against the backlog). */
	const uint64_t to[C_NT] = { WEFT_FOREVER, HUGE_NS };
	for (int i = 0; i < C_NT; i++) {
		x->fd[i] = weft_tcp_connect(&a, to[i]);
		x->host_fd[i] = weft_tcp_connect_host("127.0.0.1", port, to[i]);
	}
	for (int i = 0; i < C_NT; i++) {
		if (x->fd[i] >= 0)
			close(x->fd[i]);
		if (x->host_fd[i] >= 0)
			close(x->host_fd[i]);
	}
	close(x->listen_fd);
	return NULL;
}

static void test_connect_timeouts(void **state)
{
	(void)state;
	for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
		struct connect_rec x = { 0 };
		if (!run_on(backends[b], 1, connect_main, &x))
			continue;
		print_message("connect on %s\n", weft_backend_name(x.backend));
		assert_true(x.listen_fd >= 0);
		assert_int_equal(x.zero_rc, -ETIMEDOUT);
		assert_int_equal(x.zero_ran, 0);
		assert_int_equal(x.host_zero_rc, -ETIMEDOUT);
		assert_int_equal(x.host_zero_ran, 0);
		for (int i = 0; i < C_NT; i++) {
			assert_true(x.fd[i] >= 0);
			assert_true(x.host_fd[i] >= 0);
		}
	}
}

/* ---------------------------------------------------------------------- */
/* streams: read_timeout_ns and weft_stream_read_deadline                  */
/* ---------------------------------------------------------------------- */

struct send_later {
	int fd;
	unsigned ms;
	const char *text;
};

static void *send_after(void *arg)
{
	struct send_later *s = arg;
	weft_sleep_ms(s->ms);
	weft_send_all(s->fd, s->text, strlen(s->text), 0, NULL);
	return NULL;
}

enum { S_DEFAULT, S_FOREVER, S_MAX, S_HUGE, S_NT };

struct stream_rec {
	unsigned backend;
	bool multishot;
	uint64_t default_timeout;
	/* read_timeout_ns = 0 */
	ssize_t zero_rc;
	int zero_ran;
	/* read_timeout_ns = default, WEFT_FOREVER, UINT64_MAX, huge */
	ssize_t read_rc[S_NT];
	uint64_t read_ns[S_NT];
	char read_text[S_NT][8];
	/* read deadlines */
	ssize_t first_rc, buffered_rc, expired_rc, past_rc, cleared_rc, far_rc;
	int buffered_ran, expired_ran;
	uint64_t cleared_ns, far_ns;
	char buffered_text[8], cleared_text[8], far_text[8];
};

/* Open a stream on one end of a socketpair with read_timeout_ns = *rto
 * (rto NULL: the default); *peer gets the other end. */
static weft_stream *open_pair(const struct stream_rec *x, const uint64_t *rto, int *peer)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return NULL;
	weft_stream_config cfg;
	weft_stream_config_init(&cfg);
	cfg.multishot = x->multishot;
	if (rto)
		cfg.read_timeout_ns = *rto;
	weft_stream *s;
	if (weft_stream_open(&s, sv[0], &cfg) < 0) {
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	*peer = sv[1];
	return s;
}

static void copy_line(char *dst, size_t cap, const char *p, ssize_t n)
{
	snprintf(dst, cap, "%.*s", n > 0 ? (int)n : 0, n > 0 ? p : "");
}

static void *stream_main(void *arg)
{
	struct stream_rec *x = arg;
	x->backend = current_backend();
	weft_stream_config dc;
	weft_stream_config_init(&dc);
	x->default_timeout = dc.read_timeout_ns;
	int peer;
	struct marker m;
	char buf[16];
	const char *p;

	/* read_timeout_ns = 0: nothing buffered, so -ETIMEDOUT at once. */
	const uint64_t zero = 0;
	weft_stream *s = open_pair(x, &zero, &peer);
	if (!s)
		return NULL;
	marker_arm(&m);
	x->zero_rc = weft_stream_read(s, buf, sizeof buf);
	x->zero_ran = marker_ran(&m);
	weft_stream_close(s);
	close(peer);

	/* No limit: the default, WEFT_FOREVER, UINT64_MAX and huge all wait
	 * for bytes sent 50 ms later (UINT64_MAX used to wrap: every read
	 * failed at once). */
	const uint64_t rto[S_NT] = { 0 /* unused */, WEFT_FOREVER, UINT64_MAX, HUGE_NS };
	for (int i = 0; i < S_NT; i++) {
		if (!(s = open_pair(x, i == S_DEFAULT ? NULL : &rto[i], &peer)))
			return NULL;
		struct send_later sl = { .fd = peer, .ms = 50, .text = "late\n" };
		weft_task *t = go_pinned(send_after, &sl, WEFT_PIN_NONE);
		uint64_t t0 = weft_now_ns();
		x->read_rc[i] = weft_stream_read_line(s, &p);
		x->read_ns[i] = weft_now_ns() - t0;
		copy_line(x->read_text[i], sizeof x->read_text[i], p, x->read_rc[i]);
		finish(t);
		weft_stream_close(s);
		close(peer);
	}

	/* Deadlines: 0 has expired, so only what is buffered is read;
	 * WEFT_FOREVER clears it; a huge deadline is far away. */
	if (!(s = open_pair(x, NULL, &peer)))
		return NULL;
	weft_send_all(peer, "one\ntwo\n", 8, 0, NULL);
	x->first_rc = weft_stream_read_line(s, &p); /* both lines buffered */
	weft_stream_read_deadline(s, 0);
	marker_arm(&m);
	x->buffered_rc = weft_stream_read_line(s, &p);
	copy_line(x->buffered_text, sizeof x->buffered_text, p, x->buffered_rc);
	x->buffered_ran = atomic_load(&m.ran);
	x->expired_rc = weft_stream_read_line(s, &p);
	x->expired_ran = marker_ran(&m);
	weft_stream_read_deadline(s, weft_now_ns() - 1);
	x->past_rc = weft_stream_read_line(s, &p);
	weft_stream_read_deadline(s, WEFT_FOREVER);
	struct send_later sl = { .fd = peer, .ms = 50, .text = "three\n" };
	weft_task *t = go_pinned(send_after, &sl, WEFT_PIN_NONE);
	uint64_t t0 = weft_now_ns();
	x->cleared_rc = weft_stream_read_line(s, &p);
	x->cleared_ns = weft_now_ns() - t0;
	copy_line(x->cleared_text, sizeof x->cleared_text, p, x->cleared_rc);
	finish(t);
	weft_stream_read_deadline(s, HUGE_NS);
	sl.text = "four\n";
	t = go_pinned(send_after, &sl, WEFT_PIN_NONE);
	t0 = weft_now_ns();
	x->far_rc = weft_stream_read_line(s, &p);
	x->far_ns = weft_now_ns() - t0;
	copy_line(x->far_text, sizeof x->far_text, p, x->far_rc);
	finish(t);
	weft_stream_close(s);
	close(peer);
	return NULL;
}

static void stream_timeouts(bool multishot)
{
	for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
		struct stream_rec x = { .multishot = multishot };
		if (!run_on(backends[b], 1, stream_main, &x))
			continue;
		print_message("stream on %s%s\n", weft_backend_name(x.backend),
			      multishot ? ", multishot" : "");
		assert_true(x.default_timeout == WEFT_FOREVER);
		assert_int_equal(x.zero_rc, -ETIMEDOUT);
		assert_int_equal(x.zero_ran, 0);
		for (int i = 0; i < S_NT; i++) {
			assert_int_equal(x.read_rc[i], 5);
			assert_string_equal(x.read_text[i], "late\n");
			assert_true(x.read_ns[i] >= 45 * MS);
		}
		assert_int_equal(x.first_rc, 4);
		assert_int_equal(x.buffered_rc, 4);
		assert_string_equal(x.buffered_text, "two\n");
		assert_int_equal(x.buffered_ran, 0);
		assert_int_equal(x.expired_rc, -ETIMEDOUT);
		assert_int_equal(x.expired_ran, 0);
		assert_int_equal(x.past_rc, -ETIMEDOUT);
		assert_int_equal(x.cleared_rc, 6);
		assert_string_equal(x.cleared_text, "three\n");
		assert_true(x.cleared_ns >= 45 * MS);
		assert_int_equal(x.far_rc, 5);
		assert_string_equal(x.far_text, "four\n");
		assert_true(x.far_ns >= 45 * MS);
	}
}

static void test_stream_timeouts(void **state)
{
	(void)state;
	stream_timeouts(false);
}

static void test_stream_timeouts_multishot(void **state)
{
	(void)state;
	stream_timeouts(true);
}

/* ---------------------------------------------------------------------- */
/* servers: idle_timeout_ns and the shutdown grace                         */
/* ---------------------------------------------------------------------- */

static _Atomic int h_started, h_sleeping, h_timedout, h_cancelled, h_finished;

static void reset_counters(void)
{
	atomic_store(&h_started, 0);
	atomic_store(&h_sleeping, 0);
	atomic_store(&h_timedout, 0);
	atomic_store(&h_cancelled, 0);
	atomic_store(&h_finished, 0);
}

/* Echo one line, or note how the read failed. */
static void echo_line(weft_stream *s, void *arg)
{
	(void)arg;
	atomic_fetch_add(&h_started, 1);
	const char *p;
	ssize_t n = weft_stream_read_line(s, &p);
	if (n > 0)
		weft_stream_write(s, p, (size_t)n);
	else if (n == -ETIMEDOUT)
		atomic_fetch_add(&h_timedout, 1);
	atomic_fetch_add(&h_finished, 1);
}

/* Read a line, sleep (arg: ms), answer; notes a cancelled sleep. */
static void slow_answer(weft_stream *s, void *arg)
{
	atomic_fetch_add(&h_started, 1);
	const char *p;
	if (weft_stream_read_line(s, &p) > 0) {
		atomic_fetch_add(&h_sleeping, 1);
		int r = weft_sleep_ms(U(arg));
		if (r == -ECANCELED)
			atomic_fetch_add(&h_cancelled, 1);
		else
			weft_stream_write(s, "done\n", 5);
	}
	atomic_fetch_add(&h_finished, 1);
}

/* Receive into buf until `want` bytes, EOF or 3 s: bytes, or -errno. */
static ssize_t recv_upto(int fd, char *buf, size_t want)
{
	weft_scope sc;
	weft_scope_enter(&sc, 3000 * MS);
	size_t got = 0;
	ssize_t r = 0;
	while (got < want && (r = weft_recv(fd, buf + got, want - got, 0)) > 0)
		got += (size_t)r;
	weft_scope_exit(&sc);
	return got ? (ssize_t)got : r;
}

static int start_server(weft_server **srv, const weft_server_config *cfg, weft_conn_fn fn,
			void *arg, weft_sockaddr *a)
{
	weft_addr_ip(a, "127.0.0.1", 0);
	int r = weft_server_start(srv, NULL, a, cfg, fn, arg);
	if (r == 0)
		weft_addr_ip(a, "127.0.0.1", weft_server_port(*srv));
	return r;
}

enum { I_ZERO, I_FOREVER, I_MAX, I_HUGE, I_NT };

struct idle_rec {
	unsigned backend;
	uint64_t default_idle, default_grace;
	int start_rc[I_NT];
	ssize_t got[I_NT];
	char text[I_NT][8];
	int timedout[I_NT];
};

static void *idle_main(void *arg)
{
	struct idle_rec *x = arg;
	x->backend = current_backend();
	weft_server_config cfg;
	weft_server_config_init(&cfg);
	x->default_idle = cfg.idle_timeout_ns;
	x->default_grace = cfg.grace_ns;
	const uint64_t idle[I_NT] = { 0, WEFT_FOREVER, UINT64_MAX, HUGE_NS };
	for (int i = 0; i < I_NT; i++) {
		reset_counters();
		cfg.idle_timeout_ns = idle[i];
		weft_server *srv;
		weft_sockaddr a;
		if ((x->start_rc[i] = start_server(&srv, &cfg, echo_line, NULL, &a)) < 0)
			continue;
		int fd = weft_tcp_connect(&a, 2000 * MS);
		if (fd >= 0) {
			/* Silent for 100 ms, then a line: no limit keeps the
			 * connection; 0 has already ended it (EOF). */
			weft_sleep_ms(100);
			weft_send_all(fd, "ping\n", 5, 0, NULL);
			x->got[i] = recv_upto(fd, x->text[i], 5);
			close(fd);
		} else {
			x->got[i] = fd;
		}
		for (int k = 0; k < 300 && atomic_load(&h_finished) < 1; k++)
			weft_sleep_ms(10);
		x->timedout[i] = atomic_load(&h_timedout);
		weft_server_shutdown(srv, 1000 * MS);
		weft_server_destroy(srv);
	}
	return NULL;
}

static void test_server_idle_timeouts(void **state)
{
	(void)state;
	for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
		struct idle_rec x = { 0 };
		if (!run_on(backends[b], 1, idle_main, &x))
			continue;
		print_message("server on %s\n", weft_backend_name(x.backend));
		assert_true(x.default_idle == WEFT_FOREVER); /* protocol-neutral */
		assert_true(x.default_grace == 5000 * MS);
		for (int i = 0; i < I_NT; i++)
			assert_int_equal(x.start_rc[i], 0);
		/* 0: the first receive fails at once, the client sees EOF. */
		assert_int_equal(x.timedout[I_ZERO], 1);
		assert_true(x.got[I_ZERO] <= 0);
		for (int i = I_FOREVER; i < I_NT; i++) {
			assert_int_equal(x.got[i], 5);
			assert_string_equal(x.text[i], "ping\n");
			assert_int_equal(x.timedout[i], 0);
		}
	}
}

enum { G_ZERO, G_FOREVER, G_HUGE, G_NT };

struct grace_rec {
	unsigned backend;
	int start_rc[G_NT], shut_rc[G_NT], started[G_NT], cancelled[G_NT];
	uint64_t shut_ns[G_NT];
	ssize_t got[G_NT];
	char text[G_NT][8];
};

struct grace_client {
	weft_sockaddr a;
	ssize_t got;
	char text[8];
};

static void *grace_client_main(void *arg)
{
	struct grace_client *c = arg;
	int fd = weft_tcp_connect(&c->a, 2000 * MS);
	if (fd < 0) {
		c->got = fd;
		return NULL;
	}
	weft_send_all(fd, "go\n", 3, 0, NULL);
	c->got = recv_upto(fd, c->text, 5);
	close(fd);
	return NULL;
}

static void *grace_main(void *arg)
{
	struct grace_rec *x = arg;
	x->backend = current_backend();
	/* The handler sleeps 10 s with grace 0 (cancelled at once), 100 ms
	 * otherwise (the shutdown waits for it). */
	const uint64_t grace[G_NT] = { 0, WEFT_FOREVER, HUGE_NS };
	const unsigned sleep_ms[G_NT] = { 10000, 100, 100 };
	for (int i = 0; i < G_NT; i++) {
		reset_counters();
		weft_server *srv;
		struct grace_client c = { 0 };
		if ((x->start_rc[i] = start_server(&srv, NULL, slow_answer, P(sleep_ms[i]),
						   &c.a)) < 0)
			continue;
		weft_task *t = go_pinned(grace_client_main, &c, WEFT_PIN_NONE);
		for (int k = 0; k < 3000 && atomic_load(&h_sleeping) < 1; k++)
			weft_sleep_ms(1);
		x->started[i] = atomic_load(&h_sleeping);
		uint64_t t0 = weft_now_ns();
		x->shut_rc[i] = weft_server_shutdown(srv, grace[i]);
		x->shut_ns[i] = weft_now_ns() - t0;
		x->cancelled[i] = atomic_load(&h_cancelled);
		finish(t);
		x->got[i] = c.got;
		memcpy(x->text[i], c.text, sizeof c.text);
		weft_server_destroy(srv);
	}
	return NULL;
}

static void test_server_shutdown_grace(void **state)
{
	(void)state;
	for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
		struct grace_rec x = { 0 };
		if (!run_on(backends[b], 1, grace_main, &x))
			continue;
		print_message("server on %s: grace 0 took %.0f ms, WEFT_FOREVER %.0f ms, "
			      "huge %.0f ms\n", weft_backend_name(x.backend),
			      x.shut_ns[G_ZERO] / 1e6, x.shut_ns[G_FOREVER] / 1e6,
			      x.shut_ns[G_HUGE] / 1e6);
		for (int i = 0; i < G_NT; i++) {
			assert_int_equal(x.start_rc[i], 0);
			assert_int_equal(x.shut_rc[i], 0);
			assert_int_equal(x.started[i], 1);
		}
		/* 0: no grace, the sleeping handler is cancelled at once. */
		assert_int_equal(x.cancelled[G_ZERO], 1);
		assert_true(x.shut_ns[G_ZERO] < 2000 * MS);
		assert_true(x.got[G_ZERO] <= 0);
		/* WEFT_FOREVER and huge: the shutdown waits for the handler
		 * to finish its answer (a grace that wrapped would have
		 * cancelled it at once). */
		for (int i = G_FOREVER; i < G_NT; i++) {
			assert_int_equal(x.cancelled[i], 0);
			assert_int_equal(x.got[i], 5);
			assert_string_equal(x.text[i], "done\n");
		}
	}
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_deadline_arithmetic_saturates),
	cmocka_unit_test(test_task_join_timeout),
	cmocka_unit_test(test_wait_for_timeout),
	cmocka_unit_test(test_future_wait_timeout),
	cmocka_unit_test(test_foreign_thread_timeouts),
	cmocka_unit_test(test_scope_timeouts),
	cmocka_unit_test(test_queue_timeouts),
	cmocka_unit_test(test_queue_timeouts_spsc),
	cmocka_unit_test(test_connect_timeouts),
	cmocka_unit_test(test_stream_timeouts),
	cmocka_unit_test(test_stream_timeouts_multishot),
	cmocka_unit_test(test_server_idle_timeouts),
	cmocka_unit_test(test_server_shutdown_grace),
};

WEFT_TEST_MAIN(tests)
