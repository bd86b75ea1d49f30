/*
 * weft — Python asyncio's model in C, spread across every core.
 *
 * One event loop per thread, each with its own io_uring; tasks are stackful
 * coroutines that loops steal from each other; futures work across loops and
 * from foreign threads.
 *
 * Conventions (apply to every function below unless it says otherwise):
 *  - Functions returning int return >= 0 on success and -errno on failure.
 *    errno is never used to report an error.
 *  - "Suspension point": a call that may suspend the calling task.  At every
 *    suspension point a cancelled task gets -ECANCELED (see weft_task_cancel)
 *    unless it is inside a shielded section (weft_shield_begin), and a task
 *    whose deadline scope has expired gets -ETIMEDOUT (weft_scope_enter);
 *    these two returns are not repeated in every function's list below.
 *    Nor is a third, rare one: a suspension point with a time limit (its
 *    own timeout, or a scope's deadline) returns -ENOMEM, having waited
 *    for nothing, when its loop cannot grow its timer heap for it (the
 *    heap doubles from 1024 timers, so only under memory exhaustion).
 *  - "Task context": code running inside a weft task.  Suspension points
 *    called outside a task return -EPERM, except where a function documents
 *    that a foreign (non-weft) thread blocks instead.
 *  - Thread safety: every function may be called from any thread unless its
 *    comment restricts it.
 *  - Handles (weft_task *, weft_future *) are reference-counted: a caller
 *    must own a reference for the whole of any call it passes the handle to
 *    (completing a future may let a waiter release the last other one).
 *  - Linking: libweft.a into programs; libweft_pic.a into a shared object
 *    that is dlopen'ed (a Python extension, a plugin), where libweft.a's
 *    initial-exec thread-local can fail to load (README, "In a shared
 *    object").  Same API, same behaviour.
 *  - Compiling: these headers need C11 (or gnu11, or C++), no feature-test
 *    macro and no -pthread (-std=c11 -pedantic is tested, tests/test_build.c);
 *    pkg-config's Cflags still add -pthread, which older C libraries need
 *    for linking threaded code.
 *  - Timeouts and deadlines, in arguments and config fields alike: one rule,
 *    the section "Timeouts and deadlines" below (WEFT_FOREVER: no limit;
 *    0: no time at all).
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_API __attribute__((visibility("default")))

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Timeouts and deadlines                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The one rule for every timeout and deadline of weft's API: arguments,
 * config fields and every header below (their comments refer here).
 *
 *  - A duration -- a `timeout_ns` argument, a `*_timeout_ns` config field,
 *    a grace period -- is in nanoseconds, counted from when the wait
 *    starts.  WEFT_FOREVER means no limit.  0 means no time at all: the call
 *    does whatever it can without suspending (takes an item already queued,
 *    a result already there, bytes already buffered) and otherwise returns
 *    -ETIMEDOUT.  Any other value is a limit, however large: the end is
 *    computed saturating, so a huge timeout never wraps round into the past
 *    (one that would end beyond the clock's range is no limit at all).
 *  - An absolute deadline -- a `deadline_ns` argument (weft_scope_enter_at,
 *    weft_stream_read_deadline) -- is a weft_now_ns() time.  WEFT_FOREVER
 *    means no deadline; a deadline in the past, 0 included, has already
 *    expired.
 *  - The `_timeout` variant of a call is the base call with
 *    `uint64_t timeout_ns` appended as its last argument:
 *    weft_task_join(t, &result) and weft_task_join_timeout(t, &result,
 *    timeout_ns); the base call waits as the variant does with WEFT_FOREVER.
 *  - A call's own timeout adds to the caller's deadline scopes
 *    (weft_scope_enter): whichever ends first makes it return -ETIMEDOUT.
 *    Calls with no timeout argument (locks, events, gather, I/O, process
 *    waits, ...) get one from a scope around them.
 *  - Python: asyncio's `timeout=None` is WEFT_FOREVER, `timeout=0` is 0.
 */
#define WEFT_FOREVER UINT64_MAX

/* A task body: receives the argument given to spawn, returns the task's
 * result (handed to whoever joins it; weft never dereferences it). */
typedef void *(*weft_fn)(void *arg);

typedef struct weft_runtime weft_runtime;
typedef struct weft_task weft_task;
typedef struct weft_future weft_future;

/* ------------------------------------------------------------------------ */
/* Runtime (asyncio.run, loop lifecycle)                                     */
/* ------------------------------------------------------------------------ */

/* Stack guard policy (weft_runtime_config.stack_guard). */
enum {
	/* Guard page below every stack while fewer than `guarded_stacks_max`
	 * guarded stacks are live; past that, stacks come from guard-less
	 * slabs checked by a canary (see docs/architecture.md, "Stacks"). */
	WEFT_GUARD_AUTO = 0,
	WEFT_GUARD_ALWAYS = 1, /* every stack guarded: caps live tasks near
				  vm.max_map_count / 2 (spawn fails -ENOMEM) */
	WEFT_GUARD_NEVER = 2,  /* slabs with canaries only: least memory */
};

/* The I/O backend (weft_runtime_config.backend; the WEFT_BACKEND
 * environment variable, "auto", "io_uring" or "epoll", overrides it at
 * start).  Both run every call of this header with the same meaning; see
 * docs/backends.md for what each costs and how the choice is diagnosed. */
enum {
	WEFT_BACKEND_AUTO = 0,     /* io_uring where it is usable, else epoll
				      (one line on stderr says why, unless
				      backend_quiet) */
	WEFT_BACKEND_IO_URING = 1, /* io_uring or fail: start returns the
				      probe's error and stderr says why */
	WEFT_BACKEND_EPOLL = 2,    /* epoll, even where io_uring works */
};

