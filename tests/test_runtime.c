/*
 * Runtime lifecycle: weft_run, config validation, start/shutdown/destroy,
 * shutdown cancelling blocked tasks, foreign-thread spawn/join/call, stats,
 * loop index/count, per-loop caches trimmed, and many runtimes in a row
 * leaking nothing.
 *
 * docs/architecture.md rule 7: tasks and helper threads only record into
 * structs; every assertion runs on the test's own stack after the work is
 * joined.
 */
#include "weft_test.h"
#include "runtime/internal.h" /* weft__cgroup_cpu_limit, weft__cpu_count_at */
#include "weft/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>


/* Spin (politely) on the test thread until *v >= want, at most 10 s. */
static int wait_at_least(_Atomic int *v, int want)
{
	for (int i = 0; i < 10000; i++) {
		if (atomic_load(v) >= want)
			return 1;
		msleep(1);
	}
	return 0;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The entries of path once they have come down to `want`, or after a
 * second: a joined thread stays in /proc/self/task for a moment after
 * pthread_join returns (the joiner is woken as the thread leaves its
 * memory, before it leaves the thread group), so a count taken at once can
 * see one that is gone; one still there after a second is not. */
static int count_dir_settled(const char *path, int want)
{
	int n = count_dir(path);
	for (int i = 0; i < 1000 && n != want; i++) {
		usleep(1000);
		n = count_dir(path);
	}
	return n;
}

/* ------------------------------------------------------------------------ */
/* weft_run                                                                  */
/* ------------------------------------------------------------------------ */

static void *main_plus_one(void *arg)
{
	return P(U(arg) + 1);
}

static void test_run_returns_main_result(void **state)
{
	(void)state;
	assert_int_equal(U(weft_test_run_loops(1, main_plus_one, P(41))), 42);
	assert_int_equal(U(weft_test_run_loops(2, main_plus_one, P(0x1233))), 0x1234);
	/* result may be NULL; cfg may be NULL (defaults) */
	assert_int_equal(weft_run(NULL, main_plus_one, NULL, NULL), 0);
	void *res = NULL;
	assert_int_equal(weft_run(NULL, main_plus_one, P(6), &res), 0);
	assert_int_equal(U(res), 7);
}

static void test_run_null_main_einval(void **state)
{
	(void)state;
	void *res = P(5);
	assert_int_equal(weft_run(NULL, NULL, NULL, &res), -EINVAL);
}

static void *main_cancels_itself(void *arg)
{
	_Atomic int *rc = arg;
	weft_task_cancel(weft_task_current());
	atomic_store(rc, weft_yield());
	return P(0xdead);
}

static void test_run_main_cancelled_returns_ecanceled(void **state)
{
	(void)state;
	_Atomic int rc = 1;
	void *res = NULL;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	assert_int_equal(weft_run(&cfg, main_cancels_itself, &rc, &res), -ECANCELED);
	assert_int_equal(atomic_load(&rc), -ECANCELED);
	assert_int_equal(U(res), 0xdead); /* *result still gets the value */
}

/* main returns while children block: weft_run cancels and awaits them. */
struct leftover {
	_Atomic int started;
	_Atomic int finished;
	_Atomic int cancelled;
	weft_future *never;
};

static void *leftover_sleeper(void *arg)
{
	struct leftover *s = arg;
	atomic_fetch_add(&s->started, 1);
	int r = weft_sleep_ms(60000);
	if (r == -ECANCELED)
		atomic_fetch_add(&s->cancelled, 1);
	atomic_fetch_add(&s->finished, 1);
	return NULL;
}

static void *leftover_waiter(void *arg)
{
	struct leftover *s = arg;
	atomic_fetch_add(&s->started, 1);
	void *v;
	int r = weft_future_wait(s->never, &v);
	if (r == -ECANCELED)
		atomic_fetch_add(&s->cancelled, 1);
	atomic_fetch_add(&s->finished, 1);
	return NULL;
}

static void *main_leaves_children(void *arg)
{
	struct leftover *s = arg;
	for (int i = 0; i < 8; i++) {
		int r = weft_task_spawn(NULL, (i & 1) ? leftover_waiter : leftover_sleeper, s);
		if (r < 0)
			return P(1);
	}
	/* Let them start so they are really blocked when main returns. */
	uint64_t until = weft_now_ns() + 5000000000ull;
	while (atomic_load(&s->started) < 8 && weft_now_ns() < until)
		weft_sleep_ms(1);
	return P(2);
}

static void test_run_cancels_and_awaits_leftover_tasks(void **state)
{
	(void)state;
	struct leftover s = { 0 };
	assert_int_equal(weft_future_create(&s.never), 0);
	uint64_t t0 = weft_now_ns();
	assert_int_equal(U(weft_test_run_loops(2, main_leaves_children, &s)), 2);
	uint64_t dt = weft_now_ns() - t0;
	assert_int_equal(atomic_load(&s.started), 8);
	assert_int_equal(atomic_load(&s.finished), 8); /* awaited before returning */
	assert_int_equal(atomic_load(&s.cancelled), 8);
	assert_true(dt < 5000000000ull); /* not the 60 s sleep */
	assert_false(weft_future_done(s.never));
	weft_future_release(s.never);
}

/* ------------------------------------------------------------------------ */
/* configuration                                                             */
/* ------------------------------------------------------------------------ */

static void test_config_init_defaults(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	memset(&cfg, 0xa5, sizeof(cfg));
	weft_runtime_config_init(&cfg);
	assert_int_equal(cfg.loops, 0);
	assert_false(cfg.pin_cpus);
	assert_int_equal(cfg.stack_size, 64 * 1024);
	assert_int_equal(cfg.ring_entries, 256);
	assert_int_equal(cfg.spin_us, 50);
	assert_int_equal(cfg.stack_guard, WEFT_GUARD_AUTO);
	assert_int_equal(cfg.guarded_stacks_max, 0);
	assert_int_equal(cfg.stack_pool_max, 256);
	for (size_t i = 0; i < sizeof(cfg.reserved) / sizeof(cfg.reserved[0]); i++)
		assert_int_equal(cfg.reserved[i], 0);
	weft_runtime_config_init(NULL); /* no crash */

	weft_task_config tc;
	memset(&tc, 0xa5, sizeof(tc));
	weft_task_config_init(&tc);
	assert_null(tc.name);
	assert_int_equal(tc.stack_size, 0);
	assert_int_equal(tc.pin, WEFT_PIN_NONE);
	for (size_t i = 0; i < sizeof(tc.reserved) / sizeof(tc.reserved[0]); i++)
		assert_int_equal(tc.reserved[i], 0);
	weft_task_config_init(NULL);
}

static int start_with(const weft_runtime_config *cfg)
{
	weft_runtime *rt = (weft_runtime *)P(1);
	int r = weft_runtime_start(&rt, cfg);
	if (r == 0) {
		weft_runtime_destroy(rt);
		return 0;
	}
	assert_null(rt); /* *out is cleared on failure */
	return r;
}

static void test_config_nonzero_reserved_einval(void **state)
{
	(void)state;
	size_t n = sizeof(((weft_runtime_config *)0)->reserved) / sizeof(unsigned);
	for (size_t i = 0; i < n; i++) {
		weft_runtime_config cfg;
		weft_runtime_config_init(&cfg);
		cfg.loops = 1;
		cfg.reserved[i] = 1;
		assert_int_equal(start_with(&cfg), -EINVAL);
		assert_int_equal(weft_run(&cfg, main_plus_one, NULL, NULL), -EINVAL);
	}
}

static void test_config_too_many_loops_einval(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1025;
	assert_int_equal(start_with(&cfg), -EINVAL);
	cfg.loops = 100000;
	assert_int_equal(start_with(&cfg), -EINVAL);
	cfg.loops = UINT32_MAX;
	assert_int_equal(weft_run(&cfg, main_plus_one, NULL, NULL), -EINVAL);
}

static void test_config_tiny_stack_einval(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	cfg.stack_size = 1;
	assert_int_equal(start_with(&cfg), -EINVAL);
	cfg.stack_size = 4096;
	assert_int_equal(start_with(&cfg), -EINVAL);
	cfg.stack_size = 16383;
	assert_int_equal(start_with(&cfg), -EINVAL);
	cfg.stack_size = 4096;
	assert_int_equal(weft_run(&cfg, main_plus_one, NULL, NULL), -EINVAL);
}

static void test_config_other_invalid_fields(void **state)
{
	(void)state;
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	cfg.stack_guard = 3;
	assert_int_equal(start_with(&cfg), -EINVAL);
	weft_runtime_config_init(&cfg);
	cfg.loops = 1;
	cfg.ring_entries = 1u << 20;
	assert_int_equal(start_with(&cfg), -EINVAL);
	assert_int_equal(weft_runtime_start(NULL, NULL), -EINVAL);
}

static void *sleep_1ms_main(void *arg)
{
	return P(weft_sleep_ms(1) == 0 ? U(arg) : 0);
}

static void test_config_non_default_values_work(void **state)
{
	(void)state;
	const unsigned guards[] = { WEFT_GUARD_AUTO, WEFT_GUARD_ALWAYS, WEFT_GUARD_NEVER };
	for (unsigned g = 0; g < 3; g++) {
		weft_runtime_config cfg;
		weft_runtime_config_init(&cfg);
		cfg.loops = 2;
		cfg.stack_guard = guards[g];
		cfg.stack_size = g == 0 ? 16384 : 100000; /* minimum; not page-aligned */
		cfg.ring_entries = 8;
		cfg.spin_us = 0;
		cfg.stack_pool_max = g; /* 0 = no pooling */
		cfg.pin_cpus = g == 1;
		void *res = NULL;
		assert_int_equal(weft_run(&cfg, sleep_1ms_main, P(9 + g), &res), 0);
		assert_int_equal(U(res), 9 + g);
	}
}

/* ------------------------------------------------------------------------ */
/* start / shutdown / destroy                                                */
/* ------------------------------------------------------------------------ */

struct where {
	unsigned count;
	int index;
	weft_runtime *rt;
	weft_task *self;
};

static void *record_where(void *arg)
{
	struct where *w = arg;
	w->count = weft_loop_count();
	w->index = weft_loop_index();
	w->rt = weft_runtime_current();
	w->self = weft_task_current();
	return P(0x51);
}

static void test_start_shutdown_destroy_1_2_4_loops(void **state)
{
	(void)state;
	const unsigned ns[] = { 1, 2, 4 };
	for (unsigned k = 0; k < 3; k++) {
		weft_runtime *rt = start_rt(ns[k]);
		weft_runtime_stats st;
		assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
		assert_int_equal(st.loops, ns[k]);
		for (unsigned i = 0; i < ns[k]; i++) {
			weft_task_config tc;
			weft_task_config_init(&tc);
			tc.pin = (int)i;
			struct where w = { 0 };
			weft_task *t = NULL;
			assert_int_equal(weft_runtime_spawn(rt, &t, &tc, record_where, &w), 0);
			void *res = NULL;
			assert_int_equal(weft_task_join(t, &res), 0);
			assert_int_equal(U(res), 0x51);
			assert_int_equal(w.count, ns[k]);
			assert_int_equal(w.index, (int)i);
			assert_ptr_equal(w.rt, rt);
			assert_ptr_equal(w.self, t);
			weft_task_release(t);
		}
		assert_int_equal(weft_runtime_shutdown(rt), 0);
		assert_int_equal(weft_runtime_shutdown(rt), 0); /* idempotent */
		assert_int_equal(weft_runtime_stats_get(rt, &st), 0); /* valid after */
		assert_int_equal(st.tasks_live, 0);
		weft_runtime_destroy(rt);
	}
}

static void test_destroy_without_shutdown(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	void *res = NULL;
	assert_int_equal(weft_runtime_call(rt, main_plus_one, P(1), &res), 0);
	assert_int_equal(U(res), 2);
	weft_runtime_destroy(rt); /* shuts down itself */
	weft_runtime_destroy(NULL);
}

static void test_null_runtime_einval(void **state)
{
	(void)state;
	weft_task *t = (weft_task *)P(1);
	assert_int_equal(weft_runtime_spawn(NULL, &t, NULL, main_plus_one, NULL), -EINVAL);
	assert_null(t);
	void *res = NULL;
	assert_int_equal(weft_runtime_call(NULL, main_plus_one, NULL, &res), -EINVAL);
	assert_int_equal(weft_runtime_shutdown(NULL), -EINVAL);
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(NULL, &st), -EINVAL);

	weft_runtime *rt = start_rt(1);
	t = (weft_task *)P(1);
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, NULL, NULL), -EINVAL);
	assert_null(t);
	assert_int_equal(weft_runtime_call(rt, NULL, NULL, &res), -EINVAL);
	assert_int_equal(weft_runtime_stats_get(rt, NULL), -EINVAL);
	weft_runtime_destroy(rt);
}

