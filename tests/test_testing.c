/*
 * weft/test.h, the test helper weft offers its users, tested as a user
 * would use it: this suite includes only the public headers (not the
 * project's internal tests/weft_test.h), so it is also a runnable example
 * of both styles docs/testing.md shows.
 *
 *  - cmocka style: the body checks with WEFT_TEST_CHECK*, the cmocka test
 *    asserts on weft_test_run's result from its own stack.
 *  - plain style: a program with assert() and an exit status (run here in
 *    a forked child, as its own main() would be).
 *
 * Then the failure paths: a failed check is reported with its values and
 * fails the run, from the body or from a task it spawned; a body past its
 * time limit is cancelled and reported; one that ignores cancellation, or
 * leaves a task that does, aborts the process (checked in forked
 * children: their exit status and what they printed).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <weft.h>
#include <weft/test.h>

#define MS 1000000ull

/* ---- cmocka style: the example of docs/testing.md ---- */

struct echo {
	weft_queue *q;
	int sum;
};

static void *producer(void *arg)
{
	struct echo *e = arg;
	for (intptr_t i = 1; i <= 10; i++)
		WEFT_TEST_CHECK_INT(weft_queue_put(e->q, (void *)i), ==, 0);
	return NULL;
}

static void *queue_body(void *arg)
{
	struct echo *e = arg;
	WEFT_TEST_CHECK_INT(weft_queue_create(&e->q, NULL), ==, 0);
	weft_task *t;
	WEFT_TEST_CHECK_INT(weft_task_spawn(&t, producer, e), ==, 0);
	for (int i = 0; i < 10; i++) {
		void *v;
		int r = weft_queue_get(e->q, &v);
		if (r != 0) { /* a check here would return with t unjoined */
			weft_test_check(false, __FILE__, __LINE__, "get: %d", r);
			break;
		}
		e->sum += (int)(intptr_t)v;
	}
	weft_task_join(t, NULL);
	weft_task_release(t);
	weft_queue_destroy(e->q);
	WEFT_TEST_CHECK_INT(e->sum, ==, 55);
	WEFT_TEST_CHECK_INT(weft_sleep_ms(5), ==, 0);
	return NULL;
}

static void test_cmocka_style(void **state)
{
	(void)state;
	struct echo e = { 0 };
	assert_int_equal(WEFT_TEST_RUN(queue_body, &e, NULL), 0);
	assert_int_equal(e.sum, 55); /* it ran: not a pass by default */
}

/* Options: one loop, the epoll backend, a limit of their own. */
static void *loops_body(void *arg)
{
	unsigned *seen = arg;
	*seen = weft_loop_count();
	WEFT_TEST_CHECK(weft_task_current() != NULL);
	WEFT_TEST_CHECK(strcmp(weft_task_name(weft_task_current()), "loops_body") == 0);
	return NULL;
}

static void test_options(void **state)
{
	(void)state;
	weft_test_options o;
	weft_test_options_init(&o);
	assert_int_equal(o.runtime.loops, 2);
	assert_true(o.timeout_ns == 30000 * MS);
	assert_true(o.grace_ns > 0 && o.grace_ns < o.timeout_ns);
	unsigned seen = 0;
	assert_int_equal(WEFT_TEST_RUN(loops_body, &seen, &o), 0);
	assert_int_equal(seen, 2);
	o.runtime.loops = 1;
	o.runtime.backend = WEFT_BACKEND_EPOLL;
	o.timeout_ns = 5000 * MS;
	assert_int_equal(WEFT_TEST_RUN(loops_body, &seen, &o), 0);
	assert_int_equal(seen, 1);
	/* NULL options: the defaults */
	assert_int_equal(WEFT_TEST_RUN(loops_body, &seen, NULL), 0);
	assert_int_equal(seen, 2);
	/* bad arguments */
	assert_int_equal(weft_test_run("x", NULL, NULL, NULL), -EINVAL);
	o.reserved[3] = 1;
	assert_int_equal(WEFT_TEST_RUN(loops_body, &seen, &o), -EINVAL);
	o.reserved[3] = 0;
	o.runtime.reserved[0] = 1; /* the runtime's own check */
	assert_int_equal(WEFT_TEST_RUN(loops_body, &seen, &o), -EINVAL);
}

/* From a task it is -EPERM; from another thread while a test runs,
 * -EBUSY (checks find their test through the one in progress). */
static void *nop_body(void *arg)
{
	return arg;
}

