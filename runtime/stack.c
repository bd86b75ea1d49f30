/*
 * Task stacks.
 *
 * A stack is an mmap'd region; the task's frames grow down from its top.
 * Two kinds share one pool per loop:
 *  - guarded: its own mapping with a PROT_NONE page below, so an overflow
 *    faults at once.  Costs two VMAs, and the kernel's vm.max_map_count
 *    (65530 by default) therefore caps guarded stacks near 32k;
 *  - slab: carved from a 64-stack mapping with no guard page (one VMA for
 *    all 64).  An 8-byte canary just below the stack is checked every time
 *    the task switches away and when the stack is released; an overflow is
 *    reported and the process aborts, but it may have corrupted the
 *    neighbouring stack first.  This is what lets a million tasks live on
 *    stock settings.
 * WEFT_GUARD_AUTO hands out guarded stacks until `guarded_max` are live, then
 * slab stacks.  Freed stacks go to the loop's pool (no syscall to reuse: a
 * fresh stack costs page faults); past the pool's cap, guarded stacks are
 * unmapped and slab stacks are returned to the runtime with MADV_DONTNEED so
 * their pages go back to the kernel.  A stack goes to the pool of the loop
 * where its task ends, which need not be where the next one starts, and a
 * pooled stack keeps its touched pages: so the owner trims its pool about
 * once a second (weft__stackpool_trim), freeing half of the stacks that sat
 * unused since the last trim, the least recently used first.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <valgrind/valgrind.h>
#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define WEFT_CANARY 0x5745465443414e59ull /* "WEFTCANY" */
#define WEFT_SLAB_STACKS 64

static void *map_guarded(size_t size, size_t page)
{
	char *p = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (mprotect(p, page, PROT_NONE) != 0) {
		munmap(p, size + page);
		return NULL;
	}
	return p + page;
}

/* Forget ASan's shadow of memory about to be unmapped: a later mapping at
 * the same address (a ring, a buffer) would otherwise inherit the redzones
 * of frames that never returned. */
static void unpoison(void *p, size_t size)
{
#if WEFT_ASAN
	__asan_unpoison_memory_region(p, size);
#else
	(void)p;
	(void)size;
#endif
}

static void unmap_guarded(void *base, size_t size, size_t page)
{
	unpoison(base, size);
	munmap((char *)base - page, size + page);
}

/* Slab layout: [header page][slot 0][slot 1]...[slot 63].  The canary that
 * guards slot i sits in the 16 bytes just below it: the top of slot i-1
 * (kept out of that slot's usable stack), or the header page for slot 0.
 * So a task's canary shares a page with memory that is resident anyway and
 * a task costs one page of RSS, not two. */
static size_t slab_bytes(const weft_runtime *rt)
{
	return rt->page + rt->cfg.stack_size * WEFT_SLAB_STACKS;
}

static _Atomic uint64_t *slab_canary(void *base)
{
	return (_Atomic uint64_t *)((char *)base - 16);
}