/* ---- shutdown cancels and awaits tasks blocked on several loops ---- */

enum { K_SLEEP, K_FUTURE, K_JOIN, K_KINDS };
#define SD_LOOPS 4

struct sd_task {
	int kind;
	int loop;
	_Atomic int rc;       /* what the blocking call returned */
	_Atomic int spawn_rc; /* weft_task_spawn after being cancelled */
	_Atomic int ran_on;
	weft_task *h;
	weft_task *target;    /* K_JOIN: the shielded task it joins */
};

struct sd {
	_Atomic int started;
	weft_future *never;        /* nobody sets it */
	weft_future *release[SD_LOOPS]; /* lets shielded targets finish */
	_Atomic int target_rc[SD_LOOPS];
	_Atomic int target_cancelled_seen[SD_LOOPS];
	struct sd_task t[SD_LOOPS][K_KINDS];
	weft_task *targets[SD_LOOPS];
};

static struct sd *g_sd;

static void *noop_task(void *arg)
{
	return arg;
}

static void *sd_blocked(void *arg)
{
	struct sd_task *me = arg;
	atomic_store(&me->ran_on, weft_loop_index());
	atomic_fetch_add(&g_sd->started, 1);
	void *v = NULL;
	int r;
	switch (me->kind) {
	case K_SLEEP:
		r = weft_sleep_ms(60000);
		break;
	case K_FUTURE:
		r = weft_future_wait(g_sd->never, &v);
		break;
	default:
		r = weft_task_join(me->target, &v);
		break;
	}
	atomic_store(&me->rc, r);
	atomic_store(&me->spawn_rc, weft_task_spawn(NULL, noop_task, NULL));
	return P(1000 + me->kind * 10 + me->loop);
}

