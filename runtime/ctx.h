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
#elif defined(__aarch64__)
/* Layout is fixed by ctx_aarch64.S. */
typedef struct weft__ctx {
	void *pc, *sp, *x19_x28[10], *fp, *lr;
	uint64_t d8_d15[8];
	uint64_t fpcr;
} weft__ctx;
#else
#error "weft: unsupported architecture (add runtime/ctx_<arch>.S)"
#endif

/* Save the callee-saved state of the caller into *from and resume *to.
 * Returns when something switches back to *from. */
void weft__ctx_switch(weft__ctx *from, const weft__ctx *to);

/* Prepare *c so that switching to it calls entry(arg) on the stack whose
 * highest address is stack_top (16-byte aligned).  entry must never return:
 * it ends by switching away for good. */
void weft__ctx_make(weft__ctx *c, void *stack_top, void (*entry)(void *), void *arg);

#endif
