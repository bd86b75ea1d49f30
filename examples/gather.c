/*
 * gather — creating tasks, gathering their results in order, and what
 * happens when one of them fails.  weft's twin of the second article's
 * "Creating and gathering tasks" section:
 *
 *	async def coro(seq) -> list:
 *	    """'IO' wait time is proportional to the max element."""
 *	    await asyncio.sleep(max(seq))
 *	    return list(reversed(seq))
 *
 *	1. t = asyncio.create_task(coro([3, 2, 1])); await t; t.done()
 *	2. a = await asyncio.gather(t, t2)        -> [[1, 2, 3], [0, 5, 10]]
 *
 * and of the DEV article's gather with an exception (3.): a task that fails
 * does not cancel the other one; plain gather reports the failure at once
 * while the other keeps running, and gather(return_exceptions=True) waits
 * for both and hands back every outcome, the error included.
 * (The article's as_completed loop is examples/as_completed.c.)
 *
 * In weft:
 *   create_task             weft_task_spawn()
 *   await t                 weft_task_join(t, &result)
 *   t.done()                weft_task_done(t)
 *   await gather(t, t2)     weft_gather(ts, 2, results, NULL): results in
 *                           input order, or the first failure's error
 *   return_exceptions=True  weft_gather(ts, 2, results, errs): errs[i] is
 *                           each task's status (0 or -errno)
 *   raise OSError(EIO)      weft_task_fail(-EIO) (C has no exceptions)
 *
 * Usage: gather [--scale F]   (F multiplies every sleep; default 1: 17 s)
 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double scale = 1.0;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "gather: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* time.strftime('%X'), with milliseconds so scaled runs show something */
static const char *clock_str(char buf[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, 32, "%H:%M:%S", &tm);
	snprintf(buf + n, 32 - n, ".%03ld", ts.tv_nsec / 1000000);
	return buf;
}

/* await asyncio.sleep(seconds); returns 0 or -ECANCELED */
static int sleep_s(double seconds)
{
	return weft_sleep((uint64_t)(seconds * scale * 1e9));
}

static const char *yes_no(bool b)
{
	return b ? "True" : "False";
}

/* ------------------------------------------------------------------------ */
/* coro(seq): sleep max(seq) seconds, return seq reversed                    */
/* ------------------------------------------------------------------------ */

struct seq {
	int in[3];
	char text[40]; /* the result, in reversed, as "[1, 2, 3]" */
};

static void *coro(void *arg)
{
	struct seq *s = arg;
	int max = s->in[0];

	for (int i = 1; i < 3; i++)
		max = s->in[i] > max ? s->in[i] : max;
	if (sleep_s(max) < 0)
		return NULL; /* cancelled: its join reports -ECANCELED */
	snprintf(s->text, sizeof(s->text), "[%d, %d, %d]", s->in[2], s->in[1], s->in[0]);
	return s->text;
}

/* ------------------------------------------------------------------------ */
/* 1. create_task, await, done                                               */
/* ------------------------------------------------------------------------ */

static void part1(void)
{
	struct seq s = { .in = { 3, 2, 1 } };
	weft_task *t;
	void *result;

	printf("1. create_task, then await it\n");
	check(weft_task_spawn(&t, coro, &s), "weft_task_spawn");
	check(weft_task_join(t, &result), "weft_task_join");
	printf("t: weft_task '%s', id %llu, returned %s\n", weft_task_name(t),
	       (unsigned long long)weft_task_id(t), (const char *)result);
	printf("t done: %s\n", yes_no(weft_task_done(t)));
	weft_task_release(t);
}

/* ------------------------------------------------------------------------ */
/* 2. gather: results in input order                                         */
/* ------------------------------------------------------------------------ */

