/*
 * weft internals shared by runtime/, sched/ and io/.  Nothing here is
 * exported: every object is compiled with -fvisibility=hidden and the
 * archive localizes hidden symbols.
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include "weft.h"
#include "ctx.h"
#include "lock.h"

#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>

#define WEFT_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__SANITIZE_ADDRESS__)
#define WEFT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define WEFT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT_TSAN 1
#endif
#endif

#include "objcache.h" /* after WEFT_ASAN */

/* In debug builds, name the misuse on stderr; always return the code. */
#ifdef WEFT_DEBUG
#define weft__misuse(err, ...)                                                    \
	(fprintf(stderr, "weft: misuse: " __VA_ARGS__), fputc('\n', stderr), (err))
#else
#define weft__misuse(err, ...) (err)
#endif

typedef struct weft_loop weft_loop;
typedef struct weft__pool weft__pool;

/* ---- scheduler constants (Tokio's and Go's; docs/architecture.md, "Where
 * a woken task goes", "What happens to a stolen task", "The scheduling tick") */
#define WEFT_RUNQ_CAP 256u          /* per-loop stealable ring */
#define WEFT_RUNQ_STAGE 32u         /* overflow pushes published at once */
#define WEFT_LIFO_MAX_STREAK 3      /* LIFO-slot uses in a row */
#define WEFT_MAINT_INTERVAL 61      /* ticks between maintenance passes */
#define WEFT_TASK_BUDGET 128        /* ready-without-suspending ops per run */
#define WEFT_TRIM_NS 1000000000ull  /* per-loop caches trimmed this often */
/* The trim period in use: WEFT_TRIM_NS; tests shorten it (set before a
 * runtime starts) to watch several trims in a fraction of a second. */
WEFT_HIDDEN extern _Atomic uint64_t weft__trim_ns;
/* Tests: rings started while set ignore the kernel's min_wait (6.12), so
 * coalesced sleeps take the two-wait road of older kernels (io/uring.c). */
WEFT_HIDDEN extern _Atomic bool weft__min_wait_off;
#define WEFT_TRIM_PASSES 64         /* scheduler passes between clock checks */

/* ---- a resumable execution context: a task or a loop's scheduler ---- */
typedef struct weft__fiber {
	weft__ctx ctx;
	const void *stack_lo; /* lowest address, for ASan */
	size_t stack_size;
#if WEFT_ASAN
	void *asan_fake;
#endif
#if WEFT_TSAN
	void *tsan_fiber;
#endif
} weft__fiber;

/* ---- waiters: how anything waits for anything ---- */
typedef struct weft__waiter {
	struct weft__waiter *next, *prev;
	weft_task *task;        /* NULL: a foreign thread, futex on `fired` */
	_Atomic uint32_t fired; /* set under the owner's lock */
} weft__waiter;

typedef struct weft__waitlist {
	weft__waiter *head, *tail;
} weft__waitlist;

/* ---- timers: one per task, in the heap or the wheel of the loop it
 * parked on (runtime/timer.c) ---- */
#define WEFT_TIMER_IDLE UINT32_MAX
#define WEFT_TIMER_WHEEL (UINT32_MAX - 1)
typedef struct weft__timer {
	uint64_t deadline;
	uint32_t idx; /* heap slot, WEFT_TIMER_WHEEL, or WEFT_TIMER_IDLE */
	struct weft_task *wprev, *wnext; /* wheel slot list */
} weft__timer;

#define WEFT_WHEEL_SLOTS 256u      /* a power of two */
#define WEFT_WHEEL_SHIFT 28        /* 2^28 ns (268 ms) per slot */

/* ---- tasks ---- */
enum { /* weft_task.state bits */
	WEFT_TS_RUNNING = 1u << 0,  /* on a CPU (or switching away) */
	WEFT_TS_NOTIFIED = 1u << 1, /* woken: queued, or will be on switch-out */
	WEFT_TS_DONE = 1u << 2,
};

enum { /* weft_task.cancel_req bits */
	WEFT_CANCEL_REQ = 1u << 0,  /* weft_task_cancel: sticky */
	WEFT_CANCEL_INTR = 1u << 1, /* weft__task_interrupt_to: one-shot */
};

enum { /* why the running task switches away */
	WEFT_SW_PARK,  /* waiting: resume when woken */
	WEFT_SW_YIELD, /* runnable: back of the queue */
	WEFT_SW_EXIT,  /* finished: free stack */
};

enum { /* stack kinds */
	WEFT_STACK_GUARDED = 1, /* own mmap with a PROT_NONE page below */
	WEFT_STACK_SLAB = 2,    /* carved from a shared slab, canary below */
	WEFT_STACK_CUSTOM = 3,  /* non-default size, guarded, not pooled */
};

/* What a parked task waits on (weft_task.wait_kind): read by task dumps
 * (weft_dump) and the event trace.  Set by the code that parks, with
 * plain stores, before it parks; never cleared on resume (a running task's
 * kind is simply ignored), so the hot paths pay a store or two. */
