/*
 * sleepers: one million concurrent sleeping tasks, default stack size.
 *
 *   sleepers [count]        (default 1000000)
 *
 * The main task spawns `count` stealable tasks (handles kept), each of which
 * bumps a shared counter and calls weft_sleep_ms() for far longer than the
 * benchmark runs.  Main polls the counter with weft_sleep_ms(1).
 *
 *  - sleepers_start: time from the first spawn until every task has started
 *    and is asleep; target < 2 s.  Baseline (vs=): the same number of
 *    first-touch page faults with no runtime, measured first in this run.
 *  - sleepers_rss:   (RSS with all asleep - RSS before spawning) / count,
 *    from /proc/self/statm; target <= 4.5 KiB (4608 B) per task: one touched
 *    stack page plus the task.
 *
 * Both lines are printed as soon as measured.  Then every task is cancelled,
 * joined (each must report -ECANCELED from its sleep) and released, and the
 * runtime shut down; timings of that go to stderr, and a failure there
 * still fails the program.  One measurement, not a median: a million tasks
 * per repeat is the slow part of the whole suite.
 */
#include "bench.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>

#define SLEEP_MS (10u * 60u * 1000u) /* far longer than the benchmark */

static atomic_ulong started;
static atomic_ulong bad_wakes;

static void *sleeper(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
	int rc = weft_sleep_ms(SLEEP_MS);
	if (rc != -ECANCELED)
		atomic_fetch_add_explicit(&bad_wakes, 1, memory_order_relaxed);
	return NULL;
}

struct result {
	uint64_t count;
	double floor_s;
	double start_s;
	double rss_per_task;
	int64_t rss_delta;
};