/* Ring set-up (weft_runtime_config.ring_mode). */
enum {
	WEFT_RING_MODE_AUTO = 0,  /* DEFER_TASKRUN, else COOP, else plain */
	WEFT_RING_MODE_COOP = 1,  /* COOP_TASKRUN|TASKRUN_FLAG, else plain */
	WEFT_RING_MODE_PLAIN = 2, /* no task-run flags */
};

struct weft_stall_report; /* weft/observe.h */

typedef struct weft_runtime_config {
	unsigned loops;          /* event loops (threads); 0 = weft_cpu_count()
				    (at most 1024) */
	bool pin_cpus;           /* pin loop i to the (i mod n)-th of the n
				    CPUs in the affinity mask of the thread
				    that starts the runtime (taskset's CPUs,
				    not CPU i); the threads (blocking pool,
				    the signal/reaper helper) and child
				    processes a pinned loop starts get that
				    whole mask, not the loop's one CPU */
	size_t stack_size;       /* default task stack, bytes (64 KiB) */
	unsigned ring_entries;   /* io_uring SQ entries per loop (256) */
	unsigned ring_cq_entries; /* CQ entries per loop (16 x ring_entries,
				     at least 4096): completions beyond it
				     wait in the kernel's overflow list */
	unsigned spin_us;        /* idle spin before a loop sleeps (50 us) */
	unsigned stack_guard;    /* WEFT_GUARD_* (AUTO) */
	unsigned guarded_stacks_max; /* AUTO's guarded-stack limit; 0 = derive
				      from vm.max_map_count */
	unsigned stack_pool_max; /* stacks cached per loop (256) */
	unsigned offload_threads; /* blocking-pool threads at most (64) */
	unsigned offload_idle_ms; /* an idle pool thread exits after (10000) */
	unsigned ring_mode;      /* WEFT_RING_MODE_*: AUTO picks the best
				    the kernel has; the others force a
				    fallback (for tests and comparisons) */
	unsigned backend;        /* WEFT_BACKEND_* (AUTO) */
	bool backend_quiet;      /* AUTO falls back to epoll without the
				    line on stderr (the reason stays in
				    weft_runtime_stats) */
	/* Stall detector (weft/observe.h, docs/observability.md). */
	uint64_t stall_threshold_ns; /* report a loop that runs one task this
					long without switching (100 ms); 0
					or WEFT_FOREVER: no detector (not a
					timeout: 0 does not mean "at once") */
	uint64_t stall_report_interval_ns; /* at least this long between two
					      reports of one loop (15 s: 4 a
					      minute); stalls in between are
					      counted in the next report */
	void (*stall_fn)(const struct weft_stall_report *r, void *arg);
				 /* NULL: weft_stall_report_print to stderr */
	void *stall_arg;         /* passed to stall_fn */
	int dump_signal;         /* 0: off; else this signal (e.g. SIGUSR1)
				    writes a task dump (weft/dump.h) */
	const char *dump_path;   /* where: appended to this file (created
				    0644), "/dev/fd/N" for an fd of the
				    program's; NULL: stderr */
	/* Wake coalescing: a loop about to sleep with I/O in flight waits
	 * until coalesce_events completions are ready or coalesce_us have
	 * passed, whichever comes first (if none came by then, until the
	 * first); a timer due sooner still ends the sleep on time.  Fewer,
	 * fuller wakeups: less CPU per completion for a loop that sleeps
	 * often (a load generator, a proxy), bought with up to coalesce_us
	 * of added latency on a completion or a cross-loop wake that finds
	 * the loop asleep.  A loop that always has work never sleeps and
	 * never waits.  io_uring does it in one enter on 6.12+ (min_wait),
	 * in two before; epoll, which has no batch wait, sleeps coalesce_us
	 * and then takes what is ready.  The start checks both fields
	 * (weft_runtime_start's -EINVAL).  docs/architecture.md, "Wake
	 * coalescing"; what it saves: docs/benchmarks.md. */
	unsigned coalesce_us;     /* 0 = off (the default); at most 1000000 */
	unsigned coalesce_events; /* the batch that ends the wait early (32);
				     0 with coalesce_us set: -EINVAL */
	unsigned reserved[7];    /* must be zero */
} weft_runtime_config;

/* Fill `cfg` with the defaults above.  Always call it before setting fields,
 * so a program compiled against an older weft.h keeps working. */
WEFT_API void weft_runtime_config_init(weft_runtime_config *cfg);

/*
 * Start a runtime: `cfg->loops` event-loop threads, each with its own
 * io_uring (SINGLE_ISSUER|DEFER_TASKRUN, else COOP_TASKRUN, else plain) or,
 * where io_uring is refused, its own epoll set (cfg->backend).
 * `cfg` may be NULL for the defaults.  On success *out owns the runtime; stop
 * it with weft_runtime_shutdown() and free it with weft_runtime_destroy().
 * Returns 0, -EINVAL (bad config, nonzero reserved field, a WEFT_BACKEND
 * value other than auto, io_uring or epoll), -ENOMEM, -EMFILE (no fd for a
 * ring: an error, never a reason to fall back), with WEFT_BACKEND_IO_URING
 * the probe's -ENOSYS (no io_uring in the kernel), -EPERM (refused by
 * kernel.io_uring_disabled, seccomp or an LSM) or -EOPNOTSUPP (a kernel
 * too old for an operation weft needs), or the error of a failed thread or
 * ring creation.  Every failure prints one line on stderr naming what
 * failed.  Call from a foreign thread (not from a task).
 *
 * SIGPIPE: a write to a pipe or socket whose reader is gone is an error
 * return (-EPIPE), never a crash.  Sends pass MSG_NOSIGNAL; for the rest
 * (write, writev, splice, a stream over a pipe, the program's own writes on
 * the blocking pool) the first runtime to start sets SIGPIPE to SIG_IGN
 * process-wide if it was SIG_DFL, and the last one to stop
 * (weft_runtime_shutdown) sets SIG_DFL back if it is still ignored.  A
 * handler or ignore of the program's own is left as it is.  Children of
 * weft_process_spawn start with SIGPIPE at SIG_DFL; a child the program
 * forks and execs itself inherits the ignore.
 *
 * CPUs: the default number of loops is weft_cpu_count(); with pin_cpus
 * each loop pins itself within the calling thread's affinity mask, which
 * the runtime saves here.
 */
