/*
 * weft-load's pieces that need no network (issue 5, item 5): the latency
 * histogram (weft/load.h) against exact percentiles, and the command line
 * (bench/load_opts.h) on good and bad input.
 *
 * Histogram: values from several distributions (uniform, exponential,
 * bimodal with a far tail, constant, tiny, huge near 2^40) are recorded and
 * also sorted; for each p the histogram's answer must be the exact
 * nearest-rank value or above it by at most 1/128 of it (exact below 256),
 * with count, min and max exact, and a merge of two halves equal to one
 * histogram of everything.  A fixed-seed generator keeps runs repeatable.
 *
 * Options: every option in each spelling, the duration, count and size
 * suffixes, the URL forms, and a table of nonsense each of which must give
 * -EINVAL and a message that names the problem.
 */
#include "weft_test.h"

#include "bench/load_opts.h"

#include <math.h>

/* Plain builds record N values per distribution; sanitized ones a fifth. */
#define N_VALUES (WEFT_TEST_SANITIZED ? 40003u : 200003u)

/* ------------------------------------------------------------------ */
/* Histogram.                                                          */

static uint64_t rng_state;

static uint64_t rng_next(void) /* splitmix64 */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(void) /* (0, 1] */
{
	return ((double)(rng_next() >> 11) + 1) / 9007199254740992.0;
}

