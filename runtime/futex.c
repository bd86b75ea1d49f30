/* Blocking for foreign (non-weft) threads: a futex on a 32-bit word. */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if WEFT_TSAN
/* ThreadSanitizer runs a signal handler that lands in a raw system call
 * only when the thread next passes one of its interceptors: a thread parked
 * here for good (the main thread in weft_run) would never run weft's, and
 * the program would ignore SIGTERM.  So the TSan build waits in slices and
 * passes an interceptor (usleep) between them. */
#define SLICE_NS (50 * 1000000ull)
#endif

/* Wait while *addr == val, until the absolute CLOCK_MONOTONIC deadline in ns
 * (0: forever).  Returns 0 (woken, maybe spuriously) or -ETIMEDOUT. */
int weft__futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	uint64_t d = 0;
	if (deadline) {
		uint64_t now = weft_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		d = deadline - now;
	}
#if WEFT_TSAN
	bool sliced = !deadline || d > SLICE_NS;
	if (sliced)
		d = SLICE_NS;
#endif
	if (d) {
		ts.tv_sec = (time_t)(d / 1000000000u);
		ts.tv_nsec = (long)(d % 1000000000u);
		tsp = &ts;
	}
	long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
#if WEFT_TSAN
	if (sliced) {
		usleep(0); /* a pending handler runs here */
		return 0;  /* a spurious wake: the caller checks and waits again */
	}
#endif
	if (r < 0 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0;
}

void weft__futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* ---- weft__lock's contended paths (runtime/lock.h) ---- */

#define LOCK_SPINS 128

void weft__lock_acquire_slow(weft__lock *l)
{
	for (unsigned i = 0; i < LOCK_SPINS; i++) {
		uint32_t c = atomic_load_explicit(&l->v, memory_order_relaxed);
		if (c == 0 && atomic_compare_exchange_weak_explicit(&l->v, &c, 1,
								    memory_order_acquire,
								    memory_order_relaxed))
			return;
		if (c == 2)
			break; /* others already sleep: join them */
		weft__cpu_relax();
	}
	/* Taken as 2: we cannot know whether others still sleep, so the
	 * release that follows must wake one (at worst a spare wake). */
	while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
		weft__futex_wait(&l->v, 2, 0);
}

void weft__lock_wake(weft__lock *l)
{
	weft__futex_wake(&l->v, 1);
}