static int slab_grow_locked(weft_runtime *rt)
{
	size_t size = rt->cfg.stack_size;
	if (rt->nslabs == rt->slabs_cap) {
		size_t cap = rt->slabs_cap ? rt->slabs_cap * 2 : 64;
		void **n = realloc(rt->slabs, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		rt->slabs = n;
		rt->slabs_cap = cap;
	}
	/* Room for every slab stack there will be: frees never allocate. */
	size_t need = (rt->nslabs + 1) * WEFT_SLAB_STACKS;
	if (rt->slab_free_cap < need) {
		size_t cap = rt->slab_free_cap ? rt->slab_free_cap * 2 : 256;
		while (cap < need)
			cap *= 2;
		void **n = realloc(rt->slab_free, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		rt->slab_free = n;
		rt->slab_free_cap = cap;
	}
	char *slab = mmap(NULL, slab_bytes(rt), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (slab == MAP_FAILED)
		return -ENOMEM;
	rt->slabs[rt->nslabs++] = slab;
	/* Lowest address on top of the free list: a fresh slab is used
	 * bottom-up, so each new task's canary lands in its neighbour's
	 * already-touched top page. */
	for (int i = WEFT_SLAB_STACKS - 1; i >= 0; i--)
		rt->slab_free[rt->slab_free_len++] = slab + rt->page + (size_t)i * size;
	return 0;
}

/* Take one slab stack from the runtime, mapping a new slab when empty. */
static void *slab_take(weft_runtime *rt)
{
	void *base = NULL;
	weft__lock_acquire(&rt->stack_lock);
	if (rt->slab_free_len || slab_grow_locked(rt) == 0)
		base = rt->slab_free[--rt->slab_free_len];
	weft__lock_release(&rt->stack_lock);
	return base;
}

static void slab_give(weft_runtime *rt, void *base)
{
	size_t size = rt->cfg.stack_size;
	/* Keep the top page (the next task touches it at once, and it holds
	 * the canary of the slot above), drop the rest. */
	if (size > rt->page)
		madvise(base, size - rt->page, MADV_DONTNEED);
	weft__lock_acquire(&rt->stack_lock);
	rt->slab_free[rt->slab_free_len++] = base;
	weft__lock_release(&rt->stack_lock);
}

unsigned weft__stack_guarded_default(void)
{
	unsigned long maps = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
	if (f) {
		if (fscanf(f, "%lu", &maps) != 1)
			maps = 65530;
		fclose(f);
	}
	/* Leave three quarters of the map budget to the rest of the process. */
	return (unsigned)(maps / 4 / 2);
}

/* A task that exits never returns from its last frames, so ASan's redzones
 * for them stay poisoned; clear them before the stack is reused. */
static void stack_fresh(weft_task *t)
{
	unpoison(t->stack_base, t->stack_size);
}

static void register_valgrind(weft_task *t)
{
	if (RUNNING_ON_VALGRIND)
		VALGRIND_STACK_REGISTER(t->stack_base, (char *)t->stack_base + t->stack_size);
}

/* A stack of `size` bytes for t: from l's pool when l is given (its own
 * thread), else freshly mapped or carved from a slab. */
int weft__stack_get(weft_runtime *rt, weft_loop *l, weft_task *t, size_t size)
{
	if (size != rt->cfg.stack_size) {
		t->stack_base = map_guarded(size, rt->page);
		if (!t->stack_base)
			return -ENOMEM;
		t->stack_kind = WEFT_STACK_CUSTOM;
		t->stack_size = size;
		atomic_fetch_add_explicit(&rt->guarded_live, 1, memory_order_relaxed);
		stack_fresh(t);
		register_valgrind(t);
		return 0;
	}
	weft__stackpool *p = l ? &l->stacks : NULL;
	if (p && p->len) {
		if (--p->len < p->low)
			p->low = p->len;
		t->stack_base = p->base[p->len];
		t->stack_kind = p->kind[p->len];
		t->stack_size = t->stack_kind == WEFT_STACK_SLAB ? size - 16 : size;
		if (t->stack_kind == WEFT_STACK_SLAB)
			atomic_store_explicit(slab_canary(t->stack_base), WEFT_CANARY,
					      memory_order_relaxed);
		stack_fresh(t);
		return 0;
	}
	t->stack_size = size;
	bool guard = rt->cfg.stack_guard == WEFT_GUARD_ALWAYS ||
		     (rt->cfg.stack_guard == WEFT_GUARD_AUTO &&
		      atomic_load_explicit(&rt->guarded_live, memory_order_relaxed) <
			      rt->guarded_max);
	if (guard) {
		t->stack_base = map_guarded(size, rt->page);
		if (!t->stack_base) {
			if (rt->cfg.stack_guard == WEFT_GUARD_ALWAYS)
				return -ENOMEM;
			guard = false; /* out of map slots: fall back to a slab */
		} else {
			t->stack_kind = WEFT_STACK_GUARDED;
			atomic_fetch_add_explicit(&rt->guarded_live, 1, memory_order_relaxed);
		}
	}
	if (!guard) {
		t->stack_base = slab_take(rt);
		if (!t->stack_base)
			return -ENOMEM;
		t->stack_kind = WEFT_STACK_SLAB;
		t->stack_size = size - 16; /* the top 16 bytes guard the slot above */
		atomic_store_explicit(slab_canary(t->stack_base), WEFT_CANARY,
				      memory_order_relaxed);
		atomic_fetch_add_explicit(&rt->slab_live, 1, memory_order_relaxed);
	}
	stack_fresh(t);
	register_valgrind(t);
	return 0;
}

void weft__stack_check(const weft_task *t)
{
	if (t->stack_kind == WEFT_STACK_SLAB &&
	    unlikely(atomic_load_explicit(slab_canary(t->stack_base), memory_order_relaxed) !=
		     WEFT_CANARY)) {
		fprintf(stderr,
			"weft: stack overflow in task %llu \"%s\" (stack %zu bytes): "
			"raise weft_task_config.stack_size\n",
			(unsigned long long)t->id, t->name, t->stack_size);
		abort();
	}
}

static void stack_free(weft_runtime *rt, void *base, uint8_t kind, size_t size)
{
	if (kind == WEFT_STACK_SLAB) {
		atomic_fetch_sub_explicit(&rt->slab_live, 1, memory_order_relaxed);
		slab_give(rt, base);
	} else {
		atomic_fetch_sub_explicit(&rt->guarded_live, 1, memory_order_relaxed);
		unmap_guarded(base, size, rt->page);
	}
}

/* Give t's stack back: to l's pool when l is given (its own thread) and
 * has room, else to the runtime. */
void weft__stack_put(weft_loop *l, weft_task *t)
{
	weft_runtime *rt = t->rt;
	weft__stack_check(t);
	/* Valgrind only tracks registered stacks by id; re-registering on
	 * reuse would leak ids, so the registration simply stays. */
	if (l && t->stack_kind != WEFT_STACK_CUSTOM && l->stacks.len < l->stacks.cap) {
		l->stacks.base[l->stacks.len] = t->stack_base;
		l->stacks.kind[l->stacks.len] = t->stack_kind;
		l->stacks.len++;
	} else {
		stack_free(rt, t->stack_base, t->stack_kind, t->stack_size);
	}
	t->stack_base = NULL;
}

void weft__stackpool_trim(weft_runtime *rt, weft__stackpool *p)
{
	unsigned n = (p->low + 1) / 2;
	for (unsigned i = 0; i < n; i++)
		stack_free(rt, p->base[i], p->kind[i], rt->cfg.stack_size);
	memmove(p->base, p->base + n, (p->len - n) * sizeof(*p->base));
	memmove(p->kind, p->kind + n, (p->len - n) * sizeof(*p->kind));
	p->len -= n;
	p->low = p->len;
}

void weft__stackpool_drain(weft_runtime *rt, weft__stackpool *p)
{
	for (unsigned i = 0; i < p->len; i++)
		stack_free(rt, p->base[i], p->kind[i], rt->cfg.stack_size);
	p->len = 0;
}

void weft__stacks_destroy(weft_runtime *rt)
{
	for (size_t i = 0; i < rt->nslabs; i++) {
		unpoison(rt->slabs[i], slab_bytes(rt));
		munmap(rt->slabs[i], slab_bytes(rt));
	}
	free(rt->slabs);
	free(rt->slab_free);
	rt->slabs = NULL;
	rt->slab_free = NULL;
	rt->nslabs = rt->slab_free_len = 0;
}
