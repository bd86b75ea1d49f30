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
 */
#include "io.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#define BUF_COUNT WEFT__BUFRING_MAX /* 4 MiB of address space per loop */
#define BUF_INIT 64u     /* published at first: 256 KiB */
#define BUF_SIZE WEFT__BUFRING_SIZE
#define BUF_GROUP 1

struct weft__bufring {
	struct io_uring_buf_ring *br;
	char *mem;
	weft__lock lk;     /* guards the tail, and writes of `published` */
	_Atomic unsigned published; /* buffers 0..published-1 are the ring's */
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
	publish(b, 0, BUF_INIT);
	l->bufring = b;
	return b;
}

unsigned weft__bufring_count(weft__bufring *b)
{
	return atomic_load_explicit(&b->published, memory_order_relaxed);
}

/* Many receives see the same dry ring at once: the first one doubles it,
 * the others just try again. */
bool weft__bufring_grow(weft__bufring *b, unsigned seen)
{
	weft__lock_acquire(&b->lk);
	unsigned n = atomic_load_explicit(&b->published, memory_order_relaxed);
	bool again = n != seen || n < BUF_COUNT;
	if (n == seen && n < BUF_COUNT)
		publish(b, n, n * 2 < BUF_COUNT ? n * 2 : BUF_COUNT);
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

void weft__bufring_put(weft__bufring *b, uint16_t bid)
{
	weft__lock_acquire(&b->lk);
	io_uring_buf_ring_add(b->br, b->mem + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
			      io_uring_buf_ring_mask(BUF_COUNT), 0);
	io_uring_buf_ring_advance(b->br, 1);
	weft__lock_release(&b->lk);
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
