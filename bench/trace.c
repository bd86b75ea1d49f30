/*
 * trace: what recording the event trace costs per event (weft/trace.h).
 *
 * The yield loop of bench/yield.c (NTASKS tasks pinned to one loop, each
 * calling weft_yield() `iters` times), run alternately with the trace
 * stopped and recording, in the same run; every yield records two events
 * (the yielder's YIELD, the next task's RUN), and the ring (64 Ki events)
 * wraps many times, as a flight recorder does.  Reported:
 *
 *   trace_event  (ns per yield recording - ns per yield stopped) / events
 *                per yield, with the stopped yield as the baseline and
 *                ratio = recording / stopped.  Target <= 20 ns.
 *   trace_clock  the timestamp the record path takes (the cycle counter)
 *                against clock_gettime(CLOCK_MONOTONIC) through the vDSO,
 *                the clock it replaces; ratio = counter / clock_gettime.
 *   trace_write  the writer: ns per event kept, the last trace's 64 Ki
 *                events written to /dev/null as JSON.  Target <= 2000 ns.
 */
#include "bench.h"
#include "runtime/internal.h"

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

/* ns per yield of one round of NTASKS yielders. */
static double yield_round(void)
{
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

typedef struct result {
	double off, on;     /* ns per yield, medians */
	double per_yield;   /* events recorded per yield */
	uint64_t overwritten;
	uint64_t kept;
} result;

static void *bench_main(void *arg)
{
	result *res = arg;
	weft_runtime *rt = weft_runtime_current();
	int reps = bench_reps();
	double off[BENCH_MAX_REPS], on[BENCH_MAX_REPS];
	uint64_t saved = iters;
	iters = 10000;
	yield_round(); /* warm-up: stacks into the pool, caches hot */
	iters = saved;
	for (int r = 0; r < reps; r++) {
		off[r] = yield_round();
		BENCH_CHECK(weft_trace_start(rt, 65536));
		on[r] = yield_round();
		BENCH_CHECK(weft_trace_stop(rt));
		weft_trace_stats st;
		BENCH_CHECK(weft_trace_stats_get(rt, &st));
		res->per_yield = (double)st.recorded / (double)(NTASKS * iters);
		res->overwritten = st.overwritten;
		res->kept = st.kept;
	}
	bench_note_reps("trace_off_yield", off, reps, "ns");
	bench_note_reps("trace_on_yield", on, reps, "ns");
	res->off = bench_median(off, reps);
	res->on = bench_median(on, reps);
	return NULL;
}

static double clock_tsc(void *arg)
{
	(void)arg;
	uint64_t n = bench_scaled(5000000), sink = 0;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		sink += weft__trace_clock();
	uint64_t t1 = now_ns();
	__asm__ volatile("" ::"r"(sink));
	return (double)(t1 - t0) / (double)n;
}

static double clock_mono(void *arg)
{
	(void)arg;
	uint64_t n = bench_scaled(5000000), sink = 0;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		sink += now_ns();
	uint64_t t1 = now_ns();
	__asm__ volatile("" ::"r"(sink));
	return (double)(t1 - t0) / (double)n;
}

/* The writer: ns per kept event, the last trace to /dev/null (from this
 * thread, after shutdown: writing blocks). */
static double write_cost(weft_runtime *rt, uint64_t kept)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	BENCH_CHECK(fd);
	uint64_t t0 = now_ns();
	int64_t n = weft_trace_write(rt, fd);
	uint64_t t1 = now_ns();
	BENCH_CHECK((int)(n < 0 ? n : 0));
	close(fd);
	fprintf(stderr, "trace: wrote %lld bytes for %llu events\n", (long long)n,
		(unsigned long long)kept);
	return (double)(t1 - t0) / (double)(kept ? kept : 1);
}

int main(void)
{
	weft_runtime_config cfg;
	bench_config(&cfg, 1);
	iters = bench_scaled(1000000);
	result res = { 0 };
	weft_runtime *rt;
	void *out;
	BENCH_CHECK(weft_runtime_start(&rt, &cfg));
	BENCH_CHECK(weft_runtime_call(rt, bench_main, &res, &out));
	weft_runtime_shutdown(rt);
	double wns = write_cost(rt, res.kept);
	weft_runtime_destroy(rt);
	double per_event = (res.on - res.off) / (res.per_yield > 0 ? res.per_yield : 1);
	fprintf(stderr, "trace: %.2f events per yield, %llu overwritten in the last rep\n",
		res.per_yield, (unsigned long long)res.overwritten);
	bench_line("trace_event", per_event, "ns", res.off, res.on / res.off, "<=20ns",
		   per_event <= 20);

	int reps = bench_reps();
	double v[BENCH_MAX_REPS];
	double tsc = bench_median_of(reps, clock_tsc, NULL, v);
	double mono = bench_median_of(reps, clock_mono, NULL, v);
	bench_line("trace_clock", tsc, "ns", mono, tsc / mono, "<=1x", tsc <= mono);
	bench_report_max("trace_write", wns, "ns", 2000);
	return 0;
}