/* Shielded: survives the shutdown's cancellation until the test's helper
 * thread releases it (after its joiner has been cancelled). */
static void *sd_target(void *arg)
{
	int i = (int)U(arg);
	weft_shield_begin();
	atomic_fetch_add(&g_sd->started, 1);
	void *v;
	int r = weft_future_wait(g_sd->release[i], &v);
	atomic_store(&g_sd->target_rc[i], r);
	atomic_store(&g_sd->target_cancelled_seen[i], weft_task_cancelled());
	weft_shield_end();
	return P(2000 + i);
}

struct releaser {
	int ok;
};

static void *releaser_thread(void *arg)
{
	struct releaser *rl = arg;
	rl->ok = 1;
	/* Wait until every blocked task has returned: each loop cancels its
	 * whole registry at once, so the shielded targets are cancelled too. */
	for (int i = 0; i < SD_LOOPS; i++) {
		for (int k = 0; k < K_KINDS; k++) {
			struct sd_task *x = &g_sd->t[i][k];
			int spins = 0;
			while (atomic_load(&x->rc) == 1 && spins++ < 10000)
				msleep(1);
			if (atomic_load(&x->rc) == 1)
				rl->ok = 0; /* never returned: release anyway */
		}
	}
	for (int i = 0; i < SD_LOOPS; i++)
		weft_future_set_result(g_sd->release[i], P(i));
	return NULL;
}

static void test_shutdown_cancels_and_awaits_blocked_tasks(void **state)
{
	(void)state;
	struct sd *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	g_sd = s;
	assert_int_equal(weft_future_create(&s->never), 0);
	weft_runtime *rt = start_rt(SD_LOOPS);
	for (int i = 0; i < SD_LOOPS; i++) {
		assert_int_equal(weft_future_create(&s->release[i]), 0);
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = (i + 1) % SD_LOOPS; /* the target lives on the next loop */
		assert_int_equal(weft_runtime_spawn(rt, &s->targets[i], &tc, sd_target, P(i)), 0);
		for (int k = 0; k < K_KINDS; k++) {
			struct sd_task *x = &s->t[i][k];
			x->kind = k;
			x->loop = i;
			atomic_init(&x->rc, 1);
			atomic_init(&x->spawn_rc, 1);
			atomic_init(&x->ran_on, -1);
			x->target = s->targets[i];
			tc.pin = i;
			assert_int_equal(weft_runtime_spawn(rt, &x->h, &tc, sd_blocked, x), 0);
		}
	}
	const int total = SD_LOOPS * (K_KINDS + 1);
	assert_true(wait_at_least(&s->started, total));

	pthread_t th;
	struct releaser rl = { 0 };
	assert_int_equal(pthread_create(&th, NULL, releaser_thread, &rl), 0);
	uint64_t t0 = weft_now_ns();
	assert_int_equal(weft_runtime_shutdown(rt), 0);
	uint64_t dt = weft_now_ns() - t0;
	pthread_join(th, NULL);
	assert_true(rl.ok);
	assert_true(dt < 10000000000ull);

	for (int i = 0; i < SD_LOOPS; i++) {
		for (int k = 0; k < K_KINDS; k++) {
			struct sd_task *x = &s->t[i][k];
			assert_int_equal(atomic_load(&x->ran_on), i);
			assert_int_equal(atomic_load(&x->rc), -ECANCELED);
			assert_int_equal(atomic_load(&x->spawn_rc), -ESHUTDOWN);
			assert_true(weft_task_done(x->h));
			void *res = NULL;
			/* join after shutdown still hands over the result */
			assert_int_equal(weft_task_join(x->h, &res), -ECANCELED);
			assert_int_equal(U(res), 1000 + k * 10 + i);
			assert_int_equal(weft_task_join(x->h, &res), -EALREADY);
			weft_task_release(x->h);
		}
		/* the shielded target finished normally: its wait was not cut short */
		assert_int_equal(atomic_load(&s->target_rc[i]), 0);
		assert_true(atomic_load(&s->target_cancelled_seen[i]));
		void *res = NULL;
		assert_int_equal(weft_task_join(s->targets[i], &res), 0);
		assert_int_equal(U(res), 2000 + i);
		weft_task_release(s->targets[i]);
		weft_future_release(s->release[i]);
	}
	assert_false(weft_future_done(s->never)); /* shutdown leaves futures alone */
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.tasks_live, 0);
	assert_int_equal(st.tasks_spawned, (uint64_t)total);
	weft_runtime_destroy(rt);
	weft_future_release(s->never);
	free(s);
}

static void test_spawn_after_shutdown_eshutdown(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	assert_int_equal(weft_runtime_shutdown(rt), 0);
	weft_task *t = (weft_task *)P(1);
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, noop_task, NULL), -ESHUTDOWN);
	assert_null(t);
	assert_int_equal(weft_runtime_spawn(rt, NULL, NULL, noop_task, NULL), -ESHUTDOWN);
	void *res = P(3);
	assert_int_equal(weft_runtime_call(rt, noop_task, NULL, &res), -ESHUTDOWN);
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.tasks_spawned, 0);
	assert_int_equal(st.tasks_live, 0);
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* foreign threads                                                           */
/* ------------------------------------------------------------------------ */

static void *sleep_then_double(void *arg)
{
	if (weft_sleep_ms(2) != 0)
		return P(0);
	return P(U(arg) * 2);
}

static void test_foreign_spawn_and_blocking_join(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	weft_task *t = NULL;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, sleep_then_double, P(21)), 0);
	assert_non_null(t);
	void *res = NULL;
	assert_int_equal(weft_task_join(t, &res), 0); /* blocks this thread */
	assert_int_equal(U(res), 42);
	assert_true(weft_task_done(t));
	assert_int_equal(weft_task_join(t, &res), -EALREADY);
	weft_task_release(t);

	/* detached from a foreign thread */
	assert_int_equal(weft_runtime_spawn(rt, NULL, NULL, sleep_then_double, P(1)), 0);
	weft_runtime_destroy(rt);
}

#define FT_THREADS 4
#define FT_TASKS 25

struct ft_arg {
	weft_runtime *rt;
	int base;
	int bad;
};

static void *foreign_spawner(void *arg)
{
	struct ft_arg *a = arg;
	weft_task *ts[FT_TASKS];
	for (int i = 0; i < FT_TASKS; i++)
		if (weft_runtime_spawn(a->rt, &ts[i], NULL, sleep_then_double,
				       P(a->base + i)) != 0)
			ts[i] = NULL, a->bad++;
	for (int i = FT_TASKS - 1; i >= 0; i--) {
		void *res = NULL;
		if (!ts[i])
			continue;
		if (weft_task_join(ts[i], &res) != 0 || U(res) != (uintptr_t)(a->base + i) * 2)
			a->bad++;
		weft_task_release(ts[i]);
	}
	return NULL;
}

