/*
 * Switching between fibers (tasks and each loop's scheduler context), with
 * the annotations that let AddressSanitizer and ThreadSanitizer follow a
 * thread onto a coroutine stack and back.  Inline: on the hot path of every
 * yield and wake-up.
 *
 * Protocol: the code that regains control after weft__fiber_switch()
 * returns calls weft__fiber_after(self) first, with `self` the fiber that
 * was resumed (ASan's finish_switch_fiber must run on the new stack).
 */
#ifndef WEFT_FIBER_H
#define WEFT_FIBER_H

#if WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

static inline void weft__fiber_switch(weft__fiber *from, weft__fiber *to, bool from_exits)
{
#if WEFT_ASAN
	/* An exiting fiber passes NULL: ASan frees its fake stack. */
	__sanitizer_start_switch_fiber(from_exits ? NULL : &from->asan_fake, to->stack_lo,
				       to->stack_size);
#endif
#if WEFT_TSAN
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
	(void)from_exits;
	weft__ctx_switch(&from->ctx, &to->ctx);
}

static inline void weft__fiber_after(weft__fiber *self)
{
#if WEFT_ASAN
	const void *lo;
	size_t size;
	__sanitizer_finish_switch_fiber(self->asan_fake, &lo, &size);
#else
	(void)self;
#endif
}

#endif
