/*
 * trace: what recording the event trace costs per event (weft/trace.h).
 *
 * The yield loop of bench/yield.c (4 tasks pinned to one loop, each
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
#include "yield_round.h"
#include "runtime/internal.h"

static uint64_t iters;

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
	yield_round(10000); /* warm-up: stacks into the pool, caches hot */
	for (int r = 0; r < reps; r++) {
		off[r] = yield_round(iters);
		BENCH_CHECK(weft_trace_start(rt, 65536));
		on[r] = yield_round(iters);
		BENCH_CHECK(weft_trace_stop(rt));
		weft_trace_stats st;
		BENCH_CHECK(weft_trace_stats_get(rt, &st));
		res->per_yield = (double)st.recorded / (double)(YIELD_TASKS * iters);
		res->overwritten = st.overwritten;
		res->kept = st.kept;
	}
	bench_note_reps("trace_off_yield", off, reps, "ns");
	bench_note_reps("trace_on_yield", on, reps, "ns");
	res->off = bench_median(off, reps);
	res->on = bench_median(on, reps);
	return NULL;
}

/* ns per call of a clock, the clock passed as arg. */
static double clock_cost(void *arg)
{
	uint64_t (*clock)(void) = (uint64_t (*)(void))arg;
	uint64_t n = bench_scaled(5000000), sink = 0;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		sink += clock();
	uint64_t t1 = now_ns();
	__asm__ volatile("" ::"r"(sink));
	return (double)(t1 - t0) / (double)n;
}

static uint64_t tsc_clock(void)
{
	return weft__trace_clock();
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
	double tsc = bench_median_of(reps, clock_cost, (void *)tsc_clock, v);
	double mono = bench_median_of(reps, clock_cost, (void *)now_ns, v);
	bench_line("trace_clock", tsc, "ns", mono, tsc / mono, "<=1x", tsc <= mono);
	bench_report_max("trace_write", wns, "ns", 2000);
	return 0;
}
