/*
 * Tiny helpers shared by the benchmarks under bench/.
 *
 * Every benchmark prints only lines of the form
 *
 *   BENCH <name> <value> <unit> vs=<baseline> ratio=<x> target=<t> <ok|MISS>
 *
 * on stdout ("-" for vs= and ratio= where no baseline applies); everything
 * else goes to stderr.  A measurement is repeated (BENCH_REPS, default 5)
 * and the median reported: these machines are shared and noisy.
 *
 * Environment knobs (for development, not for reported numbers):
 *   BENCH_REPS=n    repeats per measurement (default 5)
 *   BENCH_SCALE=x   multiply iteration counts by x (default 1.0)
 *   BENCH_LOOPS=n   loops for benchmarks that use the default count
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "weft.h"
#include "weft/net.h"

#define BENCH_MAX_REPS 64

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Number of repeats per measurement (BENCH_REPS, 1..BENCH_MAX_REPS). */
static inline int bench_reps(void)
{
	const char *s = getenv("BENCH_REPS");
	int n = s ? atoi(s) : 5;
	if (n < 1)
		n = 1;
	if (n > BENCH_MAX_REPS)
		n = BENCH_MAX_REPS;
	return n;
}

/* Scale an iteration count by BENCH_SCALE (never below 1). */
static inline uint64_t bench_scaled(uint64_t n)
{
	const char *s = getenv("BENCH_SCALE");
	double x = s ? atof(s) : 1.0;
	if (!(x > 0))
		x = 1.0;
	double v = (double)n * x;
	return v < 1 ? 1 : (uint64_t)v;
}

