/* The lock of short critical sections (wait lists, queues, the inject
 * queue).  Holders never suspend and make no system call (wakes are
 * recorded and made after the release: weft__wakes in internal.h).
 *
 * A three-state futex mutex (Drepper, "Futexes Are Tricky", mutex 2):
 * 0 free, 1 held, 2 held with sleepers.  Uncontended it is one CAS to take
 * and one exchange to give back.  Under contention a waiter spins briefly
 * (the holder is usually running on another CPU and nearly done), then
 * sleeps in the kernel instead of spinning or sched_yield()ing against a
 * holder whose vCPU was preempted: the release wakes one sleeper. */
#ifndef WEFT_LOCK_H
#define WEFT_LOCK_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct weft__lock {
	_Atomic uint32_t v;
} weft__lock;

#define WEFT_LOCK_INIT { 0 }

__attribute__((visibility("hidden"))) void weft__lock_acquire_slow(weft__lock *l);
__attribute__((visibility("hidden"))) void weft__lock_wake(weft__lock *l);

static inline void weft__lock_acquire(weft__lock *l)
{
	uint32_t c = 0;
	if (__builtin_expect(atomic_compare_exchange_strong_explicit(&l->v, &c, 1,
								     memory_order_acquire,
								     memory_order_relaxed), 1))
		return;
	weft__lock_acquire_slow(l);
}

static inline void weft__lock_release(weft__lock *l)
{
	if (__builtin_expect(atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2, 0))
		weft__lock_wake(l);
}

#endif
