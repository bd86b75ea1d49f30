/*
 * The event trace (weft/trace.h): what a known program records, in
 * order; a wake across loops as a flow arrow; I/O submissions and
 * completions; that a stopped trace records nothing more; that a full
 * ring overwrites its oldest events and counts them; that a foreign
 * thread's events are counted, not recorded; and that the JSON parses
 * (tests/trace_check.py, run with /usr/bin/python3, checks the output).
 * The runtimes are driven from the test's thread (a foreign thread), so
 * start and stop are exercised from outside the loops; one test starts
 * and stops from inside a task.
 */
#include "weft_test.h"
#include "runtime/internal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

/* tests/trace_check.py, next to this file. */
static const char *checker(void)
{
	static char path[512];
	const char *f = __FILE__;
	const char *slash = strrchr(f, '/');
	snprintf(path, sizeof(path), "%.*strace_check.py", slash ? (int)(slash - f + 1) : 0, f);
	return path;
}

static char trace_path[64];

static int setup(void **state)
{
	(void)state;
	snprintf(trace_path, sizeof(trace_path), "/tmp/weft-trace-%d.json", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (!getenv("WEFT_TRACE_KEEP"))
		unlink(trace_path);
	return 0;
}

static void need_python(void)
{
	if (access(PYTHON, X_OK) != 0) {
		fprintf(stderr, "SKIP: %s is missing: the trace's JSON cannot be checked\n",
			PYTHON);
		skip();
	}
}

/* Write rt's trace and run the checker on it: its exit status. */
static int check_trace(weft_runtime *rt, const char *check, const char *arg)
{
	int64_t n = weft_trace_write_path(rt, trace_path);
	assert_true(n > 0);
	struct stat st;
	assert_int_equal(stat(trace_path, &st), 0);
	assert_int_equal((int64_t)st.st_size, n);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), PYTHON " %s %s %s %s", checker(), trace_path, check, arg);
	return system(cmd);
}

/* ---- a known program: a child sleeps once ---- */

static void *napper(void *arg)
{
	(void)arg;
	weft_sleep_ms(2);
	return NULL;
}

/* Spawn fn(arg) as a task named `name`, join it: its result, or the
 * spawn's error as a positive number. */
static void *spawn_join(const char *name, weft_fn fn, void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = name;
	weft_task *t;
	int r = weft_task_spawn_ex(&t, &tc, fn, arg);
	if (r < 0)
		return P(-r);
	void *res = NULL;
	weft_task_join(t, &res);
	weft_task_release(t);
	return res;
}

static void *spawn_napper(void *arg)
{
	(void)arg;
	return spawn_join("napper", napper, NULL);
}

static void test_order(void **state)
{
	(void)state;
	need_python();
	weft_runtime *rt = start_rt(1);
	assert_int_equal(weft_trace_start(rt, 0), 0);
	assert_int_equal(weft_trace_start(rt, 0), -EALREADY);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, spawn_napper, NULL, &res), 0);
	assert_int_equal(U(res), 0);
	assert_int_equal(weft_trace_write(rt, 1), -EBUSY); /* still recording */
	assert_int_equal(weft_trace_stop(rt), 0);
	assert_int_equal(weft_trace_stop(rt), -EALREADY);
	weft_trace_stats st;
	assert_int_equal(weft_trace_stats_get(rt, &st), 0);
	assert_int_equal(st.loops, 1);
	assert_true(st.recorded >= 8);
	assert_int_equal(st.overwritten, 0);
	assert_int_equal(st.kept, st.recorded);
	assert_true(st.duration_ns >= 20 * MS); /* the calibration window */
	assert_int_equal(check_trace(rt, "valid", "1"), 0);
	assert_int_equal(check_trace(rt, "order", "napper"), 0);
	weft_runtime_destroy(rt);
}

/* ---- a wake across loops: a flow from the waker's loop ---- */

typedef struct cross {
	weft_event ev;
} cross;

static void *waiter(void *arg)
{
	cross *c = arg;
	return P(-weft_event_wait(&c->ev));
}

static void *setter(void *arg)
{
	cross *c = arg;
	weft_sleep_ms(5); /* the waiter parks first */
	return P(-weft_event_set(&c->ev));
}

static void *cross_main(void *arg)
{
	weft_task_config tc;
	weft_task_config_init(&tc);
	weft_task *a, *b;
	tc.name = "waiter";
	tc.pin = 0;
	int r = weft_task_spawn_ex(&a, &tc, waiter, arg);
	if (r < 0)
		return P(-r);
	tc.name = "setter";
	tc.pin = 1;
	r = weft_task_spawn_ex(&b, &tc, setter, arg);
	if (r < 0)
		return P(-r);
	void *ra = NULL, *rb = NULL;
	weft_task_join(a, &ra);
	weft_task_join(b, &rb);
	weft_task_release(a);
	weft_task_release(b);
	return P(U(ra) | U(rb));
}

