/*
 * spawn: spawn + run + join + release of an empty task, amortized.
 *
 * The main task spawns a batch of BATCH empty tasks (default config:
 * stealable), then joins and releases each; `batches` batches per repeat.
 * ns per task = elapsed / (batches * BATCH).  Measured with loops = 1
 * ("spawn") and with the default loop count ("spawn_<n>loops", where the
 * other loops steal).  Target <= 60 ns.  For scale: Tokio 465-726 ns, Go
 * 738-1126 ns on this machine.
 */
#include "bench.h"

#define BATCH 1000

static uint64_t batches;

static void *empty(void *arg)
{
	return arg;
}

static double one_rep(void *arg)
{
	(void)arg;
	static weft_task *t[BATCH];
	uint64_t t0 = now_ns();
	for (uint64_t b = 0; b < batches; b++) {
		for (int i = 0; i < BATCH; i++)
			BENCH_CHECK(weft_task_spawn(&t[i], empty, (void *)(intptr_t)(i + 1)));
		for (int i = 0; i < BATCH; i++) {
			void *res = NULL;
			BENCH_CHECK(weft_task_join(t[i], &res));
			if ((intptr_t)res != i + 1)
				BENCH_FAIL("task %d returned %p", i, res);
			weft_task_release(t[i]);
		}
	}
	uint64_t t1 = now_ns();
	return (double)(t1 - t0) / (double)(batches * BATCH);
}

struct result {
	double ns;
	unsigned loops;
};

static void *bench_main(void *arg)
{
	struct result *r = arg;
	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	char name[64];
	r->loops = weft_loop_count();
	/* warm-up: fill the stack pools */
	uint64_t saved = batches;
	batches = 5;
	one_rep(NULL);
	batches = saved;
	bench_median_of(reps, one_rep, NULL, v);
	snprintf(name, sizeof name, "spawn (%u loops)", r->loops);
	bench_note_reps(name, v, reps, "ns");
	r->ns = bench_median(v, reps);
	return NULL;
}

static void run(unsigned loops)
{
	weft_runtime_config cfg;
	struct result r = {0, 0};
	bench_config(&cfg, loops);
	BENCH_CHECK(weft_run(&cfg, bench_main, &r, NULL));
	char name[64];
	if (loops == 1)
		snprintf(name, sizeof name, "spawn");
	else
		snprintf(name, sizeof name, "spawn_%uloops", r.loops);
	bench_report_max(name, r.ns, "ns", 60);
}

int main(void)
{
	batches = bench_scaled(200);
	run(1);
	run(0); /* default: one loop per usable CPU (weft_cpu_count) */
	return 0;
}
