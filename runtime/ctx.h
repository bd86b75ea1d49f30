/* Machine context switch: the only architecture-specific code in weft.
 * Implemented in runtime/ctx_<arch>.S.  Internal (hidden) API. */
#ifndef WEFT_CTX_H
#define WEFT_CTX_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__)
/* Layout is fixed by ctx_x86_64.S. */
typedef struct weft__ctx {
	void *rip, *rsp, *rbx, *rbp, *r12, *r13, *r14, *r15;
	uint32_t mxcsr;
	uint16_t fpucw;
	uint16_t pad;
} weft__ctx;

/* The floating-point control state a new context starts with. */
typedef struct weft__fpenv {
	uint32_t mxcsr;
	uint16_t fpucw;
} weft__fpenv;

/* The calling thread's control state now (MXCSR's control bits: rounding,
 * exception masks, flush-to-zero, denormals-are-zero; the x87 control
 * word).  MXCSR's status flags are left out: a new task starts clear. */
static inline void weft__fpenv_save(weft__fpenv *e)
{
	__asm__ volatile("stmxcsr %0" : "=m"(e->mxcsr));
	__asm__ volatile("fnstcw %0" : "=m"(e->fpucw));
	e->mxcsr &= ~0x3fu;
}
#elif defined(__aarch64__)
/* Layout is fixed by ctx_aarch64.S. */
typedef struct weft__ctx {
	void *pc, *sp, *x19_x28[10], *fp, *lr;
	uint64_t d8_d15[8];
	uint64_t fpcr;
} weft__ctx;

/* The floating-point control state a new context starts with. */
typedef struct weft__fpenv {
	uint64_t fpcr;
} weft__fpenv;

/* The calling thread's FPCR now (rounding, flush-to-zero, default NaN;
 * the status flags live in FPSR, which is not inherited). */
static inline void weft__fpenv_save(weft__fpenv *e)
{
	uint64_t v;
	__asm__ volatile("mrs %0, fpcr" : "=r"(v));
	e->fpcr = v;
}
#else
#error "weft: unsupported architecture (add runtime/ctx_<arch>.S)"
#endif

/* Save the callee-saved state of the caller into *from and resume *to.
 * Returns when something switches back to *from. */
void weft__ctx_switch(weft__ctx *from, const weft__ctx *to);

/* Prepare *c so that switching to it calls entry(arg) on the stack whose
 * highest address is stack_top (16-byte aligned), with the floating-point
 * control state *fp.  entry must never return: it ends by switching away
 * for good. */
void weft__ctx_make(weft__ctx *c, void *stack_top, void (*entry)(void *), void *arg,
		    const weft__fpenv *fp);

#endif