enum weft__wait_kind {
	WEFT_WAIT_NONE,      /* not recorded */
	WEFT_WAIT_SLEEP,     /* weft_sleep*: wait_until is the deadline */
	WEFT_WAIT_YIELD,     /* runnable, gave way */
	WEFT_WAIT_FUTURE,    /* wait_obj: the weft_future */
	WEFT_WAIT_QUEUE_GET, /* wait_obj: the weft_queue */
	WEFT_WAIT_QUEUE_PUT,
	WEFT_WAIT_LOCK,      /* wait_obj: weft_lock */
	WEFT_WAIT_EVENT,     /* wait_obj: weft_event */
	WEFT_WAIT_SEMAPHORE, /* wait_obj: weft_semaphore */
	WEFT_WAIT_CONDITION, /* wait_obj: weft_cond */
	WEFT_WAIT_JOIN,      /* wait_obj: the weft_task joined */
	WEFT_WAIT_GROUP,     /* wait_obj: the weft_group waited for */
	WEFT_WAIT_IO,        /* wait_op: enum weft__opcode, wait_fd its fd */
	WEFT_WAIT_OFFLOAD,   /* a blocking call on the pool */
	WEFT_WAIT_OTHER,
	WEFT_WAIT__COUNT
};

struct weft_task {
	weft__fiber fib;
	_Atomic uint32_t state;
	_Atomic uint32_t refs;
	_Atomic uint8_t cancel_req; /* WEFT_CANCEL_*: one load tests both */
	bool cancel_seen;   /* a suspension point returned -ECANCELED */
	bool timed_out;     /* set by the home loop when the timer fired */
	bool always_run;    /* weft_task_config.always_run */
	uint8_t stack_kind;
	uint16_t shield;
	int16_t pin;        /* -1 stealable, else the loop index */
	int budget;
	struct weft_task *next;       /* run-queue / inject / remote link */
	weft_loop *loop;              /* loop it last ran on (home while parked) */
	weft_loop *owner;             /* loop whose registry holds it */
	uint64_t woken_at;            /* a sampled wake: when (ns), else 0;
					 beside the fields every run writes */
	struct weft_task *reg_prev, *reg_next;
	struct weft_runtime *rt;
	weft_fn fn;
	void *arg;
	void *result;
	void *stack_base;
	size_t stack_size;
	weft__timer timer;
	struct weft_group *group;     /* group it belongs to, until it exits */
	struct weft_task *grp_prev, *grp_next;
	weft_scope *scope;            /* innermost deadline scope */
	uint64_t scope_deadline;      /* earliest deadline of all scopes, 0 none */
	/* what it waits on while parked (enum weft__wait_kind, above); on the
	 * cache line a park reads anyway (scope_deadline) */
	uint8_t wait_kind;
	uint8_t wait_op;              /* WEFT_WAIT_IO: enum weft__opcode */
	int32_t wait_fd;              /* WEFT_WAIT_IO: the fd, else -1 */
	const void *wait_obj;
	uint64_t wait_since;          /* when it parked (ns, about: see
					 weft__park_task) */
	uint64_t id;                  /* here too: every run records it
					 (weft_loop.started_id) */
	weft__lock lock;              /* guards waiters and join */
	uint8_t joined;               /* 0 no, 1 joining, 2 joined */
	bool cancelled_result;        /* outcome: cancelled */
	int error;                    /* outcome: could not start (-ENOMEM) */
	weft__fpenv fpenv;            /* its spawner's FP control state */
	weft__waitlist waiters;
	uint64_t wait_until;          /* WEFT_WAIT_SLEEP: deadline (ns) */
	uint64_t group_id;            /* its group's id (weft_group), 0 none */
	uint64_t group_owner;         /* the id of the task that created that
					 group, 0 a foreign thread */
	uint32_t trace_named;         /* the trace generation its name was
					 recorded in (runtime/trace.h) */
	char name[32];
};

/* Record what task t (NULL: a foreign thread, nothing to record) is about
 * to wait on: plain stores, before it parks. */
static inline void weft__wait_on(struct weft_task *t, unsigned kind, const void *obj)
{
	if (t) {
		t->wait_kind = (uint8_t)kind;
		t->wait_obj = obj;
	}
}

/* What an I/O wait records: the opcode (enum weft__opcode) and fd, and the
 * op itself as the object (io/io.h). */
static inline void weft__wait_io(struct weft_task *t, unsigned opcode, int fd, const void *op)
{
	if (!t)
		return;
	t->wait_kind = WEFT_WAIT_IO;
	t->wait_op = (uint8_t)opcode;
	t->wait_fd = fd;
	t->wait_obj = op;
}

/* ---- the per-loop stealable run queue (Tokio's local queue) ---- */
typedef struct weft__runq {
	_Atomic uint64_t head; /* steal:32 | real:32 */
	char pad0[56];
	_Atomic uint32_t tail; /* written by the owner only */
	char pad1[60];
	_Atomic(weft_task *) buf[WEFT_RUNQ_CAP];
	/* Behind the ring, in order: the owner's tasks that found it full
	 * (sched/runq.c).  Locked; thieves take from it once the ring is
	 * empty. */
	weft__lock ovf_lock;
	_Atomic uint32_t ovf_len;
	weft_task *ovf_head, *ovf_tail;
	/* Owner-only: pushes staged behind the overflow, published to it in
	 * batches (one lock per WEFT_RUNQ_STAGE pushes, not one per push). */
	weft_task *stage_head, *stage_tail;
	uint32_t stage_len;
	bool spill;            /* something may wait behind the ring */
} weft__runq;