static void *other_thread(void *arg)
{
	*(int *)arg = weft_test_run("nested", nop_body, NULL, NULL);
	return NULL;
}

static void *nesting_body(void *arg)
{
	int *rc = arg;
	rc[0] = weft_test_run("nested", nop_body, NULL, NULL);
	pthread_t th;
	WEFT_TEST_CHECK_INT(pthread_create(&th, NULL, other_thread, &rc[1]), ==, 0);
	pthread_join(th, NULL); /* blocks this loop briefly: a test may */
	return NULL;
}

static void test_nesting_refused(void **state)
{
	(void)state;
	int rc[2] = { 1, 1 };
	assert_int_equal(WEFT_TEST_RUN(nesting_body, rc, NULL), 0);
	assert_int_equal(rc[0], -EPERM);
	assert_int_equal(rc[1], -EBUSY);
}

/* The body's own error (weft_task_fail) is the run's result. */
static void *failing_body(void *arg)
{
	(void)arg;
	weft_task_fail(-EIO);
	return NULL;
}

/* ---- stderr and forked children ---- */

/* Run fn() with stderr going to a temporary file; returns what it wrote
 * (malloc'ed) and prints it into the test's log. */
static char *captured(int (*fn)(void *), void *arg, int *rc)
{
	fflush(stderr);
	FILE *f = tmpfile();
	assert_non_null(f);
	int saved = dup(2);
	assert_true(saved >= 0);
	dup2(fileno(f), 2);
	*rc = fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	long n = ftell(f);
	char *buf = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
	assert_non_null(buf);
	rewind(f);
	size_t got = fread(buf, 1, (size_t)(n > 0 ? n : 0), f);
	buf[got] = 0;
	fclose(f);
	print_message("stderr: %s", buf);
	return buf;
}

/* Run fn(arg) in a forked child with stderr to a pipe; returns its wait
 * status and what it wrote (malloc'ed).  No core dumps from aborts. */
