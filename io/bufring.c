/*
 * A loop's provided-buffer ring, for multishot receives (io/stream.c).
 *
 * The kernel takes a buffer from the ring for each completion it posts;
 * the stream copies the bytes out and gives the buffer back.  Buffers come
 * back from whatever thread the reading task runs on, so the producer side
 * (tail) is serialized by a spinlock; the kernel is the only consumer.
 * Created lazily by the loop's own thread (registration, like submission,
 * belongs to the ring's single issuer) and freed with the ring.
 *
 * The kernel takes buffers from the ring in order, so every buffer ever
 * published is soon touched, whatever the load: the ring starts with
 * BUF_INIT of them and doubles each time it runs dry (-ENOBUFS), up to
 * BUF_COUNT.  A loop whose receives never pile up keeps a small ring
 * resident (BUF_INIT x 4 KiB), not 4 MiB.
 *
 * And after a burst the ring shrinks back, or a long-running server would
 * keep its peak forever.  About once a second (weft__bufring_trim, from the
 * loop's cache trim) a ring that did not run dry since the last trim is
 * halved, down to BUF_INIT: buffers numbered `keep` and up are no longer
 * handed back to the kernel when they come back, so once all of them are
 * back (the kernel takes them in order: one pass of the ring) none can be
 * written by anyone, and the next trim gives their pages back
 * (MADV_DONTNEED).  A ring that runs dry while it shrinks takes back what
 * had left instead of growing.  The only cost on the way of a buffer is one
 * comparison in weft__bufring_put.
 *
 * Also here: the loop's cache of malloc'd 4 KiB receive buffers, the ring's
 * counterpart where there is none (epoll; weft__rxbuf_get, below).
 */
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BUF_COUNT WEFT__BUFRING_MAX /* 4 MiB of address space per loop */
#define BUF_INIT WEFT__BUFRING_INIT /* published at first: 256 KiB */
#define BUF_SIZE WEFT__BUFRING_SIZE
#define BUF_GROUP 1

struct weft__bufring {
	struct io_uring_buf_ring *br;
	char *mem;
	weft__lock lk;     /* guards the tail, writes of `published`, the rest */
	_Atomic unsigned published; /* buffers 0..published-1 are the ring's
				       (in it, or held by a reader) */
	unsigned keep;     /* shrinking: buffers from here on leave the ring
			      when given back (BUF_COUNT: not shrinking) */
	unsigned left;     /* how many of them have */
	uint64_t gone[BUF_COUNT / 64]; /* which: taken back if it runs dry */
	unsigned dirty_from, dirty_to; /* out of the ring, pages still there
					  (dirty_to 0: none) */
	bool releasing;    /* trim is giving [dirty_from, dirty_to) back: a
			      grow stops short of it */
	bool dry;          /* ran dry since the last trim */
};

/* With lk held (or before the ring is shared): publish buffers
 * [from, to). */
static void publish(weft__bufring *b, unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++)
		io_uring_buf_ring_add(b->br, b->mem + (size_t)i * BUF_SIZE, BUF_SIZE, (uint16_t)i,
				      io_uring_buf_ring_mask(BUF_COUNT), (int)(i - from));
	io_uring_buf_ring_advance(b->br, (int)(to - from));
	atomic_store_explicit(&b->published, to, memory_order_relaxed);
}

weft__bufring *weft__bufring_get(weft_loop *l)
{
	if (l->bufring || !(l->features & WEFT_RING_BUF_RING) || l->bufring_failed)
		return l->bufring;
	weft__bufring *b = calloc(1, sizeof(*b));
	size_t ring_bytes = BUF_COUNT * sizeof(struct io_uring_buf);
	void *ring = NULL, *mem = MAP_FAILED;
	if (b && posix_memalign(&ring, 4096, ring_bytes) == 0)
		mem = mmap(NULL, (size_t)BUF_COUNT * BUF_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)ring, .ring_entries = BUF_COUNT,
					.bgid = BUF_GROUP };
	if (mem == MAP_FAILED || io_uring_register_buf_ring(&l->ring, &reg, 0) < 0) {
		if (mem != MAP_FAILED)
			munmap(mem, (size_t)BUF_COUNT * BUF_SIZE);
		free(ring);
		free(b);
		l->bufring_failed = true; /* plain receives from now on */
		return NULL;
	}
	b->br = ring;
	b->mem = mem;
	io_uring_buf_ring_init(b->br);
	b->keep = BUF_COUNT;
	publish(b, 0, BUF_INIT);
	l->bufring = b;
	return b;
}

