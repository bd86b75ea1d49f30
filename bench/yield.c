/*
 * yield: weft_yield() through the scheduler.
 *
 * NTASKS tasks pinned to the single loop (loops = 1) each call weft_yield()
 * `iters` times; ns per yield = elapsed / (NTASKS * iters).  Target <= 15 ns.
 * For scale: Tokio 78-126 ns, Go 111-128 ns on this machine.
 */
#include "bench.h"

#define NTASKS 4

static uint64_t iters;

static void *yielder(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = weft_yield();
		if (rc < 0)
			return (void *)(intptr_t)rc;
	}
	return NULL;
}

static double one_rep(void *arg)
{
	(void)arg;
	weft_task *t[NTASKS];
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = WEFT_PIN_CURRENT;
	uint64_t t0 = now_ns();
	for (int i = 0; i < NTASKS; i++)
		BENCH_CHECK(weft_task_spawn_ex(&t[i], &tc, yielder, NULL));
	for (int i = 0; i < NTASKS; i++) {
		void *res = NULL;
		BENCH_CHECK(weft_task_join(t[i], &res));
		BENCH_CHECK((int)(intptr_t)res);
	}
	uint64_t t1 = now_ns();
	for (int i = 0; i < NTASKS; i++)
		weft_task_release(t[i]);
	return (double)(t1 - t0) / (double)(NTASKS * iters);
}

static void *bench_main(void *arg)
{
	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	/* warm-up: stacks into the pool, caches hot */
	uint64_t saved = iters;
	iters = 10000;
	one_rep(NULL);
	iters = saved;
	bench_median_of(reps, one_rep, NULL, v);
	bench_note_reps("yield", v, reps, "ns");
	*(double *)arg = bench_median(v, reps);
	return NULL;
}

int main(void)
{
	weft_runtime_config cfg;
	bench_config(&cfg, 1);
	iters = bench_scaled(1000000);
	double ns = 0;
	void *res;
	BENCH_CHECK(weft_run(&cfg, bench_main, &ns, &res));
	bench_report_max("yield", ns, "ns", 15);
	return 0;
}
