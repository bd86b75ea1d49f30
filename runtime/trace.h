/*
 * The event trace's record path (runtime/trace.c has the rest, and
 * include/weft/trace.h the API).  Each loop writes its own ring, from its
 * own thread only, with plain stores: no atomics, no lock.  A loop that
 * is not recording pays one test of its own `trace_on`, which stays in a
 * register-cheap, always-predicted branch.  Included by internal.h.
 */
#ifndef WEFT_RUNTIME_TRACE_H
#define WEFT_RUNTIME_TRACE_H

/* One event: 32 bytes, two to a cache line. */
typedef struct weft__tev {
	uint64_t ts;    /* weft__trace_clock(); NAME: name bytes */
	uint64_t id;    /* the task's id (0: none, a callback op) */
	uint64_t x;     /* by type: parent id, waker id, opcode's flags... */
	uint32_t arg;   /* by type: fd, result, tasks stolen, part */
	uint8_t type;   /* WEFT_TEV_* */
	uint8_t kind;   /* PARK: enum weft__wait_kind; I/O: enum weft__opcode */
	uint16_t peer;  /* the other loop (WAKE: the woken task's, STEAL: the
			   victim) */
} weft__tev;

enum {
	WEFT_TEV_SPAWN = 1, /* x: the spawning task's id */
	WEFT_TEV_RUN,       /* switched in */
	WEFT_TEV_PARK,      /* kind: wait kind; arg: wait_fd; x: wait_op */
	WEFT_TEV_YIELD,
	WEFT_TEV_EXIT,
	WEFT_TEV_WAKE,      /* peer: the woken task's loop; x: waker task */
	WEFT_TEV_STEAL,     /* peer: victim; arg: tasks taken; id: the first */
	WEFT_TEV_SUBMIT,    /* kind: opcode; arg: fd */
	WEFT_TEV_COMPLETE,  /* kind: opcode; arg: result; x: flags */
	WEFT_TEV_TIMER,     /* a task's timer fired */
	WEFT_TEV_SLEEP,     /* the loop goes to sleep (blocks in the kernel) */
	WEFT_TEV_WAKEUP,    /* ... and is back */
	WEFT_TEV_NAME,      /* a task's name: arg = part (0, 1), 16 bytes in
			       ts and x; never sorted by time */
	WEFT_TEV_STOP,      /* the loop's last event: it stops recording (a
			       task running then runs on, unrecorded) */
	WEFT_TEV__COUNT
};

/* A cycle counter where it is invariant (x86_64 with constant and
 * nonstop TSC, aarch64's virtual counter), converted to the monotonic
 * clock at write time from the start and stop anchors; the monotonic
 * clock itself elsewhere. */
static inline uint64_t weft__trace_clock(void)
{
#if defined(__x86_64__)
	return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#else
	return weft_now_ns();
#endif
}

static inline void weft__trace_put(weft_loop *l, unsigned type, unsigned kind, unsigned peer,
				   uint64_t id, uint32_t arg, uint64_t x)
{
	weft__tev *e = &l->tr_ev[l->tr_head++ & l->tr_mask];
	e->ts = weft__trace_clock();
	e->id = id;
	e->x = x;
	e->arg = arg;
	e->type = (uint8_t)type;
	e->kind = (uint8_t)kind;
	e->peer = (uint16_t)peer;
}

/* Record an event on loop l, from l's own thread. */
#define WEFT_TRACE(l, ...)                                 \
	do {                                               \
		weft_loop *l_ = (l);                       \
		if (unlikely(l_->trace_on))                \
			weft__trace_put(l_, __VA_ARGS__);  \
	} while (0)

/* The running task's id on l, 0 in the scheduler. */
static inline uint64_t weft__trace_cur(const weft_loop *l)
{
	return l->current ? l->current->id : 0;
}

/* An event of a thread that is not a loop of rt: counted, not recorded. */
static inline void weft__trace_foreign(weft_runtime *rt)
{
	if (unlikely(atomic_load_explicit(&rt->trace_gen, memory_order_relaxed) & 1))
		atomic_fetch_add_explicit(&rt->trace_foreign, 1, memory_order_relaxed);
}

/* The loop that is the calling thread, if it is one of rt's; else NULL. */
static inline weft_loop *weft__trace_self(weft_runtime *rt)
{
	weft_loop *l = weft__loop_self();
	return l && l->rt == rt ? l : NULL;
}

/* Record t's name (two NAME events) on l, if l records. */
WEFT_HIDDEN void weft__trace_name(weft_loop *l, const weft_task *t);
/* t is switched in on l (recording): its name first, once per trace. */
static inline void weft__trace_run(weft_loop *l, weft_task *t)
{
	if (unlikely(t->trace_named != l->trace_gen)) {
		t->trace_named = l->trace_gen;
		if (t->name[0])
			weft__trace_name(l, t);
	}
	weft__trace_put(l, WEFT_TEV_RUN, 0, 0, t->id, 0, 0);
}

/* On l's thread, at each scheduler pass: apply a start or stop. */
WEFT_HIDDEN void weft__trace_sync(weft_loop *l);
static inline void weft__trace_poll(weft_loop *l)
{
	if (unlikely(atomic_load_explicit(&l->rt->trace_gen, memory_order_relaxed) !=
		     l->trace_gen))
		weft__trace_sync(l);
}
/* l's thread is leaving its scheduler for good: it records nothing more. */
WEFT_HIDDEN void weft__trace_loop_exit(weft_loop *l);
/* WEFT_TRACE=path: record from start (weft_runtime_start, once the
 * loops run) to shutdown (weft_runtime_shutdown, once they have ended),
 * then write the trace to path.  Problems go to stderr: the program runs
 * on regardless. */
WEFT_HIDDEN void weft__trace_env_start(weft_runtime *rt);
WEFT_HIDDEN void weft__trace_env_finish(weft_runtime *rt);
/* At runtime destroy: free the rings. */
WEFT_HIDDEN void weft__trace_free(weft_runtime *rt);

#endif
