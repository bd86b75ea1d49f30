/* Per-loop free lists of small runtime objects (tasks, futures): reuse is
 * cheaper than the allocator on hot paths and hands back cache-warm memory.
 * Owner-only: a loop's caches are touched only by its thread.  An object
 * freed elsewhere, or past the cap, goes back to the allocator.  Off under
 * ASan, so it sees every use after free. */
#ifndef WEFT_OBJCACHE_H
#define WEFT_OBJCACHE_H

#include <stdbool.h>
#include <stdlib.h>

typedef struct weft__objcache {
	void *head; /* a dead object's first word links to the next */
	unsigned len;
} weft__objcache;

#define WEFT_OBJCACHE_MAX 1024

static inline void *weft__objcache_get(weft__objcache *c)
{
	void *p = c->head;
	if (p) {
		c->head = *(void **)p;
		c->len--;
	}
	return p;
}

static inline bool weft__objcache_put(weft__objcache *c, void *p)
{
#if WEFT_ASAN
	(void)c;
	(void)p;
	return false; /* let ASan see every use after free */
#endif
	if (c->len >= WEFT_OBJCACHE_MAX)
		return false;
	*(void **)p = c->head;
	c->head = p;
	c->len++;
	return true;
}

static inline void weft__objcache_drain(weft__objcache *c)
{
	void *p;
	while ((p = weft__objcache_get(c)))
		free(p);
}

#endif