WEFT_API int weft_runtime_start(weft_runtime **out, const weft_runtime_config *cfg);

/*
 * Shut the runtime down: stop accepting spawns (they return -ESHUTDOWN),
 * cancel every live task, wait until all of them have finished, join the
 * loop threads.  Idempotent.  The runtime stays valid for weft_runtime_stats
 * and weft_runtime_destroy; every other use returns -ESHUTDOWN.
 * A task that ignores cancellation (never reaches a suspension point, or
 * stays shielded) delays shutdown until it finishes.
 * Returns 0, or -EDEADLK when called from one of the runtime's own loops.
 */
WEFT_API int weft_runtime_shutdown(weft_runtime *rt);

/* Shut down (if still running) and free the runtime.  Task handles still
 * held stay valid until released.  Call from a foreign thread. */
WEFT_API void weft_runtime_destroy(weft_runtime *rt);

/*
 * asyncio.run(): start a runtime with `cfg` (NULL: defaults), run
 * main_fn(arg) as a task, wait for it, shut the runtime down (cancelling and
 * awaiting every remaining task) and free it.  *result (if non-NULL) gets
 * main_fn's return value.  Returns 0, -ECANCELED if main was cancelled, or
 * an error of weft_runtime_start().  Call from a foreign thread.
 */
WEFT_API int weft_run(const weft_runtime_config *cfg, weft_fn main_fn, void *arg,
		      void **result);

/* The runtime the calling task runs on; NULL outside a task/loop. */
WEFT_API weft_runtime *weft_runtime_current(void);

/*
 * How many CPUs this process may use, as Go's GOMAXPROCS and Rust's
 * available_parallelism count them: the CPUs in the calling thread's
 * affinity mask (sched_getaffinity; taskset, cpusets), capped by a cgroup
 * CPU quota (a container's --cpus): cgroup v2's cpu.max, or v1's
 * cpu.cfs_quota_us / cpu.cfs_period_us, of the process's own cgroup (from
 * /proc/self/cgroup, under /sys/fs/cgroup) and of its ancestors, rounded
 * up.  At least 1.  The default of weft_runtime_config.loops, computed when
 * the runtime starts.  Reads /proc and /sys each call (tens of
 * microseconds): call it at start-up, not per request.  Any thread; never
 * suspends.  On a pinned loop's thread the mask is that loop's one CPU.
 */
WEFT_API unsigned weft_cpu_count(void);

/* Number of loops of the current runtime (0 outside a loop), and the index
 * (0..loops-1) of the loop running the caller now (-1 outside a loop).  A
 * task may be stolen at any suspension point, so the index can change
 * across one. */
WEFT_API unsigned weft_loop_count(void);
WEFT_API int weft_loop_index(void);

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */
/* ------------------------------------------------------------------------ */

enum {
	WEFT_PIN_NONE = -1,    /* stealable: may run on any loop (default) */
	WEFT_PIN_CURRENT = -2, /* never stolen; stays on the spawning loop */
	/* 0..loops-1: never stolen; runs on that loop */
};

typedef struct weft_task_config {
	const char *name;     /* copied (up to 31 bytes); NULL = "task-<id>" */
	size_t stack_size;    /* 0 = the runtime's default; 16 KiB..1 GiB */
	int pin;              /* WEFT_PIN_NONE, WEFT_PIN_CURRENT or a loop index */
	unsigned always_run;  /* nonzero: the body runs even if the task is
				 cancelled (or the runtime shuts down) before
				 it starts, so it can release what it was
				 handed; its first suspension point then
				 returns -ECANCELED.  Its stack is taken at
				 spawn: when none can be had the spawn fails
				 with -ENOMEM (the caller still owns what it
				 meant to hand over), so such a task never
				 finishes without running.  Default 0: like
				 asyncio, a task cancelled before it starts
				 never runs, and a task gets its stack when
				 it starts (see weft_task_join's -ENOMEM) */
	unsigned reserved[7]; /* must be zero */
} weft_task_config;

WEFT_API void weft_task_config_init(weft_task_config *cfg);

/*
 * Spawn fn(arg) as a new task of the current runtime (the caller must be a
 * task or a loop).  If `out` is non-NULL it receives a handle the caller owns
 * and must give back with weft_task_release() (joining does not release it);
 * with out == NULL the task is detached.  The task starts later, on the
 * spawning loop or, if stealable, on whichever loop steals it.  A new
 * task starts with the caller's floating-point control state (x86_64:
 * MXCSR's control bits such as flush-to-zero and denormals-are-zero, and
 * the x87 control word; aarch64: FPCR), as a new thread does; status
 * (exception) flags start clear.
 * Returns 0, -EPERM (not called from a task), -EINVAL (bad config),
 * -ESHUTDOWN (runtime shutting down), -ENOMEM (no memory for the task or,
 * with always_run, for its stack).
 */
WEFT_API int weft_task_spawn(weft_task **out, weft_fn fn, void *arg);
WEFT_API int weft_task_spawn_ex(weft_task **out, const weft_task_config *cfg,
				weft_fn fn, void *arg);

/* Spawn onto runtime `rt` from any thread, including foreign threads
 * (asyncio's call_soon_threadsafe / run_coroutine_threadsafe).  Same returns
 * and ownership as weft_task_spawn_ex; `cfg` may be NULL. */
WEFT_API int weft_runtime_spawn(weft_runtime *rt, weft_task **out,
				const weft_task_config *cfg, weft_fn fn, void *arg);

/* Run fn(arg) as a task of `rt` and block the calling foreign thread until it
 * finishes; *result gets its return value.  Returns 0, -ECANCELED, or a
 * spawn error; -EDEADLK when called from a loop of `rt`. */