static uint64_t rng_below(uint64_t n)
{
	return rng_next() % n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

enum dist { D_UNIFORM, D_EXP, D_BIMODAL, D_CONST, D_TINY, D_HUGE };

static uint64_t draw(enum dist d)
{
	switch (d) {
	case D_UNIFORM: /* 1 us .. 10 ms */
		return 1000 + rng_below(10 * MS);
	case D_EXP: /* mean 1 ms */
		return (uint64_t)(-log(rng_unit()) * 1e6);
	case D_BIMODAL: { /* 99% near 100 us, 1% near 1 s, 0.02% at 20..40 s */
		uint64_t r = rng_below(10000);
		if (r < 2)
			return 20000 * MS + rng_below(20000 * MS);
		if (r < 100)
			return 900 * MS + rng_below(200 * MS);
		return 80000 + rng_below(40000);
	}
	case D_CONST:
		return 123457;
	case D_TINY:
		return rng_below(128);
	case D_HUGE: /* within 2^30 below 2^40, and 2^40 itself */
		return rng_below(50) ? (UINT64_C(1) << 40) - rng_below(UINT64_C(1) << 30)
				     : UINT64_C(1) << 40;
	}
	return 0;
}

/* The histogram's answer for p must be the exact value or above it by at
 * most 1/128 of it; exact below 256 and at p = 0 and 100. */
static void check_close(uint64_t got, uint64_t exact, double p)
{
	if (got < exact || (got - exact) * 128 > exact || (exact < 256 && got != exact) ||
	    ((p == 0 || p == 100) && got != exact))
		fail_msg("p%g: got %llu, exact %llu", p, (unsigned long long)got,
			 (unsigned long long)exact);
}

/* Worst relative error seen across the accuracy test, for the log. */
static double worst_rel;

static void check_dist(enum dist d)
{
	static const unsigned pp[] = { 0, 5000, 9000, 9900, 9990, 9999, 10000 }; /* p x 100 */
	static weft_hist all, lo, hi, merged;
	const size_t n = N_VALUES;
	uint64_t *v = malloc(n * sizeof(*v));
	assert_non_null(v);
	rng_state = 0x5eed0000u + (uint64_t)d;
	weft_hist_init(&all);
	weft_hist_init(&lo);
	weft_hist_init(&hi);
	long double sum = 0;
	for (size_t i = 0; i < n; i++) {
		v[i] = draw(d);
		sum += v[i];
		weft_hist_record(&all, v[i]);
		weft_hist_record(i < n / 3 ? &lo : &hi, v[i]); /* uneven halves */
	}
	qsort(v, n, sizeof(*v), cmp_u64);

	assert_int_equal(weft_hist_count(&all), n);
	assert_int_equal(weft_hist_min(&all), v[0]);
	assert_int_equal(weft_hist_max(&all), v[n - 1]);
	double mean = (double)(sum / n);
	assert_true(fabs(weft_hist_mean(&all) - mean) <= mean * 1e-12 + 1e-9);

	for (size_t k = 0; k < sizeof(pp) / sizeof(pp[0]); k++) {
		double p = pp[k] / 100.0;
		uint64_t rank = ((uint64_t)pp[k] * n + 9999) / 10000; /* ceil, in integers */
		if (rank == 0)
			rank = 1;
		uint64_t exact = v[rank - 1], got = weft_hist_percentile(&all, p);
		check_close(got, exact, p);
		if (exact)
			worst_rel = fmax(worst_rel, (double)(got - exact) / (double)exact);
	}

	merged = lo;
	weft_hist_merge(&merged, &hi);
	assert_memory_equal(merged.counts, all.counts, sizeof(all.counts));
	assert_int_equal(merged.total, all.total);
	assert_int_equal(merged.min, all.min);
	assert_int_equal(merged.max, all.max);
	assert_true(merged.sum_lo == all.sum_lo && merged.sum_hi == all.sum_hi); /* exact */
	for (unsigned q = 0; q <= 1000; q++)
		assert_int_equal(weft_hist_percentile(&merged, q / 10.0), weft_hist_percentile(&all, q / 10.0));
	free(v);
}

static void test_hist_uniform(void **state) { check_dist(D_UNIFORM); }
static void test_hist_exponential(void **state) { check_dist(D_EXP); }
static void test_hist_bimodal_tail(void **state) { check_dist(D_BIMODAL); }
static void test_hist_constant(void **state) { check_dist(D_CONST); }
static void test_hist_tiny(void **state) { check_dist(D_TINY); }
static void test_hist_huge(void **state)
{
	check_dist(D_HUGE);
	print_message("worst relative error over all distributions: %.6f (bound %.6f)\n",
		      worst_rel, 1.0 / 128);
}

/* Every slot holds a contiguous range no wider than 1/128 of its lowest
 * value (width 1 below 256), and the slots tile 0..WEFT_HIST_TRACK_MAX. */
static void test_hist_slots(void **state)
{
	assert_int_equal(weft_hist_slot_lowest(0), 0);
	for (unsigned i = 0; i < WEFT_HIST_SLOTS; i++) {
		uint64_t lo = weft_hist_slot_lowest(i), hi = weft_hist_slot_highest(i);
		assert_true(lo <= hi);
		assert_int_equal(weft_hist_slot(lo), i);
		assert_int_equal(weft_hist_slot(hi), i);
		if (lo < 256)
			assert_int_equal(hi, lo);
		else
			assert_true((hi - lo + 1) * 128 <= lo);
		if (i + 1 < WEFT_HIST_SLOTS)
			assert_int_equal(hi + 1, weft_hist_slot_lowest(i + 1));
	}
	assert_int_equal(weft_hist_slot_highest(WEFT_HIST_SLOTS - 1), WEFT_HIST_TRACK_MAX);
	for (uint64_t v = 0; v < 70000; v++) {
		unsigned s = weft_hist_slot(v);
		assert_true(weft_hist_slot_lowest(s) <= v && v <= weft_hist_slot_highest(s));
	}
	for (int b = 0; b < 64; b++)
		for (int d = -1; d <= 1; d++) {
			uint64_t v = (UINT64_C(1) << b) + (uint64_t)(int64_t)d;
			unsigned s = weft_hist_slot(v);
			assert_true(s < WEFT_HIST_SLOTS);
			if (v <= WEFT_HIST_TRACK_MAX)
				assert_true(weft_hist_slot_lowest(s) <= v && v <= weft_hist_slot_highest(s));
			else
				assert_int_equal(s, WEFT_HIST_SLOTS - 1);
		}
	assert_int_equal(weft_hist_slot(UINT64_MAX), WEFT_HIST_SLOTS - 1);
	assert_true(sizeof(weft_hist) < 64 * 1024);
}

static void test_hist_empty(void **state)
{
	static weft_hist h, e;
	weft_hist_init(&h);
	assert_int_equal(weft_hist_count(&h), 0);
	assert_int_equal(weft_hist_min(&h), 0);
	assert_int_equal(weft_hist_max(&h), 0);
	assert_true(weft_hist_mean(&h) == 0.0);
	assert_true(weft_hist_stddev(&h) == 0.0);
	for (int p = 0; p <= 100; p += 10)
		assert_int_equal(weft_hist_percentile(&h, p), 0);
	/* merging an empty one changes nothing, into an empty one copies */
	weft_hist_init(&e);
	weft_hist_record(&h, 5000);
	weft_hist_merge(&h, &e);
	assert_int_equal(weft_hist_count(&h), 1);
	assert_int_equal(weft_hist_min(&h), 5000);
	weft_hist_merge(&e, &h);
	assert_int_equal(weft_hist_min(&e), 5000);
	assert_int_equal(weft_hist_max(&e), 5000);
	assert_int_equal(weft_hist_percentile(&e, 50), 5000);
	/* a zero-count record_n is no record */
	weft_hist_init(&e);
	weft_hist_record_n(&e, 77, 0);
	assert_int_equal(weft_hist_count(&e), 0);
	assert_int_equal(weft_hist_min(&e), 0);
	assert_int_equal(weft_hist_max(&e), 0);
}

/* Nearest rank on a small exact case, the decimal p values, clamping of p,
 * and one value: every percentile is that value. */
static void test_hist_ranks(void **state)
{
	static weft_hist h;
	weft_hist_init(&h);
	for (uint64_t v = 1; v <= 1000; v++)
		weft_hist_record(&h, v);
	assert_int_equal(weft_hist_percentile(&h, 0), 1);
	assert_int_equal(weft_hist_percentile(&h, 0.1), 1);
	assert_int_equal(weft_hist_percentile(&h, 0.2), 2);
	assert_int_equal(weft_hist_percentile(&h, 25), 250);
	assert_int_equal(weft_hist_percentile(&h, 99), 991); /* 990 lies in [988, 991] */
	assert_int_equal(weft_hist_percentile(&h, 99.9), 999);  /* not 1000: p's binary error */
	assert_int_equal(weft_hist_percentile(&h, 99.95), 1000); /* rank 999.5 -> 1000 */
	assert_int_equal(weft_hist_percentile(&h, 100), 1000);
	assert_int_equal(weft_hist_percentile(&h, 250), 1000);
	assert_int_equal(weft_hist_percentile(&h, -5), 1);
	assert_int_equal(weft_hist_percentile(&h, NAN), 1);
	assert_true(fabs(weft_hist_mean(&h) - 500.5) < 1e-9);
	assert_true(fabs(weft_hist_stddev(&h) - 288.6749) < 3); /* sqrt((n^2-1)/12), slotted */

	weft_hist_init(&h);
	weft_hist_record(&h, 1234567);
	for (int p = 0; p <= 100; p += 5)
		assert_int_equal(weft_hist_percentile(&h, p), 1234567); /* never above max */
	assert_true(weft_hist_stddev(&h) < 1234567 / 128.0);
}

/* record_n(v, n) is n records; values past the tracked range land in the
 * top slot with max, mean and p100 still exact. */
static void test_hist_record_n_and_clamp(void **state)
{
	static weft_hist a, b;
	weft_hist_init(&a);
	weft_hist_init(&b);
	const uint64_t vals[] = { 0, 1, 255, 256, 999, 123456, 5 * MS, UINT64_C(1) << 40 };
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		weft_hist_record_n(&a, vals[i], i + 1);
		for (size_t k = 0; k <= i; k++)
			weft_hist_record(&b, vals[i]);
	}
	assert_memory_equal(a.counts, b.counts, sizeof(a.counts));
	assert_int_equal(weft_hist_count(&a), weft_hist_count(&b));
	assert_int_equal(weft_hist_min(&a), 0);
	assert_int_equal(weft_hist_max(&a), UINT64_C(1) << 40);
	assert_true(fabs(weft_hist_mean(&a) - weft_hist_mean(&b)) <= weft_hist_mean(&b) * 1e-15);

	const uint64_t big = UINT64_C(1) << 50;
	weft_hist_init(&a);
	weft_hist_record(&a, 1000);
	weft_hist_record(&a, big);
	weft_hist_record(&a, UINT64_MAX);
	assert_int_equal(weft_hist_count(&a), 3);
	assert_int_equal(weft_hist_max(&a), UINT64_MAX);
	assert_int_equal(a.counts[WEFT_HIST_SLOTS - 1], 2);
	assert_int_equal(weft_hist_percentile(&a, 100), UINT64_MAX);
	assert_int_equal(weft_hist_percentile(&a, 30), 1003); /* 1000's slot is [1000, 1003] */
	long double m = ((long double)1000 + big + UINT64_MAX) / 3;
	assert_true(fabs(weft_hist_mean(&a) - (double)m) <= (double)m * 1e-15);
}