/* Lock-free multi-producer stack, taken whole by its single consumer. */
typedef struct weft__mpsc {
	_Atomic(weft_task *) head;
} weft__mpsc;

/* Owner-only FIFO of tasks (pinned tasks, reaped tasks). */
typedef struct weft__fifo {
	weft_task *head, *tail;
	uint32_t len;
} weft__fifo;

/* ---- a stack pool: bases of free default-size stacks ---- */
typedef struct weft__stackpool {
	void **base;  /* [0] the least recently freed, [len - 1] the most */
	uint8_t *kind;
	unsigned len, cap;
	unsigned low; /* the fewest held since the last trim */
} weft__stackpool;

/* ---- the epoll backend's per-loop state (io/epoll.c), owner-only ---- */
typedef struct weft__epreg weft__epreg;
typedef struct weft__ep {
	int epfd;
	weft__epreg *regs;          /* indexed by fd */
	unsigned nregs;
	struct weft__op *ready_head, *ready_tail; /* callback ops to try */
} weft__ep;

/* ---- observability (runtime/observe.c, docs/observability.md) ----
 * Counters the metrics add to weft_loop_stats, written by the loop that
 * owns them with plain (relaxed atomic) stores and read racily by
 * weft_metrics_write.  A build with -DWEFT_NO_OBSERVE compiles them, the
 * wake sampling and the stall watchdog out (the overhead benchmark's
 * baseline: bench/observe.c). */
#define WEFT_OBS_NOPS 24         /* > every enum weft__opcode (io/io.h) */
#define WEFT_OBS_HIST 12         /* wake-to-run buckets: 1 us * 4^i, +Inf */
#define WEFT_OBS_WAKE_SAMPLE 255u /* one wake in 256 is timed */
typedef struct weft__obs {
	uint64_t passes;         /* scheduler passes (sched_run rounds) */
	uint64_t tasks_finished;
	uint64_t wakes_local;    /* a task woken by its own loop */
	uint64_t wakes_cross;    /* sent to another loop's task */
	uint64_t wakes_remote;   /* received from other loops and threads */
	uint64_t spins;          /* idle spells (spin, then perhaps park) */
	uint64_t idle_ns;        /* time in those spells, once ended */
	uint64_t idle_since;     /* start of the current spell, 0: none */
	uint64_t timers_armed;
	uint64_t subs[WEFT_OBS_NOPS];  /* operations started, by opcode */
	uint64_t comps[WEFT_OBS_NOPS]; /* operations ended, by opcode */
	uint64_t wake_hist[WEFT_OBS_HIST]; /* sampled wake-to-run delays */
	uint64_t wake_sum_ns;
	uint32_t wake_sample;    /* owner-only: wakes since the last timed one */
} weft__obs;

/* The stall watchdog's per-loop state (runtime/observe.c). */
#define WEFT_STALL_FRAMES 48
#define WEFT_STALL_HIST 8        /* 0.1, 0.25, 0.5, 1, 2.5, 5, 10 s, +Inf */
typedef struct weft__stall {
	/* the watchdog's own */
	uint32_t seen_tick;      /* l->tick when it last looked */
	uint64_t seen_at;        /* when that tick was first seen */
	uint64_t seen_cpu;       /* the loop thread's CPU time then */
	bool episode;            /* this tick's stall is counted already */
	uint64_t last_report;    /* when a report was last printed */
	uint64_t suppressed;     /* reports rate-limited since then */
	/* read by weft_metrics_write: relaxed atomics */
	uint64_t stalls;         /* stalls seen (reported or not) */
	uint64_t hist[WEFT_STALL_HIST]; /* their lengths, when they ended */
	uint64_t sum_ns;
	/* written by the signal handler on the loop's own thread, read by
	 * the watchdog after `ready` (release/acquire) */
	_Atomic uint32_t ready;
	int nframes;
	uint64_t task_id;
	char name[32];
	void *frames[WEFT_STALL_FRAMES];
} weft__stall;

#ifdef WEFT_NO_OBSERVE
#define WEFT_OBS_ADD(l, field, n) ((void)(l), (void)(n))
#define WEFT_OBS_SET(l, field, v) ((void)(l), (void)(v))
#else
#define WEFT_OBS_ADD(l, field, n) \
	__atomic_store_n(&(l)->obs.field, (l)->obs.field + (n), __ATOMIC_RELAXED)
#define WEFT_OBS_SET(l, field, v) __atomic_store_n(&(l)->obs.field, (v), __ATOMIC_RELAXED)
#endif

