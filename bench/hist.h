/*
 * hist.h: an HdrHistogram-style latency histogram for weft-load.
 *
 * Log-linear buckets with bounded relative error, header-only, no
 * allocation: a `hist` is a fixed-size struct (about 35 KiB) that each loop
 * owns and records into without locks; the loops' histograms are merged
 * with hist_merge() at the end.
 *
 * Layout (HdrHistogram's, with 256 sub-buckets of which the upper 128 are
 * used past the first bucket):
 *   - values 0..255 have one slot each: exact;
 *   - bucket b >= 1 covers [2^(b+7), 2^(b+8)) in 128 slots of width 2^b,
 *     so a slot's width is at most 1/128 of the smallest value in it.
 * The slot of v is (b << 7) + (v >> b) with b = 56 - clz(v | 255): one clz,
 * one shift, one add, no branch (recording is per request).
 *
 * Values are nanoseconds, tracked exactly-up-to-bucket to HIST_TRACK_MAX
 * (2^41 - 1, about 36 minutes, which covers 0..2^40 with full resolution).
 * Larger values are counted in the top slot; min, max and the sum (mean)
 * stay exact for them.
 *
 * Percentiles use the nearest rank: the value at rank ceil(p/100 * count),
 * reported as the highest value equivalent to its slot (as HdrHistogram
 * does), never above the exact max.  So a reported percentile is >= the
 * true one and above it by less than 1/128 of it (exact below 256).
 *
 * Threading: none.  One writer per hist; merge after the writers stopped.
 */
#ifndef WEFT_BENCH_HIST_H
#define WEFT_BENCH_HIST_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define HIST_SUB_BITS 7 /* 128 sub-buckets per power of two: relative error <= 1/128 */
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS)
/* Highest value with its own slot; larger values share the top slot. */
#define HIST_TRACK_BITS 41
#define HIST_TRACK_MAX ((UINT64_C(1) << HIST_TRACK_BITS) - 1)
/* Buckets 0 .. HIST_TRACK_BITS - HIST_SUB_BITS - 1, then 128 slots above. */
#define HIST_SLOTS (((HIST_TRACK_BITS - HIST_SUB_BITS) << HIST_SUB_BITS) + HIST_SUB_COUNT)

typedef struct hist {
	uint64_t counts[HIST_SLOTS];
	uint64_t total, min, max; /* min is UINT64_MAX while empty */
	long double sum;          /* of the exact recorded values, for the mean */
} hist;

_Static_assert(sizeof(hist) < 64 * 1024, "a hist per loop must stay small");

static inline void hist_init(hist *h)
{
	memset(h->counts, 0, sizeof(h->counts));
	h->total = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->sum = 0;
}

/* The slot that counts v. */
static inline unsigned hist_slot(uint64_t v)
{
	if (v > HIST_TRACK_MAX)
		v = HIST_TRACK_MAX;
	unsigned b = (unsigned)(63 - HIST_SUB_BITS) - (unsigned)__builtin_clzll(v | 0xff);
	return (b << HIST_SUB_BITS) + (unsigned)(v >> b);
}

/* The lowest and the highest value counted in slot i (i < HIST_SLOTS). */
static inline uint64_t hist_slot_lowest(unsigned i)
{
	if (i < 2 * HIST_SUB_COUNT)
		return i;
	unsigned b = (i >> HIST_SUB_BITS) - 1;
	return (uint64_t)(i - (b << HIST_SUB_BITS)) << b;
}

static inline uint64_t hist_slot_highest(unsigned i)
{
	if (i < 2 * HIST_SUB_COUNT)
		return i;
	unsigned b = (i >> HIST_SUB_BITS) - 1;
	return hist_slot_lowest(i) + (UINT64_C(1) << b) - 1;
}

/* The highest value that lands in the same slot as v (v itself below 256). */
static inline uint64_t hist_highest_equivalent(uint64_t v)
{
	return hist_slot_highest(hist_slot(v));
}

