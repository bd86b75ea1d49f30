/*
 * weft/test.h: a test's body as a task of a fresh runtime, with a time
 * limit, and checks that record a failure instead of long-jumping off the
 * task's stack.  The header says what and why; this file is how.
 *
 * The runner waits on the test's own thread, never on a loop: a body that
 * holds its loop (a spin, a blocking call) cannot stop the clock, since a
 * foreign thread's timed join is a futex wait of its own.  Checks may fail
 * on any thread, so the running test is one process-wide record behind a
 * mutex (one test at a time: -EBUSY otherwise).
 */
#include "internal.h"

#include "weft/test.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FAILURE_MAX = 512 };

struct test_run {
	const char *name;
	weft_task *body;     /* NULL until spawned (checks wait for it) */
	unsigned failures;   /* checks failed; the first is in `failure` */
	char failure[FAILURE_MAX];
};

static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER;
static struct test_run *run_current; /* under run_lock */

void weft_test_options_init(weft_test_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	weft_runtime_config_init(&o->runtime);
	o->runtime.loops = 2;
	o->runtime.backend_quiet = true;
	o->timeout_ns = 30 * 1000000000ull;
	o->grace_ns = 2 * 1000000000ull;
}

bool weft_test_check(bool ok, const char *file, int line, const char *fmt, ...)
{
	if (ok)
		return true;
	char what[FAILURE_MAX / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	weft_task *self = weft_task_current();
	pthread_mutex_lock(&run_lock);
	struct test_run *r = run_current;
	if (!r) {
		pthread_mutex_unlock(&run_lock);
		fprintf(stderr, "weft_test: %s:%d: check failed outside weft_test_run: %s\n",
			file, line, what);
		abort();
	}
	if (!r->failures++)
		snprintf(r->failure, sizeof(r->failure), "%s:%d: check failed: %s (in %s %s)",
			 file, line, what, self ? "task" : "a thread that is not a task",
			 self ? weft_task_name(self) : "");
	if (r->body)
		weft_task_cancel(r->body); /* -EALREADY once it has ended */
	pthread_mutex_unlock(&run_lock);
	return false;
}

/* A time limit times WEFT_TEST_TIME_SCALE, saturating (WEFT_FOREVER stays). */
static uint64_t scaled(uint64_t ns)
{
	const char *s = getenv("WEFT_TEST_TIME_SCALE");
	if (!s || !*s || ns == WEFT_FOREVER)
		return ns;
	char *end;
	double k = strtod(s, &end);
	if (*end || !(k > 0)) {
		fprintf(stderr, "weft_test: WEFT_TEST_TIME_SCALE=%s is not a positive number: "
			"ignored\n", s);
		return ns;
	}
	double v = (double)ns * k;
	if (v >= (double)WEFT_FOREVER)
		return WEFT_FOREVER;
	return ns && v < 1 ? 1 : (uint64_t)v; /* a limit stays a limit */
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

/* The final shutdown, watched: it waits for every task the body left,
 * and one that ignores cancellation would hang it. */
struct watch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	uint64_t grace;
	struct test_run *run;
};

static void report_failure(const struct test_run *r)
{
	if (!r->failures)
		return;
	fprintf(stderr, "weft_test: %s: FAILED: %s\n", r->name, r->failure);
	if (r->failures > 1)
		fprintf(stderr, "weft_test: %s: and %u more failed check%s\n", r->name,
			r->failures - 1, r->failures > 2 ? "s" : "");
}

static void *watch_shutdown(void *arg)
{
	struct watch *w = arg;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t end = weft__deadline_add((uint64_t)ts.tv_sec * 1000000000u +
					  (uint64_t)ts.tv_nsec, w->grace);
	ts.tv_sec = (time_t)(end / 1000000000u);
	ts.tv_nsec = (long)(end % 1000000000u);
	pthread_mutex_lock(&w->lock);
	while (!w->done)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT && !w->done) {
			pthread_mutex_lock(&run_lock);
			report_failure(w->run);
			pthread_mutex_unlock(&run_lock);
			fprintf(stderr, "weft_test: %s: the runtime did not shut down within %.3f s "
				"after the test: a task it left running ignores cancellation "
				"(no suspension point, a shield, or a blocking call); aborting\n",
				w->run->name, secs(w->grace));
			abort();
		}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void shutdown_watched(weft_runtime *rt, struct test_run *r, uint64_t grace)
{
	struct watch w = { .done = false, .grace = grace, .run = r };
	pthread_t th;
	bool watched = false;
	if (grace != WEFT_FOREVER) {
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_mutex_init(&w.lock, NULL);
		pthread_cond_init(&w.cond, &ca);
		pthread_condattr_destroy(&ca);
		watched = pthread_create(&th, NULL, watch_shutdown, &w) == 0;
		if (!watched) {
			pthread_cond_destroy(&w.cond);
			pthread_mutex_destroy(&w.lock);
		}
	}
	weft_runtime_shutdown(rt);
	if (!watched)
		return;
	pthread_mutex_lock(&w.lock);
	w.done = true;
	pthread_cond_signal(&w.cond);
	pthread_mutex_unlock(&w.lock);
	pthread_join(th, NULL);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
}

/* Wait for the body within the limit; past it, cancel it and wait the
 * grace period; past that, abort.  Returns the body's join status, or
 * -ETIMEDOUT when it ended because of the limit. */
static int await_body(struct test_run *r, weft_task *t, uint64_t limit, uint64_t grace)
{
	int rc = weft_task_join_timeout(t, NULL, limit);
	if (rc != -ETIMEDOUT)
		return rc;
	fprintf(stderr, "weft_test: %s: time limit of %.3f s exceeded; cancelling it "
		"(%.3f s to end)\n", r->name, secs(limit), secs(grace));
	weft_task_cancel(t);
	rc = weft_task_join_timeout(t, NULL, grace);
	if (rc == -ETIMEDOUT) {
		pthread_mutex_lock(&run_lock);
		report_failure(r);
		pthread_mutex_unlock(&run_lock);
		fprintf(stderr, "weft_test: %s: still running %.3f s after it was cancelled: "
			"it ignores cancellation (no suspension point, a shield, or a "
			"blocking call holding its loop); aborting rather than hang\n",
			r->name, secs(grace));
		abort();
	}
	fprintf(stderr, "weft_test: %s: ended after its time limit (cancelled)\n", r->name);
	return -ETIMEDOUT;
}

/* Spawn the body on `rt`, wait for it, shut `rt` down and free it. */
static int run_body(struct test_run *r, weft_runtime *rt, weft_fn body, void *arg,
		    uint64_t limit, uint64_t grace)
{
	if (limit == 0) { /* no time at all, not even to start: a spawned body
			     could start before a cancel reached it */
		fprintf(stderr, "weft_test: %s: time limit of 0 s: not run\n", r->name);
		shutdown_watched(rt, r, grace);
		weft_runtime_destroy(rt);
		return -ETIMEDOUT;
	}
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.name = r->name;
	weft_task *t = NULL;
	pthread_mutex_lock(&run_lock); /* a check in the body waits for r->body */
	int rc = weft_runtime_spawn(rt, &t, &tc, body, arg);
	r->body = t;
	pthread_mutex_unlock(&run_lock);
	if (rc < 0) {
		fprintf(stderr, "weft_test: %s: the body could not be spawned: %s\n", r->name,
			strerror(-rc));
	} else {
		rc = await_body(r, t, limit, grace);
		pthread_mutex_lock(&run_lock);
		r->body = NULL; /* later checks (a task left running) only count */
		pthread_mutex_unlock(&run_lock);
		weft_task_release(t);
	}
	shutdown_watched(rt, r, grace);
	weft_runtime_destroy(rt);
	return rc;
}

int weft_test_run(const char *name, weft_fn body, void *arg, const weft_test_options *opts)
{
	weft_test_options def;
	if (!opts) {
		weft_test_options_init(&def);
		opts = &def;
	}
	struct test_run run = { .name = name ? name : "test" };
	if (!body)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(opts->reserved) / sizeof(opts->reserved[0]); i++)
		if (opts->reserved[i])
			return -EINVAL;
	if (weft_runtime_current())
		return weft__misuse(-EPERM, "weft_test_run from a task or loop");
	pthread_mutex_lock(&run_lock);
	if (run_current) {
		pthread_mutex_unlock(&run_lock);
		return weft__misuse(-EBUSY, "weft_test_run while another runs");
	}
	run_current = &run;
	pthread_mutex_unlock(&run_lock);

	weft_runtime *rt = NULL;
	int rc = weft_runtime_start(&rt, &opts->runtime);
	if (rc < 0)
		fprintf(stderr, "weft_test: %s: the runtime did not start: %s\n", run.name,
			strerror(-rc));
	else
		rc = run_body(&run, rt, body, arg, scaled(opts->timeout_ns),
			      scaled(opts->grace_ns));

	pthread_mutex_lock(&run_lock);
	if (run.failures) {
		report_failure(&run);
		rc = WEFT_TEST_FAILED;
	} else if (rc < 0 && rc != -ETIMEDOUT) { /* -ETIMEDOUT: said already */
		fprintf(stderr, "weft_test: %s: the body failed: %s\n", run.name, strerror(-rc));
	}
	run_current = NULL;
	pthread_mutex_unlock(&run_lock);
	return rc;
}
