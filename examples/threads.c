/*
 * threads — event loops in several threads, and tasks moving between them.
 *
 * asyncio runs one event loop in one thread; to use more cores you start
 * more threads, each with its own loop, and split the work by hand.  weft
 * starts one loop per thread for you (weft_runtime_config.loops, default:
 * one per CPU) and balances the work: a loop with nothing to do steals
 * ready tasks from a busy one.  A task can change loops at any suspension
 * point (weft_yield, weft_sleep, a wait), never in between.
 *
 * This program spawns --tasks tasks (default 64), all from one task, so
 * they all start out queued on that task's loop.  Each computes for 300 us,
 * then suspends (alternately weft_yield and a 1 ms weft_sleep), a few
 * times over, noting weft_loop_index() when it starts and each time it
 * resumes.  The table shows where tasks started and finished, how many ran
 * on a loop other than the spawner's (stolen), and how many changed loop
 * midway.  The last columns are the runtime's own counters.
 *
 * It also shows the lower-level lifecycle behind weft_run():
 *   weft_runtime_start   (new_event_loop, one per thread)
 *   weft_runtime_call    (loop.run_until_complete(main()))
 *   weft_runtime_stats_get, weft_runtime_shutdown, weft_runtime_destroy
 *
 * Usage: threads [--loops N] [--tasks N]
 *
 * Lesson: never keep the loop index (or any thread-local) across a
 * suspension point; the thread you resume on may be another one.
 */
#include <weft.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 6      /* suspensions per task */
#define WORK_US 300  /* CPU work before each suspension */
#define MAX_TASKS 4096
#define MAX_LOOPS 64 /* weft_runtime_stats covers the first 64 loops */

struct work {
	int loop[STEPS + 1]; /* loop index at start and after each resume */
};

struct run {
	int ntasks;
	int spawner_loop; /* the loop main_task ran on when it spawned */
	struct work *work;
};

static void check(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "threads: %s: %s\n", what, weft_strerror(rc));
		exit(1);
	}
}

/* Keep this loop's CPU busy for `us` microseconds without suspending: a
 * stand-in for real computation (parsing, hashing, ...).  While a task
 * computes, its loop runs nothing else, so the loop's queue of ready tasks
 * grows and idle loops come to steal from it. */
static void cpu_work(unsigned us)
{
	uint64_t until = weft_now_ns() + us * 1000ull;

	while (weft_now_ns() < until)
		;
}

static void usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--loops N] [--tasks N]\n", prog);
	exit(2);
}

static void *worker(void *arg)
{
	struct work *w = arg;

	w->loop[0] = weft_loop_index();
	for (int s = 1; s <= STEPS; s++) {
		cpu_work(WORK_US);
		if (s % 2)
			check(weft_yield(), "weft_yield");
		else
			check(weft_sleep_ms(1), "weft_sleep_ms");
		/* Read it again: we may be on another thread now. */
		w->loop[s] = weft_loop_index();
	}
	return NULL;
}

static void *main_task(void *arg)
{
	struct run *r = arg;
	weft_task **tasks = calloc((size_t)r->ntasks, sizeof(*tasks));

	if (!tasks) {
		fprintf(stderr, "threads: out of memory\n");
		exit(1);
	}
	r->spawner_loop = weft_loop_index();
	for (int i = 0; i < r->ntasks; i++)
		check(weft_task_spawn(&tasks[i], worker, &r->work[i]), "weft_task_spawn");
	for (int i = 0; i < r->ntasks; i++) {
		check(weft_task_join(tasks[i], NULL), "weft_task_join");
		weft_task_release(tasks[i]);
	}
	free(tasks);
	return NULL;
}

int main(int argc, char **argv)
{
	weft_runtime_config cfg;
	struct run r = { .ntasks = 64 };

	weft_runtime_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		char *end;

		if (strcmp(argv[i], "--loops") == 0 && i + 1 < argc) {
			cfg.loops = (unsigned)strtoul(argv[++i], &end, 10);
			if (*end || cfg.loops > 1024)
				usage(argv[0]);
		} else if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc) {
			r.ntasks = (int)strtol(argv[++i], &end, 10);
			if (*end || r.ntasks < 1 || r.ntasks > MAX_TASKS)
				usage(argv[0]);
		} else {
			usage(argv[0]);
		}
	}

	r.work = calloc((size_t)r.ntasks, sizeof(*r.work));
	if (!r.work) {
		fprintf(stderr, "threads: out of memory\n");
		return 1;
	}

	weft_runtime *rt;
	check(weft_runtime_start(&rt, &cfg), "weft_runtime_start");

	/* Run main_task on the runtime and block this (non-weft) thread
	 * until it returns. */
	uint64_t start = weft_now_ns();
	check(weft_runtime_call(rt, main_task, &r, NULL), "weft_runtime_call");
	double elapsed = (weft_now_ns() - start) / 1e9;

	/* The counters stay readable after shutdown; read them once every
	 * loop has stopped. */
	static weft_runtime_stats st; /* large: keep it off the stack */
	check(weft_runtime_shutdown(rt), "weft_runtime_shutdown");
	check(weft_runtime_stats_get(rt, &st), "weft_runtime_stats_get");
	weft_runtime_destroy(rt);

	unsigned nloops = st.loops;
	unsigned shown = nloops < MAX_LOOPS ? nloops : MAX_LOOPS;
	int started[MAX_LOOPS] = { 0 }, finished[MAX_LOOPS] = { 0 };
	int resumed[MAX_LOOPS] = { 0 };
	int stolen = 0, moved = 0, moves = 0;

	for (int i = 0; i < r.ntasks; i++) {
		struct work *w = &r.work[i];
		bool changed = false;

		for (int s = 0; s <= STEPS; s++) {
			if (w->loop[s] < 0 || (unsigned)w->loop[s] >= shown)
				continue;
			if (s == 0)
				started[w->loop[0]]++;
			else
				resumed[w->loop[s]]++;
			if (s > 0 && w->loop[s] != w->loop[s - 1]) {
				changed = true;
				moves++;
			}
		}
		if (w->loop[STEPS] >= 0 && (unsigned)w->loop[STEPS] < shown)
			finished[w->loop[STEPS]]++;
		stolen += w->loop[0] != r.spawner_loop;
		moved += changed;
	}

	printf("%d tasks spawned by one task on loop %d, runtime with %u loop%s "
	       "(%.3f s)\n\n", r.ntasks, r.spawner_loop, nloops, nloops == 1 ? "" : "s",
	       elapsed);
	printf("loop  started  resumed  finished | tasks_run  steals  tasks_stolen\n");
	for (unsigned l = 0; l < shown; l++)
		printf("%4u  %7d  %7d  %8d | %9llu  %6llu  %12llu\n", l, started[l],
		       resumed[l], finished[l],
		       (unsigned long long)st.loop[l].tasks_run,
		       (unsigned long long)st.loop[l].steals,
		       (unsigned long long)st.loop[l].tasks_stolen);
	printf("\nstarted on another loop than the spawner's (stolen): %d of %d\n",
	       stolen, r.ntasks);
	printf("changed loop at a suspension point (migrated): %d of %d, %d moves in all\n",
	       moved, r.ntasks, moves);

	printf("\nloops visited by the first tasks (start, then after each resume):\n");
	for (int i = 0; i < r.ntasks && i < 8; i++) {
		printf("  task %2d:", i + 1);
		for (int s = 0; s <= STEPS; s++)
			printf(" %d", r.work[i].loop[s]);
		printf("\n");
	}

	free(r.work);
	return 0;
}
