/*
 * event_loops — two threads, each running its own event loop.
 * weft's twin of the first article's "Event loops" example:
 *
 *	async def do_something_important(sleep_for):
 *	    print(f"Is event loop running in thread {current_thread().getName()} = "
 *	          f"{asyncio.get_event_loop().is_running()}")
 *	    await asyncio.sleep(sleep_for)
 *
 *	def launch_event_loops():
 *	    loop = asyncio.new_event_loop()
 *	    asyncio.set_event_loop(loop)
 *	    loop.run_until_complete(do_something_important(random.randint(1, 5)))
 *	    loop.close()
 *
 *	thread_1 = Thread(target=launch_event_loops)
 *	thread_2 = Thread(target=launch_event_loops)
 *	thread_1.start(); thread_2.start()
 *	print(f"Is event loop running in thread {current_thread().getName()} = ...")
 *	thread_1.join(); thread_2.join()
 *
 * Each pthread calls weft_run() with a one-loop runtime: two independent
 * runtimes in one process.  Code in a task sees its runtime through
 * weft_runtime_current(); the main thread, which runs no loop, sees NULL.
 *
 *	Is event loop running in thread MainThread = False
 *	Is event loop running in thread Thread-1 = True (sleeping 4 s)
 *	Is event loop running in thread Thread-2 = True (sleeping 2 s)
 *	Event Loop Execution Time: 4.00 seconds.
 *
 * (This is how you would spread asyncio over cores by hand.  A single weft
 * runtime does it for you: see threads.c.)
 *
 * Usage: event_loops [--scale F] [--seed S]
 */
#include <weft.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double scale = 1.0;

struct launch {
	const char *name; /* "Thread-1" */
	int sleep_for;    /* random.randint(1, 5) */
};

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "event_loops: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

static const char *is_running(void)
{
	return weft_runtime_current() != NULL ? "True" : "False";
}

static void *do_something_important(void *arg)
{
	struct launch *l = arg;

	printf("Is event loop running in thread %s = %s (sleeping %d s)\n",
	       l->name, is_running(), l->sleep_for);
	check(weft_sleep((uint64_t)(l->sleep_for * scale * 1e9)), "weft_sleep");
	return NULL;
}

/* The thread body: new_event_loop + run_until_complete + close, which is
 * what weft_run() does in one call. */
static void *launch_event_loops(void *arg)
{
	weft_runtime_config cfg;

	weft_runtime_config_init(&cfg);
	cfg.loops = 1; /* one loop, like asyncio */
	check(weft_run(&cfg, do_something_important, arg, NULL), "weft_run");
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned seed = (unsigned)weft_now_ns();

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
			scale = strtod(argv[++i], NULL);
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			seed = (unsigned)strtoul(argv[++i], NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [--scale F] [--seed S]\n", argv[0]);
			return 2;
		}
	}
	if (!(scale >= 0)) {
		fprintf(stderr, "event_loops: --scale must be >= 0\n");
		return 2;
	}

	struct launch l[2] = {
		{ "Thread-1", 1 + rand_r(&seed) % 5 },
		{ "Thread-2", 1 + rand_r(&seed) % 5 },
	};
	pthread_t th[2];

	setvbuf(stdout, NULL, _IOLBF, 0);
	uint64_t start = weft_now_ns();
	for (int i = 0; i < 2; i++) {
		int err = pthread_create(&th[i], NULL, launch_event_loops, &l[i]);
		if (err) {
			fprintf(stderr, "event_loops: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	printf("Is event loop running in thread MainThread = %s\n", is_running());
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);

	printf("Event Loop Execution Time: %.2f seconds.\n", (weft_now_ns() - start) / 1e9);
	return 0;
}