static void test_foreign_threads_spawn_and_join_concurrently(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	pthread_t th[FT_THREADS];
	struct ft_arg a[FT_THREADS];
	for (int i = 0; i < FT_THREADS; i++) {
		a[i] = (struct ft_arg){ rt, 1000 * (i + 1), 0 };
		assert_int_equal(pthread_create(&th[i], NULL, foreign_spawner, &a[i]), 0);
	}
	for (int i = 0; i < FT_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].bad, 0);
	}
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.tasks_spawned, FT_THREADS * FT_TASKS);
	weft_runtime_destroy(rt);
}

static void *call_body(void *arg)
{
	struct where *w = arg;
	record_where(w);
	weft_yield();
	if (weft_sleep_ms(1) != 0)
		return P(0);
	return P(0xca11);
}

static void test_runtime_call_from_foreign_thread(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	for (int i = 0; i < 5; i++) {
		struct where w = { 0 };
		void *res = NULL;
		assert_int_equal(weft_runtime_call(rt, call_body, &w, &res), 0);
		assert_int_equal(U(res), 0xca11);
		assert_ptr_equal(w.rt, rt);
		assert_int_equal(w.count, 2);
		assert_true(w.index >= 0 && w.index < 2);
		assert_non_null(w.self);
	}
	_Atomic int rc = 1;
	void *res = NULL;
	assert_int_equal(weft_runtime_call(rt, main_cancels_itself, &rc, &res), -ECANCELED);
	assert_int_equal(U(res), 0xdead);
	assert_int_equal(atomic_load(&rc), -ECANCELED);
	assert_int_equal(weft_runtime_call(rt, main_plus_one, P(1), NULL), 0);
	weft_runtime_destroy(rt);
}

/* weft_runtime_call on runtime B from a task of runtime A: the task waits
 * (suspends), it is not "inside" B. */
static weft_runtime *g_other_rt;

static void *calls_other_runtime(void *arg)
{
	(void)arg;
	void *res = NULL;
	int r = weft_runtime_call(g_other_rt, sleep_then_double, P(50), &res);
	return P(r == 0 ? U(res) : 0);
}

static void test_runtime_call_across_runtimes(void **state)
{
	(void)state;
	g_other_rt = start_rt(1);
	assert_int_equal(U(weft_test_run_loops(2, calls_other_runtime, NULL)), 100);
	weft_runtime_destroy(g_other_rt);
}

struct inside {
	weft_runtime *rt;
	_Atomic int shutdown_rc;
	_Atomic int call_rc;
	_Atomic int spawn_rc;
	_Atomic int join_rc;
};

static void *inside_body(void *arg)
{
	struct inside *s = arg;
	s->rt = weft_runtime_current();
	atomic_store(&s->shutdown_rc, weft_runtime_shutdown(s->rt));
	void *res = NULL;
	atomic_store(&s->call_rc, weft_runtime_call(s->rt, noop_task, NULL, &res));
	/* the runtime still works afterwards */
	weft_task *t = NULL;
	atomic_store(&s->spawn_rc, weft_runtime_spawn(s->rt, &t, NULL, noop_task, P(77)));
	if (t) {
		atomic_store(&s->join_rc, weft_task_join(t, &res) == 0 && U(res) == 77 ? 0 : -1);
		weft_task_release(t);
	}
	return P(3);
}

static void test_shutdown_and_call_from_task_edeadlk(void **state)
{
	(void)state;
	struct inside s = { 0 };
	atomic_init(&s.join_rc, 1);
	assert_int_equal(U(weft_test_run_loops(2, inside_body, &s)), 3);
	assert_non_null(s.rt);
	assert_int_equal(atomic_load(&s.shutdown_rc), -EDEADLK);
	assert_int_equal(atomic_load(&s.call_rc), -EDEADLK);
	assert_int_equal(atomic_load(&s.spawn_rc), 0);
	assert_int_equal(atomic_load(&s.join_rc), 0);
}

/* ------------------------------------------------------------------------ */
/* stats, loop index/count                                                    */
/* ------------------------------------------------------------------------ */

static void *spawn_ten(void *arg)
{
	(void)arg;
	weft_task *ts[10];
	int bad = 0;
	for (int i = 0; i < 10; i++)
		if (weft_task_spawn(&ts[i], sleep_then_double, P(i)) != 0)
			return P(999);
	for (int i = 0; i < 10; i++) {
		void *res;
		if (weft_task_join(ts[i], &res) != 0 || U(res) != (uintptr_t)i * 2)
			bad++;
		weft_task_release(ts[i]);
	}
	return P(bad);
}

static void test_stats(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	weft_runtime_stats st;
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.loops, 2);
	/* Each loop runs the backend the runtime chose, and says why. */
	assert_true(st.backend == WEFT_BACKEND_IO_URING || st.backend == WEFT_BACKEND_EPOLL);
	assert_int_equal(st.loop[0].backend, st.backend);
	assert_int_equal(st.loop[1].backend, st.backend);
	assert_true(strlen(st.backend_reason) > 0);
	if (st.backend == WEFT_BACKEND_EPOLL)
		assert_int_equal(st.ring_features, 0); /* no ring, no ring features */
	else
		assert_int_not_equal(st.ring_features, 0);
	const unsigned known = WEFT_RING_DEFER_TASKRUN | WEFT_RING_COOP_TASKRUN |
			       WEFT_RING_MSG_RING | WEFT_RING_FD_REGISTERED | WEFT_RING_EXT_ARG |
			       WEFT_RING_BUF_RING | WEFT_RING_MULTISHOT | WEFT_RING_NODROP |
			       WEFT_RING_CQSIZE | WEFT_RING_CQE_SKIP | WEFT_RING_SEND_ZC |
			       WEFT_RING_MIN_WAIT;
	assert_int_equal(st.ring_features & ~known, 0);
	/* at most one of the two taskrun modes */
	assert_false((st.ring_features & WEFT_RING_DEFER_TASKRUN) &&
		     (st.ring_features & WEFT_RING_COOP_TASKRUN));
	assert_int_equal(st.tasks_spawned, 0);
	assert_int_equal(st.tasks_live, 0);

	void *res = NULL;
	assert_int_equal(weft_runtime_call(rt, spawn_ten, NULL, &res), 0);
	assert_int_equal(U(res), 0);
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.tasks_spawned, 11);
	uint64_t run = st.loop[0].tasks_run + st.loop[1].tasks_run;
	assert_true(run >= 11); /* every task was resumed at least once */

	assert_int_equal(weft_runtime_shutdown(rt), 0);
	assert_int_equal(weft_runtime_stats_get(rt, &st), 0);
	assert_int_equal(st.tasks_spawned, 11);
	assert_int_equal(st.tasks_live, 0);
	assert_int_equal(st.stacks_guarded, 0); /* every stack given back */
	assert_int_equal(st.stacks_slab, 0);
	weft_runtime_destroy(rt);
}

/* Two foreign threads shut down at once: both wait for the end, both 0. */
struct dual_shutdown {
	weft_runtime *rt;
	pthread_barrier_t *go;
	int rc;
	bool all_done;
	weft_task **tasks;
	int ntasks;
};