WEFT_API int weft_runtime_call(weft_runtime *rt, weft_fn fn, void *arg, void **result);

/*
 * Wait for `t` to finish and take its result (*result may be NULL to ignore
 * it).  Suspension point in a task; a foreign thread blocks.  Does not
 * release the handle.
 * Returns 0 (finished normally), the error it reported with weft_task_fail,
 * -ECANCELED (the task was cancelled: it was
 * cancelled before it started, or a suspension point returned -ECANCELED to
 * it; *result still gets whatever it returned), -EALREADY (already joined:
 * a result is handed over once), -EBUSY (another caller is joining it),
 * -EDEADLK (joining yourself), -EINVAL (t NULL), -ENOMEM (the task, spawned
 * without always_run, could not get its stack when it was about to start,
 * so it never ran),
 * or -ECANCELED/-ETIMEDOUT
 * when the *joining* task is cancelled or times out (timeout_ns of
 * weft_task_join_timeout, or a deadline scope: see "Timeouts and
 * deadlines"; with 0 a finished task is joined, an unfinished one gives
 * -ETIMEDOUT at once); in that case the result stays for a later join.
 */
WEFT_API int weft_task_join(weft_task *t, void **result);
WEFT_API int weft_task_join_timeout(weft_task *t, void **result, uint64_t timeout_ns);

/* Report that the calling task failed with `err` (a negative errno, e.g.
 * -EIO): its join then returns err (the return value is still handed over),
 * and a task group it belongs to treats it as a failure (asyncio: the task
 * raised).  The last call wins.  Returns 0, -EINVAL (err >= 0), -EPERM
 * outside a task. */
WEFT_API int weft_task_fail(int err);

/* True once `t` has finished (its result is ready). */
WEFT_API bool weft_task_done(const weft_task *t);

/*
 * Request cancellation of `t`: its current suspension point (or its next
 * one) returns -ECANCELED, and so does every later one until it finishes,
 * except inside a shielded section.  A task cancelled before it starts never
 * runs.  Returns 0, -EALREADY if `t` has finished, -EINVAL if t is NULL.
 */
WEFT_API int weft_task_cancel(weft_task *t);

/* Whether cancellation of the calling task has been requested. */
WEFT_API bool weft_task_cancelled(void);

/* Shield the calling task: until the matching weft_shield_end(), suspension
 * points do not return -ECANCELED (a pending cancellation is delivered at
 * the first suspension point after the outermost end).  Nests.  Use it for
 * cleanup that must finish.  Returns 0 or -EPERM outside a task;
 * weft_shield_end returns -EINVAL without a matching begin. */
WEFT_API int weft_shield_begin(void);
WEFT_API int weft_shield_end(void);

/* Add a reference to a handle (to pass it to another thread); each
 * reference is given back with weft_task_release(). */
WEFT_API weft_task *weft_task_ref(weft_task *t);
/* Give back a handle.  The task keeps running if unfinished (detached). */
WEFT_API void weft_task_release(weft_task *t);

/* The calling task (a borrowed pointer: valid while it runs), or NULL. */
WEFT_API weft_task *weft_task_current(void);

/* Task name (valid while the handle is held) and a unique id (>= 1). */
WEFT_API const char *weft_task_name(const weft_task *t);
WEFT_API int weft_task_set_name(weft_task *t, const char *name);
WEFT_API uint64_t weft_task_id(const weft_task *t);

/* Let other ready tasks run; the caller goes behind them.  Suspension point.
 * Returns 0, -ECANCELED, -EPERM outside a task. */
WEFT_API int weft_yield(void);

/* Sleep at least `ns` nanoseconds / `ms` milliseconds (0: only yield, as
 * weft_yield; WEFT_FOREVER: until cancelled or a scope ends; a huge value
 * saturates, see "Timeouts and deadlines").  Suspension point.
 * Returns 0, -ECANCELED, -ETIMEDOUT (a deadline scope ended first; a scope
 * ending at the same instant lets the sleep complete), -EPERM outside a
 * task. */
WEFT_API int weft_sleep(uint64_t ns);
WEFT_API int weft_sleep_ms(uint64_t ms);

/* Sleep until `deadline_ns`, an absolute weft_now_ns() time (Tokio's
 * sleep_until, Trio's sleep_until): WEFT_FOREVER sleeps until cancelled or
 * a scope ends; a deadline already past, 0 included, only yields, as
 * weft_sleep(0).  Unlike a loop of weft_sleep(period), an absolute deadline
 * does not add the time spent between sleeps to the next one.  Suspension
 * point.  Returns as weft_sleep: 0, -ECANCELED, -ETIMEDOUT (a deadline
 * scope ended first; one ending at the same instant lets the sleep
 * complete), -EPERM outside a task. */
WEFT_API int weft_sleep_until(uint64_t deadline_ns);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC). */
WEFT_API uint64_t weft_now_ns(void);

/*
 * Periodic timers (Tokio's interval with MissedTickBehavior, libuv's
 * repeating timer; asyncio has none -- docs/guide.md, "Intervals").
 *
 * An interval is a grid of tick times, `period_ns` apart, and
 * weft_interval_tick() waits for the next one.  Pacing on the grid, rather
 * than sleeping a period after each round of work, keeps the rate exact:
 * `while (...) { work(); weft_sleep(period); }` runs at one round per
 * period *plus* the work and the wake-up latency, and drifts further behind
 * every round.  The policy says what happens when the caller falls behind
 * the grid (its work took longer than a period, or its loop was busy):
 *
 *  - WEFT_TICK_BURST: every missed tick is still delivered, back to back
 *    (each call returns at once) until the caller has caught up; the grid
 *    never moves.  For counting (a tick is a unit of work owed).
 *  - WEFT_TICK_DELAY: a late tick restarts the grid: the next tick comes
 *    one period after the late one returns, so ticks are never closer than
 *    a period.  A tick is late when the caller asks for it after its time
 *    (its previous round overran), or gets it a whole period or more after
 *    its time (its loop was held up); a tick merely woken a little late by
 *    the scheduler keeps the grid, so on-time ticks do not drift.  For
 *    heartbeats and rate limits (libuv's repeat restarts from every fire).
 *  - WEFT_TICK_SKIP: missed ticks are dropped and the grid stays: the next
 *    tick is the first grid time after now.  weft_interval_tick() returns
 *    how many ticks the one call accounts for (1 + the ticks dropped), so a
 *    sweep can scale its work.  For sampling and expiry sweeps.
 */
