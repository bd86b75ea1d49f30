/* Blocking for foreign (non-weft) threads: a futex on a 32-bit word. */
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Wait while *addr == val, until the absolute CLOCK_MONOTONIC deadline in ns
 * (0: forever).  Returns 0 (woken, maybe spuriously) or -ETIMEDOUT. */
int weft__futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	if (deadline) {
		uint64_t now = weft_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		uint64_t d = deadline - now;
		ts.tv_sec = (time_t)(d / 1000000000u);
		ts.tv_nsec = (long)(d % 1000000000u);
		tsp = &ts;
	}
	long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
	if (r < 0 && errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0;
}

void weft__futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