static void *shutdown_thread(void *arg)
{
	struct dual_shutdown *d = arg;
	pthread_barrier_wait(d->go);
	d->rc = weft_runtime_shutdown(d->rt);
	d->all_done = true;
	for (int i = 0; i < d->ntasks; i++)
		d->all_done = d->all_done && weft_task_done(d->tasks[i]);
	return NULL;
}

static void *sleep_long(void *arg)
{
	_Atomic int *started = arg;
	atomic_fetch_add(started, 1);
	weft_sleep_ms(60000);
	return NULL;
}

static void test_concurrent_shutdown_from_two_threads(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	_Atomic int started = 0;
	weft_task *ts[6];
	for (int i = 0; i < 6; i++)
		assert_int_equal(weft_runtime_spawn(rt, &ts[i], NULL, sleep_long, &started), 0);
	assert_true(wait_at_least(&started, 6));
	struct dual_shutdown d[2];
	pthread_t th[2];
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	for (int i = 0; i < 2; i++) {
		d[i] = (struct dual_shutdown){ .rt = rt, .go = &go, .rc = 1, .tasks = ts, .ntasks = 6 };
		assert_int_equal(pthread_create(&th[i], NULL, shutdown_thread, &d[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(d[i].rc, 0);
		assert_true(d[i].all_done); /* neither returned before the end */
	}
	for (int i = 0; i < 6; i++) {
		assert_int_equal(weft_task_join(ts[i], NULL), -ECANCELED);
		weft_task_release(ts[i]);
	}
	pthread_barrier_destroy(&go);
	weft_runtime_destroy(rt);
}

/* A foreign thread blocked in weft_task_join is released by shutdown. */
struct blocked_joiner {
	weft_task *t;
	_Atomic int joining;
	int rc;
};

static void *blocking_join_thread(void *arg)
{
	struct blocked_joiner *b = arg;
	atomic_store(&b->joining, 1);
	b->rc = weft_task_join(b->t, NULL);
	return NULL;
}

static void test_shutdown_releases_foreign_joiner(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	_Atomic int started = 0;
	struct blocked_joiner b = { .rc = 1 };
	assert_int_equal(weft_runtime_spawn(rt, &b.t, NULL, sleep_long, &started), 0);
	assert_true(wait_at_least(&started, 1));
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, blocking_join_thread, &b), 0);
	assert_true(wait_at_least(&b.joining, 1));
	msleep(2);
	assert_int_equal(weft_runtime_shutdown(rt), 0);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, -ECANCELED);
	weft_task_release(b.t);
	weft_runtime_destroy(rt);
}

/* Stats read from a foreign thread while loops run (TSan: no data race). */
struct poller {
	weft_runtime *rt;
	_Atomic int stop;
	int polls, bad;
};

static void *stats_poller(void *arg)
{
	struct poller *p = arg;
	uint64_t last_spawned = 0;
	while (!atomic_load(&p->stop)) {
		weft_runtime_stats st;
		/* Fields are tear-free but not a consistent snapshot of each other
		 * (tasks_live may run ahead of tasks_spawned); each counter alone
		 * must still move forward. */
		if (weft_runtime_stats_get(p->rt, &st) != 0 || st.loops != 2 ||
		    st.tasks_spawned < last_spawned || st.tasks_spawned > 55)
			p->bad++;
		last_spawned = st.tasks_spawned;
		p->polls++;
	}
	return NULL;
}

static void test_stats_polled_while_running(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	struct poller p = { .rt = rt };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, stats_poller, &p), 0);
	for (int i = 0; i < 5; i++) {
		void *res = NULL;
		assert_int_equal(weft_runtime_call(rt, spawn_ten, NULL, &res), 0);
		assert_int_equal(U(res), 0);
	}
	atomic_store(&p.stop, 1);
	pthread_join(th, NULL);
	assert_true(p.polls > 0);
	assert_int_equal(p.bad, 0);
	weft_runtime_destroy(rt);
}

static void test_loop_index_and_count_outside(void **state)
{
	(void)state;
	assert_int_equal(weft_loop_count(), 0);
	assert_int_equal(weft_loop_index(), -1);
	assert_null(weft_runtime_current());
	assert_null(weft_task_current());
	/* still so on a foreign thread while a runtime runs */
	weft_runtime *rt = start_rt(2);
	assert_int_equal(weft_loop_count(), 0);
	assert_int_equal(weft_loop_index(), -1);
	assert_null(weft_runtime_current());
	weft_runtime_destroy(rt);
}

struct idx_rec {
	_Atomic int bad;
	_Atomic int seen[4];
};

static void *check_index_many(void *arg)
{
	struct idx_rec *r = arg;
	for (int i = 0; i < 50; i++) {
		int idx = weft_loop_index();
		if (weft_loop_count() != 4 || idx < 0 || idx >= 4)
			atomic_fetch_add(&r->bad, 1);
		else
			atomic_store(&r->seen[idx], 1);
		if (i & 1)
			weft_yield();
		else
			weft_sleep(50000);
	}
	return NULL;
}

static void test_loop_index_and_count_inside(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(4);
	struct idx_rec r = { 0 };
	weft_task *ts[8];
	for (int i = 0; i < 8; i++)
		assert_int_equal(weft_runtime_spawn(rt, &ts[i], NULL, check_index_many, &r), 0);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(weft_task_join(ts[i], NULL), 0);
		weft_task_release(ts[i]);
	}
	assert_int_equal(atomic_load(&r.bad), 0);
	int loops_seen = 0;
	for (int i = 0; i < 4; i++)
		loops_seen += atomic_load(&r.seen[i]);
	assert_true(loops_seen >= 1);
	weft_runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* per-loop caches give back what they do not reuse                          */
/* ------------------------------------------------------------------------ */

/* Tasks spawned on loop 0 and run on loop 1 die on loop 1: their structs
 * go to loop 1's task cache and their stacks to loop 1's pool, which loop
 * 0's next spawns never see.  Before the trim, loop 1 kept up to 1024 task
 * structs and 256 stacks (with their touched pages) for good: a server's
 * RSS crept for minutes in the soak (bench/soak.sh).  Now what a loop has
 * not reused for a while goes back (runtime/objcache.h). */
struct cache_probe {
	_Atomic int done;
	unsigned tasks_after, stacks_after; /* loop 1's caches after the burst */
	unsigned tasks_end, stacks_end;     /* ... once trimmed, or at the limit */
	double trim_s;
	int err;
};

static void *cache_burst_task(void *arg)
{
	struct cache_probe *p = arg;
	if (weft_sleep_ms(50) != 0) /* all at once: many stacks in use */
		p->err = -EIO;
	atomic_fetch_add(&p->done, 1);
	return NULL;
}

/* On loop 1, the owner: its caches' lengths. */
static void *cache_read_task(void *arg)
{
	struct cache_probe *p = arg;
	weft_loop *l = weft__loop_self();
	p->tasks_end = l->task_cache.len;
	p->stacks_end = l->stacks.len;
	return NULL;
}