unsigned weft__bufring_count(weft__bufring *b)
{
	return atomic_load_explicit(&b->published, memory_order_relaxed);
}

/* With lk held: give the ring back every buffer that left it during a
 * shrink, and stop shrinking.  True if there was any. */
static bool unshrink(weft__bufring *b)
{
	unsigned k = 0;
	for (unsigned w = 0; w < BUF_COUNT / 64; w++)
		for (uint64_t m = b->gone[w]; m; m &= m - 1) {
			unsigned bid = w * 64 + (unsigned)__builtin_ctzll(m);
			io_uring_buf_ring_add(b->br, b->mem + (size_t)bid * BUF_SIZE, BUF_SIZE,
					      (uint16_t)bid, io_uring_buf_ring_mask(BUF_COUNT),
					      (int)k++);
		}
	io_uring_buf_ring_advance(b->br, (int)k);
	memset(b->gone, 0, sizeof(b->gone));
	b->left = 0;
	b->keep = BUF_COUNT;
	return k > 0;
}

/* Many receives see the same dry ring at once: the first one doubles it,
 * the others just try again.  A ring that was shrinking stops and takes
 * back what had left; a grow stops short of pages being given back. */
bool weft__bufring_grow(weft__bufring *b, unsigned seen)
{
	weft__lock_acquire(&b->lk);
	b->dry = true;
	unsigned n = atomic_load_explicit(&b->published, memory_order_relaxed);
	bool again = n != seen;
	if (b->keep < BUF_COUNT && unshrink(b)) {
		again = true;
	} else if (n == seen && n < BUF_COUNT) {
		unsigned to = n * 2 < BUF_COUNT ? n * 2 : BUF_COUNT;
		if (b->dirty_to && to > b->dirty_from) {
			if (b->releasing)
				to = b->dirty_from;
			else if ((b->dirty_from = to) >= b->dirty_to)
				b->dirty_from = b->dirty_to = 0; /* in use again */
		}
		if (to > n)
			publish(b, n, to);
		again = to > n;
	}
	weft__lock_release(&b->lk);
	return again;
}

const char *weft__bufring_data(const weft__bufring *b, uint16_t bid)
{
	return b->mem + (size_t)bid * BUF_SIZE;
}

uint16_t weft__bufring_group(void)
{
	return BUF_GROUP;
}

/* With lk held: buffer bid (>= keep) came back while the ring shrinks:
 * it stays out.  Once all from keep on are out, the ring is smaller and
 * their pages are for the next trim to give back. */
static void leave(weft__bufring *b, unsigned bid)
{
	b->gone[bid / 64] |= UINT64_C(1) << (bid % 64);
	unsigned n = atomic_load_explicit(&b->published, memory_order_relaxed);
	if (++b->left < n - b->keep)
		return;
	if (b->dirty_to < n)
		b->dirty_to = n;
	b->dirty_from = b->keep;
	atomic_store_explicit(&b->published, b->keep, memory_order_relaxed);
	memset(b->gone, 0, sizeof(b->gone));
	b->left = 0;
	b->keep = BUF_COUNT;
}

void weft__bufring_put(weft__bufring *b, uint16_t bid)
{
	weft__lock_acquire(&b->lk);
	if (unlikely(bid >= b->keep)) {
		leave(b, bid);
	} else {
		io_uring_buf_ring_add(b->br, b->mem + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
				      io_uring_buf_ring_mask(BUF_COUNT), 0);
		io_uring_buf_ring_advance(b->br, 1);
	}
	weft__lock_release(&b->lk);
}

