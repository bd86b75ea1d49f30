/*
 * as_completed — take results in the order the tasks finish, not the order
 * they were given.  weft's twin of the second article's as_completed loop:
 *
 *	async def coro(seq) -> list:
 *	    await asyncio.sleep(max(seq))
 *	    return list(reversed(seq))
 *
 *	t = asyncio.create_task(coro([3, 2, 1]))
 *	t2 = asyncio.create_task(coro([10, 5, 0]))
 *	print('Start:', time.strftime('%X'))
 *	for res in asyncio.as_completed((t, t2)):
 *	    compl = await res
 *	    print(f'res: {compl} completed at {time.strftime("%X")}')
 *	print('End:', time.strftime('%X'))
 *	print(f'Both tasks done: {all((t.done(), t2.done()))}')
 *
 * "The result of coro([3, 2, 1]) will be available before coro([10, 5, 0])
 * is complete, which is not the case with gather()."  Part 2 makes the
 * point plainer: four tasks listed slowest first come back fastest first.
 *
 * In weft:
 *   for res in as_completed(ts)   weft_as_completed_init(&it, ts, n);
 *                                 while ((i = weft_as_completed_next(&it)) >= 0)
 *                                 (-ENOENT once every task has come back)
 *   compl = await res             weft_task_join(ts[i], &compl): the task is
 *                                 done, so this does not wait
 *
 * Usage: as_completed [--scale F]   (F multiplies every sleep; default 1: 20 s)
 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXT 4

static double scale = 1.0;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "as_completed: %s: %s\n", what, weft_strerror(rc));
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

struct seq {
	int in[3];
	char text[40]; /* the result: in, reversed, as "[1, 2, 3]" */
};

/* coro(seq): sleep max(seq) seconds, return seq reversed */
static void *coro(void *arg)
{
	struct seq *s = arg;
	int max = s->in[0];

	for (int i = 1; i < 3; i++)
		max = s->in[i] > max ? s->in[i] : max;
	if (weft_sleep((uint64_t)(max * scale * 1e9)) < 0)
		return NULL; /* cancelled: its join reports -ECANCELED */
	snprintf(s->text, sizeof(s->text), "[%d, %d, %d]", s->in[2], s->in[1], s->in[0]);
	return s->text;
}

/* Spawn coro(seqs[i]) for each i, then print the results as they come. */
static void run(struct seq *seqs, int n)
{
	weft_task *t[MAXT];
	weft_as_completed it;
	char buf[32];
	int i;

	for (i = 0; i < n; i++)
		check(weft_task_spawn(&t[i], coro, &seqs[i]), "weft_task_spawn");
	printf("Start: %s\n", clock_str(buf));
	check(weft_as_completed_init(&it, t, (size_t)n), "weft_as_completed_init");
	while ((i = weft_as_completed_next(&it)) >= 0) {
		void *compl;

		check(weft_task_join(t[i], &compl), "weft_task_join");
		printf("res: %-11s (input %d) completed at %s\n", (const char *)compl, i,
		       clock_str(buf));
	}
	if (i != -ENOENT) /* -ECANCELED: we were cancelled */
		check(i, "weft_as_completed_next");
	weft_as_completed_done(&it);
	printf("End: %s\n", clock_str(buf));

	bool all = true;
	for (i = 0; i < n; i++) {
		all = all && weft_task_done(t[i]);
		weft_task_release(t[i]);
	}
	printf("All tasks done: %s\n", all ? "True" : "False");
}

static void *main_task(void *arg)
{
	struct seq article[2] = { { .in = { 3, 2, 1 } }, { .in = { 10, 5, 0 } } };
	struct seq slowest_first[MAXT] = {
		{ .in = { 10, 5, 0 } }, { .in = { 1, 8, 3 } },
		{ .in = { 6, 4, 2 } },  { .in = { 2, 1, 0 } },
	};

	(void)arg; /* unused */
	printf("1. as_completed((t, t2)), as in the article\n");
	run(article, 2);
	printf("\n2. four tasks listed slowest first (10, 8, 6, 2 s)\n");
	run(slowest_first, MAXT);
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
		fprintf(stderr, "as_completed: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	printf("\nTotal: %.2f seconds.\n", (weft_now_ns() - start) / 1e9);
	return 0;
}
