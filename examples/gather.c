/*
 * gather — creating tasks, gathering their results, taking them as they
 * complete, and what happens when one fails.  weft's twin of the second
 * article's "Creating and gathering tasks" section:
 *
 *	async def coro(seq) -> list:
 *	    """'IO' wait time is proportional to the max element."""
 *	    await asyncio.sleep(max(seq))
 *	    return list(reversed(seq))
 *
 *	1. t = asyncio.create_task(coro([3, 2, 1])); await t; t.done()
 *	2. a = await asyncio.gather(t, t2)        -> [[1, 2, 3], [0, 5, 10]]
 *	3. for res in asyncio.as_completed((t, t2)): compl = await res
 *
 * and of the DEV article's gather with an exception (4.): a task that fails
 * does not cancel the others, and gather(return_exceptions=True) hands back
 * every outcome, errors included.
 *
 * In weft:
 *   create_task       weft_task_spawn()
 *   await t           weft_task_join(t, &result)
 *   t.done()          weft_task_done(t)
 *   gather            spawn all, then join each (gather() below)
 *   as_completed      one future per finishing position, completed by
 *                     whichever task finishes in that position (below)
 *   an exception      a negative errno the task reports (C has none)
 *
 * Usage: gather [--scale F]   (F multiplies every sleep; default 1: 25 s)
 */
#include <weft.h>

#include <errno.h>
#include <stdatomic.h>
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

static void sleep_s(int seconds)
{
	check(weft_sleep((uint64_t)(seconds * scale * 1e9)), "weft_sleep");
}

/* ------------------------------------------------------------------------ */
/* coro(seq): sleep max(seq) seconds, return seq reversed                    */
/* ------------------------------------------------------------------------ */

struct as_completed;

struct seq {
	int in[3];
	int out[3];                /* the result: in, reversed */
	char text[40];             /* out as "[1, 2, 3]" */
	struct as_completed *done; /* report here when finished (part 3) */
};

static void finished(struct as_completed *ac, struct seq *s);

static void *coro(void *arg)
{
	struct seq *s = arg;
	int max = s->in[0];

	for (int i = 1; i < 3; i++)
		max = s->in[i] > max ? s->in[i] : max;
	sleep_s(max);
	for (int i = 0; i < 3; i++)
		s->out[i] = s->in[2 - i];
	snprintf(s->text, sizeof(s->text), "[%d, %d, %d]", s->out[0], s->out[1], s->out[2]);
	if (s->done)
		finished(s->done, s);
	return s->text;
}

static const char *yes_no(bool b)
{
	return b ? "True" : "False";
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
/* 2. gather                                                                 */
/* ------------------------------------------------------------------------ */

/* asyncio.gather(): run fn(args[i]) for every i concurrently, wait for all
 * of them, results[i] = what fn(args[i]) returned, in argument order. */
static void gather(int n, weft_fn fn, void *args[], void *results[])
{
	weft_task *t[n];

	for (int i = 0; i < n; i++)
		check(weft_task_spawn(&t[i], fn, args[i]), "weft_task_spawn");
	for (int i = 0; i < n; i++) {
		check(weft_task_join(t[i], &results[i]), "weft_task_join");
		weft_task_release(t[i]);
	}
}

static void part2(void)
{
	struct seq a = { .in = { 3, 2, 1 } }, b = { .in = { 10, 5, 0 } };
	void *args[2] = { &a, &b }, *res[2];
	char buf[32];

	printf("\n2. gather two tasks\n");
	printf("Start: %s\n", clock_str(buf));
	gather(2, coro, args, res);
	printf("End: %s\n", clock_str(buf)); /* should be 10 seconds later */
	printf("a = [%s, %s]\n", (const char *)res[0], (const char *)res[1]);
}

/* ------------------------------------------------------------------------ */
/* 3. as_completed                                                           */
/* ------------------------------------------------------------------------ */

/* slot[k] is completed, with its seq, by the k-th task to finish.  Waiting
 * on slot[0], slot[1], ... yields the results in order of completion. */
struct as_completed {
	weft_future *slot[2];
	atomic_int next;
};

static void finished(struct as_completed *ac, struct seq *s)
{
	int k = atomic_fetch_add(&ac->next, 1);

	check(weft_future_set_result(ac->slot[k], s), "weft_future_set_result");
}

static void part3(void)
{
	struct as_completed ac = { .next = 0 };
	struct seq a = { .in = { 3, 2, 1 }, .done = &ac };
	struct seq b = { .in = { 10, 5, 0 }, .done = &ac };
	weft_task *t, *t2;
	char buf[32];

	printf("\n3. as_completed\n");
	for (int k = 0; k < 2; k++)
		check(weft_future_create(&ac.slot[k]), "weft_future_create");
	check(weft_task_spawn(&t, coro, &a), "weft_task_spawn");
	check(weft_task_spawn(&t2, coro, &b), "weft_task_spawn");
	printf("Start: %s\n", clock_str(buf));
	for (int k = 0; k < 2; k++) {
		void *v;

		check(weft_future_wait(ac.slot[k], &v), "weft_future_wait");
		printf("res: %s completed at %s\n", ((struct seq *)v)->text, clock_str(buf));
	}
	printf("End: %s\n", clock_str(buf));

	/* A task may still be between finished() and its return: join both
	 * before a and b (on this stack) go away. */
	check(weft_task_join(t, NULL), "weft_task_join");
	check(weft_task_join(t2, NULL), "weft_task_join");
	printf("Both tasks done: %s\n", yes_no(weft_task_done(t) && weft_task_done(t2)));
	weft_task_release(t);
	weft_task_release(t2);
	for (int k = 0; k < 2; k++)
		weft_future_release(ac.slot[k]);
}

/* ------------------------------------------------------------------------ */
/* 4. one task fails; the other carries on                                   */
/* ------------------------------------------------------------------------ */

/* A task's outcome: a value, or an error (C's stand-in for an exception). */
struct outcome {
	int err;           /* 0 or -errno */
	const char *value; /* when err == 0 */
};

static void *some_async_task(void *arg)
{
	struct outcome *o = arg;

	sleep_s(2);
	printf("some_async_task: finished normally, not cancelled by the failure\n");
	o->value = "some_async_task result";
	return o;
}

static void *some_async_task2(void *arg)
{
	struct outcome *o = arg;

	sleep_s(1);
	printf("some_async_task2: failing with -EIO\n");
	o->err = -EIO; /* raise */
	return o;
}

static void part4(void)
{
	struct outcome o1 = { 0 }, o2 = { 0 };
	weft_task *t[2];
	void *res[2];

	printf("\n4. gather(..., return_exceptions=True) with a failing task\n");
	check(weft_task_spawn(&t[0], some_async_task, &o1), "weft_task_spawn");
	check(weft_task_spawn(&t[1], some_async_task2, &o2), "weft_task_spawn");
	for (int i = 0; i < 2; i++) {
		check(weft_task_join(t[i], &res[i]), "weft_task_join");
		weft_task_release(t[i]);
	}
	printf("results = [");
	for (int i = 0; i < 2; i++) {
		const struct outcome *o = res[i];

		if (o->err) /* OSError(EIO) */
			printf("%serror %d (%s)", i ? ", " : "", o->err, strerror(-o->err));
		else
			printf("%s'%s'", i ? ", " : "", o->value);
	}
	printf("]\n");
}

static void *main_task(void *arg)
{
	(void)arg; /* unused */
	part1();
	part2();
	part3();
	part4();
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