typedef enum weft_tick_policy {
	WEFT_TICK_BURST, /* missed ticks fire back to back until caught up
			    (Tokio Burst) */
	WEFT_TICK_DELAY, /* next tick one period after the late one (Tokio
			    Delay, libuv repeat) */
	WEFT_TICK_SKIP,  /* skip missed ticks, stay on the original grid
			    (Tokio Skip) */
} weft_tick_policy;

/* An interval's state: plain fields, no allocation and nothing to destroy;
 * it lives on the caller's stack or in a struct.  Set it up with
 * weft_interval_init() or weft_interval_init_at(); read it through
 * weft_interval_next().  The task ticking it owns it: any thread may
 * init, reset or read it only while no weft_interval_tick() on it is in
 * progress (no locking). */
typedef struct weft_interval {
	uint64_t period_ns; /* grid spacing; 0 = not initialized */
	uint64_t next_ns;   /* weft_now_ns() time of the next tick */
	unsigned policy;    /* weft_tick_policy */
	unsigned reserved[3]; /* zeroed by init */
} weft_interval;

/*
 * Set `iv` up: the first tick one period from now (Tokio's interval ticks
 * at once; ask for that with weft_interval_init_at(iv, weft_now_ns(), ...)),
 * then one every `period_ns` nanoseconds.  A period so large that a tick
 * would fall beyond the clock's range makes that tick never come (a tick
 * then waits until cancelled or a scope ends, as weft_sleep(WEFT_FOREVER)).
 * Any thread; never suspends.  Returns 0, or -EINVAL (iv NULL, period 0,
 * policy not a weft_tick_policy), leaving *iv untouched.
 */
WEFT_API int weft_interval_init(weft_interval *iv, uint64_t period_ns, weft_tick_policy policy);

/* weft_interval_init() with the first tick at `first_ns`, an absolute
 * weft_now_ns() time (one already past is due at once; WEFT_FOREVER: never).
 * The grid is first_ns + k * period_ns.  Returns 0 or -EINVAL as init. */
WEFT_API int weft_interval_init_at(weft_interval *iv, uint64_t first_ns, uint64_t period_ns,
				   weft_tick_policy policy);

/*
 * Wait for the next tick of `iv` and consume it.  Returns the number of
 * ticks this call accounts for: 1 with BURST and DELAY; with SKIP 1 + the
 * ticks skipped because the caller came (or was woken) too late for them.
 * A tick already due (the caller is behind) returns at once, after a yield
 * (as weft_sleep(0): a catching-up loop still lets others run); a tick in
 * the future is waited for on the loop's timer, never early, and late by
 * the loop's wake-up latency (microseconds on an idle machine; more under
 * load or sanitizers).  The tick comes at its grid time, not a period after
 * the previous return, so the rate does not drift.
 * Suspension point in a task.  Returns >= 1, or -ECANCELED, -ETIMEDOUT (a
 * deadline scope ended first), and then the tick is not consumed: the next
 * call waits for the same tick.  -EINVAL (iv NULL or not initialized),
 * -EPERM outside a task.
 */
WEFT_API int64_t weft_interval_tick(weft_interval *iv);

/* Restart the grid from now: the next tick one period from now, missed
 * ticks forgotten (Tokio's reset).  Same thread rules as init; never
 * suspends.  Does nothing if iv is NULL or not initialized. */
WEFT_API void weft_interval_reset(weft_interval *iv);

/* The weft_now_ns() time of the next tick (WEFT_FOREVER if it never
 * comes), or 0 if iv is NULL or not initialized.  Never suspends. */
WEFT_API uint64_t weft_interval_next(const weft_interval *iv);

/* ------------------------------------------------------------------------ */
/* Task groups (asyncio.TaskGroup, Trio nurseries, libdill bundles)          */
/* ------------------------------------------------------------------------ */

typedef struct weft_group weft_group;

/* Create an empty group.  *out is owned by the caller, who must end it
 * with weft_group_destroy().  Any thread (children are spawned from
 * tasks).  Returns 0, -EINVAL, -ENOMEM. */
WEFT_API int weft_group_create(weft_group **out);

/*
 * Spawn fn(arg) as a child of `g` (cfg may be NULL; `out` as in
 * weft_task_spawn_ex, may be NULL).  The first child that fails (reports
 * an error with weft_task_fail, or cannot start) cancels every other child.
 * Returns 0, -ECANCELED (the group is cancelling or has been waited for:
 * no new children), or a spawn error.  Call from a task of the runtime.
 */
WEFT_API int weft_group_spawn(weft_group *g, weft_task **out, const weft_task_config *cfg,
			      weft_fn fn, void *arg);

/*
 * Wait until every child has finished (leaving `async with TaskGroup()`).
 * Returns 0, the first child failure's error (weft_group_errors gives
 * all), or -ECANCELED / -ETIMEDOUT when the *waiting* task is cancelled or
 * its deadline scope expires: the group then cancels its children and
 * still waits for all of them before returning (no child outlives the
 * wait).  After it returns the group accepts no new children.  Suspension
 * point in a task; a foreign thread blocks.
 */
WEFT_API int weft_group_wait(weft_group *g);