/* The mean stays exact once the sum passes 2^64 (clamped values are still
 * summed exactly): a sum kept in a 64-bit mantissa would lose each small
 * value added next to a huge one (2^64 + 1 rounds back to 2^64), and be
 * off by 2^16 of its 2^64 here. */
static void test_hist_mean_exact_past_64_bits(void **state)
{
	static weft_hist h, m;
	weft_hist_init(&h);
	weft_hist_record(&h, UINT64_MAX);
	const unsigned n = 1u << 16;
	for (unsigned i = 0; i < n; i++)
		weft_hist_record(&h, 1);
	long double exact = ((long double)UINT64_MAX + n) / (n + 1); /* rounded once */
	assert_true(fabs(weft_hist_mean(&h) - (double)exact) <= (double)exact * 1e-15);
	/* merged halves: the same sum */
	weft_hist_init(&m);
	weft_hist_record(&m, UINT64_MAX);
	weft_hist_record_n(&m, 1, n / 2);
	static weft_hist rest;
	weft_hist_init(&rest);
	weft_hist_record_n(&rest, 1, n / 2);
	assert_int_equal(weft_hist_merge(&m, &rest), 0);
	assert_true(weft_hist_mean(&m) == weft_hist_mean(&h));
	/* the largest sum there is: every count at UINT64_MAX */
	weft_hist_init(&m);
	weft_hist_record_n(&m, UINT64_MAX, UINT64_MAX);
	assert_true(weft_hist_mean(&m) == (double)UINT64_MAX);
}

