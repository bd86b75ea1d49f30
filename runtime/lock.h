/* A small test-and-test-and-set spinlock for short critical sections
 * (wait lists, the inject queue).  Holders never suspend or block; after a
 * few hundred spins a waiter yields the CPU so a preempted holder (virtual
 * machines!) can finish. */
#ifndef WEFT_LOCK_H
#define WEFT_LOCK_H

#include <sched.h>
#include <stdatomic.h>

typedef struct weft__lock {
	_Atomic unsigned char v;
} weft__lock;

#define WEFT_LOCK_INIT { 0 }

static inline void weft__lock_acquire(weft__lock *l)
{
	unsigned spins = 0;
	while (atomic_exchange_explicit(&l->v, 1, memory_order_acquire)) {
		while (atomic_load_explicit(&l->v, memory_order_relaxed)) {
			if (++spins > 256)
				sched_yield();
#if defined(__x86_64__)
			else
				__builtin_ia32_pause();
#endif
		}
	}
}

static inline void weft__lock_release(weft__lock *l)
{
	atomic_store_explicit(&l->v, 0, memory_order_release);
}

#endif