/* ---- one event loop ---- */
struct weft_loop {
	/* owner-only hot fields */
	weft_task *current;      /* running task, NULL in the scheduler */
	uint64_t started_id;     /* id of the task it last started: relaxed
				    atomic, read by a dump that found the
				    loop stuck (runtime/dump.c) */
	uint64_t now_hint;       /* the clock at the last scheduler pass: a
				    parked task's "since" (weft__park_task) */
	weft_task *lifo;         /* LIFO slot (not stealable) */
	unsigned lifo_streak;
	uint32_t tick;
	uint32_t maint_countdown; /* ticks until the next scheduler pass */
	bool maint_due;
	bool trace_on;           /* recording (runtime/trace.h): one test per event */
	weft_task *prev;         /* task that switched away, to publish */
	int prev_action;         /* WEFT_SW_* */
	weft__fiber sched;       /* the loop's own (thread) stack */
	weft__fifo pinned;       /* runnable pinned/bound tasks */
	weft__runq *rq;
	struct weft_runtime *rt;
	unsigned index;
	uint32_t rng;
	bool searching;
	bool shutdown_seen;
	uint32_t credits;        /* live-count units reserved from rt->live */
	uint64_t id_next, id_end; /* block of task ids reserved from rt->next_id */

	/* timers (owner-only): deadlines within two wheel slots in the heap,
	 * later ones in the wheel until their slot comes up */
	weft_task **heap;
	uint32_t heap_len, heap_cap;
	uint32_t wheel_len;      /* timers in the wheel */
	uint64_t wheel_cursor;   /* absolute slot (ns >> SHIFT) not yet moved */
	uint64_t wheel_bits[WEFT_WHEEL_SLOTS / 64]; /* non-empty slots */
	weft_task *wheel[WEFT_WHEEL_SLOTS];

	/* registry of tasks first run here (owner-only) */
	weft_task *reg_head;
	weft__mpsc reaped;       /* tasks that finished on another loop */

	/* cross-thread */
	weft__mpsc remote;       /* tasks woken from other threads */
	char pad0[64];
	_Atomic int parked;      /* 1: said it is going to sleep */
	char pad1[60];

	/* the I/O backend (owner-only except ring_fd/efd, read by wakers) */
	uint8_t backend;         /* WEFT_BACKEND_IO_URING or _EPOLL */
	weft__ep ep;             /* epoll */
	struct io_uring ring;    /* io_uring */
	int ring_fd;             /* real fd, for MSG_RING from other loops */
	int efd;                 /* eventfd for wakes (foreign threads; every
				    waker on epoll) */
	uint64_t efd_buf;
	unsigned inflight;       /* ops whose final result we still expect */
	/* io_uring: submissions that found no SQE (the SQ full and the kernel
	 * refusing to take it), prepared before the loop next submits; never
	 * dropped (io/uring.c, "the backlog") */
	struct weft__op *ubl_head, *ubl_tail;
	bool efd_rearm;          /* the eventfd read waits in the backlog */
	bool taskrun_flag;       /* the ring has IORING_SETUP_TASKRUN_FLAG */
	unsigned sqe_fail;       /* fault injection for tests: the next N SQE
				    requests find none, as if the SQ were
				    full and its flush refused */
	unsigned features;       /* WEFT_RING_* (0 on epoll) */
	struct weft__bufring *bufring; /* provided buffers (io/bufring.c), lazy */
	bool bufring_failed;     /* registration failed: do not retry */
	bool recv_nolimit;       /* multishot receives without a byte limit
				    (the kernel refused one: before 6.17) */
	int init_err;

	/* the event trace (runtime/trace.c): the ring, owner-only while
	 * trace_on; trace_gen is the runtime's generation last applied,
	 * trace_ack publishes it (release) to whoever waits for the switch */
	struct weft__tev *tr_ev;
	uint64_t tr_head;        /* events ever recorded into tr_ev */
	uint64_t tr_mask;
	uint32_t trace_gen;
	_Atomic uint32_t trace_ack;

	weft__stackpool stacks;
	weft__objcache task_cache;   /* dead task structs (owner-only) */
	weft__objcache future_cache; /* dead futures (owner-only) */
	weft__objcache wbuf_cache;   /* streams' 1 KiB write buffers (owner-only) */
	weft__objcache wsend_cache;  /* streams' send ops (owner-only) */
	weft__objcache wresv_cache;  /* streams' reservation records (owner-only) */
	weft__objcache rxbuf_cache;  /* 4 KiB receive buffers (io/bufring.c;
					owner-only) */
	uint64_t trim_at;            /* next trim of the caches (owner-only) */
	unsigned trim_passes;        /* scheduler passes since the last check */
	pthread_t thread;
	pid_t tid;               /* its thread's id, for the watchdog */
	clockid_t cpu_clock;     /* its thread's CPU-time clock */
	void *altstack;          /* the signal stack weft gave its thread */
	weft_loop_stats st;      /* written by the owner, read racily */
	weft__obs obs;           /* the metrics' counters (owner-written) */
	weft__stall stall;       /* the watchdog's (runtime/observe.c) */
	struct weft__dump_part *_Atomic dumps; /* dump requests to answer
						  (runtime/dump.c) */
};