static int cache_read(struct cache_probe *p)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = 1;
	weft_task *t;
	int r = weft_task_spawn_ex(&t, &tc, cache_read_task, p);
	if (r == 0) {
		r = weft_task_join(t, NULL);
		weft_task_release(t);
	}
	return r;
}

/* Trims every 100 ms instead of every second (weft__trim_ns), so the
 * three that matter come within 0.6 s. */
enum { CACHE_BURST = 1500, CACHE_TRIM_MS = 100, CACHE_IDLE_MS = 600 };

static void *cache_driver(void *arg)
{
	struct cache_probe *p = arg;
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = 1;
	for (int i = 0; i < CACHE_BURST; i++) /* detached: they die on loop 1 */
		if (weft_task_spawn_ex(NULL, &tc, cache_burst_task, p) != 0)
			atomic_fetch_add(&p->done, 1), p->err = -ENOMEM;
	while (atomic_load(&p->done) < CACHE_BURST)
		weft_sleep_ms(5);
	weft_sleep_ms(20); /* the last ones have switched away and been reaped */
	if ((p->err = p->err ? p->err : cache_read(p)) != 0)
		return NULL;
	p->tasks_after = p->tasks_end;
	p->stacks_after = p->stacks_end;
	/* Then nothing wakes loop 1 (no task, no timer, no steal) until the
	 * one read at the end: an idle server's loop after a burst.  A trim
	 * halves what sat unused (the first one after the burst saw the
	 * caches in use), so three trims are due well before then, and they
	 * must come while the loop sleeps: readers would wake it. */
	uint64_t t0 = weft_now_ns();
	weft_sleep_ms(CACHE_IDLE_MS);
	p->err = cache_read(p);
	p->trim_s = (double)(weft_now_ns() - t0) / 1e9;
	return NULL;
}

static void test_loop_caches_give_back_what_they_do_not_reuse(void **state)
{
	(void)state;
	/* The caches and their trim are the scheduler's, the same on either
	 * backend. */
	const char *backend = getenv("WEFT_BACKEND");
	if (backend && strcmp(backend, "epoll") == 0) {
		print_message("skip: the loops' caches do not depend on the backend; tested on "
			      "io_uring\n");
		skip();
	}
	atomic_store(&weft__trim_ns, (uint64_t)CACHE_TRIM_MS * 1000000u);
	weft_runtime *rt = start_rt(2);
	struct cache_probe p = { 0 };
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = 0;
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, &tc, cache_driver, &p), 0);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
	assert_int_equal(weft_runtime_shutdown(rt), 0);
	weft_runtime_destroy(rt);
	print_message("loop 1 after %d tasks: %u task structs, %u stacks cached; "
		      "%.1f s later: %u, %u\n",
		      CACHE_BURST, p.tasks_after, p.stacks_after, p.trim_s, p.tasks_end,
		      p.stacks_end);
	assert_int_equal(p.err, 0);
	/* the burst filled them (ASan keeps no task cache: it sees every free) */
#if !WEFT_ASAN
	assert_true(p.tasks_after >= 512);
#endif
	assert_true(p.stacks_after >= 128);
	/* and they gave it back while loop 1 slept (before, it kept all of
	 * them: 1024 and 255 after 4.3 s of one-second trims); 0.6 s leaves
	 * twice the time the three trims take */
	assert_true(p.tasks_end <= p.tasks_after / 4);
	assert_true(p.stacks_end <= p.stacks_after / 4);
}

/* ------------------------------------------------------------------------ */
/* many runtimes in a row                                                    */
/* ------------------------------------------------------------------------ */

static void *leftover_noop_sleeper(void *arg)
{
	(void)arg;
	weft_sleep_ms(60000);
	return NULL;
}

static void *tiny_main2(void *arg)
{
	weft_task_spawn(NULL, leftover_noop_sleeper, NULL); /* cancelled at shutdown */
	weft_task *t = NULL;
	if (weft_task_spawn(&t, sleep_then_double, arg) != 0)
		return P(0);
	void *res = NULL;
	int r = weft_task_join(t, &res);
	weft_task_release(t);
	return P(r == 0 ? U(res) : 0);
}

static void test_many_sequential_runtimes_leak_nothing(void **state)
{
	(void)state;
	const int rounds = 50;
	/* warm up once so lazily created process state is not counted */
	assert_int_equal(U(weft_test_run_loops(1, tiny_main2, P(1))), 2);
	int fds0 = count_dir("/proc/self/fd");
	int thr0 = count_dir("/proc/self/task");
	int bad = 0;
	for (int i = 0; i < rounds; i++) {
		unsigned loops = 1 + (unsigned)(i % 3);
		if (i & 1) {
			void *res = NULL;
			weft_runtime_config cfg;
			weft_runtime_config_init(&cfg);
			cfg.loops = loops;
			if (weft_run(&cfg, tiny_main2, P(i), &res) != 0 || U(res) != (uintptr_t)i * 2)
				bad++;
		} else {
			weft_runtime *rt = start_rt(loops);
			void *res = NULL;
			if (weft_runtime_call(rt, tiny_main2, P(i), &res) != 0 ||
			    U(res) != (uintptr_t)i * 2)
				bad++;
			if (weft_runtime_shutdown(rt) != 0)
				bad++;
			weft_runtime_destroy(rt);
		}
	}
	assert_int_equal(bad, 0);
	assert_int_equal(count_dir("/proc/self/fd"), fds0);   /* rings, eventfds closed */
	assert_int_equal(count_dir_settled("/proc/self/task", thr0), thr0); /* loops joined */
}

static void test_strerror_names_codes(void **state)
{
	(void)state;
	/* every code a public header documents (grep -E '\-E[A-Z]+' include/) */
#define C(e) { -e, "-" #e " (" }
	const struct { int code; const char *name; } codes[] = {
		C(EINVAL), C(ETIMEDOUT), C(ECANCELED), C(EPERM), C(ENOMEM), C(EBUSY), C(EPIPE),
		C(ESHUTDOWN), C(ENOENT), C(EBADF), C(EALREADY), C(EAGAIN), C(ESPIPE), C(EOVERFLOW),
		C(ENODATA), C(EIO), C(ECONNABORTED), C(EOPNOTSUPP), C(ENOSPC), C(EMSGSIZE),
		C(EDEADLK), C(ECONNRESET), C(EBADMSG), C(EADDRINUSE), C(ENOSYS), C(ENAMETOOLONG),
		C(EMFILE), C(EFBIG), C(ECONNREFUSED), C(ECHILD), C(EACCES), C(ESRCH),
		C(ENOTRECOVERABLE), C(ENOEXEC), C(ENETUNREACH), C(EISDIR), C(EEXIST),
		C(EHOSTUNREACH), C(ENOTCONN), C(EINTR),
	};
#undef C
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = weft_strerror(codes[i].code);
		assert_non_null(s);
		if (strncmp(s, codes[i].name, strlen(codes[i].name)) != 0)
			fail_msg("weft_strerror(%d) is \"%s\", not \"%s...\"", codes[i].code, s,
				 codes[i].name);
	}
	assert_non_null(weft_strerror(0));
	assert_non_null(weft_strerror(-12345));
	assert_non_null(weft_strerror(7));
}

/* ------------------------------------------------------------------------ */
/* CPUs: the default loop count, pinning, helpers' and children's masks      */
/* ------------------------------------------------------------------------ */