/* Cancel every child (they get -ECANCELED at their suspension points); the
 * group accepts no new children.  Returns 0 or -EINVAL.  Any thread. */
WEFT_API int weft_group_cancel(weft_group *g);

/* Copy up to `n` child failure errors, in the order they happened, to
 * errs (the group keeps the first 16); returns how many failures there
 * were in all (may exceed what was copied), or -EINVAL. */
WEFT_API int weft_group_errors(weft_group *g, int *errs, size_t n);

/* Cancel and wait for any children still running (libdill's hclose), then
 * free the group.  Child handles obtained through `out` stay valid. */
WEFT_API void weft_group_destroy(weft_group *g);

/* ------------------------------------------------------------------------ */
/* Waiting on several tasks (asyncio.gather / wait / as_completed)           */
/* ------------------------------------------------------------------------ */

/* A task "failed" if its join would return an error: it reported one with
 * weft_task_fail, was cancelled, or could not start. */

/*
 * asyncio.gather: wait for tasks[0..n) and join them, results in input
 * order (results may be NULL).
 *  - errs == NULL: return 0 with every result once all have succeeded, or,
 *    as soon as one fails, that task's error; that task is joined (its
 *    result is in results[i]) and the others keep running, not joined.
 *  - errs != NULL (return_exceptions=True): wait for all, join all; errs[i]
 *    gets each join's return (0 or the error); returns 0.
 * Tasks must not have been joined already.  Returns also -ECANCELED /
 * -ETIMEDOUT when the calling task is cancelled or its scope expires:
 * then, as in asyncio, every unfinished task is cancelled (none is joined;
 * all stay joinable).  -EPERM (not a task), -EINVAL, -ENOMEM.
 * Suspension point.  Like asyncio, a failure in the errs == NULL mode
 * leaves the siblings running; use a task group (weft_group_*) when the
 * first failure should cancel the rest and nothing may outlive the wait.
 */
WEFT_API int weft_gather(weft_task **tasks, size_t n, void **results, int *errs);

/*
 * asyncio.wait_for: join `t` within `timeout_ns` ("Timeouts and
 * deadlines"); on timeout cancel it and wait until it has finished, then
 * return -ETIMEDOUT.  With 0, as asyncio's wait_for(t, 0), a finished task
 * is joined at once and an unfinished one is cancelled and awaited, so that
 * wait is the one suspension 0 does not rule out.  Nothing is dropped:
 * *result always gets the task's return value, and if the task finished
 * normally after all (it ignored the cancellation), its join status is
 * returned instead of -ETIMEDOUT.  If the *calling* task is cancelled
 * while it waits, `t` is cancelled and awaited the same way and
 * -ECANCELED is returned (asyncio).  Other returns as weft_task_join.
 * Suspension point (the wait after the cancel is not interruptible).
 */
WEFT_API int weft_wait_for(weft_task *t, void **result, uint64_t timeout_ns);

enum {
	WEFT_FIRST_COMPLETED = 1, /* asyncio.FIRST_COMPLETED */
	WEFT_FIRST_EXCEPTION = 2, /* asyncio.FIRST_EXCEPTION: a failure, or all done */
	WEFT_ALL_COMPLETED = 3,   /* asyncio.ALL_COMPLETED */
};

/*
 * asyncio.wait: wait until `mode` holds for tasks[0..n) and return how many
 * have finished (check each with weft_task_done; nothing is joined).  A
 * timeout is a deadline scope around the call: -ETIMEDOUT then, and the
 * tasks keep running.  Also -ECANCELED, -EPERM, -EINVAL, -ENOMEM.
 * Suspension point.
 */
WEFT_API int weft_wait(weft_task **tasks, size_t n, int mode);

/* asyncio.as_completed: an iterator over tasks in the order they finish.
 * The struct lives in the caller's frame; `tasks` must stay valid. */
typedef struct weft_as_completed {
	weft_task **tasks;
	size_t n;
	size_t left;
	uint8_t *returned;
	unsigned reserved[4];
} weft_as_completed;

/* Start iterating.  Returns 0, -EINVAL, -ENOMEM.  Free with _done. */
WEFT_API int weft_as_completed_init(weft_as_completed *it, weft_task **tasks, size_t n);
/* Wait for the next task to finish and return its index (tasks that are
 * found finished together come in index order); -ENOENT when every task
 * has been returned; -ECANCELED / -ETIMEDOUT / -EPERM.  Suspension point.
 * The task is not joined. */
WEFT_API int weft_as_completed_next(weft_as_completed *it);
WEFT_API void weft_as_completed_done(weft_as_completed *it);

/* ------------------------------------------------------------------------ */
/* Generators (async generators and `async for`)                             */
/* ------------------------------------------------------------------------ */

typedef struct weft_gen weft_gen;

/* A generator body: produces values with weft_gen_yield(g, v) and returns
 * when it has no more (its return value is dropped). */
typedef void *(*weft_gen_fn)(weft_gen *g, void *arg);

/*
 * Create a generator running fn(g, arg) in a task of its own.  Like
 * Python's async generators it is lazy: fn starts when the first value is
 * asked for, and each weft_gen_yield waits until the next one is.  *out is
 * owned by the caller and ended with weft_gen_close().  Call from a task.
 * Returns 0, -EINVAL, -EPERM, -ENOMEM (also when the generator's task
 * cannot get its stack: it is taken now, so weft_gen_next never waits for
 * a task that cannot start), -ESHUTDOWN.
 */
WEFT_API int weft_gen_create(weft_gen **out, weft_gen_fn fn, void *arg);

/* Ask for the next value (`async for`): 0 with *value, -ENOENT once the
 * body has returned, -ECANCELED / -ETIMEDOUT if the consumer is cancelled
 * or its scope expires (a value produced meanwhile is kept for the next
 * call).  Suspension point. */
WEFT_API int weft_gen_next(weft_gen *g, void **value);