/* ---- the runtime ---- */
struct weft_runtime {
	weft_runtime_config cfg;
	unsigned nloops;
	weft_loop **loops;
	_Atomic int state;       /* 0 starting, 1 running, 2 shutting down, 3 stopped */
	/* Tasks not yet finished, plus the credits loops hold (a loop reserves
	 * a batch at a time, so spawning and exiting rarely touch this line);
	 * 0 only when no task is live. */
	_Atomic uint64_t live;
	_Atomic uint64_t spawned;
	_Atomic uint64_t next_id;
	_Atomic int stop;        /* loops exit their scheduler */
	/* Foreign threads between recording a wake and making it: once the
	 * waiter is fired it may finish and the runtime be shut down, so
	 * shutdown waits for this to reach 0 before closing the loops'
	 * eventfds (weft__wakes). */
	_Atomic uint32_t foreign_wakes;
	size_t page;

	/* global inject queue (Tokio): tasks spawned by foreign threads */
	weft__lock inject_lock;
	weft_task *inject_head, *inject_tail;
	_Atomic uint32_t inject_len;

	/* idle coordination */
	weft__lock idle_lock;
	_Atomic uint32_t num_searching;
	_Atomic uint32_t num_unparked;
	unsigned *sleepers;
	unsigned nsleepers;

	/* stacks shared by all loops */
	weft__lock stack_lock;
	_Atomic uint64_t guarded_live, slab_live;
	unsigned guarded_max;
	void **slab_free;        /* free slab stacks */
	size_t slab_free_len, slab_free_cap;
	void **slabs;            /* every slab mapping, unmapped at destroy */
	size_t nslabs, slabs_cap;

	/* the event trace (runtime/trace.c): odd while recording; each
	 * loop applies a change at its next scheduler pass */
	_Atomic uint32_t trace_gen;
	_Atomic int trace_busy;  /* a start, stop or write under way */
	_Atomic uint64_t trace_foreign; /* events of non-loop threads, dropped */
	struct weft__trace *trace; /* the rings, NULL before the first start */
	char *trace_env;         /* WEFT_TRACE: write the trace there at shutdown */

	weft__pool *pool;        /* blocking offload threads (runtime/offload.c) */
	cpu_set_t cpus;          /* the starting thread's affinity mask: what
				    pinned loops share out, and what threads and
				    processes they create get (runtime/cpu.c) */

	/* the I/O backend, chosen once at start (io/backend.c) */
	unsigned backend;        /* WEFT_BACKEND_IO_URING or _EPOLL */
	char backend_reason[160];

	/* observability (runtime/observe.c) */
	struct weft__watchdog *watchdog; /* NULL: the stall detector is off */
	_Atomic uint64_t wakes_foreign;  /* wakes made by foreign threads */
	uint64_t started_ns;             /* weft_now_ns() at start */

	/* start-up barrier */
	pthread_mutex_t start_mu;
	pthread_mutex_t shutdown_mu;
	pthread_cond_t start_cv;
	unsigned started;
	bool destroyed;
	struct weft__dumpsig *dumpsig; /* cfg.dump_signal's (runtime/dump.c) */
	struct weft_runtime *next_rt;  /* on weft__runtimes, for debuggers */
};

/* ---- TLS-safe accessors: out of line, never cached ----
 * (docs/architecture.md rule 2) */
WEFT_HIDDEN weft_loop *weft__loop_self(void);
WEFT_HIDDEN void weft__loop_set_self(weft_loop *l);
WEFT_HIDDEN weft_task *weft__task_self(void);

/* ---- runtime/fiber.c ---- */
WEFT_HIDDEN void weft__fiber_init_thread(weft__fiber *f);
WEFT_HIDDEN void weft__fiber_init_task(weft__fiber *f, void *stack_lo, size_t size,
				       void (*entry)(void *), void *arg, const weft__fpenv *fp);
WEFT_HIDDEN void weft__fiber_destroy(weft__fiber *f);

#include "fiber.h"

/* ---- runtime/stack.c ---- */
WEFT_HIDDEN int weft__stack_get(weft_runtime *rt, weft_loop *l, weft_task *t, size_t size);
WEFT_HIDDEN void weft__stack_put(weft_loop *l, weft_task *t);
WEFT_HIDDEN void weft__stack_check(const weft_task *t);
WEFT_HIDDEN void weft__stackpool_drain(weft_runtime *rt, weft__stackpool *p);
WEFT_HIDDEN void weft__stackpool_trim(weft_runtime *rt, weft__stackpool *p);
WEFT_HIDDEN void weft__stacks_destroy(weft_runtime *rt);
WEFT_HIDDEN unsigned weft__stack_guarded_default(void);

/* ---- runtime/timer.c (owner-only) ---- */
WEFT_HIDDEN int weft__timer_arm(weft_loop *l, weft_task *t, uint64_t deadline, uint64_t now);
WEFT_HIDDEN void weft__timer_disarm(weft_loop *l, weft_task *t);
WEFT_HIDDEN uint64_t weft__timer_next(const weft_loop *l); /* 0: none */
static inline bool weft__timer_any(const weft_loop *l)
{
	return l->heap_len || l->wheel_len;
}
WEFT_HIDDEN unsigned weft__timer_fire(weft_loop *l, uint64_t now);

/* ---- runtime/wait.c ---- */
WEFT_HIDDEN int weft__park_task(weft_task *t, uint64_t deadline);
WEFT_HIDDEN int weft__wait_locked(weft_task *t, weft__lock *lk, weft__waitlist *wl,
				  weft__waiter *w, uint64_t deadline);
