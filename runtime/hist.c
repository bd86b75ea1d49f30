/*
 * The latency histogram of weft/load.h: HdrHistogram's layout with 256
 * sub-buckets (2 significant digits).  The slot of v is (b << 7) + (v >> b)
 * with b = 56 - clz(v | 255): one clz, one shift, one add, no branch, as
 * recording is per request.  The sum (for the exact mean) is a 128-bit
 * integer in two words: an add and an add-with-carry per record, where a
 * long double sum cost x87 loads, converts and stores (about 1% of a load
 * client's CPU), and it is exact where a 64-bit mantissa was not.
 */
#include "weft.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define SUB_COUNT (1u << WEFT_HIST_SUB_BITS)

void weft_hist_init(weft_hist *h)
{
	if (!h)
		return;
	memset(h->counts, 0, sizeof(h->counts));
	h->total = 0;
	h->min = UINT64_MAX;
	h->max = 0;
	h->clamped = 0;
	h->sum_lo = h->sum_hi = 0;
}

typedef unsigned __int128 u128;

static inline void sum_add(weft_hist *h, u128 x)
{
	u128 s = ((u128)h->sum_hi << 64 | h->sum_lo) + x;
	h->sum_lo = (uint64_t)s;
	h->sum_hi = (uint64_t)(s >> 64);
}

static inline long double sum_of(const weft_hist *h)
{
	return (long double)h->sum_hi * 0x1p64L + (long double)h->sum_lo;
}

static inline unsigned slot_of(uint64_t v)
{
	if (v > WEFT_HIST_TRACK_MAX)
		v = WEFT_HIST_TRACK_MAX;
	unsigned b = (unsigned)(63 - WEFT_HIST_SUB_BITS) - (unsigned)__builtin_clzll(v | 0xff);
	return (b << WEFT_HIST_SUB_BITS) + (unsigned)(v >> b);
}

unsigned weft_hist_slot(uint64_t v)
{
	return slot_of(v);
}

uint64_t weft_hist_slot_lowest(unsigned i)
{
	if (i >= WEFT_HIST_SLOTS)
		i = WEFT_HIST_SLOTS - 1;
	if (i < 2 * SUB_COUNT)
		return i;
	unsigned b = (i >> WEFT_HIST_SUB_BITS) - 1;
	return (uint64_t)(i - (b << WEFT_HIST_SUB_BITS)) << b;
}

uint64_t weft_hist_slot_highest(unsigned i)
{
	/* the next slot's lowest, less one; the top slot's width is its bucket's */
	if (i < 2 * SUB_COUNT)
		return i;
	if (i >= WEFT_HIST_SLOTS - 1)
		return WEFT_HIST_TRACK_MAX;
	return weft_hist_slot_lowest(i + 1) - 1;
}

/* Inlined into both entry points: with n = 1 the product folds away. */
static inline int record(weft_hist *h, uint64_t v, uint64_t n)
{
	if (!h)
		return -EINVAL;
	if (!n)
		return 0;
	if (h->total > UINT64_MAX - n)
		return -EOVERFLOW; /* a slot's count is at most the total: none wraps */
	h->counts[slot_of(v)] += n;
	h->total += n;
	sum_add(h, (u128)v * n);
	h->clamped += v > WEFT_HIST_TRACK_MAX ? n : 0;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	return 0;
}

int weft_hist_record_n(weft_hist *h, uint64_t v, uint64_t n)
{
	return record(h, v, n);
}

int weft_hist_record(weft_hist *h, uint64_t v)
{
	return record(h, v, 1);
}

int weft_hist_record_corrected(weft_hist *h, uint64_t v, uint64_t interval)
{
	if (!h)
		return -EINVAL;
	/* How many values in all, checked up front so a failure records none. */
	uint64_t extra = interval && v > interval ? v / interval - 1 : 0;
	if (h->total == UINT64_MAX || extra > UINT64_MAX - h->total - 1)
		return -EOVERFLOW;
	weft_hist_record(h, v);
	for (uint64_t missing = v - (extra ? interval : 0); extra; extra--, missing -= interval)
		weft_hist_record(h, missing);
	return 0;
}

