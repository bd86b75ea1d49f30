/*
 * yield: weft_yield() through the scheduler.
 *
 * YIELD_TASKS (4) tasks pinned to the single loop (loops = 1) each call weft_yield()
 * `iters` times; ns per yield = elapsed / (YIELD_TASKS * iters).  Target <= 15 ns.
 * For scale: Tokio 78-126 ns, Go 111-128 ns on this machine.
 */
#include "yield_round.h"

static uint64_t iters;

static double one_rep(void *arg)
{
	(void)arg;
	return yield_round(iters);
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