/* In the body: hand `value` to the consumer and wait until the next one is
 * asked for.  Returns 0, or -ECANCELED once the consumer has closed the
 * generator (aclose(): clean up and return).  Suspension point. */
WEFT_API int weft_gen_yield(weft_gen *g, void *value);

/* Stop early and free (aclose()): the body's pending or next suspension
 * point returns -ECANCELED, and close waits for the body to return, so
 * whatever it holds is released before close returns.  Any values it
 * yields while closing are dropped.  Call from a task or foreign thread,
 * once no other task is inside weft_gen_next on it (closing under a
 * consumer frees the generator beneath it).  Several consumers may call
 * weft_gen_next at once; each value goes to one of them. */
WEFT_API void weft_gen_close(weft_gen *g);

/* ------------------------------------------------------------------------ */
/* Deadline scopes (asyncio.timeout, Trio's move_on_after / fail_after)      */
/* ------------------------------------------------------------------------ */

/*
 * A scope bounds every suspension point of the calling task between
 * weft_scope_enter() and weft_scope_exit(): once its deadline passes, the
 * current suspension point (sleep, join, future and every other wait,
 * including those of queues, locks and I/O) returns -ETIMEDOUT, and so does
 * every later one inside the scope.  Scopes nest; the earliest deadline
 * wins.  This is the one mechanism behind every timeout in weft.
 * The struct lives in the caller's frame; scopes are exited in reverse
 * order of entry, by the task that entered them.  Shielding does not
 * affect deadlines.
 */
typedef struct weft_scope {
	uint64_t deadline;          /* absolute, weft_now_ns() clock
				       (WEFT_FOREVER: none) */
	struct weft_scope *outer;
	weft_task *task;
	uint64_t outer_deadline;    /* enclosing effective deadline (restored
				       on exit) */
	bool fired;                 /* a suspension point timed out because
				       of this scope's deadline */
	unsigned reserved[4];
} weft_scope;

/* Enter a scope whose deadline is `timeout_ns` from now
 * (weft_scope_enter) or the absolute time `deadline_ns`
 * (weft_scope_enter_at), as "Timeouts and deadlines" says: WEFT_FOREVER
 * is no deadline (a scope that only groups, never fires); 0, or a
 * deadline already past, makes every suspension point inside return
 * -ETIMEDOUT at once.  Returns 0, -EPERM outside a task, -EINVAL (s
 * NULL). */
WEFT_API int weft_scope_enter(weft_scope *s, uint64_t timeout_ns);
WEFT_API int weft_scope_enter_at(weft_scope *s, uint64_t deadline_ns);

/* Leave the innermost scope `s`.  Returns 1 if its deadline made a
 * suspension point return -ETIMEDOUT (move_on_after's cancelled_caught),
 * 0 if not, -EINVAL if `s` is not the calling task's innermost scope. */
WEFT_API int weft_scope_exit(weft_scope *s);

/* ------------------------------------------------------------------------ */
/* Futures (asyncio.Future, usable from any loop and any thread)             */
/* ------------------------------------------------------------------------ */

/*
 * Create a pending future.  *out owns one reference; give it back with
 * weft_future_release().  Returns 0, -EINVAL (out NULL), -ENOMEM.
 * Any thread.
 */
WEFT_API int weft_future_create(weft_future **out);
WEFT_API weft_future *weft_future_ref(weft_future *f);
WEFT_API void weft_future_release(weft_future *f);

/* Complete the future with a value, an error (a negative errno), or as
 * cancelled, and wake every waiter.  Only the first completion counts: later
 * ones return -EALREADY and change nothing.  Returns 0, -EALREADY, -EINVAL
 * (f NULL; set_error with err >= 0).  Any thread; never suspends. */
WEFT_API int weft_future_set_result(weft_future *f, void *value);
WEFT_API int weft_future_set_error(weft_future *f, int err);
WEFT_API int weft_future_cancel(weft_future *f);

/* True once completed (by any of the three). */
WEFT_API bool weft_future_done(const weft_future *f);

/*
 * Wait for the future.  Suspension point in a task (only the task waits);
 * a foreign thread blocks.  Any number of waiters.
 * Returns 0 with *value set (value may be NULL), the error given to
 * set_error, -ECANCELED if the future was cancelled or the waiting task is,
 * -ETIMEDOUT (timeout_ns of weft_future_wait_timeout, see "Timeouts and
 * deadlines": with 0 a completed future's outcome is returned, a pending
 * one gives -ETIMEDOUT at once; or a deadline scope) or -EINVAL.  A waiter
 * that gives up (timeout or cancellation) does not affect the future.
 */
WEFT_API int weft_future_wait(weft_future *f, void **value);
WEFT_API int weft_future_wait_timeout(weft_future *f, void **value, uint64_t timeout_ns);

/* Non-blocking: the outcome if done (as weft_future_wait), else -EAGAIN. */
WEFT_API int weft_future_result(const weft_future *f, void **value);

/* ------------------------------------------------------------------------ */
/* Blocking offload (asyncio.to_thread / loop.run_in_executor)               */
/* ------------------------------------------------------------------------ */

/* Receives the result of an offloaded call nobody waits for any more. */
typedef void (*weft_cleanup_fn)(void *result, void *arg);

/*
 * Run fn(arg) on the runtime's pool of blocking threads and wait for its
 * result, suspending only the calling task.  Use it for calls that block
 * (plain file I/O, getaddrinfo, CPU-heavy library calls) so they do not hold
 * a loop.  The pool starts threads on demand up to cfg.offload_threads;
 * beyond that calls queue in order; a thread idle for cfg.offload_idle_ms
 * exits.
 * Returns 0 with *result (may be NULL) set to fn's return value;
 * -ECANCELED / -ETIMEDOUT if the waiting task is cancelled or its deadline
 * scope expires: a call that has not started yet never runs; a call already
 * running cannot be interrupted, so it finishes on its thread and its result
 * goes to cleanup(result, arg) (weft_offload_ex; weft_offload drops it).
 * Whenever weft_offload_ex returns an error, cleanup owns arg: it is called
 * exactly once, with the result, or with NULL if the call never ran (on the
 * calling thread when the call failed before it was queued), so a
 * heap-allocated arg can always be freed there.  If
 * the call finished at the moment the wait gave up, its result is returned
 * (0) rather than lost, and the cancellation is delivered at the next
 * suspension point.  Also -EPERM (not a task), -EINVAL (fn NULL),
 * -ESHUTDOWN, -ENOMEM, -EAGAIN (no thread could be started and none runs).
 * cleanup runs on a pool thread.  Runtime shutdown waits for running calls.
 */