static void test_cross_loop_flow(void **state)
{
	(void)state;
	need_python();
	weft_runtime *rt = start_rt(2);
	cross c;
	assert_int_equal(weft_event_init(&c.ev), 0);
	assert_int_equal(weft_trace_start(rt, 4096), 0);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, cross_main, &c, &res), 0);
	assert_int_equal(U(res), 0);
	assert_int_equal(weft_trace_stop(rt), 0);
	assert_int_equal(check_trace(rt, "valid", "2"), 0);
	assert_int_equal(check_trace(rt, "flow", "waiter"), 0);
	weft_event_destroy(&c.ev);
	weft_runtime_destroy(rt);
}

/* ---- I/O: a write and a read on a pipe ---- */

static void *pipe_io(void *arg)
{
	int *fds = arg;
	char b[4] = "abc";
	if (weft_write(fds[1], b, 3, -1) != 3)
		return P(1);
	if (weft_read(fds[0], b, 3, -1) != 3)
		return P(2);
	return NULL;
}

static void *io_main(void *arg)
{
	return spawn_join("piper", pipe_io, arg);
}

static void test_io(void **state)
{
	(void)state;
	need_python();
	weft_runtime *rt = start_rt(1);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(weft_trace_start(rt, 0), 0);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, io_main, fds, &res), 0);
	assert_int_equal(U(res), 0);
	assert_int_equal(weft_trace_stop(rt), 0);
	assert_int_equal(check_trace(rt, "io", "piper"), 0);
	close(fds[0]);
	close(fds[1]);
	weft_runtime_destroy(rt);
}

/* ---- stopped: nothing more; full: the oldest overwritten, counted ---- */

static void *yields(void *arg)
{
	for (uintptr_t i = 0; i < U(arg); i++)
		weft_yield();
	return NULL;
}

static void *yield_pair(void *arg)
{
	weft_task *t[2];
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = WEFT_PIN_CURRENT;
	for (int i = 0; i < 2; i++)
		if (weft_task_spawn_ex(&t[i], &tc, yields, arg) < 0)
			return P(1);
	for (int i = 0; i < 2; i++) {
		weft_task_join(t[i], NULL);
		weft_task_release(t[i]);
	}
	return NULL;
}

static void test_stop_records_nothing(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(2);
	assert_int_equal(weft_trace_stats_get(rt, &(weft_trace_stats){ 0 }), -ENOENT);
	assert_int_equal(weft_trace_start(rt, 0), 0);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, yield_pair, P(100), &res), 0);
	assert_int_equal(weft_trace_stop(rt), 0);
	weft_trace_stats before, after;
	assert_int_equal(weft_trace_stats_get(rt, &before), 0);
	assert_true(before.recorded >= 400); /* a YIELD and a RUN per yield */
	for (unsigned i = 0; i < rt->nloops; i++) /* white-box: every loop off */
		assert_false(rt->loops[i]->trace_on);
	assert_int_equal(weft_runtime_call(rt, yield_pair, P(100), &res), 0);
	assert_int_equal(U(res), 0);
	assert_int_equal(weft_trace_stats_get(rt, &after), 0);
	assert_memory_equal(&before, &after, sizeof(before));
	/* the rings too: the writer's view is the same after more work */
	for (unsigned i = 0; i < rt->nloops; i++)
		assert_null(rt->loops[i]->tr_ev);
	weft_runtime_destroy(rt);
}

static void test_overflow_counted(void **state)
{
	(void)state;
	need_python();
	weft_runtime *rt = start_rt(1);
	assert_int_equal(weft_trace_start(rt, (size_t)WEFT_TRACE_MAX_EVENTS + 1), -EINVAL);
	assert_int_equal(weft_trace_start(rt, 10), 0); /* rounded up to 64 */
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, yield_pair, P(1000), &res), 0);
	assert_int_equal(weft_trace_stop(rt), 0);
	weft_trace_stats st;
	assert_int_equal(weft_trace_stats_get(rt, &st), 0);
	assert_int_equal(st.kept, 64);
	assert_true(st.recorded >= 4000);
	assert_int_equal(st.overwritten, st.recorded - 64);
	/* what is left still makes a trace: runs cut at the start included */
	assert_int_equal(check_trace(rt, "valid", "1"), 0);
	weft_runtime_destroy(rt);
}

/* ---- a foreign thread's wake: counted, not recorded ---- */