static void part2(void)
{
	struct seq a = { .in = { 3, 2, 1 } }, b = { .in = { 10, 5, 0 } };
	weft_task *t[2];
	void *res[2];
	char buf[32];

	printf("\n2. gather two tasks\n");
	check(weft_task_spawn(&t[0], coro, &a), "weft_task_spawn");
	check(weft_task_spawn(&t[1], coro, &b), "weft_task_spawn");
	printf("Start: %s\n", clock_str(buf));
	check(weft_gather(t, 2, res, NULL), "weft_gather");
	printf("End: %s\n", clock_str(buf)); /* should be 10 seconds later */
	printf("Both tasks done: %s\n", yes_no(weft_task_done(t[0]) && weft_task_done(t[1])));
	/* t finished first, yet the results come in the order of the inputs */
	printf("a = [%s, %s]\n", (const char *)res[0], (const char *)res[1]);
	weft_task_release(t[0]);
	weft_task_release(t[1]);
}

/* ------------------------------------------------------------------------ */
/* 3. one task fails; the other carries on                                   */
/* ------------------------------------------------------------------------ */

/* Story-seconds since the current pair of tasks started (the real time
 * divided by --scale), so scaled runs print the article's timings. */
static uint64_t t0;

static double since_t0(void)
{
	return (weft_now_ns() - t0) / 1e9 / (scale > 0 ? scale : 1);
}

static void *some_async_task(void *arg)
{
	(void)arg; /* unused */
	if (sleep_s(2) < 0)
		return NULL; /* cancelled */
	printf("  [%.1f s] some_async_task: finished normally, not cancelled\n", since_t0());
	return "some_async_task result";
}

static void *some_async_task2(void *arg)
{
	(void)arg; /* unused */
	if (sleep_s(1) < 0)
		return NULL; /* cancelled */
	printf("  [%.1f s] some_async_task2: raising OSError(EIO)\n", since_t0());
	check(weft_task_fail(-EIO), "weft_task_fail"); /* raise */
	return NULL;
}

static void spawn_both(weft_task *t[2])
{
	check(weft_task_spawn(&t[0], some_async_task, NULL), "weft_task_spawn");
	check(weft_task_spawn(&t[1], some_async_task2, NULL), "weft_task_spawn");
	t0 = weft_now_ns();
}

static void part3(void)
{
	weft_task *t[2];
	void *res[2];
	int errs[2];

	/* 3a. return_exceptions=False: gather returns the error as soon as
	 * some_async_task2 fails.  As in asyncio, some_async_task is not
	 * cancelled; the article awaits something else for a while to watch
	 * it finish, here we simply join it. */
	printf("\n3a. gather(some_async_task(), some_async_task2())\n");
	spawn_both(t);
	int rc = weft_gather(t, 2, res, NULL);
	printf("  [%.1f s] gather returned %s: the failure, right away\n", since_t0(),
	       weft_strerror(rc));
	if (rc != -EIO)
		check(rc < 0 ? rc : -EPROTO, "weft_gather (expected -EIO)");
	printf("  some_async_task still running: %s\n", yes_no(!weft_task_done(t[0])));
	check(weft_task_join(t[0], &res[0]), "weft_task_join");
	printf("  joined it later: '%s'\n", (const char *)res[0]);
	weft_task_release(t[0]);
	weft_task_release(t[1]); /* already joined by weft_gather */

	/* 3b. return_exceptions=True: wait for both, every outcome in order. */
	printf("\n3b. gather(..., return_exceptions=True)\n");
	spawn_both(t);
	check(weft_gather(t, 2, res, errs), "weft_gather");
	printf("  [%.1f s] results = [", since_t0());
	for (int i = 0; i < 2; i++) {
		if (errs[i]) /* the "exception", where the result would be */
			printf("%sOSError(%s)", i ? ", " : "", weft_strerror(errs[i]));
		else
			printf("%s'%s'", i ? ", " : "", (const char *)res[i]);
	}
	printf("]\n");
	weft_task_release(t[0]);
	weft_task_release(t[1]);
}

static void *main_task(void *arg)
{
	(void)arg; /* unused */
	part1();
	part2();
	part3();
	return NULL;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else {
			fprintf(stderr, "usage: %s [--scale F]\n", argv[0]);
			return 2;
		}
	}
	if (!(scale >= 0)) {
		fprintf(stderr, "gather: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	printf("\nTotal: %.2f seconds.\n", (weft_now_ns() - start) / 1e9);
	return 0;
}