WEFT_API int weft_offload(weft_fn fn, void *arg, void **result);
WEFT_API int weft_offload_ex(weft_fn fn, void *arg, weft_cleanup_fn cleanup, void **result);

/* ------------------------------------------------------------------------ */
/* Statistics                                                                */
/* ------------------------------------------------------------------------ */

enum {
	WEFT_RING_DEFER_TASKRUN = 1 << 0, /* SINGLE_ISSUER|DEFER_TASKRUN */
	WEFT_RING_COOP_TASKRUN = 1 << 1,  /* COOP_TASKRUN|TASKRUN_FLAG */
	WEFT_RING_MSG_RING = 1 << 2,      /* IORING_OP_MSG_RING wakeups */
	WEFT_RING_FD_REGISTERED = 1 << 3, /* io_uring_register_ring_fd */
	WEFT_RING_EXT_ARG = 1 << 4,       /* timed waits in one enter */
	WEFT_RING_BUF_RING = 1 << 5,      /* provided-buffer rings (5.19) */
	WEFT_RING_MULTISHOT = 1 << 6,     /* multishot accept and recv (5.19) */
	WEFT_RING_NODROP = 1 << 7,        /* CQ overflow kept, not dropped */
	WEFT_RING_CQSIZE = 1 << 8,        /* CQ sized by ring_cq_entries */
	WEFT_RING_CQE_SKIP = 1 << 9,      /* IOSQE_CQE_SKIP_SUCCESS (5.17) */
	WEFT_RING_SEND_ZC = 1 << 10,      /* IORING_OP_SEND_ZC (6.0) */
	WEFT_RING_MIN_WAIT = 1 << 11,     /* batch waits with a min timeout
					     (6.12): coalesce_us in one enter */
};

typedef struct weft_loop_stats {
	uint64_t backend;        /* WEFT_BACKEND_IO_URING or _EPOLL */
	uint64_t tasks_run;      /* task resumptions */
	uint64_t steals;         /* successful steal operations */
	uint64_t tasks_stolen;   /* tasks taken by those steals */
	uint64_t parks;          /* times the loop went to sleep */
	uint64_t wakeups_sent;   /* MSG_RING/eventfd wakes sent to others */
	uint64_t cqes;           /* completions reaped (epoll: events) */
	uint64_t timers_fired;
	uint64_t tasks_spawned;  /* spawned by tasks running on this loop */
	uint64_t enters;         /* io_uring_enter calls (submit and/or
				    reap); epoll: epoll_wait calls */
	uint64_t ops;            /* I/O operations completed (final CQEs) */
	uint64_t cq_overflows;   /* times the CQ overflowed and was flushed */
	uint64_t reserved[4];
} weft_loop_stats;

typedef struct weft_runtime_stats {
	unsigned loops;
	unsigned ring_features;  /* WEFT_RING_* chosen at start-up (0: epoll) */
	unsigned backend;        /* WEFT_BACKEND_IO_URING or _EPOLL */
	char backend_reason[160]; /* why that backend, e.g. "io_uring refused
				     (seccomp, EPERM)" or "WEFT_BACKEND=epoll" */
	uint64_t tasks_spawned;
	uint64_t tasks_live;
	uint64_t stacks_guarded; /* live guarded stacks */
	uint64_t stacks_slab;    /* live canary-checked slab stacks */
	uint64_t offload_threads; /* blocking-pool threads alive */
	uint64_t offload_calls;   /* offloaded calls started */
	uint64_t reserved[6];
	weft_loop_stats loop[64]; /* first min(loops, 64) loops */
} weft_runtime_stats;

/* Snapshot of counters (racy but tear-free per field).  Returns 0 or
 * -EINVAL.  Any thread; valid after shutdown too. */
WEFT_API int weft_runtime_stats_get(weft_runtime *rt, weft_runtime_stats *out);

/* "io_uring", "epoll" or "auto" for a WEFT_BACKEND_* value; NULL for
 * any other. */
WEFT_API const char *weft_backend_name(unsigned backend);

/* Static string naming an error code returned by weft, with a few words
 * on what it means here (e.g. "-ECANCELED (cancelled)"); every code a
 * weft header documents has one.  Any thread. */
WEFT_API const char *weft_strerror(int err);

#ifdef __cplusplus
}
#endif

#include "weft/sync.h"  /* Lock, Event, Condition, Semaphore, Barrier, RwLock */
#include "weft/trace.h"  /* event trace: Chrome trace-event JSON */
#include "weft/queue.h" /* queues: FIFO, LIFO, priority, join, shutdown */
#include "weft/io.h"    /* raw I/O operations on the loop's io_uring */
#include "weft/net.h"   /* sockets: TCP, UDP, Unix; listen, connect, DNS */
#include "weft/stream.h" /* buffered streams: read_line, drain (asyncio) */
#include "weft/server.h" /* serve a listener: a task per connection */
#include "weft/fs.h"    /* files (aiofiles) */
#include "weft/process.h" /* signals and subprocesses */
#include "weft/load.h"  /* load generators: histogram, pacer, run driver */
#include "weft/observe.h" /* stall reports, Prometheus metrics */
#include "weft/dump.h"  /* task dumps: every task and what it waits on */

#endif /* WEFT_H */