/* HdrHistogram's correction: a 100 ms response with a 10 ms interval stands
 * for the 9 requests that would have waited behind it. */
static void test_hist_corrected(void **state)
{
	static weft_hist h;
	weft_hist_init(&h);
	weft_hist_record_corrected(&h, 100 * MS, 10 * MS);
	assert_int_equal(weft_hist_count(&h), 10);
	assert_int_equal(weft_hist_min(&h), 10 * MS);
	assert_int_equal(weft_hist_max(&h), 100 * MS);
	assert_true(fabs(weft_hist_mean(&h) - 55.0 * MS) < 1);
	weft_hist_record_corrected(&h, 5 * MS, 10 * MS); /* shorter than the interval: itself */
	weft_hist_record_corrected(&h, 7 * MS, 0);
	assert_int_equal(weft_hist_count(&h), 12);
	assert_int_equal(weft_hist_min(&h), 5 * MS);
}

/* ------------------------------------------------------------------ */
/* Options.                                                            */

/* Parse a NULL-terminated argument list (program name added). */
static int parse_v(struct load_opts *o, char *err, size_t errlen, const char *const *args)
{
	static char *argv[128];
	int argc = 0;
	argv[argc++] = "weft-load";
	for (; *args; args++) {
		assert_true(argc < 127);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	return load_opts_parse(argc, argv, o, err, errlen);
}

#define PARSE(o, err, ...)                                                                 \
	parse_v((o), (err), sizeof(err), (const char *const[]){ __VA_ARGS__, NULL })

static void ok_parse(struct load_opts *o, const char *const *args)
{
	char err[256] = "";
	int r = parse_v(o, err, sizeof(err), args);
	if (r != 0)
		fail_msg("'%s ...': %d %s", args[0], r, err);
}

#define OK(o, ...) ok_parse((o), (const char *const[]){ __VA_ARGS__, NULL })

/* The numeric fields, all at once. */
static void expect_nums(const struct load_opts *o, unsigned conns, double duration_s,
			uint64_t requests, unsigned loops, double rate, unsigned pipeline,
			size_t size, unsigned timeout_ms, double warmup_s)
{
	if (o->conns != conns || o->duration_s != duration_s || o->requests != requests ||
	    o->loops != loops || o->rate != rate || o->pipeline != pipeline || o->size != size ||
	    o->timeout_ms != timeout_ms || o->warmup_s != warmup_s)
		fail_msg("%s: got -c %u -d %g -n %llu --loops %u --rate %g --pipeline %u "
			 "--size %zu --timeout %u --warmup %g",
			 o->url, o->conns, o->duration_s, (unsigned long long)o->requests, o->loops,
			 o->rate, o->pipeline, o->size, o->timeout_ms, o->warmup_s);
}

static void test_opts_defaults(void **state)
{
	struct load_opts o, d;
	OK(&o, "http://localhost/");
	expect_nums(&o, 10, 10, 0, 0, 0, 1, 64, 2000, 0);
	assert_false(o.json);
	assert_int_equal(o.progress, -1);
	assert_false(o.latency);
	assert_int_equal(o.mode, LOAD_HTTP);
	assert_string_equal(o.host, "localhost");
	assert_int_equal(o.port, 80);
	assert_string_equal(o.path, "/");
	assert_string_equal(o.url, "http://localhost/");
	assert_int_equal(o.nheaders, 0);
	assert_false(o.duration_given);

	load_opts_defaults(&d);
	assert_int_equal(d.conns, o.conns);
	assert_int_equal(d.pipeline, o.pipeline);
	assert_int_equal(d.timeout_ms, o.timeout_ms);
	assert_int_equal(d.progress, -1);

	char err[64];
	assert_int_equal(PARSE(&o, err, "-h"), 1);
	assert_int_equal(PARSE(&o, err, "-c", "5", "--help", "http://h/"), 1);
	const char *u = load_usage();
	assert_non_null(strstr(u, "Usage: weft-load"));
	const char *names[] = { "-c", "-d", "-n", "--loops", "--rate", "--pipeline", "--size",
				"--timeout", "--warmup", "--json", "--progress", "--no-progress",
				"--latency", "-H", "--coalesce", "http://", "tcp://" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strstr(u, names[i]))
			fail_msg("usage does not mention %s", names[i]);
}

static void test_opts_every_option(void **state)
{
	struct load_opts o;
	OK(&o, "-c", "100", "-d", "30s", "-n", "10k", "--loops", "2", "--rate", "5000",
	   "--pipeline", "8", "--timeout", "500", "--warmup", "2s", "--json", "--progress",
	   "--latency", "-H", "Accept: */*", "-H", "X-Test:1", "http://127.0.0.1:8080/index.html");
	expect_nums(&o, 100, 30, 10000, 2, 5000, 8, 64, 500, 2);
	assert_true(o.duration_given);
	assert_true(o.json);
	assert_int_equal(o.progress, 1);
	assert_true(o.latency);
	assert_int_equal(o.nheaders, 2);
	assert_string_equal(o.headers[0], "Accept: */*");
	assert_string_equal(o.headers[1], "X-Test:1");
	assert_string_equal(o.host, "127.0.0.1");
	assert_int_equal(o.port, 8080);
	assert_string_equal(o.path, "/index.html");

	/* the long, '=' and attached spellings, wrk's -t/-R/-L, URL first */
	OK(&o, "tcp://127.0.0.1:9000", "--connections=7", "--duration=1m", "--requests=2M",
	   "--threads=3", "--rate=2.5k", "--pipeline=16", "--size=4k", "--timeout=2s",
	   "--warmup=500ms", "--no-progress");
	expect_nums(&o, 7, 60, 2000000, 3, 2500, 16, 4096, 2000, 0.5);
	assert_int_equal(o.progress, 0);
	assert_false(o.json);
	assert_int_equal(o.mode, LOAD_TCP);

	OK(&o, "-t2", "-c400", "-d5s", "-R", "100k", "-L", "-HHost: example", "--header",
	   "A: b", "--conns", "3", "http://h/");
	assert_int_equal(o.loops, 2);
	assert_int_equal(o.conns, 3); /* the last one wins */
	assert_true(o.duration_s == 5);
	assert_true(o.rate == 100000);
	assert_true(o.latency);
	assert_int_equal(o.nheaders, 2);
	assert_string_equal(o.headers[0], "Host: example");
	assert_string_equal(o.headers[1], "A: b");

	/* "--" ends the options */
	OK(&o, "-c", "2", "--", "http://h/");
	assert_int_equal(o.conns, 2);

	/* -n alone runs to the count (bounded by the 24 h cap); with -d both hold */
	OK(&o, "-n", "500", "http://h/");
	assert_false(o.duration_given);
	assert_true(o.duration_s == LOAD_MAX_DURATION_S);
	OK(&o, "-n", "500", "-d", "3", "http://h/");
	assert_true(o.duration_s == 3);
	assert_int_equal(o.requests, 500);

	/* limits, inclusive */
	OK(&o, "-c", "1M", "--loops", "1024", "--pipeline", "1024", "-d", "24h", "--warmup",
	   "0", "--timeout", "1", "-c", "1000000", "tcp://h:1");
	assert_int_equal(o.conns, 1000000);
	assert_int_equal(o.loops, 1024);
	assert_true(o.duration_s == 86400);
	OK(&o, "--size", "16M", "--loops", "0", "tcp://h:65535");
	assert_int_equal(o.size, 16u << 20);
	assert_int_equal(o.port, 65535);
	assert_int_equal(o.loops, 0);
	OK(&o, "--size", "1", "tcp://h:1");
	assert_int_equal(o.size, 1);

	/* --coalesce: microseconds bare, any duration unit, 1 s at most */
	assert_int_equal(o.coalesce_us, 0);
	OK(&o, "--coalesce", "50us", "http://h/");
	assert_int_equal(o.coalesce_us, 50);
	OK(&o, "--coalesce=75", "http://h/");
	assert_int_equal(o.coalesce_us, 75);
	OK(&o, "--coalesce", "1s", "http://h/");
	assert_int_equal(o.coalesce_us, 1000000);
	OK(&o, "--coalesce", "0", "http://h/");
	assert_int_equal(o.coalesce_us, 0);
}

static void test_opts_suffixes(void **state)
{
	static const struct {
		const char *arg;
		double s;
	} durs[] = {
		{ "10", 10 },    { "10s", 10 },   { "500ms", 0.5 }, { "2m", 120 },
		{ "1h", 3600 },  { "1.5s", 1.5 }, { "250us", 250e-6 }, { "0.25", 0.25 },
		{ "3min", 180 }, { ".5", 0.5 },   { "1.5h", 5400 },
	};
	struct load_opts o;
	for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
		OK(&o, "-d", durs[i].arg, "--warmup", durs[i].arg, "http://h/");
		if (fabs(o.duration_s - durs[i].s) > 1e-12 || fabs(o.warmup_s - durs[i].s) > 1e-12)
			fail_msg("-d %s: %g s, expected %g", durs[i].arg, o.duration_s, durs[i].s);
	}
	static const struct {
		const char *arg;
		uint64_t n;
	} counts[] = {
		{ "1", 1 },       { "123", 123 },        { "10k", 10000 }, { "10K", 10000 },
		{ "2M", 2000000 }, { "2m", 2000000 },    { "1.5k", 1500 }, { "1G", 1000000000 },
		{ "0", 0 },       { "18446744073709551615", UINT64_MAX },
	};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		OK(&o, "-n", counts[i].arg, "http://h/");
		if (o.requests != counts[i].n)
			fail_msg("-n %s: %llu", counts[i].arg, (unsigned long long)o.requests);
	}
	OK(&o, "-c", "10k", "http://h/");
	assert_int_equal(o.conns, 10000);
	OK(&o, "--rate", "0.5", "http://h/");
	assert_true(o.rate == 0.5);
	OK(&o, "--rate", "1.25M", "http://h/");
	assert_true(o.rate == 1250000);
	static const struct {
		const char *arg;
		unsigned ms;
	} touts[] = {
		{ "1", 1 }, { "2000", 2000 }, { "2s", 2000 }, { "1.5s", 1500 }, { "750ms", 750 },
		{ "1m", 60000 }, { "1h", 3600000 },
	};
	for (size_t i = 0; i < sizeof(touts) / sizeof(touts[0]); i++) {
		OK(&o, "--timeout", touts[i].arg, "http://h/");
		if (o.timeout_ms != touts[i].ms)
			fail_msg("--timeout %s: %u ms", touts[i].arg, o.timeout_ms);
	}
	static const struct {
		const char *arg;
		size_t b;
	} sizes[] = { { "64", 64 }, { "1k", 1024 }, { "4K", 4096 }, { "1M", 1 << 20 }, { "0.5k", 512 } };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		OK(&o, "--size", sizes[i].arg, "tcp://h:7");
		if (o.size != sizes[i].b)
			fail_msg("--size %s: %zu", sizes[i].arg, o.size);
	}
}

