/*
 * weft/observe.h — stall reports and metrics (docs/observability.md).
 *
 * Included by "weft.h"; include that.
 *
 * Stall detector: on by default.  A watchdog thread per runtime wakes
 * every stall_threshold_ns / 2 and looks at a counter each loop stores
 * once per task switch.  A loop that has run the same task for longer than
 * the threshold (it has not come back to its scheduler) gets one report:
 * the loop, the task's name and id, how long so far, and a native
 * backtrace of the task taken on the loop's own thread (SIGURG, whose
 * default is to be ignored, delivered to that thread only).  A loop
 * thread the machine gives no CPU is not blamed on its task: a stall needs
 * half the threshold of CPU time, or the thread asleep in a system call
 * (then the report names the call).  Reports are
 * rate-limited per loop (weft_runtime_config.stall_report_interval_ns);
 * those left out are counted in the next one.  Loops waiting for work
 * are never reported.  The configuration fields live in
 * weft_runtime_config (weft.h): stall_threshold_ns, stall_report_interval_ns,
 * stall_fn and stall_arg.
 *
 * Metrics: weft_metrics_write renders every counter of the runtime in
 * Prometheus' text exposition format (version 0.0.4); weft_metrics_serve
 * serves that over HTTP from a task (opt-in).
 */
#ifndef WEFT_OBSERVE_H
#define WEFT_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One stall, as the watchdog saw it.  Valid only during the callback. */
typedef struct weft_stall_report {
	unsigned loop;          /* index of the stalled loop */
	uint64_t task_id;       /* weft_task_id of the running task; 0 if
				   unknown (see `blocked_syscall`) */
	const char *task_name;  /* its name ("task-<id>" if it has none);
				   "?" if unknown */
	uint64_t stalled_ns;    /* how long so far (at least; measured to
				   within stall_threshold_ns / 2) */
	uint64_t suppressed;    /* stalls of this loop left unreported by the
				   rate limit since its previous report */
	long blocked_syscall;   /* -1: the thread was running user code; else
				   the number of the system call it is blocked
				   in (then no signal was sent when that call
				   would fail with EINTR, and frames is empty) */
	void *const *frames;    /* the task's native backtrace, innermost
				   first (return addresses, as backtrace(3)) */
	int nframes;            /* 0 when none could be taken */
} weft_stall_report;

/* Replaces the printer (weft_runtime_config.stall_fn): called on the
 * runtime's watchdog thread, once per reported stall, with the config's
 * stall_arg.  It must not call into the runtime's loops and should return
 * quickly (the watchdog watches no loop meanwhile). */
typedef void (*weft_stall_fn)(const weft_stall_report *r, void *arg);

/* The default printer: what weft writes to stderr for a stall, one
 * write(2) for the heading and backtrace_symbols_fd(3) for the frames
 * (a program's function names show with -rdynamic; static functions
 * never do).  A stall_fn may call it to print as well.  Any thread; does
 * nothing with r NULL. */
WEFT_API void weft_stall_report_print(const weft_stall_report *r);

/*
 * Render the runtime's metrics in the Prometheus text exposition format
 * (names and meanings: docs/observability.md, "Metrics") into buf[0..cap),
 * NUL-terminated when cap > 0.  Returns the length of the whole text (not
 * counting the NUL), which may exceed cap - 1: call again with a larger
 * buffer then, as with snprintf.  -EINVAL (rt NULL, or buf NULL with cap
 * > 0).  Any thread; never suspends; valid after shutdown too.  In a
 * build with WEFT_NO_OBSERVE the counters it adds to weft_runtime_stats
 * stay 0.
 */
WEFT_API int weft_metrics_write(weft_runtime *rt, char *buf, size_t cap);

/*
 * Serve the current runtime's metrics over HTTP/1.1 on `addr` ("ip:port",
 * IPv4 or "[ipv6]:port"; port 0 picks a free one): a task that listens
 * there and answers GET (or HEAD) /metrics and / with weft_metrics_write's
 * text, one connection after another (a scrape is one short request; each
 * answer has 5 s at most, so a stalled client cannot hold the endpoint).
 * *out (non-NULL) receives the serving task, owned by the caller: cancel
 * it to stop serving, then join and release it (the listening socket is
 * closed by then).  If `port` is non-NULL it gets the port listened on.
 * Returns 0 once it listens, -EINVAL (bad address, out NULL), -EPERM
 * (not called from a task of a runtime), the listen's error
 * (-EADDRINUSE, ...), -ENOMEM, -ESHUTDOWN.  Call from a task; it does not
 * suspend.
 */
WEFT_API int weft_metrics_serve(const char *addr, weft_task **out, uint16_t *port);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_OBSERVE_H */