/* Write `text` to root/rel, creating the directories on the way. */
static void fixture(const char *root, const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	for (char *q = path + strlen(root) + 1; (q = strchr(q, '/')); q++) {
		*q = '\0';
		mkdir(path, 0755);
		*q = '/';
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void rm_tree(const char *root)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

/* The limit once root/rel holds `text`. */
static unsigned limit_with(const char *root, const char *rel, const char *text)
{
	fixture(root, rel, text);
	return weft__cgroup_cpu_limit(root);
}

static unsigned affinity_count(void)
{
	cpu_set_t set;
	return sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 0;
}

#define V2 "sys/fs/cgroup"
#define V1 "sys/fs/cgroup/cpu,cpuacct"

/* The quota parser on fixture trees (a root holding proc/self/cgroup and
 * sys/fs/cgroup/...): v2 and v1, the own cgroup and its ancestors, a
 * container's cgroup mounted as the root, no limit, garbage. */
static void test_cgroup_cpu_quota_fixtures(void **state)
{
	(void)state;
	char root[] = "/tmp/weft-cg-XXXXXX";
	assert_non_null(mkdtemp(root));

	/* No files at all: no limit. */
	assert_int_equal(weft__cgroup_cpu_limit(root), 0);

	/* v2: 1.5 CPUs -> 2; a parent allowing 4 does not raise it. */
	fixture(root, "proc/self/cgroup", "0::/app.slice/svc\n");
	fixture(root, V2 "/app.slice/svc/cpu.max", "150000 100000\n");
	assert_int_equal(limit_with(root, V2 "/app.slice/cpu.max", "400000 100000\n"), 2);
	/* The parent's tighter half a CPU caps it: at least 1. */
	assert_int_equal(limit_with(root, V2 "/app.slice/cpu.max", "50000 100000\n"), 1);
	/* "max": no limit anywhere. */
	fixture(root, V2 "/app.slice/cpu.max", "max 100000\n");
	assert_int_equal(limit_with(root, V2 "/app.slice/svc/cpu.max", "max 100000\n"), 0);
	/* Garbage is no limit, not a crash. */
	assert_int_equal(limit_with(root, V2 "/app.slice/svc/cpu.max", "lots\n"), 0);
	/* A container's own cgroup mounted as the root: the full path named
	 * in /proc/self/cgroup is not there, the mount's root is. */
	fixture(root, "proc/self/cgroup", "0::/system.slice/docker-abc.scope\n");
	assert_int_equal(limit_with(root, V2 "/cpu.max", "300000 100000\n"), 3);
	rm_tree(root);

	/* v1 (here a hybrid: the unified line is there too, without cpu). */
	assert_non_null(mkdtemp(strcpy(root, "/tmp/weft-cg-XXXXXX")));
	fixture(root, "proc/self/cgroup",
		"12:cpuset:/\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n0::/\n");
	fixture(root, V1 "/docker/abc/cpu.cfs_quota_us", "250000\n");
	fixture(root, V1 "/docker/abc/cpu.cfs_period_us", "100000\n");
	fixture(root, V1 "/cpu.cfs_quota_us", "-1\n");
	assert_int_equal(limit_with(root, V1 "/cpu.cfs_period_us", "100000\n"), 3);
	assert_int_equal(limit_with(root, V1 "/docker/abc/cpu.cfs_quota_us", "-1\n"), 0);
	/* The cpuset or systemd hierarchies set no CPU quota. */
	fixture(root, "sys/fs/cgroup/cpuset/cpu.cfs_quota_us", "100000\n");
	assert_int_equal(limit_with(root, "sys/fs/cgroup/cpuset/cpu.cfs_period_us", "100000\n"), 0);
	/* The count: the quota caps the mask, the mask caps the quota. */
	unsigned mask = affinity_count();
	assert_true(mask >= 1);
	assert_int_equal(weft__cpu_count_at(root), mask);
	fixture(root, V1 "/docker/abc/cpu.cfs_quota_us", "100000\n");
	assert_int_equal(weft__cpu_count_at(root), 1);
	fixture(root, V1 "/docker/abc/cpu.cfs_quota_us", "100000000\n");
	assert_int_equal(weft__cpu_count_at(root), mask);
	rm_tree(root);

	/* The real one: within the mask, at least 1. */
	unsigned n = weft_cpu_count();
	assert_true(n >= 1 && n <= mask);
}

/* The calling thread's affinity mask. */
static void my_mask(cpu_set_t *set)
{
	CPU_ZERO(set);
	sched_getaffinity(0, sizeof *set, set);
}

static void *mask_task(void *arg)
{
	my_mask(arg);
	return NULL;
}

struct pin_rec {
	unsigned loops;
	cpu_set_t mask[2];
	int count_inside;
};

static void *pin_probe(void *arg)
{
	struct pin_rec *x = arg;
	x->loops = weft_loop_count();
	x->count_inside = (int)weft_cpu_count();
	for (unsigned i = 0; i < x->loops && i < 2; i++) {
		weft_task_config tc;
		weft_task_config_init(&tc);
		tc.pin = (int)i;
		weft_task *t;
		if (weft_task_spawn_ex(&t, &tc, mask_task, &x->mask[i]) < 0)
			return P(1);
		weft_task_join(t, NULL);
		weft_task_release(t);
	}
	return NULL;
}

/* Started under `taskset -c <one CPU>`: the default is one loop, and with
 * pin_cpus every loop pins itself within that mask, not to CPU 0, 1, ... */
static void test_default_loops_and_pinning_within_the_mask(void **state)
{
	(void)state;
	cpu_set_t orig, one;
	my_mask(&orig);
	if (CPU_COUNT(&orig) < 2)
		skip(); /* nothing to narrow */
	int last = -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &orig))
			last = c;
	CPU_ZERO(&one);
	CPU_SET(last, &one);
	assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
	unsigned count = weft_cpu_count();

	struct pin_rec a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg); /* loops: the default */
	cfg.pin_cpus = true;
	int ra = weft_run(&cfg, pin_probe, &a, NULL);
	cfg.loops = 2; /* two loops in a one-CPU mask: both on it */
	int rb = weft_run(&cfg, pin_probe, &b, NULL);
	assert_int_equal(sched_setaffinity(0, sizeof orig, &orig), 0);

	assert_int_equal(rb, 0);
	assert_int_equal(b.loops, 2);
	assert_true(CPU_EQUAL(&b.mask[0], &one)); /* was CPU 0 */
	assert_true(CPU_EQUAL(&b.mask[1], &one));
	assert_int_equal(count, 1);
	assert_int_equal(ra, 0);
	assert_int_equal(a.loops, 1); /* was the online CPUs */
	assert_true(CPU_EQUAL(&a.mask[0], &one));
	assert_int_equal(a.count_inside, 1);
}

/* "0-3,6": the CPUs of a Cpus_allowed_list. */
static void parse_cpu_list(const char *s, cpu_set_t *set)
{
	CPU_ZERO(set);
	while (*s >= '0' && *s <= '9') {
		char *e;
		long a = strtol(s, &e, 10), b = a;
		if (*e == '-')
			b = strtol(e + 1, &e, 10);
		for (long c = a; c <= b && c < CPU_SETSIZE; c++)
			CPU_SET((int)c, set);
		s = *e == ',' ? e + 1 : e;
	}
}

