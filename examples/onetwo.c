/*
 * onetwo — the "Hello World" of async IO from the second article:
 *
 *	async def count():
 *	    print("One")
 *	    await asyncio.sleep(1)
 *	    print("Two")
 *
 *	async def main():
 *	    await asyncio.gather(count(), count(), count())
 *
 * Three tasks each print One, sleep 1 s and print Two.  The order of the
 * output is the heart of async IO: all three Ones come before any Two,
 * because while one task sleeps the loop runs the others.
 *
 *	$ onetwo                     $ onetwo --sync
 *	One                          One
 *	One                          Two
 *	One                          One
 *	Two                          Two
 *	Two                          One
 *	Two                          Two
 *	onetwo executed in 1.00 seconds.     onetwo executed in 3.00 seconds.
 *
 * --sync uses a blocking sleep (time.sleep): nothing else can run while it
 * sleeps.  --scale F multiplies the sleep by F.
 */
#include <weft.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTASKS 3

static double scale = 1.0;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "onetwo: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* async def count() */
static void *count(void *arg)
{
	(void)arg; /* unused */
	printf("One\n");
	check(weft_sleep((uint64_t)(1e9 * scale)), "weft_sleep");
	printf("Two\n");
	return NULL;
}

/* asyncio.gather(count(), count(), count()) */
static void *main_task(void *arg)
{
	weft_task *t[NTASKS];

	(void)arg; /* unused */
	for (int i = 0; i < NTASKS; i++)
		check(weft_task_spawn(&t[i], count, NULL), "weft_task_spawn");
	for (int i = 0; i < NTASKS; i++) {
		check(weft_task_join(t[i], NULL), "weft_task_join");
		weft_task_release(t[i]);
	}
	return NULL;
}

/* def count(): print("One"); time.sleep(1); print("Two") */
static void count_sync(void)
{
	uint64_t ns = (uint64_t)(1e9 * scale);
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	printf("One\n");
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	printf("Two\n");
}

int main(int argc, char **argv)
{
	bool sync = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sync") == 0) {
			sync = true;
		} else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else {
			fprintf(stderr, "usage: %s [--sync] [--scale F]\n", argv[0]);
			return 2;
		}
	}
	if (!(scale >= 0)) {
		fprintf(stderr, "onetwo: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t s = weft_now_ns();
	if (sync) {
		for (int i = 0; i < NTASKS; i++)
			count_sync();
	} else {
		check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	}
	printf("onetwo executed in %.2f seconds.\n", (weft_now_ns() - s) / 1e9);
	return 0;
}
