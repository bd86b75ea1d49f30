/* Portable half of the context switch: building a fresh context. */
#include "ctx.h"

#include <string.h>

void weft__ctx_trampoline(void);

void weft__ctx_make(weft__ctx *c, void *stack_top, void (*entry)(void *), void *arg,
		    const weft__fpenv *fp)
{
	memset(c, 0, sizeof(*c));
	uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
#if defined(__x86_64__)
	c->rip = (void *)weft__ctx_trampoline;
	c->rsp = (void *)top; /* entered by jmp: 16-aligned at its call */
	c->r12 = arg;
	c->r13 = (void *)entry;
	c->mxcsr = fp->mxcsr; /* the switch loads both */
	c->fpucw = fp->fpucw;
#elif defined(__aarch64__)
	c->pc = (void *)weft__ctx_trampoline;
	c->sp = (void *)top;
	c->x19_x28[0] = arg;
	c->x19_x28[1] = (void *)entry;
	c->fpcr = fp->fpcr;
#endif
}
