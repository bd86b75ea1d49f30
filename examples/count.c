/*
 * count — the "One Two Three" example, weft's twin of:
 *
 *	async def count():
 *	    print("One", end=" ")
 *	    await asyncio.sleep(1)
 *	    print("Two", end=" ")
 *	    await asyncio.sleep(2)
 *	    print("Three", end=" ")
 *
 *	async def main():
 *	    await asyncio.gather(count(), count(), count(), count(), count())
 *
 *	asyncio.run(main())
 *
 * Five tasks each sleep 1 s then 2 s.  While one task sleeps the loop runs
 * the others, so the program takes about 3 s, not 5 * 3 = 15 s:
 *
 *	$ count
 *	One One One One One Two Two Two Two Two Three Three Three Three Three
 *	Total execution time: 3.00 seconds.
 *
 *	$ count --sync          (blocking sleeps, one count() after another)
 *	One Two Three One Two Three One Two Three One Two Three One Two Three
 *	Total execution time: 15.00 seconds.
 *
 * Usage: count [--sync] [--scale F]
 *   --sync     run the synchronous version (plain blocking sleep, no weft)
 *   --scale F  multiply every sleep by F (default 1.0; 0.1 runs 10x faster)
 *
 * The mapping from asyncio to weft:
 *   asyncio.run(main())        weft_run(NULL, main_task, arg, NULL)
 *   asyncio.gather(a, b, ...)  weft_task_spawn() each, then weft_task_join()
 *                              each (and weft_task_release() the handle)
 *   await asyncio.sleep(s)     weft_sleep(ns) / weft_sleep_ms(ms)
 */
#include <weft.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTASKS 5

static double scale = 1.0;

/* Every weft call returns >= 0 on success or -errno: an example treats any
 * unexpected error as fatal. */
static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "count: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

static uint64_t scaled_ns(double seconds)
{
	return (uint64_t)(seconds * scale * 1e9);
}

/*
 * Print one word, space-separated, and flush so it shows up the moment it
 * is said.  Tasks may run on different loops (threads) at once, so the
 * "is this the first word?" test and the print are done under stdout's own
 * lock.  The lock is held for a few instructions and never across a
 * suspension point (a weft call that may suspend the task): holding a lock
 * while suspended would block whichever thread wants it next.
 */
static void say(const char *word)
{
	/* Atomic only for ThreadSanitizer, which does not see flockfile as
	 * a lock; the lock is what orders the words. */
	static _Atomic int words;

	flockfile(stdout);
	if (atomic_fetch_add_explicit(&words, 1, memory_order_relaxed) > 0)
		putchar(' ');
	fputs(word, stdout);
	fflush(stdout);
	funlockfile(stdout);
}

/* async def count(): a task body.  weft_sleep() suspends only this task;
 * the loop runs the other tasks meanwhile. */
static void *count(void *arg)
{
	(void)arg; /* unused */
	say("One");
	check(weft_sleep(scaled_ns(1)), "weft_sleep");
	say("Two");
	check(weft_sleep(scaled_ns(2)), "weft_sleep");
	say("Three");
	return NULL;
}

/* async def main(): await asyncio.gather(count(), ... five times) */
static void *main_task(void *arg)
{
	weft_task *tasks[NTASKS];

	(void)arg; /* unused */

	/* Spawning only schedules a task; it starts once main_task suspends
	 * (or right away, on another loop that steals it). */
	for (int i = 0; i < NTASKS; i++)
		check(weft_task_spawn(&tasks[i], count, NULL), "weft_task_spawn");

	/* gather: wait for each one.  Joining does not free the handle. */
	for (int i = 0; i < NTASKS; i++) {
		check(weft_task_join(tasks[i], NULL), "weft_task_join");
		weft_task_release(tasks[i]);
	}
	return NULL;
}

/* The synchronous version: time.sleep() blocks the whole thread, so each
 * count() runs to the end before the next one starts.  (Awaiting five
 * count() calls one after another inside a single weft task would take the
 * same 15 s: concurrency comes from having several tasks, not from
 * weft_sleep alone.) */
static void blocking_sleep(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void count_sync(void)
{
	say("One");
	blocking_sleep(scaled_ns(1));
	say("Two");
	blocking_sleep(scaled_ns(2));
	say("Three");
}

int main(int argc, char **argv)
{
	bool sync = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--sync") == 0) {
			sync = true;
		} else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
			if (scale < 0) {
				fprintf(stderr, "count: --scale must be >= 0\n");
				return 2;
			}
		} else {
			fprintf(stderr, "usage: %s [--sync] [--scale F]\n", argv[0]);
			return 2;
		}
	}

	uint64_t start = weft_now_ns();

	if (sync) {
		for (int i = 0; i < NTASKS; i++)
			count_sync();
	} else {
		/* asyncio.run(main()): start the event loops, run main_task
		 * as the first task, wait for it, shut everything down. */
		check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	}

	double elapsed = (weft_now_ns() - start) / 1e9;
	printf("\nTotal execution time: %.2f seconds.\n", elapsed);
	return 0;
}