/* Wakes made under a spinlock record here the system calls they need
 * (sleeping loops to wake), made by weft__wakes_flush after the lock is
 * released: no system call inside a critical section. */
#define WEFT_WAKES_MAX 4
typedef struct weft__wakes {
	weft_loop *loop[WEFT_WAKES_MAX]; /* home loops of remotely woken tasks */
	unsigned n;
	weft_runtime *all;    /* more than WEFT_WAKES_MAX homes: wake them all */
	weft_runtime *notify; /* a task became stealable: maybe wake an idle loop */
	weft_runtime *held;   /* a foreign thread's wakes: rt->foreign_wakes held */
} weft__wakes;
#define WEFT_WAKES_INIT { .n = 0 }
WEFT_HIDDEN void weft__task_wake_to(weft_task *t, weft__wakes *wk);
WEFT_HIDDEN void weft__wakes_flush_slow(weft__wakes *wk);
/* Make the wakes recorded in wk (usually none: one test inline). */
static inline void weft__wakes_flush(weft__wakes *wk)
{
	if (unlikely(wk->n || wk->all || wk->notify || wk->held))
		weft__wakes_flush_slow(wk);
}
WEFT_HIDDEN int weft__task_cancel_to(weft_task *t, weft__wakes *wk);
/* A one-shot cancellation for the owner of an object the task waits on:
 * the task's current (or next) unshielded park returns -EINTR, and keeps
 * doing so until the task clears it (weft__task_interrupt_clear).  The object's code must set it
 * only while the task waits on that object (under the object's lock) and
 * clear it under the same lock when the wait ends, so no other wait sees
 * it.  Wakes recorded in wk. */
WEFT_HIDDEN void weft__task_interrupt_to(weft_task *t, weft__wakes *wk);
static inline void weft__task_interrupt_clear(weft_task *t)
{
	atomic_fetch_and_explicit(&t->cancel_req, (uint8_t)~WEFT_CANCEL_INTR, memory_order_relaxed);
}

/* Release lk, then make the wakes recorded under it. */
static inline void weft__unlock_wake(weft__lock *lk, weft__wakes *wk)
{
	weft__lock_release(lk);
	weft__wakes_flush(wk);
}
WEFT_HIDDEN int weft__wait_locked_wake(weft_task *t, weft__lock *lk, weft__waitlist *wl,
				       weft__waiter *w, uint64_t deadline, weft__wakes *wk);
WEFT_HIDDEN void weft__waitlist_fire_all(weft__waitlist *wl, weft__wakes *wk);
WEFT_HIDDEN bool weft__waitlist_fire_one(weft__waitlist *wl, weft__wakes *wk);
WEFT_HIDDEN void weft__waitlist_append(weft__waitlist *wl, weft__waiter *w);
WEFT_HIDDEN void weft__waitlist_remove(weft__waitlist *wl, weft__waiter *w);
WEFT_HIDDEN int weft__task_take_result(weft_task *t, void **result);
WEFT_HIDDEN bool weft__task_failed(const weft_task *t);
WEFT_HIDDEN int weft__cancel_check(weft_task *t);
WEFT_HIDDEN int weft__checkpoint(weft_task *t);
WEFT_HIDDEN uint64_t weft__uninterruptible_begin(weft_task *t);
/* Whether a deadline scope around task t (NULL: none) has expired: tells a
 * wait's -ETIMEDOUT that is the caller's from one of the wait's own limit. */
WEFT_HIDDEN bool weft__scope_expired(weft_task *t);
WEFT_HIDDEN void weft__uninterruptible_end(weft_task *t, uint64_t saved);
WEFT_HIDDEN void weft__budget_spend(weft_task *t);
WEFT_HIDDEN uint64_t weft__deadline_after(uint64_t timeout_ns);

/*
 * Timeouts (weft.h, "Timeouts and deadlines").  Every clock value plus a
 * timeout goes through weft__deadline_add: saturating, so WEFT_FOREVER or
 * any huge timeout gives WEFT_FOREVER ("no deadline") instead of wrapping
 * into the past.  Public deadlines use WEFT_FOREVER for "none" and 0 for
 * "expired"; the internal waits (park, futex, wait_locked, scope_deadline)
 * read 0 as "none", so a public deadline enters them through
 * weft__deadline_in, and weft__deadline_after(timeout_ns) gives the
 * internal deadline timeout_ns from now (0 stays "expired": now >= 1).
 */
static inline uint64_t weft__deadline_add(uint64_t now, uint64_t timeout_ns)
{
	return timeout_ns >= WEFT_FOREVER - now ? WEFT_FOREVER : now + timeout_ns;
}

static inline uint64_t weft__deadline_in(uint64_t deadline_ns)
{
	return deadline_ns == WEFT_FOREVER ? 0 : deadline_ns ? deadline_ns : 1;
}

/* ---- runtime/task.c ---- */
/* weft_sleep_until for the calling task t (a public deadline:
 * WEFT_FOREVER none, one already past only yields). */
WEFT_HIDDEN int weft__sleep_until(weft_task *t, uint64_t deadline_ns);
WEFT_HIDDEN int weft__task_spawn(weft_runtime *rt, weft_loop *from, weft_task **out,
				 const weft_task_config *cfg, weft_fn fn, void *arg,
				 struct weft_group *group);

