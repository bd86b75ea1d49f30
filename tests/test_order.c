/*
 * Order on one loop, as in asyncio: ready tasks run in the order they
 * became ready.  Spawns start in spawn order (however many: past the run
 * queue's ring too), sleepers that fall due in the same pass resume in
 * deadline order, and the waiters of an event, a condition's notify-all,
 * a future, a lock and a queue resume in the order they waited.  Every
 * test runs on a one-loop runtime; the tasks record the order they ran
 * in, and the test thread asserts on it after the runtime is gone.
 */
#include "weft_test.h"

#include <stdatomic.h>

#define MAXN 2000

typedef struct order {
	int seen[MAXN];
	int n;
} order;

static void note(order *o, int id)
{
	if (o->n < MAXN)
		o->seen[o->n++] = id;
}

static void assert_in_order(const order *o, int n)
{
	if (o->n != n)
		fail_msg("%d tasks ran, expected %d", o->n, n);
	for (int i = 0; i < n; i++)
		if (o->seen[i] != i)
			fail_msg("position %d ran task %d (expected %d)", i, o->seen[i], i);
}

static void run1(weft_fn fn, void *arg)
{
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	void *res = NULL;
	assert_int_equal(weft_run(&cfg, fn, arg, &res), 0);
	assert_null(res);
}

/* ---- spawns ---- */

typedef struct spawn_arg {
	order *o;
	int id;
} spawn_arg;

static void *record(void *arg)
{
	spawn_arg *a = arg;
	note(a->o, a->id);
	return NULL;
}

static order g_order;
static spawn_arg g_args[MAXN];
static weft_task *g_tasks[MAXN];

/* Join the n tasks in g_tasks (main returning would shut the runtime
 * down before they ran). */
static void *join_all(int n)
{
	for (int i = 0; i < n; i++) {
		if (weft_task_join(g_tasks[i], NULL) < 0)
			return P(1);
		weft_task_release(g_tasks[i]);
	}
	return NULL;
}

static void *spawn_many(void *arg)
{
	int n = (int)U(arg);
	for (int i = 0; i < n; i++) {
		g_args[i] = (spawn_arg){ &g_order, i };
		if (weft_task_spawn(&g_tasks[i], record, &g_args[i]) < 0)
			return P(1);
	}
	return join_all(n);
}

/* 1000 at once: more than the run queue's 256-slot ring holds. */
static void spawn_order_1000(void **state)
{
	(void)state;
	memset(&g_order, 0, sizeof g_order);
	run1(spawn_many, P(1000));
	assert_in_order(&g_order, 1000);
}

/* Pinned and stealable tasks share one FIFO on a one-loop runtime. */
static void *spawn_mixed(void *arg)
{
	(void)arg;
	weft_task_config c;
	weft_task_config_init(&c);
	for (int i = 0; i < 300; i++) {
		g_args[i] = (spawn_arg){ &g_order, i };
		c.pin = (i % 3 == 0) ? WEFT_PIN_CURRENT : WEFT_PIN_NONE;
		if (weft_task_spawn_ex(&g_tasks[i], &c, record, &g_args[i]) < 0)
			return P(1);
	}
	return join_all(300);
}

static void spawn_order_pinned_and_stealable(void **state)
{
	(void)state;
	memset(&g_order, 0, sizeof g_order);
	run1(spawn_mixed, NULL);
	assert_in_order(&g_order, 300);
}

/* ---- timers ---- */

static uint64_t g_base;
static weft_event g_start;

static void *sleep_then_record(void *arg)
{
	spawn_arg *a = arg;
	weft_event_wait(&g_start); /* every task has started (and has a stack) */
	/* Due 10 + id ms after a common base, however late this task ran. */
	uint64_t due = g_base + (uint64_t)(10 + a->id) * MS, now = weft_now_ns();
	weft_sleep(due > now ? due - now : 1);
	note(a->o, a->id);
	return NULL;
}

/* Sleeps of 10, 11, 12... ms behind 30 ms of busy work: all due in the
 * same pass, they resume in deadline order (armed in reverse order). */
static void *timers_main(void *arg)
{
	int n = (int)U(arg);
	weft_event_init(&g_start);
	for (int i = n - 1; i >= 0; i--) {
		g_args[i] = (spawn_arg){ &g_order, i };
		if (weft_task_spawn(&g_tasks[i], sleep_then_record, &g_args[i]) < 0)
			return P(1);
	}
	weft_yield(); /* they all start and wait for the event */
	g_base = weft_now_ns();
	weft_event_set(&g_start);
	weft_yield(); /* they arm their timers */
	uint64_t end = g_base + (uint64_t)(n + 30) * MS;
	while (weft_now_ns() < end)
		; /* busy: every deadline passes while the loop is blocked */
	return join_all(n);
}

static void timer_same_pass_deadline_order(void **state)
{
	(void)state;
	memset(&g_order, 0, sizeof g_order);
	run1(timers_main, P(8));
	assert_in_order(&g_order, 8);
}

/* ---- waiters ---- */

enum kind { K_EVENT, K_COND, K_FUTURE, K_LOCK, K_QUEUE, K_SEM };

typedef struct wctx {
	enum kind kind;
	weft_event ev;
	weft_lock lk;
	weft_cond cv;
	weft_future *fut;
	weft_queue *q;
	weft_sem sem;
	bool go;
	order o;
	atomic_int waiting;
} wctx;