static void test_opts_urls(void **state)
{
	static const struct {
		const char *url;
		enum load_mode mode;
		const char *host;
		unsigned port;
		const char *path;
	} urls[] = {
		{ "http://h/", LOAD_HTTP, "h", 80, "/" },
		{ "http://h", LOAD_HTTP, "h", 80, "/" },
		{ "http://h:8080/x?y=1", LOAD_HTTP, "h", 8080, "/x?y=1" },
		{ "http://h?y=1", LOAD_HTTP, "h", 80, "/?y=1" },
		{ "http://h/a/b#frag", LOAD_HTTP, "h", 80, "/a/b" },
		{ "http://[::1]:80/", LOAD_HTTP, "::1", 80, "/" },
		{ "http://[::1]/", LOAD_HTTP, "::1", 80, "/" },
		{ "http://[fe80::1:2]:9000", LOAD_HTTP, "fe80::1:2", 9000, "/" },
		{ "HTTP://Example.COM:1/%20x", LOAD_HTTP, "Example.COM", 1, "/%20x" },
		{ "http://my-host.local_1:65535/", LOAD_HTTP, "my-host.local_1", 65535, "/" },
		{ "tcp://127.0.0.1:9000", LOAD_TCP, "127.0.0.1", 9000, "" },
		{ "tcp://127.0.0.1:9000/", LOAD_TCP, "127.0.0.1", 9000, "" },
		{ "tcp://[::1]:7", LOAD_TCP, "::1", 7, "" },
		{ "tcp://localhost:5", LOAD_TCP, "localhost", 5, "" },
	};
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		struct load_opts o;
		OK(&o, urls[i].url);
		if (o.mode != urls[i].mode || strcmp(o.host, urls[i].host) != 0 ||
		    o.port != urls[i].port || strcmp(o.path, urls[i].path) != 0 ||
		    strcmp(o.url, urls[i].url) != 0)
			fail_msg("%s: mode %d host '%s' port %u path '%s'", urls[i].url, o.mode,
				 o.host, o.port, o.path);
	}
}