/* ---- runtime/future.c ---- */
/* weft_future_wait, recorded as a wait of that kind (enum weft__wait_kind). */
WEFT_HIDDEN int weft__future_wait_as(weft_future *f, void **value, unsigned kind);

/* ---- runtime/group.c ---- */
WEFT_HIDDEN int weft__group_link(struct weft_group *g, weft_task *t);
/* The id and creator of g (weft_task_id, 0: a foreign thread), for dumps. */
WEFT_HIDDEN uint64_t weft__group_id(const struct weft_group *g, uint64_t *owner);
WEFT_HIDDEN void weft__group_child_exit(weft_task *t);
WEFT_HIDDEN void weft__task_entry(void *arg);
WEFT_HIDDEN void weft__task_unref(weft_task *t);
WEFT_HIDDEN void weft__task_free(weft_task *t);


/* ---- sched/sched.c ---- */
WEFT_HIDDEN void *weft__loop_main(void *arg);
WEFT_HIDDEN void weft__task_wake(weft_task *t);
WEFT_HIDDEN bool weft__loop_has_ready(const weft_loop *l);
WEFT_HIDDEN void weft__switch_out(int action);
WEFT_HIDDEN void weft__switch_out_from(weft_loop *l, weft_task *t, int action);
WEFT_HIDDEN void weft__after_switch(weft_loop *l);
WEFT_HIDDEN void weft__schedule_new(weft_runtime *rt, weft_loop *from, weft_task *t);
WEFT_HIDDEN void weft__registry_remove(weft_loop *l, weft_task *t);
WEFT_HIDDEN int weft__live_inc(weft_runtime *rt, weft_loop *l);
WEFT_HIDDEN void weft__live_dec(weft_runtime *rt, weft_loop *l);
WEFT_HIDDEN void weft__live_drain(weft_runtime *rt, weft_loop *l);
WEFT_HIDDEN uint64_t weft__task_id_next(weft_runtime *rt, weft_loop *l);
WEFT_HIDDEN void weft__wake_all_loops(weft_runtime *rt);



/* ---- sched/runq.c ---- */
WEFT_HIDDEN void weft__runq_init(weft__runq *q);
WEFT_HIDDEN weft_task *weft__runq_steal(weft__runq *src, weft__runq *dst, unsigned *stolen);
WEFT_HIDDEN void weft__runq_push_slow(weft__runq *q, weft_task *t);
WEFT_HIDDEN weft_task *weft__runq_pop_slow(weft__runq *q);
WEFT_HIDDEN void weft__runq_flush(weft__runq *q);
WEFT_HIDDEN void weft__inject_push(weft_runtime *rt, weft_task *t);
WEFT_HIDDEN void weft__inject_push_batch(weft_runtime *rt, weft_task *head, weft_task *tail,
					 uint32_t n);
WEFT_HIDDEN weft_task *weft__inject_pop(weft_runtime *rt);
WEFT_HIDDEN weft_task *weft__inject_pop_batch(weft_runtime *rt, weft__runq *q);
WEFT_HIDDEN void weft__mpsc_push(weft__mpsc *s, weft_task *t);
WEFT_HIDDEN weft_task *weft__mpsc_take_fifo(weft__mpsc *s);
#include "../sched/runq.h"
#include "trace.h"

/* ---- runtime/dump.c ---- */
/* Answer the dump requests waiting in l->dumps (l's own thread, in its
 * scheduler: no task of l runs). */
WEFT_HIDDEN void weft__dump_serve(weft_loop *l);
/* The same, once l has left its scheduler; later requests get an empty
 * answer at once. */
WEFT_HIDDEN void weft__dump_close(weft_loop *l);
/* Names of enum weft__wait_kind and enum weft__opcode values. */
WEFT_HIDDEN const char *weft__wait_kind_name(unsigned kind);
WEFT_HIDDEN const char *weft__opcode_name(unsigned opcode);
WEFT_HIDDEN int weft__dump_signal_start(weft_runtime *rt);
WEFT_HIDDEN void weft__dump_signal_stop(weft_runtime *rt);
/* sched/sched.c: for a dump, hold parked task t still (its stack and
 * registers unchanged) while it is read; false if t is not parked. */
WEFT_HIDDEN bool weft__task_hold(weft_task *t);
WEFT_HIDDEN void weft__task_unhold(weft_task *t);

/* ---- io/backend.c: choose the backend at start, with a diagnosis ---- */
WEFT_HIDDEN int weft__backend_choose(weft_runtime *rt);

/* ---- io/op.c: the loop's side of the I/O seam, dispatched to the
 * runtime's backend (io/uring.c, io/epoll.c) ---- */
WEFT_HIDDEN int weft__io_init(weft_loop *l);   /* on l's own thread */
WEFT_HIDDEN void weft__io_exit(weft_loop *l);  /* after l's thread ended */
/* Submit what is queued, dispatch what finished; with `block`, sleep until
 * something happens or `deadline` (0: none). */