typedef struct warg {
	wctx *c;
	int id;
} warg;

static void *waiter(void *arg)
{
	warg *a = arg;
	wctx *c = a->c;
	void *v;
	atomic_fetch_add(&c->waiting, 1);
	switch (c->kind) {
	case K_EVENT:
		weft_event_wait(&c->ev);
		break;
	case K_COND:
		weft_lock_acquire(&c->lk);
		while (!c->go)
			weft_cond_wait(&c->cv);
		weft_lock_release(&c->lk);
		break;
	case K_FUTURE:
		weft_future_wait(c->fut, &v);
		break;
	case K_LOCK:
		weft_lock_acquire(&c->lk);
		weft_lock_release(&c->lk);
		break;
	case K_QUEUE:
		weft_queue_get(c->q, &v);
		break;
	case K_SEM:
		weft_sem_acquire(&c->sem);
		weft_sem_release(&c->sem);
		break;
	}
	note(&c->o, a->id);
	return NULL;
}

#define NWAIT 5

static void *waiters_main(void *arg)
{
	wctx *c = arg;
	static warg wa[NWAIT];
	if (c->kind == K_LOCK)
		weft_lock_acquire(&c->lk);
	if (c->kind == K_SEM)
		weft_sem_acquire(&c->sem);
	for (int i = 0; i < NWAIT; i++) {
		wa[i] = (warg){ c, i };
		if (weft_task_spawn(&g_tasks[i], waiter, &wa[i]) < 0)
			return P(1);
		weft_yield(); /* i waits before i + 1 is spawned */
	}
	while (atomic_load(&c->waiting) < NWAIT)
		weft_yield();
	switch (c->kind) {
	case K_EVENT:
		weft_event_set(&c->ev);
		break;
	case K_COND:
		weft_lock_acquire(&c->lk);
		c->go = true;
		weft_cond_notify_all(&c->cv);
		weft_lock_release(&c->lk);
		break;
	case K_FUTURE:
		weft_future_set_result(c->fut, NULL);
		break;
	case K_LOCK:
		weft_lock_release(&c->lk);
		break;
	case K_QUEUE:
		for (int i = 0; i < NWAIT; i++)
			weft_queue_put(c->q, P(i + 1));
		break;
	case K_SEM:
		weft_sem_release(&c->sem);
		break;
	}
	return join_all(NWAIT);
}

static void run_waiters(enum kind k)
{
	wctx *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->kind = k;
	assert_int_equal(weft_event_init(&c->ev), 0);
	assert_int_equal(weft_lock_init(&c->lk), 0);
	assert_int_equal(weft_cond_init(&c->cv, &c->lk), 0);
	assert_int_equal(weft_sem_init(&c->sem, 1), 0);
	assert_int_equal(weft_future_create(&c->fut), 0);
	assert_int_equal(weft_queue_create(&c->q, NULL), 0);
	run1(waiters_main, c);
	assert_in_order(&c->o, NWAIT);
	weft_future_release(c->fut);
	weft_queue_destroy(c->q);
	free(c);
}

static void event_set_wait_order(void **state) { (void)state; run_waiters(K_EVENT); }
static void cond_notify_all_wait_order(void **state) { (void)state; run_waiters(K_COND); }
static void future_waiters_wait_order(void **state) { (void)state; run_waiters(K_FUTURE); }
static void lock_waiters_wait_order(void **state) { (void)state; run_waiters(K_LOCK); }
static void queue_getters_wait_order(void **state) { (void)state; run_waiters(K_QUEUE); }
static void sem_waiters_wait_order(void **state) { (void)state; run_waiters(K_SEM); }

/* ---- a wake does not jump ahead of tasks already ready ---- */

static void *wake_behind_ready_main(void *arg)
{
	(void)arg;
	static wctx c;
	static warg wa;
	memset(&c, 0, sizeof c);
	c.kind = K_EVENT;
	weft_event_init(&c.ev);
	wa = (warg){ &c, 3 };
	weft_task_spawn(&g_tasks[3], waiter, &wa);
	weft_yield(); /* it waits */
	for (int i = 0; i < 3; i++) {
		g_args[i] = (spawn_arg){ &c.o, i };
		weft_task_spawn(&g_tasks[i], record, &g_args[i]);
	}
	weft_event_set(&c.ev); /* ready after the three spawned */
	if (join_all(4))
		return P(9);
	if (c.o.n != 4)
		return P(1);
	for (int i = 0; i < 4; i++)
		if (c.o.seen[i] != i)
			return P(2 + i);
	return NULL;
}

static void wake_queues_behind_ready_tasks(void **state)
{
	(void)state;
	run1(wake_behind_ready_main, NULL);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(spawn_order_1000),
	cmocka_unit_test(spawn_order_pinned_and_stealable),
	cmocka_unit_test(timer_same_pass_deadline_order),
	cmocka_unit_test(event_set_wait_order),
	cmocka_unit_test(cond_notify_all_wait_order),
	cmocka_unit_test(future_waiters_wait_order),
	cmocka_unit_test(lock_waiters_wait_order),
	cmocka_unit_test(queue_getters_wait_order),
	cmocka_unit_test(sem_waiters_wait_order),
	cmocka_unit_test(wake_queues_behind_ready_tasks),
};

WEFT_TEST_MAIN(tests)
