/*
 * The yield loop shared by bench/yield.c and bench/trace.c: YIELD_TASKS
 * tasks pinned to the calling loop each call weft_yield() `iters` times.
 */
#ifndef WEFT_BENCH_YIELD_ROUND_H
#define WEFT_BENCH_YIELD_ROUND_H

#include "bench.h"

#define YIELD_TASKS 4

static void *yield_round_body(void *arg)
{
	uint64_t iters = *(const uint64_t *)arg;
	for (uint64_t i = 0; i < iters; i++) {
		int rc = weft_yield();
		if (rc < 0)
			return (void *)(intptr_t)rc;
	}
	return NULL;
}

/* ns per yield of one round: YIELD_TASKS yielders of `iters` yields each,
 * spawned, joined and released (from a task). */
static inline double yield_round(uint64_t iters)
{
	weft_task *t[YIELD_TASKS];
	weft_task_config tc;
	weft_task_config_init(&tc);
	tc.pin = WEFT_PIN_CURRENT;
	uint64_t t0 = now_ns();
	for (int i = 0; i < YIELD_TASKS; i++)
		BENCH_CHECK(weft_task_spawn_ex(&t[i], &tc, yield_round_body, &iters));
	for (int i = 0; i < YIELD_TASKS; i++) {
		void *res = NULL;
		BENCH_CHECK(weft_task_join(t[i], &res));
		BENCH_CHECK((int)(intptr_t)res);
	}
	uint64_t t1 = now_ns();
	for (int i = 0; i < YIELD_TASKS; i++)
		weft_task_release(t[i]);
	return (double)(t1 - t0) / (double)(YIELD_TASKS * iters);
}

#endif