WEFT_HIDDEN void weft__io_poll(weft_loop *l, bool block, uint64_t deadline);
WEFT_HIDDEN void weft__io_wake(weft_loop *target); /* any thread */
/* About once a second, on l's own thread: the backend's pools give back
 * what they did not need since the last time (sched/sched.c, trim_caches). */
WEFT_HIDDEN void weft__io_trim(weft_loop *l);
/* Whether weft__io_trim has something to give back now (l's thread). */
WEFT_HIDDEN bool weft__io_trim_due(weft_loop *l);
WEFT_HIDDEN int weft__ring_init(weft_loop *l);
WEFT_HIDDEN void weft__ring_exit(weft_loop *l);
WEFT_HIDDEN void weft__ring_poll(weft_loop *l, bool block, uint64_t deadline);
WEFT_HIDDEN void weft__ring_wake(weft_loop *target);
WEFT_HIDDEN int weft__ep_init(weft_loop *l);
WEFT_HIDDEN void weft__ep_exit(weft_loop *l);
WEFT_HIDDEN void weft__ep_poll(weft_loop *l, bool block, uint64_t deadline);
WEFT_HIDDEN void weft__ep_wake(weft_loop *target);

/* ---- io/signal.c: SIGPIPE ignored while any runtime runs (if it was
 * the default), the default back when the last one stops ---- */
WEFT_HIDDEN void weft__sigpipe_hold(void);
WEFT_HIDDEN void weft__sigpipe_release(void);
#if WEFT_TSAN
/* The TSan build: block the watched signals on this loop thread, which
 * runs fibers (io/signal.c says why); each scheduler pass calls it. */
WEFT_HIDDEN void weft__signal_route(void);
#endif

/* ---- runtime/cpu.c ---- */
/* The CPU limit a cgroup quota sets for this process (cgroup v2 cpu.max,
 * v1 cpu.cfs_quota_us / cfs_period_us, the own cgroup's and its
 * ancestors'), ceil(quota / period); 0 when none.  Files are read under
 * `root` ("" for the real ones; tests pass a directory of fixtures). */
WEFT_HIDDEN unsigned weft__cgroup_cpu_limit(const char *root);
/* weft_cpu_count with the cgroup files under `root`. */
WEFT_HIDDEN unsigned weft__cpu_count_at(const char *root);
/* Remember the calling thread's affinity mask as rt->cpus. */
WEFT_HIDDEN void weft__cpu_save(weft_runtime *rt);
/* Pin the calling thread, loop l's, to the (l->index mod n)-th of the n
 * CPUs of rt->cpus. */
WEFT_HIDDEN void weft__cpu_pin(weft_loop *l);
/* Around creating a thread or a process, which inherit the creator's
 * mask: on a pinned loop, the thread gets rt->cpus until
 * weft__cpu_unpin_end(what begin returned) pins it back.  Elsewhere, and
 * without pin_cpus, both do nothing (begin returns NULL). */
WEFT_HIDDEN weft_loop *weft__cpu_unpin_begin(void);
WEFT_HIDDEN void weft__cpu_unpin_end(weft_loop *l);

/* ---- runtime/offload.c ---- */
/* A condition variable whose timed waits take CLOCK_MONOTONIC times. */
WEFT_HIDDEN void weft__cond_init_monotonic(pthread_cond_t *cv);
WEFT_HIDDEN int weft__pool_create(weft_runtime *rt);
WEFT_HIDDEN void weft__pool_stop(weft_runtime *rt);
WEFT_HIDDEN void weft__pool_destroy(weft_runtime *rt);
WEFT_HIDDEN void weft__pool_stats(weft_runtime *rt, uint64_t *threads, uint64_t *calls);
/* Threads alive, idle, and calls queued for a thread (a snapshot). */
WEFT_HIDDEN void weft__pool_depth(weft_runtime *rt, uint64_t *threads, uint64_t *idle,
				  uint64_t *queued);

/* ---- runtime/observe.c ---- */
/* Start the stall watchdog (a no-op when cfg.stall_threshold_ns is 0 or
 * WEFT_FOREVER, or in a WEFT_NO_OBSERVE build); stop it before the loops
 * are joined. */
WEFT_HIDDEN int weft__watchdog_start(weft_runtime *rt);
WEFT_HIDDEN void weft__watchdog_stop(weft_runtime *rt);
/* On loop l's thread, before it runs tasks, and as it ends. */
WEFT_HIDDEN void weft__observe_loop_init(weft_loop *l);
WEFT_HIDDEN void weft__observe_loop_exit(weft_loop *l);
/* A wake-to-run delay (ns) into the running loop's histogram. */
WEFT_HIDDEN void weft__obs_wake_delay(weft_loop *l, uint64_t ns);

/* ---- runtime/futex.c ---- */
WEFT_HIDDEN int weft__futex_wait(_Atomic uint32_t *addr, uint32_t val, uint64_t deadline);
WEFT_HIDDEN void weft__futex_wake(_Atomic uint32_t *addr, int n);

/* Owner-written counters read racily by weft_runtime_stats_get. */
#define WEFT_STAT_ADD(l, field, n) \
	__atomic_store_n(&(l)->st.field, (l)->st.field + (n), __ATOMIC_RELAXED)

static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield" ::: "memory");
#endif
}

#endif