static int forked(int (*fn)(void *), void *arg, char **out)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		close(p[0]);
		dup2(p[1], 2);
		_exit(fn(arg));
	}
	close(p[1]);
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	ssize_t n;
	while ((n = read(p[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	buf[len] = 0;
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	print_message("child status %#x, stderr: %s", st, buf);
	*out = buf;
	return st;
}

static int run_failing(void *arg)
{
	(void)arg;
	return weft_test_run("fails", failing_body, NULL, NULL);
}

static void test_body_error_is_the_result(void **state)
{
	(void)state;
	int rc;
	char *err = captured(run_failing, NULL, &rc);
	assert_int_equal(rc, -EIO);
	assert_non_null(strstr(err, "weft_test: fails: the body failed"));
	free(err);
}

/* ---- plain style: assert() and an exit status, no framework ---- */

static void *plain_body(void *arg)
{
	int *ticks = arg;
	weft_interval iv;
	int r = weft_interval_init(&iv, 2 * MS, WEFT_TICK_BURST);
	assert(r == 0); /* aborts if not (never call inside assert: NDEBUG drops it) */
	(void)r;
	for (int i = 0; i < 5; i++)
		WEFT_TEST_CHECK_INT(weft_interval_tick(&iv), ==, 1);
	*ticks = 5;
	return NULL;
}

static int plain_main(void *arg)
{
	(void)arg;
	int ticks = 0;
	int rc = weft_test_run("plain", plain_body, &ticks, NULL);
	assert(rc == 0 && ticks == 5);
	fprintf(stderr, "plain: ok\n");
	return rc == 0 ? 0 : 1; /* a plain program's exit status */
}

static void test_plain_style(void **state)
{
	(void)state;
	char *err;
	int st = forked(plain_main, NULL, &err);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_non_null(strstr(err, "plain: ok"));
	free(err);
}

/* A plain assert() that fails inside a body aborts the process. */
static void *assert_body(void *arg)
{
	(void)arg;
	assert(weft_sleep_ms(1) == 1);
	return NULL;
}

static int run_assert_body(void *arg)
{
	(void)arg;
	return weft_test_run("asserts", assert_body, NULL, NULL);
}

static void test_plain_assert_in_body_aborts(void **state)
{
	(void)state;
	char *err;
	int st = forked(run_assert_body, NULL, &err);
#ifdef NDEBUG
	(void)st; /* assert() compiled out: nothing to see */
#else
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	assert_non_null(strstr(err, "weft_sleep_ms(1) == 1"));
#endif
	free(err);
}

/* ---- failed checks ---- */

struct fail_rec {
	int after;   /* set by code past the failing check (must stay 0) */
	int child_rc;
	uint64_t t0, t1;
};

static void *check_body(void *arg)
{
	struct fail_rec *x = arg;
	int r = weft_sleep_ms(1) - 110; /* a value to show: -110 */
	WEFT_TEST_CHECK_INT(r, ==, 0);
	x->after = 1;
	return NULL;
}

static int run_check_body(void *arg)
{
	return weft_test_run("check_body", check_body, arg, NULL);
}

static void test_failed_check_is_reported(void **state)
{
	(void)state;
	struct fail_rec x = { 0 };
	int rc;
	char *err = captured(run_check_body, &x, &rc);
	assert_int_equal(rc, WEFT_TEST_FAILED);
	assert_int_equal(x.after, 0); /* the check ended the body */
	assert_non_null(strstr(err, "weft_test: check_body: FAILED: "));
	assert_non_null(strstr(err, "test_testing.c:"));
	assert_non_null(strstr(err, "check failed: r == 0 (-110 vs 0)"));
	assert_non_null(strstr(err, "(in task check_body)"));
	free(err);
}

/* A check failing in a task the body spawned, through weft_test_check in
 * an int-returning helper: the body, waiting for 30 s, is cancelled and
 * ends at once. */
static int helper_that_fails(unsigned n)
{
	if (!weft_test_check(n % 2 == 0, __FILE__, __LINE__, "n even (n = %u)", n))
		return -1;
	return 0;
}

static void *failing_child(void *arg)
{
	(void)arg;
	weft_sleep_ms(10);
	helper_that_fails(7);
	return NULL;
}

static void *parent_body(void *arg)
{
	struct fail_rec *x = arg;
	WEFT_TEST_CHECK_INT(weft_task_spawn(NULL, failing_child, NULL), ==, 0);
	x->t0 = weft_now_ns();
	x->child_rc = weft_sleep_ms(30000);
	x->t1 = weft_now_ns();
	return NULL;
}

static int run_parent_body(void *arg)
{
	return weft_test_run("parent", parent_body, arg, NULL);
}

static void test_failed_check_in_child_cancels_body(void **state)
{
	(void)state;
	struct fail_rec x = { 0 };
	int rc;
	char *err = captured(run_parent_body, &x, &rc);
	assert_int_equal(rc, WEFT_TEST_FAILED);
	assert_int_equal(x.child_rc, -ECANCELED);
	assert_true(x.t1 - x.t0 < 10000 * MS); /* not the 30 s sleep */
	assert_non_null(strstr(err, "check failed: n even (n = 7) (in task"));
	free(err);
}

/* ---- the time limit ---- */

static void *slow_body(void *arg)
{
	struct fail_rec *x = arg;
	x->t0 = weft_now_ns();
	x->child_rc = weft_sleep_ms(60000);
	x->t1 = weft_now_ns();
	return NULL;
}

static int run_slow_body(void *arg)
{
	weft_test_options o;
	weft_test_options_init(&o);
	o.timeout_ns = 100 * MS;
	return weft_test_run("slow", slow_body, arg, &o);
}

static void test_time_limit_cancels_body(void **state)
{
	(void)state;
	struct fail_rec x = { 0 };
	int rc;
	char *err = captured(run_slow_body, &x, &rc);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_int_equal(x.child_rc, -ECANCELED); /* cancelled, and it unwound */
	assert_true(x.t1 - x.t0 >= 90 * MS && x.t1 - x.t0 < 30000 * MS);
	assert_non_null(strstr(err, "weft_test: slow: time limit of 0.100 s exceeded"));
	assert_non_null(strstr(err, "weft_test: slow: ended after its time limit"));
	free(err);
}

/* WEFT_TEST_TIME_SCALE multiplies limits: 1 s scaled by 0.1 is 0.1 s; a
 * limit of 0 is no time at all (the body is not even spawned). */
static int run_scaled(void *arg)
{
	setenv("WEFT_TEST_TIME_SCALE", "0.1", 1);
	weft_test_options o;
	weft_test_options_init(&o);
	o.timeout_ns = 1000 * MS;
	int rc = weft_test_run("scaled", slow_body, arg, &o);
	unsetenv("WEFT_TEST_TIME_SCALE");
	return rc;
}

static int run_zero(void *arg)
{
	weft_test_options o;
	weft_test_options_init(&o);
	o.timeout_ns = 0;
	return weft_test_run("zero", slow_body, arg, &o);
}

static void test_time_scale_and_zero(void **state)
{
	(void)state;
	struct fail_rec x = { 0 };
	int rc;
	char *err = captured(run_scaled, &x, &rc);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_non_null(strstr(err, "time limit of 0.100 s exceeded"));
	free(err);
	memset(&x, 0, sizeof x);
	err = captured(run_zero, &x, &rc);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_int_equal(x.t0, 0); /* never started */
	assert_non_null(strstr(err, "weft_test: zero: time limit of 0 s: not run"));
	free(err);
}

/* A body that ignores cancellation (it spins, never reaching a suspension
 * point) is reported and the process aborts rather than hang. */
static void *deaf_body(void *arg)
{
	volatile int *stop = arg;
	while (!*stop)
		;
	return NULL;
}

static int run_deaf_body(void *arg)
{
	weft_test_options o;
	weft_test_options_init(&o);
	o.timeout_ns = 100 * MS;
	o.grace_ns = 200 * MS;
	return weft_test_run("deaf", deaf_body, arg, &o);
}

static void test_ignoring_cancellation_aborts(void **state)
{
	(void)state;
	int stop = 0;
	char *err;
	int st = forked(run_deaf_body, &stop, &err);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	assert_non_null(strstr(err, "weft_test: deaf: time limit of 0.100 s exceeded"));
	assert_non_null(strstr(err, "weft_test: deaf: still running 0.200 s after it was "
				    "cancelled"));
	assert_non_null(strstr(err, "aborting"));
	free(err);
}

/* The body ends, but leaves a task that ignores cancellation (a shield
 * around a long sleep): the final shutdown is watched the same way. */
static void *shielded_leftover(void *arg)
{
	(void)arg;
	weft_shield_begin();
	weft_sleep_ms(60000);
	weft_shield_end();
	return NULL;
}

static void *leaving_body(void *arg)
{
	(void)arg;
	WEFT_TEST_CHECK_INT(weft_task_spawn(NULL, shielded_leftover, NULL), ==, 0);
	WEFT_TEST_CHECK_INT(weft_sleep_ms(10), ==, 0);
	return NULL;
}

static int run_leaving_body(void *arg)
{
	(void)arg;
	weft_test_options o;
	weft_test_options_init(&o);
	o.grace_ns = 200 * MS;
	return weft_test_run("leaves", leaving_body, NULL, &o);
}

static void test_leftover_task_aborts_shutdown(void **state)
{
	(void)state;
	char *err;
	int st = forked(run_leaving_body, NULL, &err);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	assert_non_null(strstr(err, "weft_test: leaves: the runtime did not shut down "
				    "within 0.200 s"));
	free(err);
}

/* A check with no test running has nothing to fail: it aborts. */
static int check_outside(void *arg)
{
	(void)arg;
	weft_test_check(1 + 1 == 3, __FILE__, __LINE__, "1 + 1 == 3");
	return 0;
}

static void test_check_outside_run_aborts(void **state)
{
	(void)state;
	char *err;
	int st = forked(check_outside, NULL, &err);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	assert_non_null(strstr(err, "check failed outside weft_test_run: 1 + 1 == 3"));
	free(err);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_cmocka_style),
	cmocka_unit_test(test_options),
	cmocka_unit_test(test_nesting_refused),
	cmocka_unit_test(test_body_error_is_the_result),
	cmocka_unit_test(test_plain_style),
	cmocka_unit_test(test_plain_assert_in_body_aborts),
	cmocka_unit_test(test_failed_check_is_reported),
	cmocka_unit_test(test_failed_check_in_child_cancels_body),
	cmocka_unit_test(test_time_limit_cancels_body),
	cmocka_unit_test(test_time_scale_and_zero),
	cmocka_unit_test(test_ignoring_cancellation_aborts),
	cmocka_unit_test(test_leftover_task_aborts_shutdown),
	cmocka_unit_test(test_check_outside_run_aborts),
};

/* A user's main is cmocka_run_group_tests(tests, NULL, NULL).  This one
 * also answers tests/run.sh, which lists the tests (--list) and runs each
 * in its own process (by name). */
int main(int argc, char **argv)
{
	size_t n = sizeof(tests) / sizeof(tests[0]);
	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
