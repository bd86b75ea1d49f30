/* Per-loop free lists of small runtime objects (tasks, futures): reuse is
 * cheaper than the allocator on hot paths and hands back cache-warm memory.
 * Owner-only: a loop's caches are touched only by its thread.  An object
 * freed elsewhere, or past the cap, goes back to the allocator.  Off under
 * ASan, so it sees every use after free.
 *
 * Objects are freed into the cache of the loop that frees them, not the
 * one that allocated them: a task spawned on loop A that first runs on loop
 * B dies on B.  Without a bound over time B's cache would fill to the cap
 * with objects B never reuses while A keeps calling malloc (the soak saw a
 * server's RSS creep for minutes that way).  So the owner trims it now and
 * then (weft__objcache_trim, about once a second): half of what the cache
 * held unused since the last trim, its low-water mark, goes back to the
 * allocator, where any thread can reuse it (jemalloc's tcache GC works the
 * same way).  Nothing here depends on which allocator that is: jemalloc, or
 * the C library's malloc in the sanitizer trees and with `make ALLOC=system`. */
#ifndef WEFT_OBJCACHE_H
#define WEFT_OBJCACHE_H

#include <stdbool.h>
#include <stdlib.h>

typedef struct weft__objcache {
	void *head; /* a dead object's first word links to the next */
	unsigned len;
	unsigned low; /* the fewest held since the last trim */
} weft__objcache;

#define WEFT_OBJCACHE_MAX 1024

static inline void *weft__objcache_get(weft__objcache *c)
{
	void *p = c->head;
	if (p) {
		c->head = *(void **)p;
		if (--c->len < c->low)
			c->low = c->len;
	}
	return p;
}

/* Keep p unless the cache holds `max` already (a cap below
 * WEFT_OBJCACHE_MAX for large objects). */
static inline bool weft__objcache_put_max(weft__objcache *c, void *p, unsigned max)
{
#if WEFT_ASAN
	(void)c;
	(void)p;
	(void)max;
	return false; /* let ASan see every use after free */
#endif
	if (c->len >= max)
		return false;
	*(void **)p = c->head;
	c->head = p;
	c->len++;
	return true;
}

static inline bool weft__objcache_put(weft__objcache *c, void *p)
{
	return weft__objcache_put_max(c, p, WEFT_OBJCACHE_MAX);
}

/* Give back half of the objects unused since the last trim. */
static inline void weft__objcache_trim(weft__objcache *c)
{
	for (unsigned n = (c->low + 1) / 2; n; n--)
		free(weft__objcache_get(c));
	c->low = c->len;
}

static inline void weft__objcache_drain(weft__objcache *c)
{
	void *p;
	while ((p = weft__objcache_get(c)))
		free(p);
}

#endif