static inline int bench__cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median of v[0..n-1] (v is left untouched). */
static inline double bench_median(const double *v, int n)
{
	double tmp[BENCH_MAX_REPS];
	if (n <= 0)
		return 0;
	if (n > BENCH_MAX_REPS)
		n = BENCH_MAX_REPS;
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	qsort(tmp, (size_t)n, sizeof(*tmp), bench__cmp_double);
	return (n & 1) ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* Median of v[0..n-1] (n >= 1), with its range in *lo and *hi. */
static inline double bench_median_range(const double *v, int n, double *lo, double *hi)
{
	*lo = *hi = v[0];
	for (int i = 1; i < n; i++) {
		*lo = v[i] < *lo ? v[i] : *lo;
		*hi = v[i] > *hi ? v[i] : *hi;
	}
	return bench_median(v, n);
}

/* CPU time (user + system), ns, of RUSAGE_THREAD or RUSAGE_SELF. */
static inline uint64_t bench__cpu_ns(int who)
{
	struct rusage ru;
	getrusage(who, &ru);
	return (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000u +
	       (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000u;
}

/* CPU time of the calling thread, ns. */
static inline uint64_t bench_thread_cpu_ns(void)
{
	return bench__cpu_ns(RUSAGE_THREAD);
}

/* CPU time of the whole process, ns. */
static inline uint64_t bench_process_cpu_ns(void)
{
	return bench__cpu_ns(RUSAGE_SELF);
}

/* Print the repeats of one measurement to stderr (diagnostics). */
static inline void bench_note_reps(const char *name, const double *v, int n, const char *unit)
{
	fprintf(stderr, "%s: reps", name);
	for (int i = 0; i < n; i++)
		fprintf(stderr, " %.2f", v[i]);
	fprintf(stderr, " %s (median %.2f)\n", unit, bench_median(v, n));
}

/* Run fn(arg) `reps` times; each call returns one measurement; return the
 * median (and leave the samples in out[] if non-NULL). */
static inline double bench_median_of(int reps, double (*fn)(void *), void *arg, double *out)
{
	double v[BENCH_MAX_REPS];
	if (reps > BENCH_MAX_REPS)
		reps = BENCH_MAX_REPS;
	for (int i = 0; i < reps; i++)
		v[i] = fn(arg);
	if (out)
		memcpy(out, v, (size_t)reps * sizeof(*v));
	return bench_median(v, reps);
}

static inline void bench__fmt(char *buf, size_t len, double v)
{
	double a = v < 0 ? -v : v;
	if (a >= 1000)
		snprintf(buf, len, "%.0f", v);
	else if (a >= 100)
		snprintf(buf, len, "%.1f", v);
	else if (a >= 10)
		snprintf(buf, len, "%.2f", v);
	else
		snprintf(buf, len, "%.3f", v);
}

/*
 * The one output format.  baseline < 0 means "no baseline" (vs=- ratio=-);
 * otherwise ratio is printed as given.  target is the text after target=
 * (e.g. "<=15ns", ">=20x").
 */
static inline void bench_line(const char *name, double value, const char *unit,
			      double baseline, double ratio, const char *target, bool ok)
{
	char v[32], b[32], r[32];
	bench__fmt(v, sizeof v, value);
	if (baseline < 0) {
		strcpy(b, "-");
		strcpy(r, "-");
	} else {
		bench__fmt(b, sizeof b, baseline);
		snprintf(r, sizeof r, "%.2f", ratio);
	}
	printf("BENCH %s %s %s vs=%s ratio=%s target=%s %s\n", name, v, unit, b, r,
	       target, ok ? "ok" : "MISS");
	fflush(stdout);
}

/* value must be <= limit (same unit); no baseline. */
static inline void bench_report_max(const char *name, double value, const char *unit,
				    double limit)
{
	char t[48], l[32];
	bench__fmt(l, sizeof l, limit);
	/* trim trailing zeros of the limit: "<=15ns", not "<=15.00ns" */
	if (strchr(l, '.')) {
		char *e = l + strlen(l) - 1;
		while (*e == '0')
			*e-- = 0;
		if (*e == '.')
			*e = 0;
	}
	snprintf(t, sizeof t, "<=%s%s", l, unit);
	bench_line(name, value, unit, -1, 0, t, value <= limit);
}

/* value must be < limit (strict); no baseline. */
static inline void bench_report_below(const char *name, double value, const char *unit,
				      double limit)
{
	char t[48], l[32];
	snprintf(l, sizeof l, "%g", limit);
	snprintf(t, sizeof t, "<%s%s", l, unit);
	bench_line(name, value, unit, -1, 0, t, value < limit);
}

/* ratio = baseline / value (how many times faster than the baseline, where
 * both are costs in the same unit) must be >= min_ratio. */
static inline void bench_report_speedup(const char *name, double value, const char *unit,
					double baseline, double min_ratio)
{
	char t[48];
	double ratio = value > 0 ? baseline / value : 0;
	snprintf(t, sizeof t, ">=%gx", min_ratio);
	bench_line(name, value, unit, baseline, ratio, t, ratio >= min_ratio);
}

/* Abort the benchmark (exit status 2) on a failed weft call. */
#define BENCH_CHECK(expr)                                                              \
	do {                                                                           \
		int bench__rc = (expr);                                                \
		if (bench__rc < 0) {                                                   \
			fprintf(stderr, "%s:%d: %s failed: %d (%s)\n", __FILE__,       \
				__LINE__, #expr, bench__rc, weft_strerror(bench__rc)); \
			fflush(stderr);                                                \
			_exit(2);                                                      \
		}                                                                      \
	} while (0)

#define BENCH_FAIL(...)                                                   \
	do {                                                              \
		fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);           \
		fprintf(stderr, __VA_ARGS__);                             \
		fputc('\n', stderr);                                      \
		fflush(stderr);                                           \
		_exit(2);                                                 \
	} while (0)

/* Resident set size in bytes, from /proc/self/statm. */
static inline uint64_t bench_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, res = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Start a runtime config with the defaults and `loops` loops (0: default). */
static inline void bench_config(weft_runtime_config *cfg, unsigned loops)
{
	weft_runtime_config_init(cfg);
	const char *e = getenv("BENCH_LOOPS");
	if (!loops && e && atoi(e) > 0)
		loops = (unsigned)atoi(e);
	if (loops)
		cfg->loops = loops;
}

/* A TCP loopback connection (a task only): sv[0] for weft's calls, sv[1]
 * made blocking, for a plain thread. */
static inline void bench_tcp_pair(int sv[2])
{
	weft_sockaddr a;
	weft_addr_ip(&a, "127.0.0.1", 0);
	int lfd = weft_tcp_listen(&a, 4, 0);
	BENCH_CHECK(lfd);
	BENCH_CHECK(weft_sock_local(lfd, &a));
	sv[0] = weft_tcp_connect(&a, 2000000000ull);
	BENCH_CHECK(sv[0]);
	sv[1] = weft_accept(lfd, NULL, NULL, 0);
	BENCH_CHECK(sv[1]);
	close(lfd);
	fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) & ~O_NONBLOCK);
}

#endif
