/*
 * Switching between fibers (tasks and each loop's scheduler context), with
 * the annotations that let AddressSanitizer and ThreadSanitizer follow a
 * thread onto a coroutine stack and back.
 *
 * The switch itself is inline, in fiber.h.
 */
#include "internal.h"

#include <string.h>


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
			   void (*entry)(void *), void *arg, const weft__fpenv *fp)
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
	weft__ctx_make(&f->ctx, (char *)stack_lo + size, entry, arg, fp);
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