/* Nonsense: each must give -EINVAL and a message containing `want`. */
static void test_opts_bad(void **state)
{
	static char longurl[3000], longhost[300], longpath[2100];
	memset(longurl, 0, sizeof(longurl));
	strcpy(longurl, "http://h/");
	memset(longurl + 9, 'a', 2400);
	strcpy(longhost, "http://");
	memset(longhost + 7, 'a', 260);
	strcpy(longpath, "http://h/");
	memset(longpath + 9, 'p', 2060);
	char *many[72];
	for (int i = 0; i < 33; i++) {
		many[2 * i] = "-H";
		many[2 * i + 1] = "A: b";
	}

	static const struct {
		const char *args[6];
		const char *want;
	} bad[] = {
		{ { NULL }, "missing URL" },
		{ { "-c", "10" }, "missing URL" },
		{ { "http://a/", "http://b/" }, "one URL" },
		{ { "https://h/" }, "unsupported scheme 'https'" },
		{ { "ftp://h/" }, "unsupported scheme 'ftp'" },
		{ { "localhost:8080" }, "no scheme" },
		{ { "http://" }, "no host" },
		{ { "http:///x" }, "no host" },
		{ { "http://:80/" }, "no host" },
		{ { "http://h:0/" }, "port '0'" },
		{ { "http://h:65536/" }, "port '65536'" },
		{ { "http://h:99999999/" }, "port" },
		{ { "http://h:/" }, "port ''" },
		{ { "http://h:8x/" }, "port '8x'" },
		{ { "http://h:-1/" }, "port" },
		{ { "http://u:p@h/" }, "user info" },
		{ { "http://h h/" }, "host" },
		{ { "http://[::1/" }, "']'" },
		{ { "http://[::1]x/" }, "after ']'" },
		{ { "http://[1.2.3.4]/" }, "not an IPv6" },
		{ { "http://[zz::1]/" }, "host" },
		{ { "http://h/a b" }, "path" },
		{ { "tcp://h" }, "needs a port" },
		{ { "tcp://h:9000/x" }, "takes no path" },
		{ { "tcp://h:9000?x" }, "takes no path" },
		{ { "-c", "0", "http://h/" }, "-c: expected a positive integer, got '0'" },
		{ { "-c", "x", "http://h/" }, "-c: expected a positive integer, got 'x'" },
		{ { "-c", "-5", "http://h/" }, "-c: expected a positive integer" },
		{ { "-c", "10x", "http://h/" }, "got '10x'" },
		{ { "-c", "1.5", "http://h/" }, "got '1.5'" },
		{ { "-c", "1000001", "http://h/" }, "at most 1000000" },
		{ { "-c", "99999999999999999999999", "http://h/" }, "-c" },
		{ { "-c", "", "http://h/" }, "-c: expected" },
		{ { "--connections=", "http://h/" }, "--connections: expected" },
		{ { "-d", "0", "http://h/" }, "-d must be > 0" },
		{ { "-d", "0s", "http://h/" }, "-d must be > 0" },
		{ { "-d", "-1", "http://h/" }, "-d: expected a duration" },
		{ { "-d", "10x", "http://h/" }, "got '10x'" },
		{ { "-d", "1e3", "http://h/" }, "got '1e3'" },
		{ { "-d", "inf", "http://h/" }, "got 'inf'" },
		{ { "-d", "nan", "http://h/" }, "got 'nan'" },
		{ { "-d", "5.", "http://h/" }, "got '5.'" },
		{ { "-d", "25h", "http://h/" }, "at most 24h" },
		{ { "-d", "s", "http://h/" }, "-d: expected" },
		{ { "--warmup", "-1s", "http://h/" }, "--warmup: expected" },
		{ { "--warmup", "2d", "http://h/" }, "--warmup: expected" },
		{ { "--warmup", "100h", "http://h/" }, "--warmup: at most 24h" },
		{ { "-n", "ten", "http://h/" }, "-n: expected" },
		{ { "-n", "1.5", "http://h/" }, "got '1.5'" },
		{ { "-n", "20000000000000000000", "http://h/" }, "-n" },
		{ { "-n", "10kb", "http://h/" }, "got '10kb'" },
		{ { "--loops", "1025", "http://h/" }, "at most 1024" },
		{ { "--coalesce", "2s", "http://h/" }, "--coalesce: expected a duration up to 1s" },
		{ { "--coalesce", "-5", "http://h/" }, "--coalesce: expected" },
		{ { "--coalesce", "5x", "http://h/" }, "--coalesce: expected" },
		{ { "--loops", "-1", "http://h/" }, "--loops: expected" },
		{ { "--loops", "2k", "http://h/" }, "--loops: expected" },
		{ { "-t", "x", "http://h/" }, "-t: expected" },
		{ { "--rate", "0", "http://h/" }, "--rate must be > 0" },
		{ { "--rate", "-100", "http://h/" }, "--rate: expected" },
		{ { "--rate", "fast", "http://h/" }, "--rate: expected" },
		{ { "--rate", "2G", "http://h/" }, "--rate: at most" },
		{ { "-R", "0.0", "http://h/" }, "-R must be > 0" },
		{ { "--pipeline", "0", "http://h/" }, "--pipeline: expected a positive integer" },
		{ { "--pipeline", "1025", "http://h/" }, "at most 1024" },
		{ { "--size", "0", "tcp://h:1" }, "--size: expected" },
		{ { "--size", "17M", "tcp://h:1" }, "at most 16M" },
		{ { "--size", "64", "http://h/" }, "--size applies to tcp://" },
		{ { "--timeout", "0", "http://h/" }, "--timeout must be at least 1ms" },
		{ { "--timeout", "0.1ms", "http://h/" }, "at least 1ms" },
		{ { "--timeout", "2h", "http://h/" }, "--timeout: at most 1h" },
		{ { "--timeout", "soon", "http://h/" }, "--timeout: expected" },
		{ { "-H", "NoColon", "http://h/" }, "-H: expected \"Name: value\"" },
		{ { "-H", ": v", "http://h/" }, "-H: expected" },
		{ { "-H", "Bad Name: v", "http://h/" }, "-H: expected" },
		{ { "-H", "A: b\r\nC: d", "http://h/" }, "-H: expected" },
		{ { "-H", "A: b", "tcp://h:1" }, "http:// URLs only" },
		{ { "--bogus", "http://h/" }, "unknown option '--bogus'" },
		{ { "-x", "http://h/" }, "unknown option '-x'" },
		{ { "-s", "script.lua", "http://h/" }, "unknown option '-s'" },
		{ { "-Lx", "http://h/" }, "unknown option '-Lx'" },
		{ { "--json=yes", "http://h/" }, "--json takes no value" },
		{ { "http://h/", "-c" }, "-c needs a value" },
		{ { "http://h/", "--rate" }, "--rate needs a value" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct load_opts o;
		char err[256] = "";
		int r = parse_v(&o, err, sizeof(err), bad[i].args);
		if (r != -EINVAL || !strstr(err, bad[i].want) || strchr(err, '\n'))
			fail_msg("case %zu ('%s'): %d '%s', expected -EINVAL naming '%s'", i,
				 bad[i].args[0] ? bad[i].args[0] : "", r, err, bad[i].want);
	}

	struct load_opts o;
	char err[256];
	assert_int_equal(PARSE(&o, err, longurl), -EINVAL);
	assert_non_null(strstr(err, "URL too long"));
	assert_int_equal(PARSE(&o, err, longhost), -EINVAL);
	assert_non_null(strstr(err, "host name too long"));
	assert_int_equal(PARSE(&o, err, longpath), -EINVAL);
	assert_non_null(strstr(err, "path too long"));
	many[66] = "http://h/";
	many[67] = NULL;
	assert_int_equal(parse_v(&o, err, sizeof(err), (const char *const *)many), -EINVAL);
	assert_non_null(strstr(err, "at most 32 headers"));
	many[62] = "http://h/"; /* 31 headers are fine... */
	many[63] = NULL;
	assert_int_equal(parse_v(&o, err, sizeof(err), (const char *const *)many), 0);
	assert_int_equal(o.nheaders, 31);

	/* a short or missing error buffer is never overrun */
	char tiny[8];
	memset(tiny, 'z', sizeof(tiny));
	assert_int_equal(PARSE(&o, tiny, "https://h/"), -EINVAL);
	assert_int_equal(strlen(tiny), 7);
	assert_int_equal(load_opts_parse(1, (char *[]){ "weft-load", NULL }, &o, NULL, 0),
			 -EINVAL);
}

static const struct CMUnitTest tests[] = {
	cmocka_unit_test(test_hist_slots),
	cmocka_unit_test(test_hist_empty),
	cmocka_unit_test(test_hist_ranks),
	cmocka_unit_test(test_hist_record_n_and_clamp),
	cmocka_unit_test(test_hist_corrected),
	cmocka_unit_test(test_hist_mean_exact_past_64_bits),
	cmocka_unit_test(test_hist_uniform),
	cmocka_unit_test(test_hist_exponential),
	cmocka_unit_test(test_hist_bimodal_tail),
	cmocka_unit_test(test_hist_constant),
	cmocka_unit_test(test_hist_tiny),
	cmocka_unit_test(test_hist_huge),
	cmocka_unit_test(test_opts_defaults),
	cmocka_unit_test(test_opts_every_option),
	cmocka_unit_test(test_opts_suffixes),
	cmocka_unit_test(test_opts_urls),
	cmocka_unit_test(test_opts_bad),
};

WEFT_TEST_MAIN(tests)
