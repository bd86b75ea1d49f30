/*
 * futures — one task awaits a future that another task resolves.
 * weft's twin of the article's Future example:
 *
 *	async def bar(future):
 *	    print("bar will sleep for 3 seconds")
 *	    await asyncio.sleep(3)
 *	    print("bar resolving the future")
 *	    future.set_result("future is resolved")
 *
 *	async def foo(future):
 *	    print("foo will await the future")
 *	    await future
 *	    print("foo finds the future resolved")
 *
 *	async def main():
 *	    future = Future()
 *	    await asyncio.gather(foo(future), bar(future))
 *
 * Output (each line stamped with the seconds since start):
 *
 *	[0.000] foo will await the future
 *	[0.000] bar will sleep for 3 seconds
 *	[3.001] bar resolving the future
 *	[3.001] foo finds the future resolved: "future is resolved"
 *	Future execution time: 3.00 seconds.
 *
 * (foo and bar may print their first line in either order: they start on
 * whichever loop runs them first.)
 *
 * Usage: futures [--scale F]    (F multiplies bar's 3 s sleep; default 1)
 *
 * A weft_future is asyncio.Future: created pending, completed once with
 * weft_future_set_result() (or set_error / cancel), awaited with
 * weft_future_wait() by any number of tasks, on any loop, or even by a
 * plain thread.  It is reference counted: each owner releases its
 * reference with weft_future_release().
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1.0;
static uint64_t t0; /* weft_now_ns() at start */

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "futures: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* printf with the elapsed time in front.  One printf call per line, so the
 * lines of tasks running on different loops never interleave. */
#define say(fmt, ...) \
	printf("[%.3f] " fmt "\n", (weft_now_ns() - t0) / 1e9, ##__VA_ARGS__)

static void *bar(void *arg)
{
	weft_future *future = arg;

	say("bar will sleep for %g seconds", 3 * scale);
	check(weft_sleep((uint64_t)(3e9 * scale)), "weft_sleep");
	say("bar resolving the future");
	/* The value is an opaque pointer: weft hands it to every waiter and
	 * never dereferences it.  A string literal lives forever, so it is
	 * safe to share. */
	check(weft_future_set_result(future, "future is resolved"),
	      "weft_future_set_result");
	return NULL;
}

static void *foo(void *arg)
{
	weft_future *future = arg;
	void *value;

	say("foo will await the future");
	/* Suspends foo (not the loop) until bar completes the future. */
	check(weft_future_wait(future, &value), "weft_future_wait");
	say("foo finds the future resolved: \"%s\"", (const char *)value);
	return NULL;
}

static void *main_task(void *arg)
{
	weft_future *future;
	weft_task *t_foo, *t_bar;

	(void)arg; /* unused */
	check(weft_future_create(&future), "weft_future_create");

	/* asyncio.gather(foo(future), bar(future)) */
	check(weft_task_spawn(&t_foo, foo, future), "weft_task_spawn");
	check(weft_task_spawn(&t_bar, bar, future), "weft_task_spawn");
	check(weft_task_join(t_foo, NULL), "weft_task_join");
	check(weft_task_join(t_bar, NULL), "weft_task_join");
	weft_task_release(t_foo);
	weft_task_release(t_bar);

	/* Both tasks are done with it: drop main's (only) reference. */
	weft_future_release(future);
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
		fprintf(stderr, "futures: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0); /* lines appear as they happen */
	t0 = weft_now_ns();
	check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	printf("Future execution time: %.2f seconds.\n", (weft_now_ns() - t0) / 1e9);
	return 0;
}
