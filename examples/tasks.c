/*
 * tasks — the article's Task example: the futures example again, but main
 * creates the two tasks itself and awaits them one by one:
 *
 *	async def main():
 *	    future = Future()
 *	    loop = asyncio.get_event_loop()
 *	    t1 = loop.create_task(bar(future))
 *	    t2 = loop.create_task(foo(future))
 *	    await t2, t1
 *
 * In weft a task is created with weft_task_spawn() (or weft_task_spawn_ex()
 * to give it a name or pin it to a loop) and awaited with weft_task_join(),
 * which also hands over the task's return value: a task is a future for its
 * own result.  It starts running as soon as a loop picks it up, whether or
 * not anyone ever joins it.
 *
 * Output:
 *
 *	[0.000] main: created bar (id 2) and foo (id 3); done? bar=no foo=no
 *	[0.000] bar will sleep for 3 seconds
 *	[0.000] foo will await the future
 *	[3.001] bar resolving the future
 *	[3.001] foo finds the future resolved
 *	[3.001] main: foo returned "foo saw: future is resolved"
 *	[3.001] main: bar returned "bar done"; done? bar=yes foo=yes
 *	Future execution time: 3.00 seconds.
 *
 * Usage: tasks [--scale F]    (F multiplies bar's 3 s sleep; default 1)
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1.0;
static uint64_t t0;

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "tasks: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

#define say(fmt, ...) \
	printf("[%.3f] " fmt "\n", (weft_now_ns() - t0) / 1e9, ##__VA_ARGS__)

static const char *yes_no(bool b)
{
	return b ? "yes" : "no";
}

static void *bar(void *arg)
{
	weft_future *future = arg;

	say("bar will sleep for %g seconds", 3 * scale);
	check(weft_sleep((uint64_t)(3e9 * scale)), "weft_sleep");
	say("bar resolving the future");
	check(weft_future_set_result(future, "future is resolved"),
	      "weft_future_set_result");
	return "bar done"; /* the task's result, handed to its joiner */
}

static void *foo(void *arg)
{
	weft_future *future = arg;
	static char result[64]; /* outlives the task: main reads it */
	void *value;

	say("foo will await the future");
	check(weft_future_wait(future, &value), "weft_future_wait");
	say("foo finds the future resolved");
	snprintf(result, sizeof(result), "foo saw: %s", (const char *)value);
	return result;
}

/* loop.create_task(): spawn with a name (names show up in debuggers and
 * error messages; without one a task is called "task-<id>"). */
static weft_task *create_task(const char *name, weft_fn fn, void *arg)
{
	weft_task_config cfg;
	weft_task *t;

	weft_task_config_init(&cfg);
	cfg.name = name;
	check(weft_task_spawn_ex(&t, &cfg, fn, arg), "weft_task_spawn_ex");
	return t;
}

static void *main_task(void *arg)
{
	weft_future *future;
	void *r1, *r2;

	(void)arg; /* unused */
	check(weft_future_create(&future), "weft_future_create");

	weft_task *t1 = create_task("bar", bar, future);
	weft_task *t2 = create_task("foo", foo, future);
	say("main: created %s (id %llu) and %s (id %llu); done? bar=%s foo=%s",
	    weft_task_name(t1), (unsigned long long)weft_task_id(t1),
	    weft_task_name(t2), (unsigned long long)weft_task_id(t2),
	    yes_no(weft_task_done(t1)), yes_no(weft_task_done(t2)));

	/* await t2, t1: wait for foo first, then bar.  Both run meanwhile,
	 * whatever order main waits in. */
	check(weft_task_join(t2, &r2), "weft_task_join foo");
	say("main: foo returned \"%s\"", (const char *)r2);
	check(weft_task_join(t1, &r1), "weft_task_join bar");
	say("main: bar returned \"%s\"; done? bar=%s foo=%s", (const char *)r1,
	    yes_no(weft_task_done(t1)), yes_no(weft_task_done(t2)));

	weft_task_release(t1);
	weft_task_release(t2);
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
		fprintf(stderr, "tasks: --scale must be >= 0\n");
		return 2;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	t0 = weft_now_ns();
	check(weft_run(NULL, main_task, NULL, NULL), "weft_run");
	printf("Future execution time: %.2f seconds.\n", (weft_now_ns() - t0) / 1e9);
	return 0;
}
