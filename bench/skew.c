/*
 * skew: CPU-bound work spawned from one loop, spread by stealing.
 *
 * The main task spawns NTASKS stealable tasks, each doing a fixed amount of
 * pure CPU work (about WORK_US microseconds, calibrated at start-up), then
 * joins them all.  All of them land on the spawning loop; with two loops the
 * second gets its share only by stealing.  Measured with loops = 1 and
 * loops = 2, interleaved (a runtime per measurement, so drift on this shared
 * machine hits both alike); value = median time on 2 loops, vs = median on 1
 * loop, ratio = t1 / t2; target >= 1.85x.
 */
#include "bench.h"

#define NTASKS 2000
#define WORK_US 75

static uint64_t work_iters;

/* xorshift64: a serial dependency chain the compiler can neither remove
 * (the result is returned and checked) nor vectorize. */
static __attribute__((noinline)) uint64_t burn(uint64_t x, uint64_t iters)
{
	x |= 1;
	for (uint64_t i = 0; i < iters; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

static void *worker(void *arg)
{
	return (void *)(uintptr_t)burn((uintptr_t)arg, work_iters);
}

static uint64_t expected_sum;

/* ns for spawning and joining `n` workers. */
static uint64_t batch(int n, uint64_t *sum)
{
	static weft_task *t[NTASKS];
	uint64_t s = 0;
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++)
		BENCH_CHECK(weft_task_spawn(&t[i], worker, (void *)(uintptr_t)(i + 1)));
	for (int i = 0; i < n; i++) {
		void *res = NULL;
		BENCH_CHECK(weft_task_join(t[i], &res));
		s += (uintptr_t)res;
		weft_task_release(t[i]);
	}
	uint64_t t1 = now_ns();
	if (sum)
		*sum = s;
	return t1 - t0;
}

struct result {
	double ms;
	uint64_t stolen;
};

static void *bench_main(void *arg)
{
	struct result *r = arg;
	uint64_t sum;
	batch(64, NULL); /* warm-up: stacks into the pools, threads awake */
	uint64_t ns = batch(NTASKS, &sum);
	if (sum != expected_sum)
		BENCH_FAIL("checksum mismatch: %llu != %llu", (unsigned long long)sum,
			   (unsigned long long)expected_sum);
	r->ms = (double)ns / 1e6;
	weft_runtime_stats *st = malloc(sizeof(*st));
	r->stolen = 0;
	if (st && weft_runtime_stats_get(weft_runtime_current(), st) == 0)
		for (unsigned i = 0; i < st->loops && i < 64; i++)
			r->stolen += st->loop[i].tasks_stolen;
	free(st);
	return NULL;
}

static double measure(unsigned loops, uint64_t *stolen)
{
	weft_runtime_config cfg;
	struct result r = {0, 0};
	bench_config(&cfg, loops);
	BENCH_CHECK(weft_run(&cfg, bench_main, &r, NULL));
	*stolen = r.stolen;
	return r.ms;
}

int main(void)
{
	int reps = bench_reps();

	/* calibrate: iterations for WORK_US of work on this machine */
	uint64_t probe = 200000, best = UINT64_MAX;
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = now_ns();
		volatile uint64_t sink = burn(12345, probe);
		(void)sink;
		uint64_t dt = now_ns() - t0;
		if (dt < best)
			best = dt;
	}
	work_iters = (uint64_t)((double)probe * WORK_US * 1000.0 / (double)best);
	if (work_iters == 0)
		work_iters = 1;
	work_iters = bench_scaled(work_iters);
	expected_sum = 0;
	for (int i = 0; i < NTASKS; i++)
		expected_sum += burn((uint64_t)(i + 1), work_iters);
	fprintf(stderr, "skew: %d tasks x %llu iterations (~%d us each)\n", NTASKS,
		(unsigned long long)work_iters, WORK_US);

	double t1[BENCH_MAX_REPS], t2[BENCH_MAX_REPS];
	uint64_t stolen1 = 0, stolen2 = 0;
	for (int r = 0; r < reps; r++) {
		uint64_t s;
		t1[r] = measure(1, &s);
		stolen1 += s;
		t2[r] = measure(2, &s);
		stolen2 += s;
	}
	bench_note_reps("skew 1 loop", t1, reps, "ms");
	bench_note_reps("skew 2 loops", t2, reps, "ms");
	fprintf(stderr, "skew: tasks stolen per run: 1 loop %.0f, 2 loops %.0f (of %d)\n",
		(double)stolen1 / reps, (double)stolen2 / reps, NTASKS + 64);
	bench_report_speedup("skew", bench_median(t2, reps), "ms", bench_median(t1, reps), 1.85);
	return 0;
}