static void *bench_main(void *arg)
{
	struct result *r = arg;
	uint64_t n = r->count;
	weft_task **t = malloc(n * sizeof(*t));
	if (!t)
		BENCH_FAIL("out of memory for %llu handles", (unsigned long long)n);
	memset(t, 0, n * sizeof(*t)); /* touch it: not part of the per-task cost */

	uint64_t rss0 = bench_rss_bytes();
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < n; i++) {
		int rc = weft_task_spawn(&t[i], sleeper, NULL);
		if (rc < 0)
			BENCH_FAIL("spawn %llu of %llu failed: %d (%s)", (unsigned long long)i,
				   (unsigned long long)n, rc, weft_strerror(rc));
	}
	uint64_t t_spawned = now_ns();
	uint64_t deadline = t0 + 60ull * 1000000000ull;
	while (atomic_load(&started) < n) {
		BENCH_CHECK(weft_sleep_ms(1));
		if (now_ns() > deadline)
			BENCH_FAIL("only %lu of %llu tasks started after 60 s",
				   atomic_load(&started), (unsigned long long)n);
	}
	uint64_t t_started = now_ns();
	/* The counter moves just before each task suspends: give the last ones a
	 * moment to actually reach their sleep before reading the RSS. */
	BENCH_CHECK(weft_sleep_ms(20));
	uint64_t rss1 = bench_rss_bytes();

	r->start_s = (double)(t_started - t0) / 1e9;
	r->rss_delta = (int64_t)rss1 - (int64_t)rss0;
	r->rss_per_task = (double)r->rss_delta / (double)n;
	fprintf(stderr,
		"sleepers: %llu tasks: spawn loop %.3f s, all asleep %.3f s; "
		"RSS %.1f MiB -> %.1f MiB (%.0f B/task)\n",
		(unsigned long long)n, (double)(t_spawned - t0) / 1e9, r->start_s,
		(double)rss0 / 1048576.0, (double)rss1 / 1048576.0, r->rss_per_task);

	weft_runtime_stats *st = calloc(1, sizeof(*st));
	if (st && weft_runtime_stats_get(weft_runtime_current(), st) == 0) {
		fprintf(stderr,
			"sleepers: live tasks %llu, guarded stacks %llu, slab stacks %llu\n",
			(unsigned long long)st->tasks_live,
			(unsigned long long)st->stacks_guarded,
			(unsigned long long)st->stacks_slab);
		for (unsigned i = 0; i < st->loops && i < 64; i++)
			fprintf(stderr,
				"sleepers: loop %u: tasks_run %llu, tasks_stolen %llu, parks %llu\n",
				i, (unsigned long long)st->loop[i].tasks_run,
				(unsigned long long)st->loop[i].tasks_stolen,
				(unsigned long long)st->loop[i].parks);
	}
	free(st);

	/* Report now: the teardown below is checked, but not measured. */
	/* Baseline: the same number of first-touch page faults with no runtime,
	 * measured in this run.  On these VMs zeroing a page costs ~2 us, so
	 * the floor alone is near the 2 s target. */
	bench_line("sleepers_start", r->start_s, "s", r->floor_s,
		   r->floor_s > 0 ? r->start_s / r->floor_s : 0, "<2s", r->start_s < 2);
	bench_report_max("sleepers_rss", r->rss_per_task, "B", 4608);

	/* cancel them all, then join and release */
	uint64_t t2 = now_ns();
	for (uint64_t i = 0; i < n; i++)
		BENCH_CHECK(weft_task_cancel(t[i]));
	uint64_t t3 = now_ns();
	fprintf(stderr, "sleepers: cancel requested for all in %.3f s\n", (double)(t3 - t2) / 1e9);
	uint64_t odd = 0;
	for (uint64_t i = 0; i < n; i++) {
		int rc = weft_task_join(t[i], NULL);
		if (rc != -ECANCELED && rc != 0) {
			fprintf(stderr, "sleepers: join %llu: %d (%s)\n", (unsigned long long)i,
				rc, weft_strerror(rc));
			_exit(2);
		}
		if (rc == 0)
			odd++;
		weft_task_release(t[i]);
		if ((i & 0x1ffff) == 0x1ffff && now_ns() - t3 > 5000000000ull)
			fprintf(stderr, "sleepers: ... %llu joined after %.1f s\n",
				(unsigned long long)i + 1, (double)(now_ns() - t3) / 1e9);
	}
	uint64_t t4 = now_ns();
	free(t);
	fprintf(stderr, "sleepers: join+release %.3f s, RSS after %.1f MiB\n",
		(double)(t4 - t3) / 1e9,
		(double)bench_rss_bytes() / 1048576.0);
	if (odd)
		fprintf(stderr, "sleepers: %llu joins returned 0 instead of -ECANCELED\n",
			(unsigned long long)odd);
	if (atomic_load(&bad_wakes))
		BENCH_FAIL("%lu sleeps returned something other than -ECANCELED",
			   atomic_load(&bad_wakes));
	return NULL;
}

/* Touch one page per default-size stack slot, as `count` fresh tasks do:
 * the kernel's page-fault floor for this benchmark on this machine. */
static double page_floor_s(uint64_t count)
{
	const size_t stride = 64 * 1024;
	char *p = mmap(NULL, count * stride, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	uint64_t t0 = now_ns();
	for (uint64_t i = 0; i < count; i++)
		p[i * stride + stride - 64] = 1;
	double s = (double)(now_ns() - t0) / 1e9;
	munmap(p, count * stride);
	fprintf(stderr, "sleepers: floor: %llu first-touch page faults, no runtime: %.3f s\n",
		(unsigned long long)count, s);
	return s;
}

int main(int argc, char **argv)
{
	struct result r = {0};
	r.count = 1000000;
	if (argc > 1) {
		char *end;
		unsigned long long c = strtoull(argv[1], &end, 10);
		if (*end || c == 0) {
			fprintf(stderr, "usage: %s [count]\n", argv[0]);
			return 2;
		}
		r.count = c;
	}
	r.floor_s = page_floor_s(r.count);
	weft_runtime_config cfg;
	bench_config(&cfg, 0);
	uint64_t t0 = now_ns();
	BENCH_CHECK(weft_run(&cfg, bench_main, &r, NULL));
	fprintf(stderr, "sleepers: whole run incl. shutdown %.3f s\n",
		(double)(now_ns() - t0) / 1e9);
	return 0;
}