struct helper_rec {
	pid_t loop_tid[2];
	cpu_set_t loop_mask[2], pool_mask, child_mask, loop1_after;
	int off_rc, sig_rc, spawn_rc, child_ok;
};

static void *tid_and_mask(void *arg)
{
	struct helper_rec *x = arg;
	int i = weft_loop_index();
	x->loop_tid[i] = (pid_t)syscall(SYS_gettid);
	my_mask(&x->loop_mask[i]);
	return NULL;
}

/* On the pinned loop 1: offload (a pool thread starts), watch a signal
 * (the helper thread starts), spawn a child that reports its mask. */
static void *helpers_from_loop1(void *arg)
{
	struct helper_rec *x = arg;
	x->off_rc = weft_offload(mask_task, &x->pool_mask, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	weft_signal *sig = NULL;
	x->sig_rc = weft_signal_open(&sig, &set);
	weft_process_config pc;
	weft_process_config_init(&pc);
	const char *argv[] = { "cat", "/proc/self/status", NULL };
	pc.argv = argv;
	pc.stdio[1] = WEFT_STDIO_PIPE;
	weft_process *p = NULL;
	x->spawn_rc = weft_process_spawn(&p, &pc);
	my_mask(&x->loop1_after); /* pinned again after the spawn */
	if (x->spawn_rc == 0) {
		static char out[16384];
		size_t n = 0;
		ssize_t r;
		while (n < sizeof out - 1 &&
		       (r = weft_read(weft_process_pipe(p, 1), out + n, sizeof out - 1 - n,
				      WEFT_OFF_CUR)) > 0)
			n += (size_t)r;
		out[n] = '\0';
		const char *key = "Cpus_allowed_list:", *l = strstr(out, key);
		if (l) {
			l += strlen(key);
			parse_cpu_list(l + strspn(l, " \t"), &x->child_mask);
			x->child_ok = 1;
		}
		weft_process_wait(p, NULL);
		weft_process_destroy(p);
	}
	if (sig)
		weft_signal_close(sig);
	return NULL;
}

static void spawn_on(weft_runtime *rt, int loop, weft_fn fn, void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = loop;
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, &tc, fn, arg), 0);
	assert_int_equal(weft_task_join(t, NULL), 0);
	weft_task_release(t);
}

/* With pin_cpus, what a pinned loop starts gets the process's mask back:
 * the blocking pool's threads, the signal/reaper helper and children (they
 * inherited the loop's one CPU: two offloaded CPU-bound jobs shared it).
 * Every thread of the process but the loops has the original mask. */
static void test_pinned_loops_helpers_and_children_get_the_mask(void **state)
{
	(void)state;
	cpu_set_t orig;
	my_mask(&orig);
	if (CPU_COUNT(&orig) < 2)
		skip(); /* pinned or not, the same mask */
	weft_runtime_config cfg;
	weft_runtime_config_init(&cfg);
	cfg.loops = 2;
	cfg.pin_cpus = true;
	weft_runtime *rt = NULL;
	assert_int_equal(weft_runtime_start(&rt, &cfg), 0);
	struct helper_rec x;
	memset(&x, 0, sizeof x);
	spawn_on(rt, 0, tid_and_mask, &x);
	spawn_on(rt, 1, tid_and_mask, &x);
	spawn_on(rt, 1, helpers_from_loop1, &x);

	/* Every other thread, now, while the pool thread idles. */
	int others = 0, wrong = 0;
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		if (tid <= 0 || tid == x.loop_tid[0] || tid == x.loop_tid[1])
			continue;
		cpu_set_t m;
		CPU_ZERO(&m);
		if (sched_getaffinity(tid, sizeof m, &m) != 0)
			continue; /* it just exited */
		others++;
		if (!CPU_EQUAL(&m, &orig))
			wrong++;
	}
	closedir(d);
	weft_runtime_destroy(rt);

	assert_int_equal(CPU_COUNT(&x.loop_mask[0]), 1);
	assert_int_equal(CPU_COUNT(&x.loop_mask[1]), 1);
	assert_false(CPU_EQUAL(&x.loop_mask[0], &x.loop_mask[1]));
	assert_true(CPU_EQUAL(&x.loop1_after, &x.loop_mask[1]));
	assert_int_equal(x.off_rc, 0);
	assert_true(CPU_EQUAL(&x.pool_mask, &orig));
	assert_int_equal(x.sig_rc, 0);
	assert_int_equal(x.spawn_rc, 0);
	assert_int_equal(x.child_ok, 1);
	assert_true(CPU_EQUAL(&x.child_mask, &orig));
	assert_true(others >= 3); /* the test thread, a pool thread, the helper */
	assert_int_equal(wrong, 0);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_run_returns_main_result),
	cmocka_unit_test(test_run_null_main_einval),
	cmocka_unit_test(test_run_main_cancelled_returns_ecanceled),
	cmocka_unit_test(test_run_cancels_and_awaits_leftover_tasks),
	cmocka_unit_test(test_config_init_defaults),
	cmocka_unit_test(test_config_nonzero_reserved_einval),
	cmocka_unit_test(test_config_too_many_loops_einval),
	cmocka_unit_test(test_config_tiny_stack_einval),
	cmocka_unit_test(test_config_other_invalid_fields),
	cmocka_unit_test(test_config_non_default_values_work),
	cmocka_unit_test(test_start_shutdown_destroy_1_2_4_loops),
	cmocka_unit_test(test_destroy_without_shutdown),
	cmocka_unit_test(test_null_runtime_einval),
	cmocka_unit_test(test_shutdown_cancels_and_awaits_blocked_tasks),
	cmocka_unit_test(test_spawn_after_shutdown_eshutdown),
	cmocka_unit_test(test_foreign_spawn_and_blocking_join),
	cmocka_unit_test(test_foreign_threads_spawn_and_join_concurrently),
	cmocka_unit_test(test_runtime_call_from_foreign_thread),
	cmocka_unit_test(test_runtime_call_across_runtimes),
	cmocka_unit_test(test_shutdown_and_call_from_task_edeadlk),
	cmocka_unit_test(test_stats),
	cmocka_unit_test(test_stats_polled_while_running),
	cmocka_unit_test(test_concurrent_shutdown_from_two_threads),
	cmocka_unit_test(test_shutdown_releases_foreign_joiner),
	cmocka_unit_test(test_loop_index_and_count_outside),
	cmocka_unit_test(test_loop_index_and_count_inside),
	cmocka_unit_test(test_loop_caches_give_back_what_they_do_not_reuse),
	cmocka_unit_test(test_many_sequential_runtimes_leak_nothing),
	cmocka_unit_test(test_strerror_names_codes),
	cmocka_unit_test(test_cgroup_cpu_quota_fixtures),
	cmocka_unit_test(test_default_loops_and_pinning_within_the_mask),
	cmocka_unit_test(test_pinned_loops_helpers_and_children_get_the_mask),
};

WEFT_TEST_MAIN(tests)