static void test_foreign_counted(void **state)
{
	(void)state;
	weft_runtime *rt = start_rt(1);
	weft_event ev;
	assert_int_equal(weft_event_init(&ev), 0);
	assert_int_equal(weft_trace_start(rt, 0), 0);
	weft_task *t;
	assert_int_equal(weft_runtime_spawn(rt, &t, NULL, (weft_fn)(void *)waiter, &ev), 0);
	msleep(20); /* it parks on the event */
	assert_int_equal(weft_event_set(&ev), 0); /* from this thread */
	void *res = P(1);
	assert_int_equal(weft_task_join(t, &res), 0);
	assert_int_equal(U(res), 0);
	weft_task_release(t);
	assert_int_equal(weft_trace_stop(rt), 0);
	weft_trace_stats st;
	assert_int_equal(weft_trace_stats_get(rt, &st), 0);
	assert_true(st.foreign >= 2); /* the spawn and the wake */
	weft_event_destroy(&ev);
	weft_runtime_destroy(rt);
}

/* ---- start and stop from inside a task; concurrent calls ---- */

static void *trace_self(void *arg)
{
	weft_runtime *rt = weft_runtime_current();
	int r = weft_trace_start(rt, 0);
	if (r < 0)
		return P(-r);
	yield_pair(P(10));
	r = weft_trace_stop(rt);
	if (r < 0)
		return P(-r);
	weft_trace_stats st;
	r = weft_trace_stats_get(rt, &st);
	if (r < 0)
		return P(-r);
	*(weft_trace_stats *)arg = st;
	return NULL;
}

static void test_from_a_task(void **state)
{
	(void)state;
	weft_trace_stats st = { 0 };
	assert_int_equal(U(weft_test_run_loops(2, trace_self, &st)), 0);
	assert_int_equal(st.loops, 2);
	assert_true(st.recorded >= 40);
	assert_int_equal(weft_trace_start(NULL, 0), -EINVAL);
	assert_int_equal(weft_trace_stop(NULL), -EINVAL);
	assert_int_equal(weft_trace_write(NULL, 1), -EINVAL);
}

/* After shutdown: start refuses, a trace stopped before can be written. */
static void test_after_shutdown(void **state)
{
	(void)state;
	need_python();
	weft_runtime *rt = start_rt(2);
	assert_int_equal(weft_trace_start(rt, 0), 0);
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, yield_pair, P(10), &res), 0);
	assert_int_equal(weft_runtime_shutdown(rt), 0);
	assert_int_equal(weft_trace_stop(rt), 0); /* the loops are gone */
	assert_int_equal(weft_trace_start(rt, 0), -ESHUTDOWN);
	assert_int_equal(check_trace(rt, "valid", "2"), 0);
	weft_runtime_destroy(rt);
}

/* WEFT_TRACE=path: recorded from start to shutdown, written at shutdown. */
static void test_env(void **state)
{
	(void)state;
	need_python();
	setenv("WEFT_TRACE", trace_path, 1);
	setenv("WEFT_TRACE_EVENTS", "1024", 1);
	weft_runtime *rt = start_rt(2);
	unsetenv("WEFT_TRACE");
	unsetenv("WEFT_TRACE_EVENTS");
	void *res = P(1);
	assert_int_equal(weft_runtime_call(rt, spawn_napper, NULL, &res), 0);
	assert_int_equal(U(res), 0);
	assert_int_equal(weft_trace_start(rt, 0), -EALREADY); /* it records */
	assert_int_equal(weft_runtime_shutdown(rt), 0);
	weft_trace_stats st;
	assert_int_equal(weft_trace_stats_get(rt, &st), 0);
	assert_true(st.recorded >= 8);
	assert_true(st.kept <= 2 * 1024);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), PYTHON " %s %s order napper", checker(), trace_path);
	assert_int_equal(system(cmd), 0);
	weft_runtime_destroy(rt);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test_setup_teardown(test_order, setup, teardown),
	cmocka_unit_test_setup_teardown(test_cross_loop_flow, setup, teardown),
	cmocka_unit_test_setup_teardown(test_io, setup, teardown),
	cmocka_unit_test_setup_teardown(test_stop_records_nothing, setup, teardown),
	cmocka_unit_test_setup_teardown(test_overflow_counted, setup, teardown),
	cmocka_unit_test_setup_teardown(test_foreign_counted, setup, teardown),
	cmocka_unit_test_setup_teardown(test_from_a_task, setup, teardown),
	cmocka_unit_test_setup_teardown(test_after_shutdown, setup, teardown),
	cmocka_unit_test_setup_teardown(test_env, setup, teardown),
};

WEFT_TEST_MAIN(tests)