static inline void hist_record_n(hist *h, uint64_t v, uint64_t n)
{
	h->counts[hist_slot(v)] += n;
	h->total += n;
	h->sum += (long double)v * (long double)n;
	if (n) {
		if (v < h->min)
			h->min = v;
		if (v > h->max)
			h->max = v;
	}
}

static inline void hist_record(hist *h, uint64_t v)
{
	h->counts[hist_slot(v)]++;
	h->total++;
	h->sum += (long double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/*
 * HdrHistogram's recordCorrectedValue, for closed-loop runs: record v, and
 * if v exceeds the expected interval between requests, also the latencies
 * the requests that should have been sent during the stall would have seen
 * (v - interval, v - 2*interval, ... down to interval).  interval 0 records
 * v alone.  Open-loop runs measure from the intended send time instead and
 * need no correction.
 */
static inline void hist_record_corrected(hist *h, uint64_t v, uint64_t interval)
{
	hist_record(h, v);
	if (interval == 0)
		return;
	for (uint64_t missing = v > interval ? v - interval : 0; missing >= interval;
	     missing -= interval)
		hist_record(h, missing);
}

static inline void hist_merge(hist *dst, const hist *src)
{
	for (unsigned i = 0; i < HIST_SLOTS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

static inline uint64_t hist_count(const hist *h)
{
	return h->total;
}

static inline uint64_t hist_min(const hist *h)
{
	return h->total ? h->min : 0;
}

static inline uint64_t hist_max(const hist *h)
{
	return h->max;
}

static inline double hist_mean(const hist *h)
{
	return h->total ? (double)(h->sum / (long double)h->total) : 0.0;
}

/*
 * The nearest rank of percentile p among count values: ceil(p/100 * count),
 * at least 1.  A relative 1e-15 absorbs the binary error of p, so that 99.9
 * (not exact in binary) of 1000 values is rank 999, not 1000; exact for
 * counts below 10^14.
 */
static inline uint64_t hist_rank(double p, uint64_t count)
{
	if (!(p > 0)) /* also NaN */
		return count ? 1 : 0;
	if (p >= 100)
		return count;
	long double x = (long double)p / 100.0L * (long double)count;
	long double r = ceill(x * (1.0L - 1e-15L));
	if (r < 1)
		r = 1;
	if (r > (long double)count)
		r = (long double)count;
	return (uint64_t)r;
}

/* p in [0, 100] (outside clamps); 0 when empty.  p = 0 gives the exact min,
 * p = 100 the exact max. */
static inline uint64_t hist_percentile(const hist *h, double p)
{
	if (h->total == 0)
		return 0;
	uint64_t rank = hist_rank(p, h->total);
	if (rank <= 1 && !(p > 0))
		return h->min;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_SLOTS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = hist_slot_highest(i);
			if (i == HIST_SLOTS - 1 || v > h->max)
				v = h->max; /* the top slot also holds the clamped values */
			return v;
		}
	}
	return h->max; /* counts out of step with total: never from this API */
}

/* Standard deviation, from the slots' midpoints around the exact mean (as
 * HdrHistogram computes it): within the histogram's relative error. */
static inline double hist_stddev(const hist *h)
{
	if (h->total == 0)
		return 0.0;
	long double mean = h->sum / (long double)h->total, acc = 0;
	for (unsigned i = 0; i < HIST_SLOTS; i++) {
		if (!h->counts[i])
			continue;
		long double mid = ((long double)hist_slot_lowest(i) + (long double)hist_slot_highest(i)) / 2;
		if (i == HIST_SLOTS - 1 && h->max > HIST_TRACK_MAX)
			mid = (long double)h->max;
		long double d = mid - mean;
		acc += d * d * (long double)h->counts[i];
	}
	return (double)sqrtl(acc / (long double)h->total);
}

#endif