/* On the ring's loop, about once a second: give back the pages of the
 * buffers a finished shrink left out, and start halving a ring that did
 * not run dry since the last time.  The pages go outside the lock (puts
 * from other loops would wait on it): meanwhile a grow stops short of
 * them, and a shrink that finishes meanwhile leaves the rest for next
 * time. */
void weft__bufring_trim(weft__bufring *b)
{
	weft__lock_acquire(&b->lk);
	unsigned from = b->dirty_from, to = b->dirty_to;
	b->releasing = to != 0;
	unsigned n = atomic_load_explicit(&b->published, memory_order_relaxed);
	if (!b->dry && b->keep == BUF_COUNT && n > BUF_INIT)
		b->keep = n / 2 > BUF_INIT ? n / 2 : BUF_INIT;
	b->dry = false;
	weft__lock_release(&b->lk);
	if (!to)
		return;
	madvise(b->mem + (size_t)from * BUF_SIZE, (size_t)(to - from) * BUF_SIZE, MADV_DONTNEED);
	weft__lock_acquire(&b->lk);
	b->releasing = false;
	if (b->dirty_from < from) /* another shrink finished: its part is left */
		b->dirty_to = from;
	else
		b->dirty_from = b->dirty_to = 0;
	weft__lock_release(&b->lk);
}

size_t weft__bufring_resident(const weft__bufring *b)
{
	size_t pages = (size_t)BUF_COUNT * BUF_SIZE / 4096, n = 0;
	unsigned char vec[(size_t)BUF_COUNT * BUF_SIZE / 4096];
	if (mincore(b->mem, (size_t)BUF_COUNT * BUF_SIZE, vec) < 0)
		return 0;
	for (size_t i = 0; i < pages; i++)
		n += vec[i] & 1;
	return n * 4096;
}

/* Whether a trim has pages to give back now (the loop's sleep waits for
 * it: weft__io_trim_due).  A shrink still waiting for its buffers to come
 * back needs traffic, not a trim, so it does not count. */
bool weft__bufring_trim_due(weft__bufring *b)
{
	weft__lock_acquire(&b->lk);
	bool due = b->dirty_to != 0;
	weft__lock_release(&b->lk);
	return due;
}

/* After the ring is gone (any thread). */
void weft__bufring_free(weft_loop *l)
{
	weft__bufring *b = l->bufring;
	if (!b)
		return;
	munmap(b->mem, (size_t)BUF_COUNT * BUF_SIZE);
	free(b->br);
	free(b);
	l->bufring = NULL;
}

/* ------------------------------------------------------------------------ */
/* malloc'd receive buffers                                                  */
/* ------------------------------------------------------------------------ */

/* Where there is no ring (every receive on epoll) a stream's receive takes
 * a malloc'd buffer once bytes are there and gives it back once they are
 * consumed, before it waits again (io.h, WEFT_OPH_BUFSEL): on a
 * request/response stream one malloc and free of 4 KiB per request.  The
 * loop's cache (runtime/objcache.h) turns them into a free-list pop and
 * push, as the ring does on io_uring.  It holds what is free, never what
 * a stream waits with (an idle stream still holds none), at most
 * WEFT__RXBUF_CACHE of them (the ring's first size, WEFT__BUFRING_INIT),
 * and is trimmed about once a second with the loop's other caches; the
 * loop's receives rarely hold more than a few at once (a task gives its
 * buffer back before it waits), so it stays that small.  Off a loop's
 * thread, the allocator. */
void *weft__rxbuf_get(size_t len)
{
	if (len == WEFT__RXBUF_SIZE) {
		weft_loop *l = weft__loop_self();
		void *p = l ? weft__objcache_get(&l->rxbuf_cache) : NULL;
		if (p)
			return p;
	}
	return malloc(len);
}

void weft__rxbuf_put(void *p, size_t len)
{
	if (len == WEFT__RXBUF_SIZE && p) {
		weft_loop *l = weft__loop_self();
		if (l && weft__objcache_put_max(&l->rxbuf_cache, p, WEFT__RXBUF_CACHE))
			return;
	}
	free(p);
}
