/*
 * The open loop's schedule (weft/load.h).  Slots are intended send times;
 * the lag of a send behind its slot is accounted, and slots too far behind
 * are dropped rather than sent in a burst that would measure the client.
 */
#include "weft.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* The lag sum stays at UINT64_MAX rather than wrap (584 years of lag). */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	uint64_t s;
	return __builtin_add_overflow(a, b, &s) ? UINT64_MAX : s;
}

/* splitmix64: a small, seedable generator for the Poisson gaps. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t next_gap(weft_pacer *p)
{
	if (p->mode != WEFT_PACER_POISSON)
		return p->gap_ns;
	/* uniform in (0, 1], then an exponential gap of mean gap_ns */
	double u = ((double)(rng_next(&p->rng) >> 11) + 1) / 9007199254740992.0;
	double g = -log(u) * (double)p->gap_ns;
	return g < 1 ? 1 : g > 1e18 ? (uint64_t)1e18 : (uint64_t)g;
}

int weft_pacer_init(weft_pacer *p, double rate, uint64_t start_ns, int mode, uint64_t seed)
{
	if (!p || !(rate > 0) || rate > 1e9 || isinf(rate) ||
	    (mode != WEFT_PACER_CONSTANT && mode != WEFT_PACER_POISSON))
		return -EINVAL;
	memset(p, 0, sizeof(*p));
	/* Below about 5.4e-11/s the gap passes 2^64 ns: converting it would
	 * be undefined (x86 gives 1 ns), so it saturates: never again. */
	double gap = 1e9 / rate + 0.5;
	p->gap_ns = gap >= 0x1p64 ? UINT64_MAX : (uint64_t)gap;
	if (!p->gap_ns)
		p->gap_ns = 1;
	p->mode = mode;
	p->rng = seed;
	p->late_ns = 1000000;
	p->max_lag_ns = WEFT_FOREVER;
	p->next_ns = start_ns;
	return 0;
}

int weft_pacer_set_limits(weft_pacer *p, uint64_t late_ns, uint64_t max_lag_ns)
{
	if (!p)
		return -EINVAL;
	p->late_ns = late_ns;
	p->max_lag_ns = max_lag_ns;
	return 0;
}

bool weft_pacer_take(weft_pacer *p, uint64_t now_ns, uint64_t *intended_ns)
{
	if (!p || p->next_ns > now_ns)
		return false;
	/* Skip whole runs of slots past the drop limit at once: after a long
	 * stall at a high rate they may be millions. */
	if (p->max_lag_ns != WEFT_FOREVER && now_ns - p->next_ns > p->max_lag_ns) {
		uint64_t oldest = now_ns - p->max_lag_ns; /* slots before it drop */
		if (p->mode == WEFT_PACER_CONSTANT) {
			uint64_t d = oldest - p->next_ns; /* k = ceil(d / gap), no wrap */
			uint64_t k = d / p->gap_ns + (d % p->gap_ns != 0);
			unsigned __int128 next = p->next_ns + (unsigned __int128)k * p->gap_ns;
			p->dropped += k;
			p->next_ns = next > UINT64_MAX ? UINT64_MAX : (uint64_t)next;
		} else {
			while (p->next_ns < oldest) {
				p->dropped++;
				p->next_ns = add_sat(p->next_ns, next_gap(p));
			}
		}
		if (p->next_ns > now_ns)
			return false;
	}
	uint64_t lag = now_ns - p->next_ns;
	if (intended_ns)
		*intended_ns = p->next_ns;
	p->next_ns = add_sat(p->next_ns, next_gap(p)); /* a wrap would be due at once */
	p->sent++;
	p->late += lag > p->late_ns;
	if (lag > p->lag_max_ns)
		p->lag_max_ns = lag;
	p->lag_sum_ns = add_sat(p->lag_sum_ns, lag);
	return true;
}

int weft_pacer_wait(weft_pacer *p, uint64_t *intended_ns)
{
	if (!p || !intended_ns)
		return -EINVAL;
	for (;;) {
		if (weft_pacer_take(p, weft_now_ns(), intended_ns))
			return 0;
		int r = weft_sleep_until(p->next_ns);
		if (r < 0)
			return r;
	}
}

void weft_pacer_merge_stats(weft_pacer *dst, const weft_pacer *src)
{
	if (!dst || !src)
		return;
	dst->sent += src->sent;
	dst->late += src->late;
	dst->dropped += src->dropped;
	dst->lag_sum_ns = add_sat(dst->lag_sum_ns, src->lag_sum_ns);
	if (src->lag_max_ns > dst->lag_max_ns)
		dst->lag_max_ns = src->lag_max_ns;
}