int weft_hist_merge(weft_hist *dst, const weft_hist *src)
{
	if (!dst || !src)
		return -EINVAL;
	if (dst->total > UINT64_MAX - src->total)
		return -EOVERFLOW;
	uint64_t stotal = src->total; /* dst == src: read before writing */
	for (unsigned i = 0; i < WEFT_HIST_SLOTS; i++)
		dst->counts[i] += src->counts[i];
	dst->total += stotal;
	sum_add(dst, (u128)src->sum_hi << 64 | src->sum_lo); /* dst == src: one read */
	dst->clamped += src->clamped;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	return 0;
}

uint64_t weft_hist_count(const weft_hist *h)
{
	return h ? h->total : 0;
}

uint64_t weft_hist_min(const weft_hist *h)
{
	return h && h->total ? h->min : 0;
}

uint64_t weft_hist_max(const weft_hist *h)
{
	return h && h->total ? h->max : 0;
}

double weft_hist_mean(const weft_hist *h)
{
	return h && h->total ? (double)(sum_of(h) / (long double)h->total) : 0.0;
}

/*
 * The nearest rank of percentile p among count values: ceil(p/100 *
 * count), at least 1.  A relative 1e-15 absorbs the binary error of p, so
 * that 99.9 (not exact in binary) of 1000 values is rank 999, not 1000;
 * exact for counts below 10^14.
 */
static uint64_t rank_of(double p, uint64_t count)
{
	if (!(p > 0)) /* also NaN */
		return 1;
	if (p >= 100)
		return count;
	long double r = ceill((long double)p / 100.0L * (long double)count * (1.0L - 1e-15L));
	if (r < 1)
		r = 1;
	if (r > (long double)count)
		r = (long double)count;
	return (uint64_t)r;
}

uint64_t weft_hist_percentile(const weft_hist *h, double p)
{
	if (!h || h->total == 0)
		return 0;
	if (!(p > 0))
		return h->min;
	uint64_t rank = rank_of(p, h->total), seen = 0;
	for (unsigned i = 0; i < WEFT_HIST_SLOTS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t v = weft_hist_slot_highest(i);
			/* the top slot also holds the clamped values */
			return i == WEFT_HIST_SLOTS - 1 || v > h->max ? h->max : v;
		}
	}
	return h->max; /* counts out of step with total: never from this API */
}

double weft_hist_stddev(const weft_hist *h)
{
	if (!h || h->total == 0)
		return 0.0;
	long double mean = sum_of(h) / (long double)h->total, acc = 0;
	for (unsigned i = 0; i < WEFT_HIST_SLOTS; i++) {
		if (!h->counts[i])
			continue;
		long double mid = ((long double)weft_hist_slot_lowest(i) +
				   (long double)weft_hist_slot_highest(i)) / 2;
		if (i == WEFT_HIST_SLOTS - 1 && h->max > WEFT_HIST_TRACK_MAX)
			mid = (long double)h->max;
		long double d = mid - mean;
		acc += d * d * (long double)h->counts[i];
	}
	return (double)sqrtl(acc / (long double)h->total);
}

bool weft_hist_next(const weft_hist *h, unsigned *slot, uint64_t *value, uint64_t *count)
{
	if (!h || !slot)
		return false;
	for (unsigned i = *slot; i < WEFT_HIST_SLOTS; i++) {
		if (!h->counts[i])
			continue;
		uint64_t v = weft_hist_slot_highest(i);
		if (value)
			*value = i == WEFT_HIST_SLOTS - 1 || v > h->max ? h->max : v;
		if (count)
			*count = h->counts[i];
		*slot = i + 1;
		return true;
	}
	*slot = WEFT_HIST_SLOTS;
	return false;
}

ssize_t weft_hist_json(const weft_hist *h, double unit, char *buf, size_t cap)
{
	if (!h || !(unit > 0) || isinf(unit) || (!buf && cap))
		return -EINVAL;
	int n = snprintf(buf, cap,
			 "{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
			 "\"p999\":%.3f,\"max\":%.3f,\"p9999\":%.3f,\"stddev\":%.3f,\"count\":%llu}",
			 (double)weft_hist_min(h) / unit, weft_hist_mean(h) / unit,
			 (double)weft_hist_percentile(h, 50) / unit,
			 (double)weft_hist_percentile(h, 90) / unit,
			 (double)weft_hist_percentile(h, 99) / unit,
			 (double)weft_hist_percentile(h, 99.9) / unit,
			 (double)weft_hist_max(h) / unit,
			 (double)weft_hist_percentile(h, 99.99) / unit, weft_hist_stddev(h) / unit,
			 (unsigned long long)h->total);
	return n < 0 ? -EINVAL : n;
}
