/*
 * Switching between fibers (tasks and each loop's scheduler context), with
 * the annotations that let AddressSanitizer and ThreadSanitizer follow a
 * thread onto a coroutine stack and back.
 *
 * Protocol: the code that regains control after weft__fiber_switch() returns
 * must call weft__fiber_after(self) first, with `self` the fiber that was
 * resumed (ASan's finish_switch_fiber must run on the new stack).
 */
#include "internal.h"

#include <string.h>

#if WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

void weft__fiber_switch(weft__fiber *from, weft__fiber *to, bool from_exits)
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

void weft__fiber_after(weft__fiber *self)
{
#if WEFT_ASAN
	const void *lo;
	size_t size;
	__sanitizer_finish_switch_fiber(self->asan_fake, &lo, &size);
#else
	(void)self;
#endif
}

/* The scheduler fiber runs on the loop thread's own stack. */
void weft__fiber_init_thread(weft__fiber *f)
{
	memset(f, 0, sizeof(*f));
	pthread_attr_t a;
	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		void *lo;
		size_t size;
		if (pthread_attr_getstack(&a, &lo, &size) == 0) {
			f->stack_lo = lo;
			f->stack_size = size;
		}
		pthread_attr_destroy(&a);
	}
#if WEFT_TSAN
	f->tsan_fiber = __tsan_get_current_fiber();
#endif
}

void weft__fiber_init_task(weft__fiber *f, void *stack_lo, size_t size,
			   void (*entry)(void *), void *arg)
{
	f->stack_lo = stack_lo;
	f->stack_size = size;
#if WEFT_ASAN
	f->asan_fake = NULL;
#endif
#if WEFT_TSAN
	if (!f->tsan_fiber)
		f->tsan_fiber = __tsan_create_fiber(0);
#endif
	weft__ctx_make(&f->ctx, (char *)stack_lo + size, entry, arg);
}

/* Called once the fiber will never run again, from another fiber. */
void weft__fiber_destroy(weft__fiber *f)
{
#if WEFT_TSAN
	if (f->tsan_fiber) {
		__tsan_destroy_fiber(f->tsan_fiber);
		f->tsan_fiber = NULL;
	}
#else
	(void)f;
#endif
}
